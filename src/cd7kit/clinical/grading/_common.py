"""Shared pieces of the graders: rule files, options, attribution, day expansion, censoring, evidence.

Rules are data (``cd7kit/clinical/rules/*.yaml``), each file naming its published source; options are
declared in the same files with their defaults and documentation, so ``docs/grading.md`` and the CLI's
``--option NAME=VALUE`` read the same names. Everything here works on whole tables at once (numpy /
pandas), never row by row.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cd7kit.data import Evidence, Study
from cd7kit.errors import InputError, Problem

RULES_PACKAGE = "cd7kit.clinical.rules"


@cache
def load_rules(name: str) -> dict[str, Any]:
    """A rule file of ``cd7kit/clinical/rules`` (``name`` without or with ``.yaml``), parsed once."""
    fname = name if name.endswith(".yaml") else name + ".yaml"
    text = (resources.files(RULES_PACKAGE) / fname).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def option_specs(rules_name: str) -> dict[str, dict[str, Any]]:
    """The declared options of a rule file: name -> {default, doc, choices?}."""
    return dict(load_rules(rules_name).get("options", {}))


def _coerce(name: str, value: Any, spec: Mapping[str, Any], system: str) -> Any:
    default = spec.get("default")
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InputError([Problem(f"option {system}.{name}: cannot read {value!r}", column=name, value=value, expected=str(exc))]) from exc
    if isinstance(default, list) and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(default, bool) and not isinstance(value, bool):
        raise InputError([Problem(f"option {system}.{name} must be true or false", column=name, value=value, expected="true|false")])
    if isinstance(default, (int, float)) and not isinstance(default, bool) and value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError([Problem(f"option {system}.{name} must be a number", column=name, value=value, expected="a number")])
    choices = spec.get("choices")
    if choices is not None and str(value) not in [str(c) for c in choices]:
        raise InputError([Problem(f"option {system}.{name} has no value {value!r}", column=name, value=value, expected=" | ".join(map(str, choices)))])
    if choices is not None:
        value = str(value)
    return value


def resolve_options(system: str, rules_name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults of ``rules_name`` overridden by ``options``.

    Keys may be bare (``include_inotropes``) or prefixed by the system (``crs.include_inotropes``); keys
    prefixed by another system are ignored, so one options mapping can serve every grader. An unknown name
    raises :class:`InputError` listing the valid ones.
    """
    specs = option_specs(rules_name)
    out = {k: v.get("default") for k, v in specs.items()}
    problems: list[Problem] = []
    for key, value in (options or {}).items():
        name = str(key)
        if "." in name:
            prefix, rest = name.split(".", 1)
            if prefix != system:
                continue
            name = rest
        if name not in specs:
            problems.append(Problem(f"unknown {system} option", column=name, value=value, expected=", ".join(sorted(specs))))
            continue
        try:
            out[name] = _coerce(name, value, specs[name], system)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return out


def attributable_mask(values: pd.Series | np.ndarray, allowed: Iterable[str]) -> np.ndarray:
    """True where a finding is attributable: empty attribution, or one of ``allowed`` (case-insensitive)."""
    s = pd.Series(values, copy=False)
    allowed_l = {str(a).strip().lower() for a in allowed}
    na = s.isna().to_numpy()
    if na.all():
        return np.ones(len(s), dtype=bool)
    low = s.astype("string").str.strip().str.lower()
    ok = low.isin(allowed_l).fillna(False).to_numpy(dtype=bool) | na | (low == "").fillna(False).to_numpy(dtype=bool)
    return ok


def day_floor(x: pd.Series | np.ndarray) -> np.ndarray:
    """Calendar day (integer) of fractional study days."""
    return np.floor(np.asarray(x, dtype=float)).astype(np.int64)


def expand_days(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand [start, end] calendar-day spans (``end`` NaN = single day) to (row position, day) pairs."""
    s = np.floor(np.asarray(start, dtype=float))
    e = np.asarray(end, dtype=float)
    e = np.where(np.isnan(e), s, np.floor(e))
    e = np.maximum(e, s)
    n = (e - s + 1).astype(np.int64)
    pos = np.repeat(np.arange(len(s)), n)
    if len(pos) == 0:
        return pos, np.zeros(0, dtype=np.int64)
    offs = np.arange(len(pos)) - np.repeat(np.cumsum(n) - n, n)
    days = (np.repeat(s, n) + offs).astype(np.int64)
    return pos, days


def censor_days(study: Study, kinds: Iterable[str], event_kinds: Iterable[str] = ()) -> pd.Series:
    """Per subject, the first start day (> 0) of an intervention of ``kinds`` or event of ``event_kinds``."""
    kinds = list(kinds)
    iv = study.interventions
    a = iv.loc[iv["kind"].isin(kinds) & (iv["start_day"] > 0), ["subject_id", "start_day"]].rename(columns={"start_day": "day"})
    ev = study.events
    b = ev.loc[ev["kind"].isin(list(event_kinds)) & (ev["day"] > 0), ["subject_id", "day"]]
    both = pd.concat([a, b], ignore_index=True)
    if both.empty:
        return pd.Series(dtype=float)
    return both.groupby("subject_id")["day"].min()


def death_days(study: Study) -> pd.DataFrame:
    """Death events: subject_id, day, row_id and the cause text (details + term)."""
    ev = study.events
    d = ev.loc[ev["kind"] == "death", ["subject_id", "day", "row_id", "term", "details"]].copy()
    d["cause"] = d["details"].fillna("").astype(str) + " " + d["term"].fillna("").astype(str)
    return d.sort_values(["subject_id", "day"]).drop_duplicates("subject_id")


def matches(values: pd.Series, pattern: str) -> np.ndarray:
    """True where the text matches the regular expression ``pattern``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # groups in the pattern are fine here
        return values.fillna("").astype(str).str.contains(re.compile(pattern), regex=True).to_numpy(dtype=bool)


def subject_ids(study: Study, subject_id: str | None) -> list[str]:
    if subject_id is None:
        return list(study.subjects["subject_id"])
    if subject_id not in set(study.subjects["subject_id"]):
        from cd7kit.errors import NotFoundError

        raise NotFoundError(f"no subject {subject_id!r} in study {study.study_id!r}")
    return [subject_id]


def restrict(study: Study, subject_id: str | None) -> Study:
    """The study itself, or the part about one subject."""
    if subject_id is None:
        return study
    subject_ids(study, subject_id)
    return study.subject(subject_id)


#: Observation columns the graders read (the others are not copied when splitting by code).
_OBS_COLS = ("row_id", "subject_id", "day", "code", "value", "value_text", "unit", "lln", "uln", "blq", "attribution")


@dataclass
class ObsIndex:
    """Observations split by code once (the expensive string hashing is done a single time per study)."""

    study: Study
    _idx: dict[str, np.ndarray] | None = None
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict)
    _sidx: dict[str, np.ndarray] = field(default_factory=dict)
    _subjects: pd.Index | None = None
    _null: set[str] = field(default_factory=set)

    def sidx(self, code: str | Iterable[str]) -> np.ndarray:
        """Subject positions (in ``study.subjects`` order) of the rows of :meth:`get` (cached)."""
        codes = [code] if isinstance(code, str) else list(code)
        key = "|".join(codes)
        if key not in self._sidx:
            if self._subjects is None:
                self._subjects = pd.Index(self.study.subjects["subject_id"].to_numpy())
            self._sidx[key] = self._subjects.get_indexer(self.get(codes)["subject_id"].to_numpy())
        return self._sidx[key]

    def get(self, code: str | Iterable[str]) -> pd.DataFrame:
        codes = [code] if isinstance(code, str) else list(code)
        key = "|".join(codes)
        if key in self._cache:
            return self._cache[key]
        obs = self.study.observations
        if self._idx is None:
            self._idx = {str(k): v for k, v in obs.groupby("code", sort=False).indices.items()}
            # columns empty in the whole table are carried as NaN (cheap) instead of copied object arrays
            self._null = {c for c in ("value_text", "attribution") if c in obs.columns and not obs[c].notna().any()}
        present = [c for c in codes if c in self._idx]
        parts = [self._idx[c] for c in present]
        if parts:
            cat = np.concatenate(parts)
            order = np.argsort(cat, kind="stable")
            pos = cat[order]
            code_i = np.repeat(np.arange(len(parts)), [len(p_) for p_ in parts])[order]
        else:
            pos = np.zeros(0, dtype=np.int64)
            code_i = np.zeros(0, dtype=np.int64)
        cols: dict[str, Any] = {}
        for c in _OBS_COLS:
            if c not in obs.columns:
                continue
            if c in self._null:
                cols[c] = np.full(len(pos), np.nan)
            elif c == "code":
                cols[c] = pd.Categorical.from_codes(code_i, categories=present) if present else pd.Categorical([])
            else:
                cols[c] = obs[c].to_numpy()[pos]
        df = pd.DataFrame(cols, index=obs.index[pos])
        self._cache[key] = df
        return df


_INDEXES: dict[int, ObsIndex] = {}


def obs_index(study: Study) -> ObsIndex:
    """A per-study :class:`ObsIndex`, shared by the graders called on the same Study object."""
    key = id(study)
    idx = _INDEXES.get(key)
    if idx is None or idx.study is not study:
        if len(_INDEXES) > 8:
            _INDEXES.clear()
        idx = ObsIndex(study)
        _INDEXES[key] = idx
    return idx


class RowLookup:
    """Evidence for many rows of one table, looked up by row id in one vectorised pass."""

    def __init__(self, table: str, df: pd.DataFrame):
        self.table = table
        self.df = df
        self._index = pd.Index(df["row_id"].to_numpy()) if len(df) else pd.Index([])

    def evidence(self, row_ids: Iterable[int], notes: Iterable[str]) -> list[Evidence]:
        ids = np.asarray(list(row_ids), dtype=np.int64)
        notes = list(notes)
        if len(ids) == 0:
            return []
        pos = self._index.get_indexer(ids)
        out: list[Evidence] = []
        df = self.df
        if self.table == "observations":
            sub = df["subject_id"].to_numpy(dtype=object)
            day = df["day"].to_numpy(dtype=float)
            code = df["code"].to_numpy(dtype=object)
            val = df["value"].to_numpy(dtype=float)
            unit = df["unit"].to_numpy(dtype=object)
            for p, rid, note in zip(pos, ids, notes, strict=True):
                if p < 0:
                    continue
                v = None if np.isnan(val[p]) else float(val[p])
                out.append(Evidence("observations", int(rid), str(sub[p]), float(day[p]), str(code[p]), v, str(unit[p]), note))
            return out
        recs = df.iloc[pos[pos >= 0]].to_dict("records")
        it = iter(recs)
        for p, note in zip(pos, notes, strict=True):
            if p < 0:
                continue
            out.append(ev_row(self.table, next(it), note))
        return out


_MEMO: dict[tuple[int, str, str], tuple[Study, Any]] = {}


def memo(study: Study, name: str, options: Mapping[str, Any] | None, compute: Any) -> Any:
    """``compute()`` once per (Study object, name, options): the graders and the DLT derivation share the
    per-day grids of one Study (a Study is immutable, so a result computed for it stays valid)."""
    key = (id(study), name, repr(sorted((str(k), repr(v)) for k, v in (options or {}).items())))
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is study:
        return hit[1]
    if len(_MEMO) > 32:
        _MEMO.clear()
    value = compute()
    _MEMO[key] = (study, value)
    return value


def clear_caches() -> None:
    """Forget the per-Study splits and grids (benchmarks use it to time each system on its own)."""
    _INDEXES.clear()
    _MEMO.clear()


def ev_obs(df: pd.DataFrame, i: int, note: str) -> Evidence:
    """Evidence for the observation at integer position ``i`` of ``df``."""
    r = df.iloc[i]
    v = r["value"]
    if pd.isna(v) and "value_text" in df.columns:
        v = r["value_text"]
    return Evidence("observations", int(r["row_id"]), str(r["subject_id"]), float(r["day"]), str(r["code"]), v, str(r["unit"]), note)


def ev_row(table: str, r: Mapping[str, Any] | pd.Series, note: str) -> Evidence:
    """Evidence for an interventions or events row."""
    if table == "interventions":
        what = str(r["kind"]) + (f" ({r['agent']})" if isinstance(r.get("agent"), str) else "")
        value: Any = None
        if isinstance(r.get("device"), str):
            value = f"{r['device']}" + (f" {r['flow_l_min']:g} L/min" if pd.notna(r.get("flow_l_min")) else "")
        return Evidence(table, int(r["row_id"]), str(r["subject_id"]), float(r["start_day"]), what, value, None, note)
    return Evidence(table, int(r["row_id"]), str(r["subject_id"]), float(r["day"]), str(r["kind"]), r.get("term"), None, note)


def subject_ages(study: Study) -> pd.Series:
    return study.subjects.set_index("subject_id")["age_years"].astype(float)


def ld_start_days(study: Study) -> pd.Series:
    """Per subject, the first day of lymphodepletion (from the interventions, never assumed)."""
    iv = study.interventions
    ld = iv.loc[iv["kind"] == "lymphodepletion", ["subject_id", "start_day"]]
    return ld.groupby("subject_id")["start_day"].min()


def max_by_key(grid: np.ndarray, keys: np.ndarray, values: np.ndarray, rows: np.ndarray, fill: float = -1) -> tuple[np.ndarray, np.ndarray]:
    """Per grid key (sorted unique int64), the maximum of ``values`` and the row id where it occurs."""
    out = np.full(len(grid), fill, dtype=float)
    out_row = np.full(len(grid), -1, dtype=np.int64)
    if len(keys) == 0:
        return out, out_row
    v = np.asarray(values, dtype=float)
    o = np.lexsort((v, keys))
    kk = keys[o]
    last = np.r_[kk[1:] != kk[:-1], True]
    g = np.searchsorted(grid, kk[last])
    out[g] = v[o][last]
    out_row[g] = np.asarray(rows)[o][last]
    return out, out_row


def grid_key(sidx: np.ndarray, day: np.ndarray) -> np.ndarray:
    """One int64 key per (subject position, calendar day), sortable by subject then day."""
    return np.asarray(sidx, dtype=np.int64) * 1_000_000 + (np.asarray(day, dtype=np.int64) + 100_000)


def grid_parts(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject positions and days of grid keys."""
    return (grid // 1_000_000).astype(np.int64), (grid % 1_000_000 - 100_000).astype(np.int64)


def subject_ranges(sidx: np.ndarray) -> dict[int, tuple[int, int]]:
    """Per subject position, the [start, end) slice of a frame sorted by subject."""
    if len(sidx) == 0:
        return {}
    b = np.flatnonzero(np.r_[True, sidx[1:] != sidx[:-1]])
    e = np.r_[b[1:], len(sidx)]
    return {int(sidx[i]): (int(i), int(j)) for i, j in zip(b, e, strict=True)}


__all__ = [
    "memo",
    "clear_caches",
    "RowLookup",
    "max_by_key",
    "grid_key",
    "grid_parts",
    "subject_ranges",
    "load_rules",
    "option_specs",
    "resolve_options",
    "attributable_mask",
    "expand_days",
    "censor_days",
    "death_days",
    "matches",
    "restrict",
    "subject_ids",
    "obs_index",
    "ObsIndex",
    "ev_obs",
    "ev_row",
    "day_floor",
    "subject_ages",
    "ld_start_days",
]
