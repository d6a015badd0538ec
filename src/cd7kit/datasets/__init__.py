"""Shipped demo study and small reference data, with their provenance.

The demo study ``CD7KIT-DEMO`` joins:

- the two patients of the seed case report (Pan et al., Front Oncol; :mod:`.case_reports`), encoded
  from the published text row by row -- published data, no identifiers;
- a SYNTHETIC NCT06849401-like cohort: 12 children screened (:mod:`.screening`), 9 enrolled across the
  three dose levels and followed to day +180 as virtual patients of :mod:`cd7kit.sim` (:mod:`.synthetic`).
  Made by seeded, documented generators; every row says ``synthetic`` in its ``source``.

No real patient data is shipped.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from cd7kit.data import Study
from cd7kit.data.study import TABLES

DEMO_STUDY_ID = "CD7KIT-DEMO"
DEMO_SEED = 2026


def _cat(parts: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    frames = [p for p in parts if p is not None and len(p)]
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    if "row_id" in df.columns:
        df = df.drop(columns=["row_id"])
    return df


@lru_cache(maxsize=2)
def load_demo_study(seed: int = DEMO_SEED) -> Study:
    """The demo study: 12 synthetic screened children (9 enrolled) and the 2 case-report patients."""
    from .case_reports import case_report_tables
    from .screening import screening_tables
    from .synthetic import course_tables

    screening = screening_tables(seed=seed)
    subjects = screening["subjects"]
    course, _ = course_tables(subjects, seed=seed, observations=screening["observations"])
    cases = case_report_tables()
    tables = {t: _cat([screening.get(t), course.get(t), cases.get(t)]) for t in TABLES}
    meta = {
        "study_id": DEMO_STUDY_ID,
        "title": "cd7kit demo: synthetic NCT06849401-like CD7 CAR-NK cohort + two published CD7 CAR-T case reports",
        "synthetic": "mixed: NCT06849401-* subjects are synthetic; PAN-CASE* subjects are encoded from a published case report",
        "protocol": "NCT06849401-like (synthetic)",
        "trial": "NCT06849401",
        "preset": "NCT06849401",
        "trial_subjects": sorted(subjects["subject_id"]),
        # the investigators' attestations of the judgement criteria (synthetic, from the screening generator)
        "eligibility_attestations": screening["attestations"].to_dict("records") if "attestations" in screening else [],
        "seed": seed,
    }
    return Study.from_tables(**tables, meta=meta)


__all__ = ["load_demo_study", "DEMO_STUDY_ID", "DEMO_SEED"]
