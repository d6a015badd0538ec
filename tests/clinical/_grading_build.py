"""Small helpers that build Studies for the grading tests (rows as short tuples)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cd7kit.data import Study

UNITS = {
    "TEMP": "degC", "SBP": "mmHg", "ANC": "10^9/L", "PLT": "10^9/L", "WBC": "10^9/L", "ALC": "10^9/L",
    "HGB": "g/L", "ALT": "U/L", "AST": "U/L", "BILI": "mg/dL", "CREAT": "mg/dL", "FIBRINOGEN": "g/L",
    "HAPTOGLOBIN": "g/L", "LDH": "U/L", "ICE": "score", "CAPD": "score", "LOC": "1",
    "ICE_ORIENT": "score", "ICE_NAMING": "score", "ICE_COMMANDS": "score", "ICE_WRITING": "score", "ICE_ATTENTION": "score",
}  # fmt: skip


def obs(sid: str, day: float, code: str, value: float | None, **kw: Any) -> dict[str, Any]:
    return {"subject_id": sid, "day": float(day), "code": code, "value": value, "unit": UNITS[code], **kw}


def iv(sid: str, start: float, kind: str, end: float | None = None, **kw: Any) -> dict[str, Any]:
    return {"subject_id": sid, "start_day": float(start), "end_day": end, "kind": kind, **kw}


def ev(sid: str, day: float, kind: str, term: str, **kw: Any) -> dict[str, Any]:
    return {"subject_id": sid, "day": float(day), "kind": kind, "term": term, **kw}


def study(
    observations: list[dict[str, Any]] | None = None,
    interventions: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    subjects: list[dict[str, Any]] | None = None,
    ages: dict[str, float] | None = None,
) -> Study:
    observations = observations or []
    interventions = interventions or []
    events = events or []
    if subjects is None:
        ids: list[str] = []
        for r in observations + interventions + events:
            if r["subject_id"] not in ids:
                ids.append(r["subject_id"])
        for s in (ages or {}):
            if s not in ids:
                ids.append(s)
        subjects = [{"subject_id": s, "age_years": (ages or {}).get(s, 40.0)} for s in ids]
    return Study.from_tables(
        pd.DataFrame(subjects),
        pd.DataFrame(observations) if observations else None,
        pd.DataFrame(interventions) if interventions else None,
        pd.DataFrame(events) if events else None,
        meta={"study_id": "T"},
    )


def temps(sid: str, days: range | list[int], value: float, **kw: Any) -> list[dict[str, Any]]:
    return [obs(sid, d, "TEMP", value, **kw) for d in days]
