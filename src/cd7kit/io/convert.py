"""Bring observations from any reader into canonical units and values (shared by every reader).

Each reader produces observation rows with the unit *as written in the source*; this module converts
them to the code's canonical unit with :mod:`cd7kit.data.units` (pint), maps ordinal text
(``2+``, ``awakens to voice``) to its numeric level, reads ``<x`` / ``BLQ`` as below the limit of
quantification, and derives days from dates when a subject's first-infusion date is known. Every
problem names the file, row and column; nothing is guessed.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cd7kit.data.days import day_from_dates
from cd7kit.data.units import UnitError, conversion
from cd7kit.errors import Problem
from cd7kit.vocab import load_vocabulary

#: ISO 8601 calendar date, optionally with a time (``T`` or a space); nothing else is read as a date, so
#: ``05/06/2021`` is an error rather than a guess between 5 June and 6 May.
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_BLQ = re.compile(r"^\s*(?:<\s*(?P<lim>[0-9.eE+-]+)|BLQ|BLOQ|<\s*LLOQ|undetectable|not detected|ND)\s*$", re.I)


def canonicalise_observations(obs: pd.DataFrame, file: str, row_offset: int = 2) -> tuple[pd.DataFrame, list[Problem]]:
    """Convert ``obs`` (columns subject_id, code, value, unit, ...) to canonical units.

    ``value`` may be text in the source: numbers are parsed, ``<0.5`` / ``BLQ`` set ``blq`` (and
    ``lloq`` from the number), ordinal levels become their number, anything else stays in
    ``value_text`` for categorical codes and is an error for numeric ones. ``row_offset`` maps the
    frame's position to the row a user sees in the file (2 for a CSV with one header row).
    """
    vocab = load_vocabulary()
    df = obs.copy().reset_index(drop=True)
    problems: list[Problem] = []
    for col in ("value_text", "lloq", "blq", "lln", "uln"):
        if col not in df.columns:
            df[col] = None if col == "value_text" else (False if col == "blq" else np.nan)
    df["blq"] = df["blq"].map(_as_bool).astype(bool)
    raw = df["value"].astype(object) if "value" in df.columns else pd.Series([None] * len(df), dtype=object)
    values = np.full(len(df), np.nan)
    texts = df["value_text"].astype(object).where(df["value_text"].notna(), None).tolist()
    lloq = pd.to_numeric(df["lloq"], errors="coerce").to_numpy(dtype=float)
    blq = df["blq"].to_numpy(dtype=bool)
    for i, (code, v) in enumerate(zip(df["code"], raw, strict=True)):
        row = i + row_offset
        if code not in vocab:
            problems.append(Problem("unknown test code", file, row, "code", code, "a code of cd7kit's vocabulary"))
            continue
        tc = vocab[code]
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            values[i] = float(v)
            continue
        s = str(v).strip()
        try:
            values[i] = float(s)
            continue
        except ValueError:
            pass
        m = _BLQ.match(s)
        if m and tc.value_type == "numeric":
            blq[i] = True
            if m.group("lim"):
                lloq[i] = float(m.group("lim"))
            continue
        if tc.levels:
            key = next((k for k in tc.levels if k.lower() == s.lower()), None)
            if key is not None:
                values[i] = tc.levels[key]
                texts[i] = key
                continue
        if tc.value_type == "categorical":
            texts[i] = s
            continue
        problems.append(
            Problem(f"{code} needs a number", file, row, "value", s, "a number, '<LLOQ' or BLQ" + (f", or one of {list(tc.levels)}" if tc.levels else ""))
        )
    # unit conversion, one factor per (code, unit) pair
    units = df["unit"].astype(object)
    for (code, unit), idx in df.groupby([df["code"], units.fillna("")], sort=False).groups.items():
        if code not in vocab:
            continue
        tc = vocab[code]
        rows = np.asarray(idx)
        if unit == "":
            if tc.canonical_unit in ("1", "score", "plus") or tc.value_type != "numeric":
                df.loc[rows, "unit"] = tc.canonical_unit
                continue
            for i in rows:
                problems.append(Problem(f"{code} needs a unit", file, int(i) + row_offset, "unit", None, f"a unit convertible to {tc.canonical_unit}"))
            continue
        try:
            scale, offset = conversion(str(unit), tc.canonical_unit, tc.molar_mass_g_mol)
        except UnitError:
            for i in rows:
                problems.append(Problem(f"unit cannot be converted to {code}'s canonical unit", file, int(i) + row_offset, "unit", unit, f"a unit convertible to {tc.canonical_unit}"))
            continue
        values[rows] = values[rows] * scale + offset
        for col in ("lloq", "lln", "uln"):
            arr = pd.to_numeric(df.loc[rows, col], errors="coerce").to_numpy(dtype=float) if col != "lloq" else lloq[rows]
            conv = arr * scale + offset
            if col == "lloq":
                lloq[rows] = conv
            else:
                df.loc[rows, col] = conv
        df.loc[rows, "unit"] = tc.canonical_unit
        lo, hi = tc.plausible_min, tc.plausible_max
        for i in rows:
            v = values[i]
            if not np.isnan(v) and ((lo is not None and v < lo) or (hi is not None and v > hi)):
                hint = " -- is the unit right?" if unit != tc.canonical_unit or tc.code == "TEMP" else ""
                problems.append(
                    Problem(f"{code} {v:g} {tc.canonical_unit} is outside the plausible range{hint}", file, int(i) + row_offset, "value", raw.iloc[i], f"{lo}..{hi} {tc.canonical_unit}")
                )
    df["value"] = values
    df["value_text"] = texts
    df["lloq"] = lloq
    df["blq"] = blq
    return df, problems


def _as_bool(x: object) -> bool:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return False
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    return str(x).strip().lower() in ("1", "true", "yes", "y", "t")


def days_from_dates(df: pd.DataFrame, subjects: pd.DataFrame, date_col: str, day_col: str, file: str, row_offset: int = 2) -> tuple[pd.DataFrame, list[Problem]]:
    """Fill ``day_col`` from ``date_col`` and each subject's ``reference_date`` (first infusion) where missing."""
    problems: list[Problem] = []
    df = df.copy()
    if date_col not in df.columns:
        return df, problems
    if day_col not in df.columns:
        df[day_col] = np.nan
    ref = dict(zip(subjects["subject_id"], subjects.get("reference_date", pd.Series([None] * len(subjects))), strict=False))
    need = df[day_col].isna() & df[date_col].notna()
    for i in df.index[need]:
        sid = df.at[i, "subject_id"]
        r = ref.get(sid)
        if r is None or (isinstance(r, float) and np.isnan(r)):
            problems.append(Problem("a date without a day needs the subject's reference_date (first infusion) in subjects", file, int(i) + row_offset, date_col, df.at[i, date_col], "subjects.reference_date set, or a day"))
            continue
        if not ISO_DATE.match(str(df.at[i, date_col]).strip()):
            problems.append(Problem("not an ISO 8601 date", file, int(i) + row_offset, date_col, df.at[i, date_col], "YYYY-MM-DD or YYYY-MM-DDThh:mm"))
            continue
        if not ISO_DATE.match(str(r).strip()):
            continue  # the subject's reference_date is reported by the reader of subjects
        try:
            df.at[i, day_col] = float(day_from_dates([df.at[i, date_col]], r)[0])
        except (ValueError, TypeError):
            problems.append(Problem("not an ISO 8601 date", file, int(i) + row_offset, date_col, df.at[i, date_col], "YYYY-MM-DD or YYYY-MM-DDThh:mm"))
    return df, problems


__all__ = ["canonicalise_observations", "days_from_dates", "ISO_DATE"]
