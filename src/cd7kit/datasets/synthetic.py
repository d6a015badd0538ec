"""The synthetic post-infusion course of the demo study's NCT06849401-like children (SYNTHETIC DATA).

Nothing here is patient data. The course of each enrolled child from lymphodepletion to day +180 is
**simulated by cd7kit.sim** (:func:`cd7kit.sim.cohort.simulate_arrays` and
:func:`cd7kit.sim.cohort.cohort_tables`): CK7 kinetics of CD7 CAR-NK cells, normal CD7+/CD7- T and NK cells
and CD7+/CD7- blasts (:mod:`cd7kit.kinetics.models.ck7`, our design), with the documented links of
:mod:`cd7kit.sim.cohort` from expansion and tumour kill to IL-6, fever, hypotension, hypoxia, neurotoxicity
and cytopenias. The generator only supplies what the trial fixes or the screening data say:

- the enrolled children of the screening cohort (:mod:`.screening`): subject ids, dose levels (4e7 / 1.2e8 /
  3.6e8 CAR-NK cells/kg), age, sex, weight, CD7-positive blasts (%) and the last screening marrow blast
  percentage (the model's starting tumour burden);
- six doses on days 0, 3, 7, 10, 14 and 17 (twice weekly; the registration gives no schedule), after
  fludarabine 30 mg/m2/day and cyclophosphamide 300 mg/m2/day on days -5 to -3;
- the synthetic laboratory reference ranges below (lln/uln on every row);
- the random stream: ``seed * 1000 + COURSE_STREAM``. ``COURSE_STREAM`` was chosen among the first 200
  streams as the first whose cohort tells the demo's escalation story: no DLT at dose levels 1 and 2, two of
  three at level 3 (so BOIN stops with dose level 2 as the MTD), the worst CRS grade and the number of
  responders not falling with dose, at least one ICANS, a non-responder and a CD7-negative relapse
  (:func:`story`; streams 80, 84 and 175 qualify without the responder condition, 84 is the first with it). The children's courses are what the
  model gives for that stream; nothing is edited by hand.

What a grader sees are raw findings: vitals, neurological scores, labs, support (fluids, oxygen with its
device and flow, vasopressors, tocilizumab, dexamethasone) -- no CRS or ICANS grades. DLTs are recorded as
the investigators' adjudicated events (grade >= 3 CRS in the 28-day window), responses at day 28 (CR/CRi/NR
from the simulated marrow), relapses (CD7-negative when escape blasts dominate) and deaths as events.
Every row's ``source`` says ``synthetic``.

``course_tables(subjects, seed, observations)`` returns the three tables for the enrolled rows of
``subjects`` and, per subject, what the simulation produced (investigator CRS grade, DLT, ICANS, response,
relapse and death days) so tests can check the engines; ``cd7kit.datasets.load_demo_study`` joins them to
the screening data of all 12 children. Same seed, same rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SOURCE = "synthetic: cd7kit.sim virtual patient (cd7kit.datasets.synthetic)"
DOSE_LEVELS_CELLS_PER_KG = {1: 4e7, 2: 1.2e8, 3: 3.6e8}
DOSE_DAYS = (0, 3, 7, 10, 14, 17)
#: Offset of the random stream of the course (see the module docstring and :func:`story`).
COURSE_STREAM = 84
#: Illustrative paediatric reference ranges for the synthetic rows' lln/uln columns (a generator's choice,
#: not a clinical rule: real studies carry each laboratory's own ranges per row).
RANGES: dict[str, tuple[float | None, float | None]] = {
    "ANC": (1.5, 8.0), "WBC": (4.5, 13.5), "ALC": (1.5, 6.5), "PLT": (150, 450), "HGB": (110, 160),
    "CRP": (None, 8.0), "FERRITIN": (10, 150), "LDH": (120, 300), "CREAT": (0.3, 0.7), "ALT": (5, 40),
    "AST": (10, 40), "BILI": (0.2, 1.2), "FIBRINOGEN": (2.0, 4.0), "IL6": (None, 7.0),
}


def _covariates(enrolled: pd.DataFrame, observations: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """Per-child covariates from the screening tables (NaN / None where a value is missing: then drawn)."""
    cov: dict[str, np.ndarray] = {}
    for key, col in (("age", "age_years"), ("weight", "weight_kg"), ("cd7_pct", "cd7_blast_pct")):
        cov[key] = pd.to_numeric(enrolled[col], errors="coerce").to_numpy(float) if col in enrolled else np.full(len(enrolled), np.nan)
    cov["sex"] = enrolled["sex"].to_numpy(object) if "sex" in enrolled else np.full(len(enrolled), None, dtype=object)
    bm0 = np.full(len(enrolled), np.nan)
    if observations is not None and len(observations):
        o = observations[(observations["code"] == "BM_BLASTS") & (observations["day"] < 0) & observations["value"].notna()]
        last = o.sort_values("day").groupby("subject_id")["value"].last()
        bm0 = enrolled["subject_id"].map(last).to_numpy(float)
    cov["bm0"] = bm0
    return cov


def course_tables(
    subjects: pd.DataFrame, seed: int = 2026, observations: pd.DataFrame | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """Post-infusion tables for the enrolled rows of ``subjects`` (needs subject_id and dose_level; age_years,
    sex, weight_kg, cd7_blast_pct are used when present). ``observations``: the screening observations, whose
    last marrow blast percentage before day 0 starts each child's tumour burden.

    Returns the tables (observations, interventions, events) and, per subject, what the simulation produced.
    """
    from cd7kit.sim.cohort import cohort_tables, simulate_arrays

    enrolled = subjects[subjects["status"] == "enrolled"].sort_values("subject_id").reset_index(drop=True)
    if enrolled.empty:
        return {"observations": pd.DataFrame(), "interventions": pd.DataFrame(), "events": pd.DataFrame()}, {}
    levels = enrolled["dose_level"].astype(int).to_numpy()
    a = simulate_arrays(
        len(enrolled),
        "NCT06849401",
        seed=seed * 1000 + COURSE_STREAM,
        days=180,
        dose_level=levels,
        covariates=_covariates(enrolled, observations),
        dose_days=DOSE_DAYS,
    )
    tables, planted = cohort_tables(a, list(enrolled["subject_id"]), source=SOURCE, investigator_crs=False, ranges=RANGES, screening=False)
    iv = tables["interventions"]
    # the protocol's names for the product and the DLT adjudication
    iv.loc[iv["kind"] == "car_infusion", "agent"] = "CD7 CAR-NK (allogeneic, hESC-derived; synthetic)"
    ev = tables["events"]
    is_dlt = ev["kind"] == "dlt"
    ev.loc[is_dlt, "details"] = '{"derived_by": "synthetic course (investigator-adjudicated)", "window_days": 28}'
    return tables, planted


def story(planted: dict[str, dict[str, Any]], levels: dict[str, int]) -> bool:
    """The demo's escalation story (see the module docstring): how ``COURSE_STREAM`` was chosen."""
    by = {lv: [p for s, p in planted.items() if levels[s] == lv] for lv in (1, 2, 3)}
    dlts = [sum(p["dlt"] for p in by[lv]) for lv in (1, 2, 3)]
    grade = [max((p["crs_grade"] for p in by[lv]), default=0) for lv in (1, 2, 3)]
    responders = [sum(p["response"] != "NR" for p in by[lv]) for lv in (1, 2, 3)]
    return (
        dlts == [0, 0, 2]
        and grade[0] <= grade[1] <= grade[2]
        and responders[0] <= responders[1] <= responders[2]
        and any(p["icans"] for p in planted.values())
        and any(p["response"] == "NR" for p in planted.values())
        and any(p.get("cd7_negative_relapse") for p in planted.values())
    )


__all__ = ["course_tables", "story", "DOSE_LEVELS_CELLS_PER_KG", "DOSE_DAYS", "SOURCE", "RANGES", "COURSE_STREAM"]
