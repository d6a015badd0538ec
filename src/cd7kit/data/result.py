"""The shape of every engine's answer: value, evidence, rule and missing inputs.

DESIGN.md: "every grade, score, verdict or recommendation is an object that carries ``value``,
``evidence`` (the observations and interventions that drove it, by row), ``rule`` (system, version,
options) and ``missing`` (what would have been needed and was absent)". A value that cannot be
computed is ``None`` (NA) with the reason in ``missing`` -- never a silent 0. ``to_dict`` is exactly
what the CLI's ``--json`` prints.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


def jsonable(obj: Any) -> Any:
    """Turn numpy/pandas scalars, NaN, dataclasses with ``to_dict`` and containers into plain JSON values."""
    if hasattr(obj, "to_dict") and not isinstance(obj, (pd.DataFrame, pd.Series)):
        return jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, pd.DataFrame):
        return [jsonable(r) for r in obj.to_dict("records")]
    if isinstance(obj, pd.Series):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (list, tuple, set, frozenset, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if obj is pd.NA or obj is pd.NaT or obj is None:
        return None
    if isinstance(obj, (pd.Timestamp, dt.datetime, dt.date)):
        return obj.isoformat()
    return obj


@dataclass(frozen=True)
class Rule:
    """Which rule produced a result: system, version, the options in force, and its published source."""

    system: str
    version: str
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "version": self.version, "options": jsonable(dict(self.options)), "source": self.source}


@dataclass(frozen=True)
class Evidence:
    """One row of a Study table that drove a result, and why it mattered."""

    table: str  # observations | interventions | events | subjects
    row_id: int | None
    subject_id: str | None = None
    day: float | None = None
    what: str | None = None  # code, intervention kind or event kind
    value: Any = None
    unit: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "table": self.table,
                "row_id": self.row_id,
                "subject_id": self.subject_id,
                "day": self.day,
                "what": self.what,
                "value": self.value,
                "unit": self.unit,
                "note": self.note,
            }
        )


@dataclass(frozen=True)
class Result:
    """A computed value with its evidence, rule and missing inputs."""

    name: str
    value: Any
    rule: Rule
    evidence: Sequence[Evidence] = ()
    missing: Sequence[str] = ()
    subject_id: str | None = None
    day: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_na(self) -> bool:
        return self.value is None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": self.name,
                "subject_id": self.subject_id,
                "day": self.day,
                "value": self.value,
                "evidence": [e.to_dict() for e in self.evidence],
                "rule": self.rule.to_dict(),
                "missing": list(self.missing),
                "details": dict(self.details),
            }
        )


__all__ = ["Rule", "Evidence", "Result", "jsonable"]
