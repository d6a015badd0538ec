"""ICAHT (early/late), T-ICAHT and recovery days: gap filling, joining, <= 500, special grade 4."""

from __future__ import annotations

import pytest
from _grading_build import ev, iv, obs, study

from cd7kit.clinical.grading.icaht import grade_icaht


def anc(sid, pairs):
    return [obs(sid, d, "ANC", v) for d, v in pairs]


def daily(sid, lo, hi, v, code="ANC"):
    return [obs(sid, d, code, v) for d in range(lo, hi + 1)]


def _rows():
    o, i, e = [], [], []
    # grade 0: never <= 500
    o += daily("G0", 0, 30, 1.2)
    # grade 1: 6 days <= 500 (days 3..8); grade 2: 7 days; grade 3: 14 days; grade 4: 31 days
    for sid, n in (("G1", 6), ("G2", 7), ("G3", 14)):
        o += daily(sid, 0, 2, 1.5) + daily(sid, 3, 2 + n, 0.3) + daily(sid, 3 + n, 30, 1.5)
    o += daily("G4", 0, 30, 0.3)
    # ANC <= 100 for 7 days -> grade 3 even though the <= 500 run is short; 14 days -> 4
    o += daily("L100_7", 0, 4, 1.5) + daily("L100_7", 5, 11, 0.05) + daily("L100_7", 12, 30, 1.5)
    o += daily("L100_14", 0, 4, 1.5) + daily("L100_14", 5, 18, 0.05) + daily("L100_14", 19, 30, 1.5)
    # boundary: ANC exactly 0.5 counts as <= 500 (Liang: < 501); 0.51 does not
    o += daily("B500", 0, 2, 1.5) + daily("B500", 3, 9, 0.5) + daily("B500", 10, 30, 1.5)
    o += daily("B510", 0, 2, 1.5) + daily("B510", 3, 9, 0.51) + daily("B510", 10, 30, 1.5)
    # gap filling: 0.4 on day 2 and day 9, nothing between (6 missing days <= 7) -> an 8-day run (grade 2)
    o += anc("GAP", [(0, 1.0), (2, 0.4), (9, 0.4), (12, 2.0), (16, 2.0), (20, 2.0), (25, 2.0), (30, 2.0)])
    # a gap of 8 days is not filled -> two 1-day runs (grade 1) and the grade is flagged as a lower bound
    o += anc("BIGGAP", [(0, 1.0), (2, 0.4), (11, 0.4), (13, 2.0), (17, 2.0), (21, 2.0), (25, 2.0), (30, 2.0)])
    # joining: runs of 10 and 9 days separated by 2 days of non-stable recovery -> 21 days (grade 3);
    # separated by 3 days -> not joined, longest 10 (grade 2)
    o += daily("JOIN2", 0, 9, 0.3) + daily("JOIN2", 10, 11, 1.5) + daily("JOIN2", 12, 20, 0.3) + daily("JOIN2", 21, 30, 1.5)
    o += daily("JOIN3", 0, 9, 0.3) + daily("JOIN3", 10, 12, 1.5) + daily("JOIN3", 13, 21, 0.3) + daily("JOIN3", 22, 30, 1.5)
    # special grade 4 (Liang patient #8 pattern): neutropenic from day 1, no recovery, death on day 16
    o += anc("P8", [(0, 2.0)] + [(d, 0.3) for d in range(1, 17)])
    e.append(ev("P8", 16, "death", "Death", details="infection"))
    # censoring at HSCT: neutropenia after conditioning does not count
    o += daily("HSCT", 0, 30, 1.5) + daily("HSCT", 12, 30, 0.1)
    i.append(iv("HSCT", 12, "conditioning", 18))
    # late ICAHT: two values <= 1500 needed
    o += daily("LATE2", 0, 30, 1.5) + anc("LATE2", [(40, 0.8), (60, 1.2), (80, 2.0)])
    o += daily("LATE1", 0, 30, 1.5) + anc("LATE1", [(40, 0.08), (60, 2.2)])
    # recovery: ANC >= 0.5 on 3 consecutive values after the nadir
    o += anc("REC", [(0, 0.8), (3, 0.2), (5, 0.6), (6, 0.4), (8, 0.6), (9, 0.7), (11, 0.9), (14, 1.0)])
    # platelets: < 20 for 14 days -> T-ICAHT 4; recovery blocked by a transfusion in the prior 7 days
    o += daily("PLT", 0, 13, 10.0, "PLT") + daily("PLT", 14, 30, 40.0, "PLT") + daily("PLT", 0, 30, 1.5)
    i.append(iv("PLT", 15, "transfusion", agent="platelets"))
    o += daily("PLT2", 0, 5, 40.0, "PLT") + daily("PLT2", 6, 30, 120.0, "PLT")
    # no ANC at all
    o.append(obs("NOANC", 3, "HGB", 100.0))
    return o, i, e


@pytest.fixture(scope="module")
def graded():
    o, i, e = _rows()
    s = study(o, i, e)
    return s, {(r.subject_id, r.name): r for r in grade_icaht(s)}


@pytest.mark.parametrize(
    ("sid", "grade"),
    [("G0", 0), ("G1", 1), ("G2", 2), ("G3", 3), ("G4", 4), ("L100_7", 3), ("L100_14", 4), ("B500", 2), ("B510", 0)],
)
def test_early_icaht_grades(graded, sid, grade):
    assert graded[1][(sid, "icaht:early")].value == grade


def test_le500_is_inclusive_by_option(graded):
    s, _ = graded
    (r,) = [x for x in grade_icaht(s, "B500", {"le_inclusive": False}) if x.name == "icaht:early"]
    assert r.value == 0


def test_gap_filling_up_to_7_days(graded):
    r = graded[1][("GAP", "icaht:early")]
    assert r.value == 2 and r.details["longest_run_le500_days"] == 8
    big = graded[1][("BIGGAP", "icaht:early")]
    assert big.value == 1 and any("lower bound" in m for m in big.missing)


def test_joining_of_runs(graded):
    j2 = graded[1][("JOIN2", "icaht:early")]
    assert j2.value == 3 and j2.details["longest_run_le500_days"] == 21
    j3 = graded[1][("JOIN3", "icaht:early")]
    assert j3.value == 2 and j3.details["longest_run_le500_days"] == 10


def test_join_gap_option(graded):
    s, _ = graded
    (r,) = [x for x in grade_icaht(s, "JOIN2", {"join_gap_days": 1}) if x.name == "icaht:early"]
    assert r.value == 2


def test_special_grade4_rule(graded):
    s, res = graded
    r = res[("P8", "icaht:early")]
    assert r.value == 4 and r.details["special_grade4_rule"]
    assert r.details["longest_run_le500_days"] == 16
    (naive,) = [x for x in grade_icaht(s, "P8", {"special_grade4": False}) if x.name == "icaht:early"]
    assert naive.value == 3


def test_censoring_at_conditioning(graded):
    assert graded[1][("HSCT", "icaht:early")].value == 0


def test_late_icaht_needs_two_values(graded):
    assert graded[1][("LATE2", "icaht:late")].value == 2
    assert graded[1][("LATE1", "icaht:late")].value == 0
    assert graded[1][("G0", "icaht:late")].value is None


def test_anc_recovery_day(graded):
    r = graded[1][("REC", "recovery:anc")]
    assert r.value == 8.0 and r.evidence[0].day == 8.0
    assert graded[1][("G0", "recovery:anc")].value is None
    assert graded[1][("G0", "recovery:anc")].details["status"] == "never_below"
    assert graded[1][("G4", "recovery:anc")].details["status"] == "not_recovered"


def test_t_icaht_and_platelet_recovery(graded):
    res = graded[1]
    assert res[("PLT", "t_icaht:early")].value == 4
    # 40 x10^9/L from day 14, but a platelet transfusion on day 15 -> the first clean triple starts on day 23
    assert res[("PLT", "recovery:platelets")].value == 23.0
    assert res[("PLT2", "t_icaht:early")].value == 1
    assert res[("PLT2", "recovery:platelets")].details["status"] == "never_below"


def test_no_anc_is_na(graded):
    r = graded[1][("NOANC", "icaht:early")]
    assert r.value is None and "no ANC" in r.missing[0]
