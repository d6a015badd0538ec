"""CAR-HEMATOTOX and EASIX family: published cut-offs, boundaries, units, missing inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cd7kit.clinical.scores import compute_scores
from cd7kit.clinical.scores.easix import compute_easix
from cd7kit.clinical.scores.hematotox import component_points, compute_hematotox
from cd7kit.data import Study
from cd7kit.errors import InputError

UNITS = {"PLT": "10^9/L", "ANC": "10^9/L", "HGB": "g/L", "CRP": "mg/L", "FERRITIN": "ng/mL", "LDH": "U/L", "CREAT": "mg/dL"}


def _study(values: dict[str, float], day: float = -6.0, ld_start: float | None = -5.0, extra: list[tuple] = ()) -> Study:
    rows = [("S1", day, code, v) for code, v in values.items()] + list(extra)
    obs = pd.DataFrame(rows, columns=["subject_id", "day", "code", "value"])
    obs["unit"] = obs["code"].map(UNITS)
    iv = None
    if ld_start is not None:
        iv = pd.DataFrame({"subject_id": ["S1", "S1"], "start_day": [ld_start, 0.0], "end_day": [ld_start + 2, None], "kind": ["lymphodepletion", "car_infusion"]})
    return Study.from_tables(pd.DataFrame({"subject_id": ["S1"]}), obs, iv)


def _point(results, name, day, subject="S1"):
    """(value, missing-for-that-day, evidence whats) of a daily series result on one day."""
    r = [x for x in results if x.name == name and x.subject_id == subject]
    assert len(r) == 1
    r = r[0]
    i = r.details["days"].index(day)
    key = f"{day:g}"
    return r.value[i], r.details["missing_by_day"].get(key, []), r


def _get(results, name):
    hits = [r for r in results if r.name == name]
    assert len(hits) == 1, [r.name for r in results]
    return hits[0]


LOW = {"PLT": 200.0, "ANC": 2.0, "HGB": 120.0, "CRP": 10.0, "FERRITIN": 300.0}


def test_hematotox_all_normal_is_zero_low_risk():
    res = compute_hematotox(_study(LOW))
    assert _get(res, "CAR-HEMATOTOX").value == 0
    assert _get(res, "CAR-HEMATOTOX risk").value == "low"
    assert {e.what for e in _get(res, "CAR-HEMATOTOX").evidence} == set(LOW)


def test_hematotox_maximum_is_seven_not_ten():
    # every component in its worst category: 2 + 1 + 1 + 1 + 2 = 7 (not 0-2 each, spec section 9 warning)
    worst = {"PLT": 20.0, "ANC": 0.3, "HGB": 70.0, "CRP": 150.0, "FERRITIN": 5000.0}
    r = _get(compute_hematotox(_study(worst)), "CAR-HEMATOTOX")
    assert r.value == 7
    assert r.details["components"]["PLT"]["points"] == 2 and r.details["components"]["FERRITIN"]["points"] == 2


@pytest.mark.parametrize(
    "code,value,lower_risk,table_ranges",
    [
        ("PLT", 175.0, 0, 1),
        ("PLT", 175.1, 0, 0),
        ("PLT", 174.9, 1, 1),
        ("PLT", 75.0, 1, 1),
        ("PLT", 74.9, 2, 2),
        ("ANC", 1.2, 0, 0),
        ("ANC", 1.19, 1, 1),
        ("HGB", 9.0, 0, 0),  # g/dL in the table
        ("HGB", 8.99, 1, 1),
        ("CRP", 3.0, 0, 0),  # mg/dL in the table
        ("CRP", 3.01, 1, 1),
        ("FERRITIN", 650.0, 0, 1),
        ("FERRITIN", 649.0, 0, 0),
        ("FERRITIN", 2000.0, 1, 1),
        ("FERRITIN", 2000.5, 2, 2),
    ],
)
def test_hematotox_component_boundaries(code, value, lower_risk, table_ranges):
    assert component_points(code, np.array([value]), "lower_risk")[0] == lower_risk
    assert component_points(code, np.array([value]), "table_ranges")[0] == table_ranges


def test_hematotox_units_crp_and_hemoglobin_converted():
    # CRP 30 mg/L is exactly 3.0 mg/dL (boundary, 0 points); 31 mg/L is 3.1 mg/dL (1 point).
    # Hb 90 g/L is 9.0 g/dL (0 points); 89 g/L (1 point).
    r0 = _get(compute_hematotox(_study({**LOW, "CRP": 30.0, "HGB": 90.0})), "CAR-HEMATOTOX")
    assert r0.value == 0
    assert r0.details["components"]["CRP"]["value"] == pytest.approx(3.0)
    assert r0.details["components"]["CRP"]["unit"] == "mg/dL"
    r1 = _get(compute_hematotox(_study({**LOW, "CRP": 31.0, "HGB": 89.0})), "CAR-HEMATOTOX")
    assert r1.value == 2
    assert _get(compute_hematotox(_study({**LOW, "CRP": 31.0, "HGB": 89.0})), "CAR-HEMATOTOX risk").value == "high"


def test_hematotox_high_risk_cutoff_is_two():
    one = _get(compute_hematotox(_study({**LOW, "ANC": 1.0})), "CAR-HEMATOTOX risk")
    two = _get(compute_hematotox(_study({**LOW, "ANC": 1.0, "HGB": 85.0})), "CAR-HEMATOTOX risk")
    assert one.value == "low" and two.value == "high"


def test_hematotox_needs_lymphodepletion_start_never_assumed():
    res = compute_hematotox(_study(LOW, ld_start=None))
    total = _get(res, "CAR-HEMATOTOX")
    assert total.value is None and "lymphodepletion" in total.missing[0]


def test_hematotox_window_relative_to_actual_ld_start():
    # LD starts on day -3 (not -5): a value from day -6 is inside the default 7-day look-back,
    # a value from day -12 is not; a value after LD start never counts.
    assert _get(compute_hematotox(_study(LOW, day=-6.0, ld_start=-3.0)), "CAR-HEMATOTOX").value == 0
    late = _get(compute_hematotox(_study(LOW, day=-12.0, ld_start=-3.0)), "CAR-HEMATOTOX")
    assert late.value is None and len(late.missing) == 5
    after = _get(compute_hematotox(_study(LOW, day=-2.0, ld_start=-3.0)), "CAR-HEMATOTOX")
    assert after.value is None
    # the last value before LD wins over an earlier one
    s = _study(LOW, day=-7.0, ld_start=-3.0, extra=[("S1", -4.0, "PLT", 50.0)])
    assert _get(compute_hematotox(s), "CAR-HEMATOTOX").details["components"]["PLT"]["points"] == 2


def test_hematotox_missing_component_is_na_but_high_risk_decidable():
    vals = dict(LOW)
    del vals["FERRITIN"]
    res = compute_hematotox(_study(vals))
    assert _get(res, "CAR-HEMATOTOX").value is None
    assert any("FERRITIN" in m for m in _get(res, "CAR-HEMATOTOX").missing)
    assert _get(res, "CAR-HEMATOTOX risk").value is None  # 0 points so far: low not proven
    vals["PLT"] = 50.0  # 2 points already: high whatever ferritin is
    res = compute_hematotox(_study(vals))
    assert _get(res, "CAR-HEMATOTOX").value is None
    assert _get(res, "CAR-HEMATOTOX risk").value == "high"


def test_hematotox_rule_and_options_recorded():
    r = _get(compute_hematotox(_study(LOW), options={"hematotox_boundary": "table_ranges"}), "CAR-HEMATOTOX")
    d = r.to_dict()
    assert d["rule"]["system"] == "CAR-HEMATOTOX" and "Rejeski" in d["rule"]["source"]
    assert d["rule"]["options"]["hematotox_boundary"] == "table_ranges"
    with pytest.raises(InputError):
        compute_hematotox(_study(LOW), options={"hematotox_boundary": "whatever"})
    with pytest.raises(InputError):
        compute_scores(_study(LOW), options={"no_such_option": 1})


# ---------------------------------------------------------------- EASIX family


def test_easix_formulas_and_crp_units():
    s = _study({"LDH": 400.0, "CREAT": 1.5, "PLT": 100.0, "CRP": 50.0})
    res = compute_easix(s)
    v, miss, r = _point(res, "EASIX", -6.0)
    assert v == pytest.approx(400 * 1.5 / 100) and miss == []  # 6.0
    assert r.details["log2"][0] == pytest.approx(math.log2(6.0))
    assert {e.what for e in r.evidence} == {"LDH", "CREAT", "PLT"}
    assert _point(res, "s-EASIX", -6.0)[0] == pytest.approx(4.0)
    # CRP 50 mg/L = 5 mg/dL -> m-EASIX 400*5/100 = 20, not 200
    v, _, rm = _point(res, "m-EASIX", -6.0)
    assert v == pytest.approx(20.0)
    assert {e.what for e in rm.evidence} == {"LDH", "CRP", "PLT"}
    crp = [e for e in rm.evidence if e.what == "CRP"][0]
    assert crp.value == pytest.approx(5.0) and crp.unit == "mg/dL"
    assert rm.to_dict()["evidence"][0]["row_id"] is not None


def test_easix_creatinine_from_umol_converts_via_vocabulary_units():
    # 132.6 umol/L creatinine = 1.5 mg/dL (88.4 umol/L per mg/dL); the Study stores mg/dL
    from cd7kit.data.units import to_canonical

    creat = float(to_canonical([132.6], "umol/L", "CREAT")[0])
    res = compute_easix(_study({"LDH": 400.0, "CREAT": creat, "PLT": 100.0}))
    assert _point(res, "EASIX", -6.0)[0] == pytest.approx(6.0, rel=1e-3)


def test_easix_series_over_days_and_missing_inputs():
    extra = [("S1", 3.0, "LDH", 800.0), ("S1", 3.0, "PLT", 40.0)]  # no creatinine on day 3
    s = _study({"LDH": 400.0, "CREAT": 1.0, "PLT": 100.0}, extra=extra)
    res = compute_easix(s)
    easix = _get(res, "EASIX")
    assert easix.details["days"] == [-6.0, 3.0]
    assert easix.value[0] == pytest.approx(4.0)
    assert easix.value[1] is None and easix.details["missing_by_day"]["3"] == ["CREAT on day 3"]
    assert easix.missing  # the series says some days are NA
    assert _point(res, "s-EASIX", 3.0)[0] == pytest.approx(20.0)


def test_easix_zero_platelets_is_na_not_infinite():
    res = compute_easix(_study({"LDH": 400.0, "CREAT": 1.0, "PLT": 0.0}))
    v, miss, _ = _point(res, "EASIX", -6.0)
    assert v is None and "PLT is 0" in miss[0]


def test_easix_pre_korell_cutoff_boundary():
    # Korell 2022: EASIX-pre > 4.67; exactly 4.67 is not above
    at = _study({"LDH": 467.0, "CREAT": 1.0, "PLT": 100.0})
    r = _get(compute_easix(at, options={"easix_cutoff": "korell2022_pre_ld"}), "EASIX-pre")
    assert r.value == pytest.approx(4.67)
    assert r.details["classification"]["above"] is False
    above = _study({"LDH": 468.0, "CREAT": 1.0, "PLT": 100.0})
    r2 = _get(compute_easix(above, options={"easix_cutoff": "korell2022_pre_ld"}), "EASIX-pre")
    assert r2.details["classification"]["above"] is True
    # the named pre-LD cut-off does not classify the daily series; there is no default classification
    series = _get(compute_easix(above, options={"easix_cutoff": "korell2022_pre_ld"}), "EASIX")
    assert "classification" not in series.details
    assert "classification" not in _get(compute_easix(above), "EASIX-pre").details
    with pytest.raises(InputError):
        compute_easix(above, options={"m_easix_cutoff": "korell2022_pre_ld"})


def test_easix_numeric_cutoff_option_from_cli_string():
    s = _study({"LDH": 400.0, "CREAT": 1.0, "PLT": 100.0, "CRP": 50.0})
    r = _get(compute_easix(s, options={"m_easix_cutoff": "19.5"}), "m-EASIX")
    assert r.details["classification"]["above"] == [True] and r.details["classification"]["threshold"] == 19.5


def test_easix_pre_needs_ld_and_same_day_inputs():
    s = _study({"LDH": 400.0, "PLT": 100.0}, extra=[("S1", -7.0, "CREAT", 1.0)])
    r = _get(compute_easix(s), "EASIX-pre")
    assert r.value is None and r.missing
    r2 = _get(compute_easix(_study({"LDH": 400.0, "CREAT": 1.0, "PLT": 100.0}, ld_start=None)), "EASIX-pre")
    assert r2.value is None and "lymphodepletion" in r2.missing[0]


def test_compute_scores_vectorised_over_subjects():
    n = 40
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        for d in range(-8, 10):
            for code, lo, hi in (("LDH", 150, 900), ("CREAT", 0.5, 2.0), ("PLT", 20, 300), ("CRP", 1, 200), ("ANC", 0.1, 5), ("HGB", 70, 140), ("FERRITIN", 100, 4000)):
                rows.append((f"P{i}", float(d), code, float(rng.uniform(lo, hi))))
    obs = pd.DataFrame(rows, columns=["subject_id", "day", "code", "value"])
    obs["unit"] = obs["code"].map(UNITS)
    iv = pd.DataFrame({"subject_id": [f"P{i}" for i in range(n)], "start_day": -5.0, "kind": "lymphodepletion"})
    s = Study.from_tables(pd.DataFrame({"subject_id": [f"P{i}" for i in range(n)]}), obs, iv)
    res = compute_scores(s)
    easix = [r for r in res if r.name == "EASIX"]
    assert len(easix) == n and all(len(r.value) == 18 for r in easix)
    # spot-check one subject-day against a direct computation
    r = easix[7]
    o = obs[(obs.subject_id == r.subject_id) & (obs.day == r.details["days"][5])].set_index("code")["value"]
    assert r.value[5] == pytest.approx(o["LDH"] * o["CREAT"] / o["PLT"])
    assert len(r.evidence) == 18 * 3
    totals = [r.value for r in res if r.name == "CAR-HEMATOTOX"]
    assert len(totals) == n and all(0 <= t <= 7 for t in totals)
    one = compute_scores(s, subject_id="P3")
    assert {r.subject_id for r in one} == {"P3"}
