"""One patient's screening data as a JSON file -> a one-subject Study, ready for :func:`screen`.

The format is documented in ``docs/eligibility.md`` (example: ``docs/examples/patient.json``). Day 0 of
the file is the checkpoint date (``checkpoint_date``); observations, interventions and events carry a
``date`` (ISO 8601) or a ``day`` relative to it. Observation values are converted to each code's
canonical unit with :mod:`cd7kit.data.units` (via :func:`cd7kit.io.convert.canonicalise_observations`),
so a creatinine of 150 umol/L is compared as 1.70 mg/dL; reference limits (``lln``/``uln``) are
converted with the value. When the file has no ``interventions`` (or ``events``) key, those facts are
open world (unknown); an empty list means "none".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cd7kit.data import Study
from cd7kit.errors import InputError, Problem
from cd7kit.io.convert import canonicalise_observations

from .criteria import CHECKPOINTS, CriteriaSet, read_json
from .engine import EligibilityReport, screen

_TOP = {
    "trial",
    "subject_id",
    "age_years",
    "birth_date",
    "sex",
    "diagnosis",
    "weight_kg",
    "height_cm",
    "cd7_blast_pct",
    "checkpoint",
    "checkpoint_date",
    "observations",
    "interventions",
    "events",
    "attestations",
    "overrides",
    "source",
    "comment",
}


def _date(v: Any, where: str, col: str, problems: list[Problem]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        problems.append(Problem("not an ISO 8601 date", where, None, col, v, "YYYY-MM-DD"))
        return None


def _age(birth: dt.date, at: dt.date) -> float:
    """Age in years: completed years plus the fraction of the current year of life."""
    years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))

    def bday(y: int) -> dt.date:
        try:
            return birth.replace(year=y)
        except ValueError:  # 29 February
            return dt.date(y, 3, 1)

    last = bday(birth.year + years)
    nxt = bday(birth.year + years + 1)
    return years + (at - last).days / (nxt - last).days


def _day(rec: Mapping[str, Any], date_key: str, day_key: str, cp: dt.date | None, where: str, problems: list[Problem], required: bool = True) -> float | None:
    if rec.get(day_key) is not None:
        try:
            return float(rec[day_key])
        except (TypeError, ValueError):
            problems.append(Problem("not a number", where, None, day_key, rec[day_key]))
            return None
    if rec.get(date_key) is not None:
        if cp is None:
            problems.append(Problem("a date needs the file's checkpoint_date (day 0)", where, None, date_key, rec[date_key]))
            return None
        d = _date(rec[date_key], where, date_key, problems)
        return None if d is None else float((d - cp).days)
    if required:
        problems.append(Problem(f"needs {date_key} or {day_key}", where, None, date_key))
    return None


def patient_to_study(data: Mapping[str, Any], file: str = "patient.json") -> Study:
    """Validate a patient record (parsed JSON) and build a one-subject :class:`Study`."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise InputError([Problem("the patient file must hold a JSON object", file)])
    for k in sorted(set(data) - _TOP):
        problems.append(Problem("unknown key", file, None, k, None, ", ".join(sorted(_TOP))))
    sid = str(data.get("subject_id") or "").strip()
    if not sid:
        problems.append(Problem("missing subject_id", file, None, "subject_id"))
        sid = "patient"
    cp = None
    if data.get("checkpoint_date") is not None:
        cp = _date(data["checkpoint_date"], file, "checkpoint_date", problems)
    if data.get("checkpoint") is not None and data["checkpoint"] not in CHECKPOINTS:
        problems.append(Problem("unknown checkpoint", file, None, "checkpoint", data["checkpoint"], "|".join(CHECKPOINTS)))
    age = data.get("age_years")
    if age is None and data.get("birth_date") is not None:
        if cp is None:
            problems.append(Problem("birth_date needs checkpoint_date to give the age at the checkpoint", file, None, "birth_date"))
        else:
            b = _date(data["birth_date"], file, "birth_date", problems)
            age = None if b is None else _age(b, cp)
    subj = {
        "subject_id": sid,
        "status": "screened",
        "age_years": age,
        "sex": data.get("sex", "U"),
        "diagnosis": data.get("diagnosis"),
        "weight_kg": data.get("weight_kg"),
        "height_cm": data.get("height_cm"),
        "cd7_blast_pct": data.get("cd7_blast_pct"),
        "source": data.get("source", file),
    }
    obs_rows = []
    for i, o in enumerate(data.get("observations") or [], start=1):
        where = f"{file} observations[{i}]"
        if not isinstance(o, Mapping):
            problems.append(Problem("an observation must be an object", where))
            continue
        day = _day(o, "date", "day", cp, where, problems)
        if "value" not in o and "value_text" not in o:
            problems.append(Problem("needs value or value_text", where, None, "value"))
        obs_rows.append(
            {
                "subject_id": sid,
                "day": day,
                "code": o.get("code"),
                "value": o.get("value", o.get("value_text")),
                "value_text": o.get("value_text"),
                "unit": o.get("unit", ""),
                "specimen": o.get("specimen"),
                "lln": o.get("lln"),
                "uln": o.get("uln"),
                "source": o.get("source", file),
            }
        )
    obs = pd.DataFrame(obs_rows, columns=["subject_id", "day", "code", "value", "value_text", "unit", "specimen", "lln", "uln", "source"])
    if not obs.empty:
        obs, probs = canonicalise_observations(obs, f"{file} observations", row_offset=1)
        problems.extend(probs)
        obs["day"] = pd.to_numeric(obs["day"], errors="coerce")
    open_world = [key for key in ("interventions", "events") if key not in data]

    def rows(key: str, date_col: str, day_col: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        """Interventions or events, each with its (start) day and end day from a date or a day."""
        out = []
        for i, r in enumerate(data.get(key) or [], start=1):
            where = f"{file} {key}[{i}]"
            day = _day(r, date_col, day_col, cp, where, problems)
            end = _day(r, "end_date", "end_day", cp, where, problems, required=False)
            out.append({"subject_id": sid, day_col: day, "end_day": end, **{k: r.get(k) for k in fields}})
        return out

    ivs = rows("interventions", "start_date", "start_day", ("kind", "agent", "dose", "dose_unit", "route", "device", "flow_l_min", "indication", "details"))
    evs = rows("events", "date", "day", ("kind", "term", "grade", "attribution", "details"))
    recs: dict[str, list[dict[str, Any]]] = {"attestations": [], "overrides": []}
    for key in recs:
        for i, r in enumerate(data.get(key) or [], start=1):
            if not isinstance(r, Mapping) or not r.get("criterion_id"):
                problems.append(Problem("needs criterion_id", f"{file} {key}[{i}]", None, "criterion_id"))
                continue
            if key == "attestations" and not isinstance(r.get("value"), bool):
                problems.append(Problem("value must be true or false", f"{file} {key}[{i}]", None, "value", r.get("value")))
            recs[key].append({"subject_id": sid, "trial": data.get("trial"), **dict(r)})
    if problems:
        raise InputError(problems)
    meta = {
        "study_id": f"patient:{sid}",
        "open_world": open_world,
        "checkpoint_days": {sid: {c: 0.0 for c in CHECKPOINTS}},
        "eligibility_attestations": recs["attestations"],
        "eligibility_overrides": recs["overrides"],
        "checkpoint": data.get("checkpoint"),
    }
    return Study.from_tables(
        pd.DataFrame([subj]),
        obs if not obs.empty else None,
        pd.DataFrame(ivs) if ivs else None,
        pd.DataFrame(evs) if evs else None,
        meta=meta,
        origin={"subjects": file, "observations": f"{file} observations", "interventions": f"{file} interventions", "events": f"{file} events"},
    )


def read_patient(path: str | Path) -> Study:
    """Read a single-patient JSON file (see :func:`patient_to_study`)."""
    p = Path(path)
    return patient_to_study(read_json(p), p.name)


def screen_patient(
    data: Mapping[str, Any] | Study,
    criteria: CriteriaSet | str = "NCT06849401",
    checkpoint: str | None = None,
    attestations: list[Mapping[str, Any]] | None = None,
    overrides: list[Mapping[str, Any]] | None = None,
) -> EligibilityReport:
    """Screen one patient given as parsed JSON (or the Study built from it) at day 0 of the file."""
    study = data if isinstance(data, Study) else patient_to_study(data)
    cp = checkpoint or study.meta.get("checkpoint") or "screening"
    att = list(study.meta.get("eligibility_attestations", [])) + list(attestations or [])
    ovr = list(study.meta.get("eligibility_overrides", [])) + list(overrides or [])
    return screen(study, study.subject_ids[0], criteria, cp, day=0.0, attestations=att, overrides=ovr)


__all__ = ["patient_to_study", "read_patient", "screen_patient"]
