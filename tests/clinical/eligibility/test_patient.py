"""Single-patient JSON: unit conversion to canonical units, open world, dates and input errors."""

from __future__ import annotations

import json

import pytest

from cd7kit.clinical.eligibility import (
    ELIGIBLE,
    MET,
    NOT_MET,
    UNKNOWN,
    patient_to_study,
    read_patient,
    screen_patient,
)
from cd7kit.errors import InputError


def _creat(d: dict, value: float, unit: str) -> dict:
    for o in d["observations"]:
        if o["code"] == "CREAT":
            o.update(value=value, unit=unit, uln=None)
    return d


@pytest.mark.parametrize("umol, expected", [(141.4, MET), (150.0, NOT_MET)])
def test_creatinine_in_umol_per_l_is_compared_with_1_6_mg_dl(example_json, umol, expected):
    # 1.6 mg/dL = 141.44 umol/L (creatinine 113.12 g/mol)
    rep = screen_patient(_creat(example_json(), umol, "umol/L"))
    r = rep.result("I10")
    assert r.value == expected
    creat = next(e for e in r.evidence if e.what == "CREAT")
    assert creat.unit == "mg/dL"
    assert creat.value == pytest.approx(umol / 88.4017, rel=1e-4)


def test_example_file_is_eligible_and_converted(example_path):
    st = read_patient(example_path)
    obs = st.observations.set_index("code")
    assert obs.loc["BILI", "unit"] == "mg/dL"
    assert obs.loc["BILI", "value"] == pytest.approx(12.0 / 17.1, rel=2e-3)
    assert obs.loc["BILI", "uln"] == pytest.approx(20.5 / 17.1, rel=2e-3)  # the ULN is converted with its value
    assert st.subjects.loc[0, "age_years"] == pytest.approx(9.33, abs=0.01)  # from birth_date at the checkpoint
    rep = screen_patient(st)
    assert rep.verdict == ELIGIBLE
    assert rep.result("E14").value == NOT_MET  # dexamethasone stopped 20 days before


def test_no_interventions_key_means_unknown_not_none(example_json):
    d = example_json()
    del d["interventions"]
    rep = screen_patient(d)
    assert rep.result("E14").value == UNKNOWN
    assert rep.result("I4").value == UNKNOWN
    assert any("interventions" in m for m in rep.result("E14").missing)


def test_every_input_problem_is_reported(example_json, tmp_path):
    d = example_json()
    d["observations"].append({"code": "CREAT", "value": 1.0, "unit": "furlongs", "date": "2026-03-01"})
    d["observations"].append({"code": "NOPE", "value": 1.0, "unit": "1", "date": "2026-03-01"})
    d["observations"].append({"code": "LVEF", "value": 60, "unit": "%"})
    d["attestations"].append({"criterion_id": "I6", "value": "yes"})
    d["colour"] = "blue"
    with pytest.raises(InputError) as ei:
        patient_to_study(d)
    msgs = " | ".join(p.message for p in ei.value.problems)
    for needle in ("cannot be converted", "unknown test code", "needs date or day", "value must be true or false", "unknown key"):
        assert needle in msgs
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"subject_id": "X", "observations": [{"code": "LVEF", "value": 60, "unit": "%", "date": "2026-01-01"}]}), encoding="utf-8")
    with pytest.raises(InputError) as ei2:
        read_patient(p)
    assert "checkpoint_date" in str(ei2.value)
