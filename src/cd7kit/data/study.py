"""The Study: one canonical, long-format, validated record of a trial (DESIGN.md).

A :class:`Study` holds four tables -- ``subjects``, ``observations``, ``interventions``, ``events`` --
validated with pandera against :mod:`cd7kit.data.schema` and against the vocabulary (every code known,
every value in its canonical unit and plausible range, every row's subject enrolled in ``subjects``).
It is immutable in the engines' hands: accessors return copies, and changes make a new Study.

The query helpers are the ones engines need: a code's series for a subject, the interventions active
on a day, and a baseline value before a day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pandera.errors as pae

from cd7kit.errors import InputError, Problem
from cd7kit.vocab import load_vocabulary

from . import schema as S

TABLES = ("subjects", "observations", "interventions", "events")


def _normalise(table: str, df: pd.DataFrame | None) -> pd.DataFrame:
    """Add missing optional columns, defaults and row ids; order columns as the schema does.

    Builds one new frame from the columns (a single copy; the caller's frame is never modified).
    """
    if df is None:
        return S.empty(table)
    if not df.columns.is_unique:  # let pandas/pandera report duplicated columns as they always did
        df = df.copy().reset_index(drop=True)
        return df[[c for c in S.columns(table)] + [c for c in df.columns if c not in S.columns(table)]]
    n = len(df)
    defaults = S.DEFAULTS.get(table, {})
    data: dict[str, Any] = {}
    for col in S.columns(table):
        default = defaults.get(col)
        if col in df.columns:
            s = df[col]
            data[col] = (s.where(s.notna(), default) if default is not None else s).array
        elif col == "row_id":
            data[col] = np.arange(1, n + 1, dtype="int64")
        elif default is not None:
            data[col] = np.full(n, default, dtype=object if isinstance(default, str) else None)
        else:
            dtype = S.dtype(table, col)
            if dtype == "float64":
                data[col] = np.full(n, np.nan)
            elif dtype == "Int64":
                data[col] = pd.arrays.IntegerArray(np.zeros(n, dtype="int64"), np.ones(n, dtype=bool))
            else:
                data[col] = np.full(n, None, dtype=object)
    if "row_id" in df.columns:
        rid = pd.Series(data["row_id"], copy=True)
        na = rid.isna().to_numpy()
        if na.any():
            start = int(rid.max()) + 1 if (~na).any() else 1
            rid[na] = np.arange(start, start + int(na.sum()))
        data["row_id"] = rid.array
    for c in df.columns:
        if c not in data:
            data[c] = df[c].array
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _pandera_problems(table: str, err: pae.SchemaErrors, origin: str | None) -> list[Problem]:
    problems: list[Problem] = []
    fc = err.failure_cases
    for r in fc.to_dict("records"):
        idx = r.get("index")
        row = int(idx) + 2 if idx is not None and not (isinstance(idx, float) and math.isnan(idx)) else None
        col = r.get("column")
        problems.append(
            Problem(
                message=f"fails check {r.get('check')}",
                file=origin or table,
                row=row,
                column=None if col is None or (isinstance(col, float) and math.isnan(col)) else str(col),
                value=r.get("failure_case"),
                expected=str(r.get("check")),
            )
        )
    return problems


def validate_tables(tables: Mapping[str, pd.DataFrame], origin: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Normalise and validate the four tables; raise one :class:`InputError` listing every problem."""
    origin = origin or {}
    problems: list[Problem] = []
    out: dict[str, pd.DataFrame] = {}
    for t in TABLES:
        df = tables.get(t)
        where = origin.get(t, t)
        if df is not None:
            missing = [c for c in S.REQUIRED[t] if c not in df.columns]
            extra = [c for c in df.columns if c not in S.columns(t)]
            for c in missing:
                problems.append(Problem("required column is missing", where, 1, c, None, "a column named " + c))
            for c in extra:
                problems.append(Problem("unknown column", where, 1, c, None, "one of " + ", ".join(S.columns(t))))
            if missing or extra:
                continue
        norm = _normalise(t, df)
        try:
            # ``norm`` is already a private copy: validating in place spares pandera a second full copy
            out[t] = S.SCHEMAS[t].validate(norm, lazy=True, inplace=True)
        except pae.SchemaErrors as err:
            problems.extend(_pandera_problems(t, err, where))
    if problems:
        raise InputError(problems)
    problems.extend(_vocabulary_problems(out["observations"], origin.get("observations", "observations")))
    ids = set(out["subjects"]["subject_id"])
    for t in ("observations", "interventions", "events"):
        bad = out[t].index[~out[t]["subject_id"].isin(ids)]
        for i in bad[:50]:
            problems.append(
                Problem("subject is not listed in subjects", origin.get(t, t), int(i) + 2, "subject_id", out[t].at[i, "subject_id"], "a subject_id of subjects")
            )
    iv = out["interventions"]
    bad = iv.index[iv["end_day"].notna() & (iv["end_day"] < iv["start_day"])]
    for i in bad:
        problems.append(Problem("end_day is before start_day", origin.get("interventions", "interventions"), int(i) + 2, "end_day", iv.at[i, "end_day"], f">= {iv.at[i, 'start_day']}"))
    if problems:
        raise InputError(problems)
    return out


def _vocabulary_problems(obs: pd.DataFrame, where: str) -> list[Problem]:
    # Column-wise (numpy arrays and group positions): no row-wise DataFrame selection, which would copy
    # and consolidate every column of a large table. Problems come out in the same order as before:
    # unknown codes, then per code (in order of first appearance) wrong units, implausible values, no value.
    vocab = load_vocabulary()
    problems: list[Problem] = []
    code = obs["code"]
    labels = obs.index
    known = code.isin(vocab.codes()).to_numpy()
    for i in labels[~known]:
        problems.append(Problem("unknown test code", where, int(i) + 2, "code", obs.at[i, "code"], "a code of cd7kit's vocabulary (cd7kit/vocab/data)"))
    unit = obs["unit"].to_numpy()
    value = obs["value"].to_numpy(dtype=float)
    blq = obs["blq"].to_numpy(dtype=bool)
    text_na = obs["value_text"].isna().to_numpy()
    pos_known = np.flatnonzero(known)
    groups = pd.Series(pos_known).groupby(code.to_numpy()[pos_known], sort=False).indices
    for c, gi in groups.items():
        tc = vocab[str(c)]
        pos = pos_known[gi]
        for i in labels[pos[unit[pos] != tc.canonical_unit]]:
            problems.append(Problem(f"unit is not the canonical unit of {c}", where, int(i) + 2, "unit", obs.at[i, "unit"], tc.canonical_unit))
        v = value[pos]
        lo = -np.inf if tc.plausible_min is None else tc.plausible_min
        hi = np.inf if tc.plausible_max is None else tc.plausible_max
        with np.errstate(invalid="ignore"):
            implausible = ~np.isnan(v) & ((v < lo) | (v > hi))
        for i in labels[pos[implausible]]:
            problems.append(
                Problem(f"{c} value outside its plausible range (wrong unit?)", where, int(i) + 2, "value", obs.at[i, "value"], f"{tc.plausible_min}..{tc.plausible_max} {tc.canonical_unit}")
            )
        if tc.value_type == "numeric":
            for i in labels[pos[np.isnan(v) & ~blq[pos] & text_na[pos]]]:
                problems.append(Problem(f"{c} needs a numeric value, a BLQ flag or a text result", where, int(i) + 2, "value", None, "a number"))
    return problems


@dataclass(frozen=True)
class Study:
    """A validated trial record. Build it with :meth:`from_tables`."""

    subjects: pd.DataFrame
    observations: pd.DataFrame
    interventions: pd.DataFrame
    events: pd.DataFrame
    meta: Mapping[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_tables(
        cls,
        subjects: pd.DataFrame | None = None,
        observations: pd.DataFrame | None = None,
        interventions: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
        meta: Mapping[str, Any] | None = None,
        origin: Mapping[str, str] | None = None,
    ) -> Study:
        """Validate the tables (missing optional columns are added) and build a Study."""
        t = validate_tables(
            {"subjects": subjects, "observations": observations, "interventions": interventions, "events": events},
            origin=origin,
        )
        return cls(t["subjects"], t["observations"], t["interventions"], t["events"], dict(meta or {}))

    @classmethod
    def empty(cls, meta: Mapping[str, Any] | None = None) -> Study:
        return cls.from_tables(meta=meta)

    def table(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise KeyError(f"no table {name!r}; tables are {', '.join(TABLES)}")
        return getattr(self, name).copy()

    def tables(self) -> dict[str, pd.DataFrame]:
        return {t: self.table(t) for t in TABLES}

    def replace(self, **changes: Any) -> Study:
        """A new, re-validated Study with some tables (or ``meta``) replaced."""
        t = self.tables()
        meta = dict(changes.pop("meta", self.meta))
        t.update(changes)
        return Study.from_tables(**t, meta=meta)

    @property
    def study_id(self) -> str | None:
        return self.meta.get("study_id")

    @property
    def subject_ids(self) -> list[str]:
        return list(self.subjects["subject_id"])

    def subject(self, subject_id: str) -> Study:
        """The part of the Study about one subject."""
        rows = self._rows_by_subject
        if subject_id not in rows["subjects"]:
            raise KeyError(f"no subject {subject_id!r} in study {self.study_id!r}")
        empty = np.empty(0, dtype=np.intp)
        sel = {t: getattr(self, t).take(rows[t].get(subject_id, empty)).reset_index(drop=True) for t in TABLES}
        return Study(**sel, meta=self.meta)

    @cached_property
    def _rows_by_subject(self) -> dict[str, dict[str, np.ndarray]]:
        # Row positions per subject, computed once per Study: a per-subject view is then a take(), not a scan
        # of every table (the web app and per-subject engines ask for many subjects of one large Study).
        return {t: {str(k): v for k, v in getattr(self, t).groupby("subject_id", sort=False, observed=True).indices.items()} for t in TABLES}

    def restrict(self, subject_ids: Iterable[str]) -> Study:
        """The part of the Study about some subjects (row ids kept, so evidence still points at rows)."""
        ids = set(subject_ids)
        sel = {t: getattr(self, t)[getattr(self, t)["subject_id"].isin(ids)].reset_index(drop=True) for t in TABLES}
        return Study(**sel, meta=self.meta)

    def subject_row(self, subject_id: str) -> pd.Series:
        rows = self.subjects[self.subjects["subject_id"] == subject_id]
        if rows.empty:
            raise KeyError(f"no subject {subject_id!r}")
        return rows.iloc[0]

    # -- query helpers used by the engines --------------------------------------------------
    def series(self, subject_id: str | None, code: str | Iterable[str], specimen: str | None = None) -> pd.DataFrame:
        """Observations of one code (or several) for a subject (all subjects if ``None``), sorted by day."""
        codes = [code] if isinstance(code, str) else list(code)
        obs = self.observations
        m = obs["code"].isin(codes)
        if subject_id is not None:
            m &= obs["subject_id"] == subject_id
        if specimen is not None:
            m &= obs["specimen"] == specimen
        return obs[m].sort_values(["subject_id", "day", "row_id"], kind="stable").copy()

    def interventions_on(self, subject_id: str, day: float, kind: str | Iterable[str] | None = None) -> pd.DataFrame:
        """Interventions active on a calendar day: started on or before it and not ended before it.

        A row without ``end_day`` is a single administration on the calendar day of ``start_day``.
        """
        iv = self.interventions[self.interventions["subject_id"] == subject_id]
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            iv = iv[iv["kind"].isin(kinds)]
        d = math.floor(day)
        start = np.floor(iv["start_day"].to_numpy(dtype=float))
        end = np.floor(iv["end_day"].fillna(iv["start_day"]).to_numpy(dtype=float))
        return iv[(start <= d) & (end >= d)].copy()

    def baseline(
        self,
        subject_id: str,
        code: str,
        before_day: float = 0.0,
        lookback_days: float | None = None,
        specimen: str | None = None,
    ) -> pd.Series | None:
        """The last non-missing observation strictly before ``before_day`` (within a look-back window)."""
        s = self.series(subject_id, code, specimen=specimen)
        s = s[(s["day"] < before_day) & s["value"].notna()]
        if lookback_days is not None:
            s = s[s["day"] >= before_day - lookback_days]
        if s.empty:
            return None
        return s.iloc[-1]

    def lymphodepletion_start(self, subject_id: str) -> float | None:
        """First day of lymphodepleting chemotherapy, from the interventions (never assumed)."""
        iv = self.interventions
        ld = iv[(iv["subject_id"] == subject_id) & (iv["kind"] == "lymphodepletion")]
        return None if ld.empty else float(ld["start_day"].min())

    def infusions(self, subject_id: str | None = None) -> pd.DataFrame:
        """CAR infusions (day 0 is the first), sorted by day."""
        iv = self.interventions
        m = iv["kind"] == "car_infusion"
        if subject_id is not None:
            m &= iv["subject_id"] == subject_id
        return iv[m].sort_values(["subject_id", "start_day"]).copy()

    def summary(self) -> dict[str, Any]:
        """Counts for an overview: subjects by status and dose level, observations by category, day span."""
        vocab = load_vocabulary()
        obs = self.observations
        cats = obs["code"].map({tc.code: tc.category for tc in vocab}).fillna("unknown")
        days = pd.concat([obs["day"], self.interventions["start_day"], self.events["day"]])
        dl = self.subjects["dose_level"]
        return {
            "study_id": self.study_id,
            "title": self.meta.get("title"),
            "synthetic": self.meta.get("synthetic"),
            "n_subjects": int(len(self.subjects)),
            "subjects_by_status": {str(k): int(v) for k, v in self.subjects["status"].value_counts().sort_index().items()},
            "subjects_by_dose_level": {("none" if pd.isna(k) else str(int(k))): int(v) for k, v in dl.value_counts(dropna=False).sort_index().items()},
            "observations_by_category": {str(k): int(v) for k, v in cats.value_counts().sort_index().items()},
            "n_observations": int(len(obs)),
            "n_interventions": int(len(self.interventions)),
            "n_events": int(len(self.events)),
            "day_span": [float(days.min()), float(days.max())] if len(days) else None,
        }


def concat(studies: Iterable[Study], meta: Mapping[str, Any] | None = None) -> Study:
    """Combine studies with distinct subjects into one (row ids are renumbered)."""
    studies = list(studies)
    tables: dict[str, pd.DataFrame] = {}
    for t in TABLES:
        parts = [getattr(s, t) for s in studies]
        df = pd.concat(parts, ignore_index=True) if parts else None
        if df is not None and "row_id" in df.columns:
            df["row_id"] = np.arange(1, len(df) + 1, dtype="int64")
        tables[t] = df
    return Study.from_tables(**tables, meta=meta or {})


__all__ = ["Study", "TABLES", "validate_tables", "concat"]
