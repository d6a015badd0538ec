"""Criteria files: NCT06849401 complete and verbatim; validation reports every author error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cd7kit.clinical.eligibility import (
    CHECKPOINTS,
    criteria_from_dict,
    load_criteria,
    read_ctgov,
    shipped_trials,
)
from cd7kit.errors import InputError, NotFoundError

FIXTURE = Path(__file__).parent / "data" / "NCT06849401_ctgov_v2.json"


def test_nct06849401_has_its_13_inclusion_and_20_exclusion_criteria():
    cs = load_criteria("NCT06849401")
    assert "NCT06849401" in shipped_trials()
    assert cs.ids() == [f"I{i}" for i in range(1, 14)] + [f"E{i}" for i in range(1, 21)]
    assert sum(c.category == "inclusion" for c in cs) == 13
    assert sum(c.category == "exclusion" for c in cs) == 20
    assert cs.protocol_version.endswith("2025-05-15")


def test_texts_are_verbatim_from_clinicaltrials_gov():
    ours = load_criteria("NCT06849401")
    imported = read_ctgov(FIXTURE)
    for c in ours:
        assert c.text == imported.get(c.id).text, c.id
    assert "(>25%)" in ours.get("I3").text  # markdown escape removed, wording kept


def test_only_judgement_criteria_are_pure_attestations():
    cs = load_criteria("NCT06849401")
    assert [c.id for c in cs if c.is_attestation] == ["I6", "I13", "E18", "E20"]
    for cid in ("I3", "I11", "I12", "E7", "E8"):  # part computed, part judgement
        assert "attested()" in (cs.get(cid).expression or "")


def test_stated_bounds_are_encoded_as_written():
    cs = load_criteria("NCT06849401")
    assert "floor(age) >= 2" in cs.get("I1").expression and "floor(age) <= 18" in cs.get("I1").expression
    assert "> 80" in cs.get("I5").expression
    assert "lab(LVEF) >= 50" == cs.get("I8").expression
    e10 = cs.get("I10")
    assert "lab(BILI) <= 3 * uln(BILI)" in e10.expression and "lab(CREAT) <= 1.6" in e10.expression
    assert e10.lookback_days == 7
    assert set(e10.checkpoints) == set(CHECKPOINTS)


def _doc(**crit):
    base = {"id": "I1", "category": "inclusion", "text": "t", "expression": "lab(CREAT) <= 1.6"}
    base.update(crit)
    return {"trial": "T", "protocol_version": "1", "criteria": [base]}


def test_validation_lists_every_problem():
    data = {
        "trial": "T",
        "protocol_version": "1",
        "criteria": [
            {"id": "I1", "category": "inclusion", "text": "a", "expression": "lab(NOT_A_CODE) > 1 and any_intervention(magic)"},
            {"id": "I1", "category": "maybe", "text": "", "checkpoints": ["lunch"], "lookback_days": -1},
            {"id": "E1", "category": "exclusion", "text": "c", "expression": "param.missing > 1 or weight > 3"},
        ],
    }
    with pytest.raises(InputError) as ei:
        criteria_from_dict(data)
    msgs = " | ".join(p.message for p in ei.value.problems)
    for needle in ("unknown test code 'NOT_A_CODE'", "unknown intervention kind 'magic'", "duplicate id", "category must be", "missing verbatim text", "unknown checkpoint", "lookback_days", "unknown name 'param.missing'", "unknown name 'weight'"):
        assert needle in msgs


def test_syntax_errors_are_input_errors():
    with pytest.raises(InputError):
        criteria_from_dict(_doc(expression="lab(CREAT) <= "))


def test_criteria_round_trip_through_yaml(tmp_path):
    cs = load_criteria("NCT06849401")
    p = tmp_path / "copy.yaml"
    p.write_text(cs.to_yaml(), encoding="utf-8")
    again = load_criteria(p)
    assert [c.to_dict() for c in again] == [c.to_dict() for c in cs]
    assert again.params == cs.params


def test_unknown_trial():
    with pytest.raises(NotFoundError):
        load_criteria("NCT00000000")
