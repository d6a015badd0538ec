"""ClinicalTrials.gov API v2 study JSON -> criteria skeleton, on a saved NCT06849401 record."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cd7kit.clinical.eligibility import INELIGIBLE, PENDING, UNKNOWN, criteria_from_ctgov, read_ctgov, screen
from cd7kit.clinical.eligibility.ctgov import split_criteria_text, unescape_markdown
from cd7kit.data import Study
from cd7kit.errors import InputError

FIXTURE = Path(__file__).parent / "data" / "NCT06849401_ctgov_v2.json"


def test_import_numbers_every_free_text_item():
    cs = read_ctgov(FIXTURE)
    assert cs.trial == "NCT06849401"
    assert cs.protocol_version == "ClinicalTrials.gov record last updated 2025-05-15"
    inc = [c for c in cs if c.category == "inclusion" and not c.id.startswith("CTG")]
    exc = [c for c in cs if c.category == "exclusion"]
    assert [c.id for c in inc] == [f"I{i}" for i in range(1, 14)]
    assert [c.id for c in exc] == [f"E{i}" for i in range(1, 21)]
    assert all(c.is_attestation for c in inc + exc)
    assert cs.get("E20").text == "Individuals assessed by the investigator to have potential hidden risks of disputes."
    assert cs.get("I3").text.count("\\") == 0 and "(>25%)" in cs.get("I3").text


def test_structured_fields_become_expressions():
    cs = read_ctgov(FIXTURE)
    assert cs.get("CTG-AGE").expression == "floor(age) >= 2 and floor(age) <= 18"
    assert cs.get("CTG-HV").expression == "known(diagnosis)"
    assert "CTG-SEX" not in cs.ids()  # sex ALL: no criterion


def _one(age, diagnosis="T-ALL"):
    return Study.from_tables(
        pd.DataFrame({"subject_id": ["X"], "age_years": [age], "sex": ["F"], "diagnosis": [diagnosis]}),
        events=pd.DataFrame({"subject_id": ["X"], "day": [0.0], "kind": ["disposition"], "term": ["screened"]}),
    )


def test_skeleton_evaluates_pending_until_authored_and_age_decides():
    cs = read_ctgov(FIXTURE)
    rep = screen(_one(10.0), "X", cs)
    assert rep.result("CTG-AGE").value == "MET"
    assert rep.result("I5").value == UNKNOWN
    assert rep.verdict == PENDING
    assert screen(_one(19.0), "X", cs).verdict == INELIGIBLE


def _study(elig: dict) -> dict:
    return {"protocolSection": {"identificationModule": {"nctId": "NCT00000001"}, "eligibilityModule": elig}}


def test_months_female_only_and_nested_bullets():
    text = (
        "Inclusion Criteria:\n\n* Age 6 months or older\n* Adequate organ function:\n  * creatinine \\< 1.5 mg/dL\n  * bilirubin normal\n"
        "\nExclusion Criteria:\n\n* Pregnancy\n"
    )
    cs = criteria_from_ctgov(_study({"eligibilityCriteria": text, "sex": "FEMALE", "minimumAge": "6 Months", "healthyVolunteers": True}))
    assert cs.get("CTG-AGE").expression == "floor(age * 12) >= 6"
    assert cs.get("CTG-SEX").expression == 'sex == "F"'
    assert "CTG-HV" not in cs.ids()
    assert cs.get("I2").text == "Adequate organ function:\ncreatinine < 1.5 mg/dL\nbilirubin normal"
    assert [c.id for c in cs if c.category == "exclusion"] == ["E1"]


def test_bad_records_are_input_errors(tmp_path):
    with pytest.raises(InputError):
        criteria_from_ctgov({"studies": []})
    with pytest.raises(InputError) as ei:
        criteria_from_ctgov(_study({"eligibilityCriteria": "", "minimumAge": "two years", "sex": "BOTH"}))
    msgs = " ".join(p.message for p in ei.value.problems)
    assert "age not understood" in msgs and "unknown sex" in msgs and "no inclusion or exclusion items" in msgs
    p = tmp_path / "bad.json"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError):
        read_ctgov(p)


def test_wrapped_in_studies_list(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"studies": [json.loads(FIXTURE.read_text(encoding="utf-8"))]}), encoding="utf-8")
    assert len(read_ctgov(p)) == 35


def test_split_and_unescape_helpers():
    assert unescape_markdown(r"\>25% and 5\~9") == ">25% and 5~9"
    parts = split_criteria_text("No headings here\n1. first\n2. second")
    assert parts["inclusion"] == ["No headings here", "first", "second"]
