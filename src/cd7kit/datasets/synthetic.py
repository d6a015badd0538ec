"""A seeded, documented generator of a synthetic NCT06849401-like post-infusion course (SYNTHETIC DATA).

Nothing here is patient data. The generator follows each enrolled child from day -7 to day +180 of a
CD7 CAR-NK dose-escalation trial shaped like NCT06849401 (seed 000: three dose levels 4e7 / 1.2e8 /
3.6e8 CAR-NK cells/kg, six doses each, follow-up to 12 months). Assumptions the registry entry does not
state, chosen here and labelled in every row's ``source``:

- lymphodepletion with fludarabine 30 mg/m2/day and cyclophosphamide 300 mg/m2/day on days -5 to -3;
- six doses on days 0, 3, 7, 10, 14 and 17 (twice weekly; the schedule is not published);
- vitals daily to day 28 then at visits; labs every 2-3 days to day 28, then at days 35, 42, 56, 90, 120,
  150, 180; bone-marrow assessments at screening (day -7), day 28 and day 90;
- CRS risk rises with dose level; a CRS episode starts with fever 1-4 days after the first dose, grade 2
  adds fluids and low-flow oxygen, grade 3 adds one vasopressor and a face mask, with tocilizumab (grade
  >= 2) and dexamethasone (grade 3) -- so a grader sees the raw findings, not a grade;
- CAR transgene (qPCR, copies/ug gDNA, LLOQ 50) rises after each dose and contracts with a half-life of
  about 3 days (off-the-shelf NK cells persist briefly); values under the LLOQ are BLQ rows;
- response at day 28 by marrow blasts and flow MRD; some responders bridge to HSCT; some relapse with
  CD7-negative blasts; one child dies of infection.

``course_tables(subjects, seed)`` returns the four tables for the enrolled children given in
``subjects``; ``cd7kit.datasets.load_demo_study`` joins them to the screening data of all 12 children.
Each call with the same seed returns the same rows. The kinetic-model based virtual-patient simulator
(``cd7kit.sim``) may replace this simple generator; this one stays small and readable on purpose.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

SOURCE = "synthetic: cd7kit.datasets.synthetic"
DOSE_LEVELS_CELLS_PER_KG = {1: 4e7, 2: 1.2e8, 3: 3.6e8}
DOSE_DAYS = (0, 3, 7, 10, 14, 17)
LAB_DAYS = (-7, -5, -1, 1, 3, 5, 7, 10, 12, 14, 17, 19, 21, 24, 28, 35, 42, 56, 90, 120, 150, 180)
VISIT_DAYS = tuple(range(-7, 29)) + (35, 42, 56, 90, 120, 150, 180)
CAR_DAYS = (1, 2, 3, 5, 7, 8, 10, 11, 14, 15, 17, 18, 21, 24, 28, 35, 42, 56, 90)
#: CRS maximum grade probabilities per dose level (grades 0..3): an assumption for the demo.
CRS_PROBS = {1: (0.5, 0.4, 0.1, 0.0), 2: (0.3, 0.4, 0.3, 0.0), 3: (0.1, 0.3, 0.3, 0.3)}
#: Illustrative paediatric reference ranges for the synthetic rows' lln/uln columns (a generator's choice,
#: not a clinical rule: real studies carry each laboratory's own ranges per row).
RANGES: dict[str, tuple[float | None, float | None]] = {
    "ANC": (1.5, 8.0), "WBC": (4.5, 13.5), "ALC": (1.5, 6.5), "PLT": (150, 450), "HGB": (110, 160),
    "CRP": (None, 8.0), "FERRITIN": (10, 150), "LDH": (120, 300), "CREAT": (0.3, 0.7), "ALT": (5, 40),
    "AST": (10, 40), "BILI": (0.2, 1.2), "FIBRINOGEN": (2.0, 4.0), "IL6": (None, 7.0),
}


def _rowmaker(sid: str):
    obs: list[dict[str, Any]] = []

    def o(day: float, code: str, value: float | None, unit: str, **kw: Any) -> None:
        lln, uln = RANGES.get(code, (None, None))
        obs.append({"subject_id": sid, "day": float(day), "code": code, "value": value, "unit": unit, "lln": lln, "uln": uln, "source": SOURCE, **kw})

    return obs, o


def _subject_course(sub: pd.Series, rng: np.random.Generator) -> tuple[list, list, list, dict[str, Any]]:
    sid = str(sub["subject_id"])
    dl = int(sub["dose_level"])
    age = float(sub["age_years"])
    obs, o = _rowmaker(sid)
    iv: list[dict[str, Any]] = []
    ev: list[dict[str, Any]] = []

    def i(start: float, kind: str, end: float | None = None, **kw: Any) -> None:
        if isinstance(kw.get("details"), dict):
            kw["details"] = json.dumps(kw["details"], sort_keys=True)
        iv.append({"subject_id": sid, "start_day": float(start), "end_day": end, "kind": kind, "source": SOURCE, **kw})

    def e(day: float, kind: str, term: str, **kw: Any) -> None:
        if isinstance(kw.get("details"), dict):
            kw["details"] = json.dumps(kw["details"], sort_keys=True)
        ev.append({"subject_id": sid, "day": float(day), "kind": kind, "term": term, "source": SOURCE, **kw})

    # --- treatment --------------------------------------------------------------------------
    i(-5, "lymphodepletion", -3, agent="fludarabine", dose=30.0, dose_unit="mg/m2", route="IV")
    i(-5, "lymphodepletion", -3, agent="cyclophosphamide", dose=300.0, dose_unit="mg/m2", route="IV")
    dose = DOSE_LEVELS_CELLS_PER_KG[dl]
    for k, d in enumerate(DOSE_DAYS, start=1):
        i(d, "car_infusion", agent="CD7 CAR-NK (allogeneic, hESC-derived; synthetic)", dose=dose, dose_unit="cells/kg", route="IV", details={"dose_number": k})

    # --- CRS episode (raw findings only) ------------------------------------------------------
    crs = int(rng.choice(4, p=CRS_PROBS[dl]))
    onset = int(rng.integers(1, 5)) if crs else None
    duration = int(rng.integers(2, 5)) + crs if crs else 0
    temp = 36.7 + rng.normal(0, 0.2, size=len(VISIT_DAYS))
    sbp_base = 100 + 0.8 * age
    sbp = sbp_base + rng.normal(0, 5, size=len(VISIT_DAYS))
    spo2 = np.clip(98 + rng.normal(0, 0.7, size=len(VISIT_DAYS)), 94, 100)
    il6_peak = {0: 15.0, 1: 60.0, 2: 400.0, 3: 2500.0}[crs] * float(np.exp(rng.normal(0, 0.3)))
    if crs:
        assert onset is not None
        for j, d in enumerate(VISIT_DAYS):
            if onset <= d < onset + duration:
                temp[j] = 38.3 + 1.2 * rng.random()
        mid = onset + 1
        if crs >= 2:
            i(mid, "fluid_bolus", agent="normal saline 20 mL/kg", indication="hypotension")
            i(mid, "oxygen", mid + 2, device="nasal_cannula", flow_l_min=2.0, indication="hypoxia")
            i(mid, "tocilizumab", agent="tocilizumab", dose=8.0, dose_unit="mg/kg")
            for j, d in enumerate(VISIT_DAYS):
                if mid <= d <= mid + 2:
                    sbp[j] = 70 + 2 * min(age, 10) + rng.normal(2, 3)
                    spo2[j] = 91 + rng.random() * 2
        if crs >= 3:
            i(mid + 1, "vasopressor", mid + 4, agent="norepinephrine", dose=0.05, dose_unit="ug/kg/min", indication="hypotension")
            i(mid + 1, "oxygen", mid + 4, device="simple_facemask", flow_l_min=8.0, indication="hypoxia")
            i(mid + 1, "corticosteroid", mid + 3, agent="dexamethasone", dose=10.0, dose_unit="mg/m2/day")
            for j, d in enumerate(VISIT_DAYS):
                if mid + 1 <= d <= mid + 4:
                    sbp[j] = 62 + 2 * min(age, 10) + rng.normal(0, 3)
            # grade 3 lasting beyond 72 h after onset of grade 3: a DLT under the protocol's definition
            e(mid + 4, "dlt", "Grade 3 CRS not improving to grade <= 2 within 72 h", grade=3, attribution="IEC",
              details={"window_days": 28, "derived_by": "synthetic generator (investigator-adjudicated)"})
    for j, d in enumerate(VISIT_DAYS):
        o(d, "TEMP", round(float(temp[j]), 1), "degC")
        o(d, "SBP", round(float(sbp[j])), "mmHg")
        o(d, "DBP", round(float(sbp[j]) * 0.62), "mmHg")
        o(d, "HR", round(95 - age + rng.normal(0, 6) + (25 if temp[j] >= 38 else 0)), "1/min")
        o(d, "SPO2", round(float(spo2[j])), "%")
    # ICANS: neurological assessments during the first 2 weeks
    icans = crs >= 2 and rng.random() < 0.35 * dl / 3
    for d in range(0, 15):
        bad = icans and onset is not None and onset + 2 <= d <= onset + 4
        if age >= 12:
            o(d, "ICE", float(8 if bad else 10), "score")
        else:
            # ASTCT 2019 grades any CAPD of 1-8 as encephalopathy (grade 1-2): a child without ICANS scores 0
            o(d, "CAPD", float(6 if bad else 0), "score")

    # --- blood counts and chemistry ----------------------------------------------------------
    recovery = float(rng.uniform(12, 24) + 4 * dl)
    late_dip = rng.random() < 0.3
    for d in LAB_DAYS:
        ld_effect = 0.0 if d < -4 else (1.0 if d <= recovery else np.exp(-(d - recovery) / 6))
        anc = 2.5 * (1 - 0.97 * ld_effect) + rng.normal(0, 0.05)
        if late_dip and 40 <= d <= 56:
            anc = 0.8
        o(d, "ANC", round(max(float(anc), 0.0), 2), "10^9/L", specimen="PB")
        o(d, "WBC", round(max(float(anc) * 1.6 + 0.2, 0.05), 2), "10^9/L", specimen="PB")
        o(d, "ALC", round(max(1.8 * (1 - 0.95 * ld_effect), 0.02), 2), "10^9/L", specimen="PB")
        o(d, "PLT", round(max(float(220 * (1 - 0.85 * ld_effect) + rng.normal(0, 8)), 4)), "10^9/L", specimen="PB")
        o(d, "HGB", round(float(105 - 20 * ld_effect + rng.normal(0, 3))), "g/L", specimen="PB")
        infl = 0.0
        if crs and onset is not None:
            infl = float(np.exp(-((d - onset - 1) ** 2) / (2 * (1.5 + crs) ** 2)))
        o(d, "CRP", round(3 + (15 + 45 * crs) * infl + abs(rng.normal(0, 1)), 1), "mg/L", specimen="serum")
        o(d, "FERRITIN", round(250 + (300 + 1500 * crs) * infl + rng.normal(0, 20)), "ng/mL", specimen="serum")
        o(d, "LDH", round(260 + 150 * crs * infl + rng.normal(0, 15)), "U/L", specimen="serum")
        o(d, "CREAT", round(0.45 + 0.2 * (crs >= 3) * infl + abs(rng.normal(0, 0.03)), 2), "mg/dL", specimen="serum")
        o(d, "ALT", round(25 + 60 * (crs >= 2) * infl + abs(rng.normal(0, 4))), "U/L", specimen="serum")
        o(d, "AST", round(28 + 50 * (crs >= 2) * infl + abs(rng.normal(0, 4))), "U/L", specimen="serum")
        o(d, "BILI", round(0.5 + abs(rng.normal(0, 0.1)), 2), "mg/dL", specimen="serum")
        if d <= 28:
            o(d, "IL6", round(4 + il6_peak * infl + abs(rng.normal(0, 1)), 1), "pg/mL", specimen="serum")
            o(d, "IFNG", round(3 + 0.4 * il6_peak * infl + abs(rng.normal(0, 1)), 1), "pg/mL", specimen="serum")
            o(d, "IL10", round(2 + 0.1 * il6_peak * infl + abs(rng.normal(0, 0.5)), 1), "pg/mL", specimen="serum")

    # --- CAR kinetics: superposition of per-dose expansion and contraction --------------------
    peak = {1: 800.0, 2: 2500.0, 3: 7000.0}[dl] * float(np.exp(rng.normal(0, 0.4)))
    t = np.asarray(CAR_DAYS, dtype=float)
    copies = np.zeros_like(t)
    for d in DOSE_DAYS:
        dt_ = t - d
        copies += np.where(dt_ > 0, peak * (dt_ / 2.0) * np.exp(1 - dt_ / 2.0) * 0.5 ** (np.maximum(dt_ - 2, 0) / 3.0), 0.0)
    copies *= np.exp(rng.normal(0, 0.15, size=t.size))
    for d, c in zip(CAR_DAYS, copies, strict=True):
        if c < 50:
            o(d, "CAR_COPIES", None, "copies/ug", lloq=50.0, blq=True, specimen="PB")
        else:
            o(d, "CAR_COPIES", round(float(c)), "copies/ug", lloq=50.0, specimen="PB")
            o(d, "CAR_CELLS", round(float(c) / 40.0, 1), "cells/uL", lloq=0.5, specimen="PB")

    # --- disease and response -----------------------------------------------------------------
    bm0 = float(rng.uniform(30, 90))
    o(-7, "BM_BLASTS", round(bm0, 1), "%", specimen="BM")
    o(-7, "MRD_FLOW", round(bm0 * 0.95, 1), "%", specimen="BM")
    p_cr = {1: 0.45, 2: 0.7, 3: 0.85}[dl]
    responds = rng.random() < p_cr
    if responds:
        mrd = float(10 ** rng.uniform(-3.5, -1.0))
        bm28 = float(rng.uniform(0.5, 3.5))
        o(28, "BM_BLASTS", round(bm28, 1), "%", specimen="BM")
        o(28, "MRD_FLOW", round(mrd, 4), "%", specimen="BM")
        o(28, "PB_BLASTS", 0.0, "%", specimen="PB")
        e(28, "response", "CR" if recovery < 28 else "CRi", details={"site": "BM", "mrd": "negative" if mrd < 0.01 else "positive", "assessed_by": "investigator"})
    else:
        bm28 = bm0 * float(rng.uniform(0.4, 1.1))
        o(28, "BM_BLASTS", round(bm28, 1), "%", specimen="BM")
        o(28, "MRD_FLOW", round(bm28 * 0.95, 1), "%", specimen="BM")
        o(28, "PB_BLASTS", round(bm28 / 4, 1), "%", specimen="PB")
        e(28, "response", "NR", details={"site": "BM", "assessed_by": "investigator"})
    outcome: dict[str, Any] = {"crs_max_grade": crs, "icans": bool(icans), "responds": bool(responds)}
    if responds and rng.random() < 0.6:
        h = float(rng.integers(55, 80))
        i(h - 7, "conditioning", h - 1, agent="TBI-based myeloablative conditioning")
        i(h, "hsct", agent="allogeneic HSCT (matched unrelated donor)")
        e(h, "hsct", "Allogeneic HSCT")
        outcome["hsct_day"] = h
    elif responds and rng.random() < 0.5:
        r = float(rng.integers(100, 170))
        o(r, "BM_BLASTS", round(float(rng.uniform(10, 40)), 1), "%", specimen="BM")
        o(r, "CD7_BLASTS", round(float(rng.uniform(0, 10)), 1), "%", specimen="BM")
        e(r, "relapse", "Relapse with CD7-negative blasts", details={"site": "BM", "cd7": "negative"})
        outcome["relapse_day"] = r
    if not responds:
        o(90, "BM_BLASTS", round(min(bm28 * 1.3, 98), 1), "%", specimen="BM")
        e(90, "response", "PD", details={"site": "BM"})
        if rng.random() < 0.5:
            dd = float(rng.integers(95, 175))
            e(dd - 10, "infection", "Invasive fungal infection", grade=4)
            e(dd, "death", "Death", details={"cause": "infection"})
            outcome["death_day"] = dd
    return obs, iv, ev, outcome


def course_tables(subjects: pd.DataFrame, seed: int = 2026) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """Post-infusion tables for the enrolled rows of ``subjects`` (needs subject_id, age_years, dose_level).

    Returns the tables (observations, interventions, events) and, per subject, what the generator
    planted (CRS maximum grade, ICANS, response, HSCT/relapse/death days) so tests can check engines.
    """
    rng = np.random.default_rng(seed)
    enrolled = subjects[subjects["status"] == "enrolled"].sort_values("subject_id")
    obs: list[dict[str, Any]] = []
    iv: list[dict[str, Any]] = []
    ev: list[dict[str, Any]] = []
    planted: dict[str, dict[str, Any]] = {}
    for _, sub in enrolled.iterrows():
        o, i, e, out = _subject_course(sub, rng)
        obs += o
        iv += i
        ev += e
        planted[str(sub["subject_id"])] = out
    return {"observations": pd.DataFrame(obs), "interventions": pd.DataFrame(iv), "events": pd.DataFrame(ev)}, planted


__all__ = ["course_tables", "DOSE_LEVELS_CELLS_PER_KG", "DOSE_DAYS", "SOURCE"]
