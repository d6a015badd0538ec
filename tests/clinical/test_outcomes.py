"""Time-to-event outcomes: definitions, evidence, and agreement with hand-computed Kaplan-Meier values."""

import pandas as pd
import pytest

from cd7kit.clinical.outcomes import cumulative_incidence, kaplan_meier, time_to_event
from cd7kit.data import Study
from cd7kit.datasets.case_reports import CASE1, CASE2, case_report_tables


def _study(events: list[tuple[str, float, str, str]], last: dict[str, float]) -> Study:
    sids = sorted(last)
    subjects = pd.DataFrame({"subject_id": sids})
    iv = pd.DataFrame({"subject_id": sids, "start_day": 0.0, "kind": "car_infusion"})
    obs = pd.DataFrame({"subject_id": sids, "day": [last[s] for s in sids], "code": "TEMP", "value": 37.0, "unit": "degC"})
    ev = pd.DataFrame(events, columns=["subject_id", "day", "kind", "term"]) if events else None
    return Study.from_tables(subjects, obs, iv, ev)


def test_case_reports():
    s = Study.from_tables(**case_report_tables())
    os_ = time_to_event(s, "os").table.set_index("subject_id")
    assert os_.loc[CASE1, "event"] == 1 and os_.loc[CASE2, "event"] == 1
    cir = time_to_event(s, "cir").table.set_index("subject_id")
    # case 1 died of TA-TMA without relapse: a competing event; case 2 relapsed in the CNS first
    assert cir.loc[CASE1, "event"] == 2
    assert cir.loc[CASE2, "event"] == 1
    assert cir.loc[CASE2, "reason"].startswith("relapse")
    # the relapse before infusion (day -121) is not an outcome
    assert cir.loc[CASE2, "duration"] > 0


def test_km_matches_hand_computation():
    # deaths at 10 and 30, censored at 20 and 40: S(10)=3/4, S(30)=3/4*(1/2)=0.375
    s = _study([("A", 10, "death", "Death"), ("C", 30, "death", "Death")], {"A": 10, "B": 20, "C": 30, "D": 40})
    km = kaplan_meier(s, "os", at_days=(0, 15, 35))
    est = dict(zip(km.timeline, km.estimate, strict=True))
    assert est[10.0] == pytest.approx(0.75) and est[30.0] == pytest.approx(0.375)
    assert km.median == 30.0
    assert km.at_risk["at_risk"].tolist() == [4, 3, 1]


def test_efs_failure_options_and_hsct_censoring():
    s = _study([("A", 28, "response", "NR"), ("B", 60, "hsct", "HSCT"), ("B", 100, "relapse", "Relapse")], {"A": 90, "B": 150})
    t = time_to_event(s, "efs").table.set_index("subject_id")
    assert t.loc["A", "duration"] == 28 and t.loc["A", "event"] == 1
    assert time_to_event(s, "efs", failure_at="day0").table.set_index("subject_id").loc["A", "duration"] == 0
    assert t.loc["B", "duration"] == 100 and t.loc["B", "event"] == 1
    c = time_to_event(s, "efs", censor_at_hsct=True).table.set_index("subject_id")
    assert (c.loc["B", "duration"], c.loc["B", "event"], c.loc["B", "reason"]) == (60, 0, "censored at HSCT")


def test_cumulative_incidence_with_competing_death():
    # relapse at 10, competing death at 20, relapse at 30, censored at 40
    s = _study([("A", 10, "relapse", "R"), ("B", 20, "death", "Death"), ("C", 30, "relapse", "R")], {"A": 10, "B": 20, "C": 30, "D": 40})
    cif = cumulative_incidence(s)
    final = cif.estimate[-1]
    # Aalen-Johansen: 1/4 at 10; S=3/4, death at 20 -> S=1/2; relapse at 30 with 2 at risk adds 1/2*1/2 -> 0.5
    assert final == pytest.approx(0.5, abs=1e-6)
    assert cif.n_events == 2
