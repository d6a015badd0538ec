"""DLT derivation: CRS not improving within 72 h, ICANS >= 3, grade-4 neutropenia beyond day 28, options."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from _grading_build import ev, iv, obs, study

from cd7kit.clinical.dlt import EVENT_COLUMNS, derive_dlt, dlt_events
from cd7kit.data import Study


def _rows():
    o, i, e = [], [], []
    inf = lambda sid: i.append(iv(sid, 0, "car_infusion"))  # noqa: E731
    # grade 3 CRS from day 5 still grade 3 on day 8 (72 h later) -> DLT
    for sid, last in (("CRS_PERSIST", 8), ("CRS_IMPROVE", 6)):
        inf(sid)
        o += [obs(sid, d, "TEMP", 39.0) for d in range(4, 12)]
        i.append(iv(sid, 5, "vasopressor", last, agent="norepinephrine"))
    # grade 4 CRS for one day -> DLT at once
    inf("CRS4")
    o += [obs("CRS4", 3, "TEMP", 39.0), obs("CRS4", 4, "TEMP", 37.0)]
    i.append(iv("CRS4", 3, "oxygen", device="bipap", indication="hypoxia"))
    # ICANS grade 3 on day 10 -> DLT; grade 2 -> none
    for sid, ice in (("ICANS3", 2.0), ("ICANS2", 5.0)):
        inf(sid)
        o.append(obs(sid, 10, "ICE", ice))
    # neutropenia: ANC < 0.5 at the first ANC after day 28 -> DLT; 0.8 -> none
    for sid, v in (("NEUT4", 0.3), ("NEUT3", 0.8)):
        inf(sid)
        o += [obs(sid, 14, "ANC", 0.1), obs(sid, 30, "ANC", v)]
    # grade 3 CRS outside the window (day 35)
    inf("LATE")
    o += [obs("LATE", d, "TEMP", 39.0) for d in range(35, 41)]
    i.append(iv("LATE", 35, "vasopressor", 40, agent="norepinephrine"))
    # investigator-graded AE (only with the ae option)
    inf("AE")
    e.append(ev("AE", 6, "ae", "Acute kidney injury", grade=3, attribution="IEC"))
    # death from CRS in the window
    inf("G5")
    o.append(obs("G5", 2, "TEMP", 40.0))
    e.append(ev("G5", 9, "death", "Death", details='{"cause": "CRS with multi-organ failure"}'))
    # not infused
    o.append(obs("NOINF", 3, "TEMP", 37.0))
    return o, i, e


@pytest.fixture(scope="module")
def dlt():
    o, i, e = _rows()
    s = study(o, i, e)
    return s, dlt_events(s), {r.subject_id: r for r in derive_dlt(s)}


def test_crs_not_improving_within_72h(dlt):
    _, evs, res = dlt
    assert res["CRS_PERSIST"].value is True
    row = evs[evs["subject_id"] == "CRS_PERSIST"].iloc[0]
    assert row["day"] == 5.0 and row["grade"] == 3 and json.loads(row["details"])["confirmed_day"] == 8.0
    assert res["CRS_IMPROVE"].value is False


def test_crs_grade4_is_dlt_at_once(dlt):
    _, evs, res = dlt
    assert res["CRS4"].value is True
    assert json.loads(evs[evs["subject_id"] == "CRS4"].iloc[0]["details"])["criterion"] == "crs_always_grade"


def test_icans_grade3(dlt):
    assert dlt[2]["ICANS3"].value is True and dlt[2]["ICANS2"].value is False


def test_neutropenia_beyond_day_28(dlt):
    _, evs, res = dlt
    assert res["NEUT4"].value is True and res["NEUT3"].value is False
    d = json.loads(evs[evs["subject_id"] == "NEUT4"].iloc[0]["details"])
    assert d["evidence"][0]["what"] == "ANC" and d["evidence"][0]["value"] == 0.3


def test_window_and_options(dlt):
    s, _, res = dlt
    assert res["LATE"].value is False
    assert derive_dlt(s, "LATE", {"window_days": 40})[0].value is True
    assert res["AE"].value is False
    assert derive_dlt(s, "AE", {"ae_min_grade": 3})[0].value is True
    assert derive_dlt(s, "CRS_PERSIST", {"crs_improve_hours": 120})[0].value is False


def test_grade5_and_not_infused(dlt):
    _, _, res = dlt
    assert res["G5"].value is True
    assert res["NOINF"].value is None and "not DLT-evaluable" in res["NOINF"].missing[0]


def test_dlt_events_fit_the_study_events_table(dlt):
    s, evs, _ = dlt
    assert list(evs.columns) == EVENT_COLUMNS and set(evs["kind"]) == {"dlt"}
    merged = Study.from_tables(s.subjects, s.observations, s.interventions, pd.concat([s.events, evs], ignore_index=True).drop(columns=["row_id"]))
    assert (merged.events["kind"] == "dlt").sum() == len(evs)
