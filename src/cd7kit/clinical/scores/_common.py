"""Helpers shared by the score, response and TA-TMA engines (private).

* :func:`resolve_options` checks user options against a rule's declared defaults, converts the strings
  a command line gives (``--option bm_relapse_threshold_pct=25``) to the default's type, and raises one
  :class:`~cd7kit.errors.InputError` naming every unknown or malformed option.
* :func:`load_rules` reads a rule data file from ``cd7kit/clinical/rules/`` (YAML with its sources).
* :func:`daily_last` reduces observations to one value per subject, day and code (vectorised).
* :func:`evidence_from` turns observation rows into :class:`~cd7kit.data.Evidence`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cd7kit.data import Evidence, Study
from cd7kit.errors import InputError, Problem

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


@lru_cache(maxsize=32)
def _load(name: str) -> dict[str, Any]:
    with open(RULES_DIR / name, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise InputError([Problem("rule file is not a mapping", name)])
    return data


def load_rules(name: str) -> dict[str, Any]:
    """A rule data file (``rules/<name>``) as a dict (cached; do not mutate)."""
    return _load(name)


def _coerce(name: str, value: Any, default: Any, choices: Iterable[Any] | None) -> Any:
    """Convert ``value`` to the type of ``default``; ``None``/"none" allowed where the default is None."""
    if isinstance(value, str) and value.strip().lower() in {"none", "null", ""}:
        value = None
    out: Any
    if value is None:
        out = None
    elif isinstance(default, bool):
        if isinstance(value, bool):
            out = value
        elif str(value).strip().lower() in _TRUE:
            out = True
        elif str(value).strip().lower() in _FALSE:
            out = False
        else:
            raise ValueError("expected true or false")
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
        out = float(value)
        if isinstance(default, int) and out.is_integer():
            out = int(out)
    elif default is None:
        # free options (a cut-off name or a number): numbers stay numbers
        if isinstance(value, (int, float)):
            out = float(value)
        else:
            try:
                out = float(str(value))
            except ValueError:
                out = str(value)
    else:
        out = str(value)
    if choices is not None and out is not None:
        allowed = list(choices)
        if out not in allowed and not isinstance(out, float):
            raise ValueError("expected one of " + ", ".join(map(str, allowed)))
    return out


def resolve_options(
    system: str,
    defaults: Mapping[str, Any],
    options: Mapping[str, Any] | None,
    choices: Mapping[str, Iterable[Any]] | None = None,
    ignore: Iterable[str] = (),
) -> dict[str, Any]:
    """Defaults overridden by ``options``; unknown names and bad values -> one InputError.

    ``ignore`` lists option names that belong to sibling systems (``compute_scores`` passes one
    options mapping to several scores) and are skipped silently.
    """
    choices = choices or {}
    out = dict(defaults)
    problems: list[Problem] = []
    skip = set(ignore)
    for k, v in (options or {}).items():
        if k in skip:
            continue
        if k not in defaults:
            problems.append(Problem(f"unknown option for {system}", column=k, value=v, expected=", ".join(sorted(defaults))))
            continue
        try:
            out[k] = _coerce(k, v, defaults[k], choices.get(k))
        except (TypeError, ValueError) as exc:
            problems.append(Problem(f"bad value for option {k} of {system}: {exc}", column=k, value=v))
    if problems:
        raise InputError(problems)
    return out


def subject_ids(study: Study, subject_id: str | None) -> list[str]:
    """The subjects to evaluate; a named subject must exist."""
    ids = list(study.subjects["subject_id"])
    if subject_id is None:
        return ids
    if subject_id not in set(ids):
        raise InputError([Problem("no such subject in the study", column="subject_id", value=subject_id)])
    return [subject_id]


def obs_index(study: Study) -> Any:
    """The per-Study split of the observations shared by every clinical engine
    (:class:`cd7kit.clinical.grading._common.ObsIndex`)."""
    from cd7kit.clinical.grading._common import obs_index as _oi

    return _oi(study)


def observations(study: Study, codes: Iterable[str], subject_id: str | None, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Observation rows of some codes (one subject or all), in table order (callers sort what they need).

    The rows come from the per-Study split of :func:`cd7kit.clinical.grading._common.obs_index` (columns
    ``row_id, subject_id, day, code, value, value_text, unit, lln, uln, lloq, blq, attribution``): a cached
    DataFrame shared with the graders -- do not modify it in place.
    """
    df = obs_index(study).get(list(codes)) if columns is None else obs_index(study).get(list(codes), tuple(columns))
    if subject_id is not None:
        df = df[df["subject_id"].to_numpy() == subject_id]
    return df


def daily_last(obs: pd.DataFrame) -> pd.DataFrame:
    """One numeric value per subject, calendar day and code: the last one of the day (by time, then row).

    Returns columns ``subject_id, day (integer calendar day), code, value, row_id, unit, lln, uln``.
    """
    o = obs[obs["value"].notna()]
    cols = ["subject_id", "cday", "day", "code", "value", "row_id", "unit", "lln", "uln"]
    if o.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("cday", "day", "value", "lln", "uln") else object) for c in cols})
    day = o["day"].to_numpy(dtype=float)
    cday = np.floor(day)
    sid = pd.factorize(o["subject_id"], sort=True)[0]
    code = pd.factorize(o["code"], sort=True)[0]
    order = np.lexsort((o["row_id"].to_numpy(), day, code, cday, sid))  # integer keys: no string sorting
    s_, c_, d_ = sid[order], code[order], cday[order]
    last = np.r_[(s_[1:] != s_[:-1]) | (c_[1:] != c_[:-1]) | (d_[1:] != d_[:-1]), True]
    pick = order[last]
    out = o.iloc[pick][["subject_id", "day", "code", "value", "row_id", "unit", "lln", "uln"]].reset_index(drop=True)
    out.insert(1, "cday", cday[pick])
    return out


def evidence_from(row: Mapping[str, Any], note: str = "", table: str = "observations", value: Any = None) -> Evidence:
    """Evidence for one observation row (a mapping with subject_id, day, code, value, unit, row_id)."""
    v = row.get("value") if value is None else value
    if isinstance(v, float) and math.isnan(v):
        v = row.get("value_text")
    return Evidence(
        table=table,
        row_id=int(row["row_id"]),
        subject_id=str(row["subject_id"]),
        day=float(row["day"]),
        what=str(row.get("code", row.get("kind", ""))),
        value=v,
        unit=row.get("unit"),
        note=note,
    )


class LazyEvidence(Sequence[Evidence]):
    """Evidence rows of one result, built on access from column arrays shared by all results of a run.

    Engines that return many results (a daily series for 1,000 subjects) keep the row references as integer
    positions into shared arrays; :class:`~cd7kit.data.Evidence` objects are created only when a caller
    iterates (``Result.to_dict`` does). Behaves as an ordinary read-only sequence of Evidence.
    """

    __slots__ = ("_cols", "_idx")

    def __init__(self, cols: Mapping[str, Any], idx: Sequence[int] | np.ndarray):
        self._cols = cols
        self._idx = np.asarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return int(len(self._idx))

    def _make(self, j: int) -> Evidence:
        c = self._cols
        return Evidence(
            table=str(c["table"][j]),
            row_id=int(c["row_id"][j]),
            subject_id=str(c["subject_id"][j]),
            day=nan_to_none(float(c["day"][j])),
            what=str(c["what"][j]),
            value=nan_to_none(c["value"][j]),
            unit=nan_to_none(c["unit"][j]),
            note=str(c["note"][j]) if c["note"][j] is not None else "",
        )

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._make(int(j)) for j in self._idx[i]]
        return self._make(int(self._idx[i]))

    def __repr__(self) -> str:
        return f"LazyEvidence({len(self)} rows)"


class Repeat:
    """A read-only column holding one value ``n`` times (for :class:`LazyEvidence` columns)."""

    __slots__ = ("value", "n")

    def __init__(self, value: Any, n: int):
        self.value, self.n = value, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, j: int) -> Any:
        return self.value


class Pick:
    """A read-only column of ``labels[codes[j]]`` (a categorical column for :class:`LazyEvidence`)."""

    __slots__ = ("labels", "codes")

    def __init__(self, labels: Sequence[Any], codes: np.ndarray):
        self.labels, self.codes = list(labels), codes

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, j: int) -> Any:
        return self.labels[int(self.codes[j])]


def evidence_columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Column arrays (table, row_id, subject_id, day, what, value, unit, note) for :class:`LazyEvidence`."""
    return {k: df[k].to_numpy() for k in ("table", "row_id", "subject_id", "day", "what", "value", "unit", "note")}


def nan_to_none(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, (float, np.floating)) and math.isnan(float(x)):
        return None
    return x


__all__ = [
    "RULES_DIR",
    "load_rules",
    "resolve_options",
    "subject_ids",
    "observations",
    "obs_index",
    "daily_last",
    "evidence_from",
    "nan_to_none",
    "LazyEvidence",
    "Repeat",
    "Pick",
    "evidence_columns",
]
