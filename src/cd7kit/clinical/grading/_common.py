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

from cd7kit.data import Evidence, Result, Study
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


#: Observation columns the engines read (the others are not copied when splitting by code).
#: Column sets for :meth:`ObsIndex.get`: evidence lookups, and graders that read values with attribution.
EVIDENCE_COLS = ("row_id", "subject_id", "day", "code", "value", "unit")
GRADER_COLS = ("row_id", "subject_id", "sidx", "day", "code", "value", "value_text", "unit", "attribution")
_OBS_COLS = ("row_id", "subject_id", "day", "code", "value", "value_text", "unit", "lln", "uln", "lloq", "blq", "attribution")


@dataclass
class ObsIndex:
    """The observations of one Study split by code once, read column by column.

    The expensive step -- hashing 5 million code strings -- is done a single time per Study; after that
    every engine asks for the rows of a few codes (:meth:`positions`), single columns of them as numpy
    arrays (:meth:`col`, cached), integer subject positions in ``study.subjects`` order (:meth:`sidx`), or
    a DataFrame of the usual columns (:meth:`get`, in table order, with the table's index). All engines
    of :mod:`cd7kit.clinical` share it, so one ``grade_all`` call splits the table once.
    """

    study: Study
    _idx: dict[str, np.ndarray] | None = None
    _pos: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = field(default_factory=dict)
    _cols: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict)
    _sidx: dict[str, np.ndarray] = field(default_factory=dict)
    _subjects: pd.Index | None = None
    _null: set[str] = field(default_factory=set)
    _all_sidx: np.ndarray | None = None
    _rowindex: dict[str, pd.Index] = field(default_factory=dict)

    @staticmethod
    def _key(code: str | Iterable[str]) -> tuple[list[str], str]:
        codes = [code] if isinstance(code, str) else list(code)
        return codes, "|".join(codes)

    def _split(self) -> dict[str, np.ndarray]:
        if self._idx is None:
            obs = self.study.observations
            # factorise the codes once, then one stable counting sort by code: each code's rows in table order
            f, uniq = pd.factorize(obs["code"])
            order = np.argsort(f.astype(np.int16) if len(uniq) < 32_000 else f, kind="stable")
            bounds = np.r_[0, np.cumsum(np.bincount(f[f >= 0], minlength=len(uniq)))]
            first = int((f < 0).sum())  # missing codes sort first
            self._idx = {str(u): order[first + bounds[i] : first + bounds[i + 1]] for i, u in enumerate(uniq)}
            # columns empty in the whole table are carried as NaN (cheap) instead of copied object arrays
            self._null = {c for c in ("value_text", "attribution") if c in obs.columns and not obs[c].notna().any()}
        return self._idx

    def _positions(self, code: str | Iterable[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        codes, key = self._key(code)
        hit = self._pos.get(key)
        if hit is None:
            idx = self._split()
            present = [c for c in codes if c in idx]
            parts = [idx[c] for c in present]
            if len(parts) == 1:
                pos, code_i = parts[0], np.zeros(len(parts[0]), dtype=np.int64)
            elif parts:
                cat = np.concatenate(parts)
                order = np.argsort(cat, kind="stable")
                pos = cat[order]
                code_i = np.repeat(np.arange(len(parts)), [len(p_) for p_ in parts])[order]
            else:
                pos = np.zeros(0, dtype=np.int64)
                code_i = np.zeros(0, dtype=np.int64)
            hit = (pos, code_i, present)
            self._pos[key] = hit
        return hit

    def positions(self, code: str | Iterable[str]) -> np.ndarray:
        """Row positions (in table order) of the observations of ``code`` (one code or several)."""
        return self._positions(code)[0]

    def col(self, code: str | Iterable[str], name: str) -> np.ndarray:
        """One column of the rows of :meth:`positions` as a numpy array (cached; do not modify). ``sidx``
        is the column of subject positions (:meth:`sidx`)."""
        codes, key = self._key(code)
        ck = (key, name)
        out = self._cols.get(ck)
        if out is None:
            pos, code_i, present = self._positions(codes)
            obs = self.study.observations
            if name == "sidx":
                return self.sidx(codes)
            if name == "code":
                out = np.asarray(present, dtype=object)[code_i] if present else np.zeros(0, dtype=object)
            elif name in self._null or name not in obs.columns:
                out = np.full(len(pos), np.nan)
            else:
                out = obs[name].to_numpy()[pos]
            self._cols[ck] = out
        return out

    def sidx(self, code: str | Iterable[str]) -> np.ndarray:
        """Subject positions (in ``study.subjects`` order) of the rows of :meth:`positions` (cached)."""
        codes, key = self._key(code)
        if key not in self._sidx:
            if self._all_sidx is None:
                # one factorisation of the whole subject column (cheaper than a string lookup per code)
                f, uniq = pd.factorize(self.study.observations["subject_id"])
                self._all_sidx = self.subject_index.get_indexer(uniq)[f] if len(f) else np.zeros(0, np.int64)
            self._sidx[key] = self._all_sidx[self.positions(codes)]
        return self._sidx[key]

    @property
    def subject_index(self) -> pd.Index:
        """``study.subjects["subject_id"]`` as an Index (position = subject position)."""
        if self._subjects is None:
            self._subjects = pd.Index(self.study.subjects["subject_id"].to_numpy())
        return self._subjects

    def evidence(self, codes: Iterable[str], row_ids: Iterable[int], notes: Iterable[str]) -> list[Evidence]:
        """Evidence for observation rows of ``codes`` given by row id (in the order given; unknown ids are
        skipped), read from the cached columns -- no table of the rows is built."""
        ids = np.asarray(list(row_ids), dtype=np.int64)
        notes = list(notes)
        if len(ids) == 0:
            return []
        which = np.full(len(ids), -1, np.int64)
        at = np.full(len(ids), -1, np.int64)
        codes = list(codes)
        for k, code in enumerate(codes):
            if code not in self._split():
                continue
            index = self._rowindex.get(code)
            if index is None:
                index = pd.Index(self.col(code, "row_id"))
                self._rowindex[code] = index
            todo = which < 0
            p = index.get_indexer(ids[todo])
            hit = np.flatnonzero(todo)[p >= 0]
            which[hit] = k
            at[hit] = p[p >= 0]
        sids = self.subject_index
        arrays = {k: (self.col(c, "value"), self.sidx(c), self.col(c, "day"), self.col(c, "unit")) for k, c in enumerate(codes) if (which == k).any()}
        out: list[Evidence] = []
        for i, (k, p, note) in enumerate(zip(which.tolist(), at.tolist(), notes, strict=True)):
            if k < 0:
                continue
            val, sx, day, unit = arrays[k]
            v = float(val[p])
            out.append(Evidence("observations", int(ids[i]), str(sids[sx[p]]), float(day[p]), codes[k], None if np.isnan(v) else v, str(unit[p]), note))
        return out

    def take(self, code: str | Iterable[str], sel: np.ndarray, columns: Iterable[str] = _OBS_COLS) -> pd.DataFrame:
        """The rows ``sel`` (a boolean mask or positions into :meth:`positions`) of ``code`` as a DataFrame
        (the columns of :meth:`get`, or ``columns``), built from the cached columns (no scan of the table)."""
        codes, _ = self._key(code)
        self._split()
        obs = self.study.observations
        pos = self.positions(codes)[sel]
        cols = {c: self.col(codes, c)[sel] for c in columns if c in obs.columns or c == "sidx"}
        return pd.DataFrame(cols, index=obs.index[pos])

    def get(self, code: str | Iterable[str], columns: Iterable[str] = _OBS_COLS) -> pd.DataFrame:
        """The rows of ``code`` (default columns, or ``columns``), in table order, with the table's index (cached)."""
        codes, key = self._key(code)
        columns = tuple(columns)
        ck = key if columns == _OBS_COLS else key + "#" + ",".join(columns)
        if ck in self._cache:
            return self._cache[ck]
        self._split()
        obs = self.study.observations
        pos = self.positions(codes)
        cols = {c: self.col(codes, c) for c in columns if c in obs.columns or c == "sidx"}
        df = pd.DataFrame(cols, index=obs.index[pos])
        self._cache[ck] = df
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


def last_before(q_s: np.ndarray, q_t: np.ndarray, r_s: np.ndarray, r_t: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """For each query (group ``q_s``, time ``q_t``) the position in ``r`` of the last row of the same group
    with ``r_t < q_t`` (``<=`` when ``inclusive``), or -1. Among rows with equal group and time the later
    one in input order wins. Exact -- no float key arithmetic: one stable sort of queries and rows together
    (what ``pandas.merge_asof(direction="backward")`` does per group, on integer groups)."""
    nq, nr = len(q_s), len(r_s)
    if nq == 0 or nr == 0:
        return np.full(nq, -1, np.int64)
    q_s, r_s = np.asarray(q_s, np.int64), np.asarray(r_s, np.int64)
    q_t, r_t = np.asarray(q_t, float), np.asarray(r_t, float)
    # fast path (calendar days): integer query times -- and integer row times when inclusive -- give exact
    # integer keys (group, day), so the rows are sorted once and each query is a binary search
    r_floor = np.floor(r_t)
    if np.isfinite(q_t).all() and np.isfinite(r_t).all() and (q_t == np.floor(q_t)).all() and (not inclusive or (r_t == r_floor).all()):
        lo = min(float(r_floor.min()), float(q_t.min()))
        span = int(max(float(r_floor.max()), float(q_t.max())) - lo) + 2
        top = int(max(int(r_s.max()), int(q_s.max()))) + 1
        if min(int(r_s.min()), int(q_s.min())) >= 0 and top * span < 2**62:
            o = np.lexsort((r_t, r_s))  # stable: rows of equal group and time keep their input order
            rk = r_s[o] * span + (r_floor[o] - lo).astype(np.int64)
            qk = q_s * span + (q_t - lo).astype(np.int64)
            j = np.searchsorted(rk, qk, side="right" if inclusive else "left") - 1
            ok = j >= 0
            ok[ok] = r_s[o][j[ok]] == q_s[ok]
            return np.where(ok, o[np.maximum(j, 0)], -1)
    subj = np.r_[np.asarray(r_s, np.int64), np.asarray(q_s, np.int64)]
    t = np.r_[np.asarray(r_t, float), np.asarray(q_t, float)]
    # strict: a query sorts before rows at the same time; inclusive: after them
    kind = np.r_[np.full(nr, 0 if inclusive else 1, np.int8), np.full(nq, 1 if inclusive else 0, np.int8)]
    o = np.lexsort((kind, t, subj))
    is_row = o < nr
    last = np.maximum.accumulate(np.where(is_row, np.arange(len(o)), -1))
    ok = last >= 0
    last_row = np.where(ok, o[np.maximum(last, 0)], -1)
    same = ok & (subj[np.maximum(last_row, 0)] == subj[o])
    out = np.full(nq, -1, np.int64)
    q = ~is_row
    out[o[q] - nr] = np.where(same[q], last_row[q], -1)
    return out


#: Evidence items of the episode graders: (subject position, row id, note), collected per source table.
EvidenceItems = dict[str, list[tuple[int, int, str]]]


def collect_evidence(items: EvidenceItems, lookups: Mapping[str, Any]) -> dict[int, list[Evidence]]:
    """Evidence per subject position: each table's items looked up in one vectorised pass
    (``lookups[table](row_ids, notes) -> list[Evidence]``), in item order."""
    out: dict[int, list[Evidence]] = {}
    for table, its in items.items():
        if not its:
            continue
        evs = lookups[table]([x[1] for x in its], [x[2] for x in its])
        for (s_, _, _), e in zip(its, evs, strict=True):
            out.setdefault(s_, []).append(e)
    return out


def grade5_deaths(study: Study, pattern: str, window_start: float, note: str) -> dict[str, Evidence]:
    """Death events whose cause matches ``pattern`` on or after ``window_start``: the grade-5 evidence per subject."""
    deaths = death_days(study)
    hit = deaths[matches(deaths["cause"], pattern)] if len(deaths) else deaths
    hit = hit[hit["day"] >= float(window_start)] if len(hit) else hit
    evs = RowLookup("events", study.events).evidence(hit["row_id"].tolist(), [note] * len(hit))
    return {str(e.subject_id): e for e in evs}


def group_by_subject(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Records (dicts with a ``subject_id``) grouped by subject, in order."""
    out: dict[str, list[Any]] = {}
    for r in records:
        out.setdefault(str(r["subject_id"]), []).append(r)
    return out


def episode_records(eps: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
    """An episode table as JSON-ready dicts (day and grade columns as int, missing as None), in table order."""
    if not len(eps):
        return []
    recs: list[dict[str, Any]] = eps[cols].astype(object).where(eps[cols].notna(), None).to_dict("records")
    for rec in recs:
        for key in cols:
            if key == "ongoing_at_last_assessment":
                rec[key] = bool(rec[key])
            elif rec[key] is not None:
                rec[key] = int(rec[key])
    return recs


def worst_episode(episodes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The episode with the highest maximum grade (the earliest day on ties)."""
    return max(episodes, key=lambda e: (e["max_grade"], -e["max_grade_day"])) if episodes else None


def episode_result(
    name: str, rule: Any, sid: str, value: int | None, missing: list[str], evidence: list[Evidence], death: Evidence | None,
    episodes: list[dict[str, Any]], details: dict[str, Any], day_needs_value: bool = False,
) -> Result:
    """A subject's CRS/ICANS result: grade 5 (with the death as evidence) when the subject died of it; the day
    is that of the worst episode (only when the grade is positive if ``day_needs_value``)."""
    if death is not None:
        value = 5
        evidence = [*evidence, death]
    best = worst_episode(episodes)
    day = best["max_grade_day"] if best and (value or not day_needs_value) else None
    return Result(name=name, value=value, rule=rule, evidence=evidence, missing=missing, subject_id=sid, day=day, details=LazyDetails(details))


def filled(n: int, value: Any) -> np.ndarray:
    """An object array of ``n`` references to one scalar (``np.full`` would convert a str fill through a
    numpy string type and create ``n`` new objects, about 15 times slower)."""
    out = np.empty(n, dtype=object)
    out[:] = value
    return out


def union_keys(keys: Iterable[np.ndarray]) -> np.ndarray:
    """Sorted union of int64 keys: a presence bitmap over the key range when it is small, else np.unique."""
    parts = [np.asarray(k, dtype=np.int64) for k in keys]
    allk = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if len(allk) == 0:
        return allk
    lo, hi = int(allk.min()), int(allk.max())
    if hi - lo < 8 * len(allk) + 1_000_000:
        seen = np.zeros(hi - lo + 1, bool)
        seen[allk - lo] = True
        return np.flatnonzero(seen).astype(np.int64) + lo
    return np.unique(allk)


class Lazy:
    """A value of :class:`LazyDetails` built on first access by calling ``fn()``."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any):
        self.fn = fn


def lazy_rows(table: pd.DataFrame, a: int, b: int) -> Lazy:
    """Rows ``a:b`` of ``table`` as their own DataFrame, built when first read (a subject's per-day grid)."""
    return Lazy(lambda: table.iloc[a:b].reset_index(drop=True))


class LazyDetails(Mapping[str, Any]):
    """``Result.details`` whose bulky entries (a per-day table) are built on first access.

    Entries given as :class:`Lazy` are built by their function the first time they are read and then kept.
    It reads exactly like a dict -- ``details["days"]``, ``dict(details)``, JSON export, same key order -- so
    a caller that never looks at the per-day tables of 1,000 subjects does not pay for building them.
    """

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, Any]):
        self._items = items

    def __getitem__(self, key: str) -> Any:
        v = self._items[key]
        if isinstance(v, Lazy):
            v = self._items[key] = v.fn()
        return v

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return "LazyDetails(" + ", ".join(f"{k}={'<lazy>' if isinstance(v, Lazy) else type(v).__name__}" for k, v in self._items.items()) + ")"


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
    "union_keys",
    "filled",
    "collect_evidence",
    "grade5_deaths",
    "group_by_subject",
    "episode_records",
    "worst_episode",
    "episode_result",
    "LazyDetails",
    "Lazy",
    "lazy_rows",
    "last_before",
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
