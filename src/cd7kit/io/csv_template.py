"""The cd7kit CSV template: a folder with subjects.csv, observations.csv, interventions.csv, events.csv.

Documented column by column in ``docs/data-format.md``. Units in ``observations.csv`` are those of the
source; they are converted to each code's canonical unit on import (:mod:`cd7kit.io.convert`). A date
column may stand in for a day column (``date`` / ``start_date`` / ``end_date``, or ``datetime`` for
observations) when the subject's ``reference_date`` (first-infusion date) is given. All problems of the
folder are reported together; a folder with any problem yields no Study.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cd7kit.data import Study
from cd7kit.data import schema as S
from cd7kit.data.study import TABLES
from cd7kit.errors import InputError, Problem

from .convert import ISO_DATE, canonicalise_observations, days_from_dates

#: Template-only columns: dates that become days on import.
DATE_COLUMNS = {
    "observations": {"datetime": "day"},
    "interventions": {"start_date": "start_day", "end_date": "end_day"},
    "events": {"date": "day", "end_date": "end_day"},
}
_NUMERIC = {
    "subjects": ("age_years", "weight_kg", "height_cm", "cd7_blast_pct", "dose_level", "dose_cells_per_kg"),
    "observations": ("row_id", "day", "lln", "uln", "lloq"),
    "interventions": ("row_id", "start_day", "end_day", "dose", "flow_l_min"),
    "events": ("row_id", "day", "end_day", "grade"),
}


def _read_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df.columns = [c.strip() for c in df.columns]
    return df.replace({"": None})


def _numbers(df: pd.DataFrame, table: str, file: str, problems: list[Problem]) -> pd.DataFrame:
    for col in _NUMERIC[table]:
        if col not in df.columns:
            continue
        parsed = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & parsed.isna()
        for i in df.index[bad]:
            problems.append(Problem("not a number", file, int(i) + 2, col, df.at[i, col], "a number"))
        if col in ("dose_level", "grade", "row_id"):
            frac = parsed.notna() & (parsed != np.floor(parsed))
            for i in df.index[frac]:
                problems.append(Problem("not a whole number", file, int(i) + 2, col, df.at[i, col], "an integer"))
        df[col] = parsed
    return df


def read_cd7kit(folder: str | Path, meta: dict | None = None) -> Study:
    """Read a cd7kit CSV-template folder into a validated :class:`Study` (raises :class:`InputError`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError([Problem("not a folder", str(folder), expected="a folder with subjects.csv, observations.csv, ...")])
    problems: list[Problem] = []
    frames: dict[str, pd.DataFrame | None] = {}
    origin: dict[str, str] = {}
    for t in TABLES:
        path = folder / f"{t}.csv"
        origin[t] = str(path)
        if not path.exists():
            if t == "subjects":
                problems.append(Problem("file is missing", str(path), expected="subjects.csv with at least subject_id"))
            frames[t] = None
            continue
        df = _read_csv(path)
        allowed = set(S.columns(t)) | set(DATE_COLUMNS.get(t, {}))
        for c in df.columns:
            if c not in allowed:
                problems.append(Problem("unknown column", str(path), 1, c, None, "one of " + ", ".join(sorted(allowed))))
        frames[t] = _numbers(df, t, str(path), problems)
    if problems:
        raise InputError(problems)
    subjects = frames["subjects"]
    assert subjects is not None
    if "reference_date" in subjects.columns:
        for i in subjects.index[subjects["reference_date"].notna()]:
            if not ISO_DATE.match(str(subjects.at[i, "reference_date"]).strip()):
                problems.append(Problem("not an ISO 8601 date", origin["subjects"], int(i) + 2, "reference_date", subjects.at[i, "reference_date"], "YYYY-MM-DD (the first-infusion date)"))
    for t, mapping in DATE_COLUMNS.items():
        df = frames[t]
        if df is None:
            continue
        for date_col, day_col in mapping.items():
            df, p = days_from_dates(df, subjects, date_col, day_col, origin[t])
            problems.extend(p)
            if date_col != "datetime" and date_col in df.columns:
                df = df.drop(columns=[date_col])
        frames[t] = df
    if frames["observations"] is not None:
        frames["observations"], p = canonicalise_observations(frames["observations"], origin["observations"])
        problems.extend(p)
    if problems:
        raise InputError(problems)
    m = {"source": str(folder), **(meta or {})}
    meta_file = folder / "study.yaml"
    if meta_file.exists():
        import yaml

        m = {**yaml.safe_load(meta_file.read_text(encoding="utf-8")), **m}
    return Study.from_tables(**frames, meta=m, origin=origin)


def write_cd7kit(study: Study, folder: str | Path) -> Path:
    """Write a Study as a cd7kit CSV-template folder (canonical units; ``study.yaml`` holds ``meta``)."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t in TABLES:
        study.table(t).to_csv(folder / f"{t}.csv", index=False)
    meta = {k: v for k, v in dict(study.meta).items() if k != "source"}
    (folder / "study.yaml").write_text(yaml.safe_dump(meta, sort_keys=True), encoding="utf-8")
    return folder


__all__ = ["read_cd7kit", "write_cd7kit", "DATE_COLUMNS"]
