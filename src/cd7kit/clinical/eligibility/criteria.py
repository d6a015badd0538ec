"""Criteria files: one YAML file per trial and protocol version (format in ``docs/eligibility.md``).

Each criterion has an ``id`` (``I1`` .. for inclusion, ``E1`` .. for exclusion, as the protocol numbers
them), its ``category``, the protocol's ``text`` verbatim, an ``expression`` in the language of
:mod:`cd7kit.clinical.eligibility.expr` (absent: the criterion is an attestation and stays UNKNOWN
until an investigator attests it), a ``lookback_days`` window for observations and the
``checkpoints`` where it applies. The layout follows the recommendation of the data-and-platform
spec (section 3.3) and keeps SDTM TI's ``IETESTCD`` / ``TIVERS`` alignment: ``id`` is the IETESTCD and
``protocol_version`` the TIVERS.

Loading validates everything an author can get wrong -- unknown test codes, intervention or event
kinds, functions, keywords, checkpoints, duplicate ids -- and reports all problems at once
(:class:`~cd7kit.errors.InputError`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cd7kit.data.schema import EVENT_KINDS, INTERVENTION_KINDS, SUBJECTS
from cd7kit.errors import InputError, NotFoundError, Problem
from cd7kit.vocab import load_vocabulary

from . import expr as X

CHECKPOINTS = ("screening", "pre-lymphodepletion", "pre-infusion")
CATEGORIES = ("inclusion", "exclusion")


@dataclass(frozen=True)
class Criterion:
    """One inclusion or exclusion criterion."""

    id: str
    category: str
    text: str
    expression: str | None = None
    lookback_days: float | None = None
    checkpoints: tuple[str, ...] = CHECKPOINTS
    note: str = ""
    tree: X.Node | None = field(default=None, compare=False, repr=False)

    @property
    def is_attestation(self) -> bool:
        """True when the criterion has no expression: it is decided by an investigator's attestation."""
        return self.expression is None

    def applies_at(self, checkpoint: str) -> bool:
        return checkpoint in self.checkpoints

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "category": self.category, "text": self.text}
        if self.expression is not None:
            d["expression"] = self.expression
        if self.lookback_days is not None:
            d["lookback_days"] = self.lookback_days
        d["checkpoints"] = list(self.checkpoints)
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True)
class CriteriaSet:
    """All criteria of one trial at one protocol version."""

    trial: str
    protocol_version: str
    criteria: tuple[Criterion, ...]
    title: str = ""
    source: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""

    def __iter__(self):
        return iter(self.criteria)

    def __len__(self) -> int:
        return len(self.criteria)

    def get(self, criterion_id: str) -> Criterion:
        for c in self.criteria:
            if c.id == criterion_id:
                return c
        raise NotFoundError(f"{self.trial} has no criterion {criterion_id!r}")

    def ids(self) -> list[str]:
        return [c.id for c in self.criteria]

    def at(self, checkpoint: str) -> list[Criterion]:
        return [c for c in self.criteria if c.applies_at(checkpoint)]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"trial": self.trial, "protocol_version": self.protocol_version}
        if self.title:
            d["title"] = self.title
        if self.source:
            d["source"] = self.source
        if self.notes:
            d["notes"] = self.notes
        if self.params:
            d["params"] = dict(self.params)
        d["criteria"] = [c.to_dict() for c in self.criteria]
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=110)


def _check_expression(text: str, params: Mapping[str, Any], where: str, problems: list[Problem]) -> X.Node | None:
    try:
        tree = X.parse(text)
    except X.ExpressionError as exc:
        problems.append(Problem(str(exc), where, None, "expression", text, "an expression of docs/eligibility.md"))
        return None
    for msg in X.check_calls(tree):
        problems.append(Problem(msg, where, None, "expression", text))
    vocab = load_vocabulary()
    subject_cols = set(SUBJECTS.columns)
    for fn, sym, _kw in X.symbols(tree):
        spec = X.FUNCTIONS.get(fn)
        if spec is None or sym is None:
            continue
        syms = sym if isinstance(sym, list) else [sym]
        for s in syms:
            if spec.symbol_args == "code" and s not in vocab:
                problems.append(Problem(f"unknown test code {s!r} in {fn}()", where, None, "expression", text, "a code of cd7kit/vocab/data"))
            elif spec.symbol_args == "intervention" and s not in INTERVENTION_KINDS:
                problems.append(Problem(f"unknown intervention kind {s!r}", where, None, "expression", text, ", ".join(INTERVENTION_KINDS)))
            elif spec.symbol_args == "event" and s not in EVENT_KINDS:
                problems.append(Problem(f"unknown event kind {s!r}", where, None, "expression", text, ", ".join(EVENT_KINDS)))
            elif spec.symbol_args == "field" and s not in subject_cols:
                problems.append(Problem(f"unknown subjects column {s!r}", where, None, "expression", text))
            elif spec.symbol_args == "param" and s not in params:
                problems.append(Problem(f"unknown parameter {s!r}", where, None, "expression", text, "a key of params"))
    for name in X.names_used(tree):
        if name in X.NAMES:
            continue
        if name.startswith("param.") and name[6:] in params:
            continue
        if name.startswith("subject.") and name[8:] in subject_cols:
            continue
        problems.append(Problem(f"unknown name {name!r}", where, None, "expression", text, "age, sex, diagnosis, subject.FIELD or param.NAME"))
    return tree


def criteria_from_dict(data: Mapping[str, Any], where: str = "criteria") -> CriteriaSet:
    """Build and validate a :class:`CriteriaSet` from parsed YAML; every problem is reported."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise InputError([Problem("a criteria file must be a mapping", where)])
    for key in ("trial", "protocol_version", "criteria"):
        if key not in data:
            problems.append(Problem(f"missing key {key!r}", where, None, key))
    if problems:
        raise InputError(problems)
    params = dict(data.get("params") or {})
    seen: set[str] = set()
    out: list[Criterion] = []
    items = data["criteria"]
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise InputError([Problem("criteria must be a list", where, None, "criteria")])
    for n, item in enumerate(items, start=1):
        here = f"{where} criterion #{n}"
        if not isinstance(item, Mapping):
            problems.append(Problem("a criterion must be a mapping", here))
            continue
        unknown = set(item) - {"id", "category", "text", "expression", "lookback_days", "checkpoints", "note"}
        if unknown:
            problems.append(Problem(f"unknown keys {sorted(unknown)}", here))
        cid = str(item.get("id") or "").strip()
        if not cid:
            problems.append(Problem("missing id", here, None, "id"))
        elif cid in seen:
            problems.append(Problem("duplicate id", here, None, "id", cid))
        seen.add(cid)
        here = f"{where} {cid or '#' + str(n)}"
        cat = item.get("category")
        if cat not in CATEGORIES:
            problems.append(Problem("category must be inclusion or exclusion", here, None, "category", cat, "inclusion|exclusion"))
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem("missing verbatim text", here, None, "text"))
        cps = item.get("checkpoints", list(CHECKPOINTS))
        if isinstance(cps, str):
            cps = [cps]
        bad_cp = [c for c in cps if c not in CHECKPOINTS]
        if bad_cp or not cps:
            problems.append(Problem("unknown checkpoint", here, None, "checkpoints", bad_cp or cps, "|".join(CHECKPOINTS)))
        lb = item.get("lookback_days")
        if lb is not None and (not isinstance(lb, (int, float)) or isinstance(lb, bool) or lb < 0):
            problems.append(Problem("lookback_days must be a non-negative number", here, None, "lookback_days", lb))
            lb = None
        ex = item.get("expression")
        tree = None
        if ex is not None:
            tree = _check_expression(str(ex), params, here, problems)
        out.append(
            Criterion(
                id=cid,
                category=str(cat),
                text=str(text or "").strip(),
                expression=None if ex is None else str(ex).strip(),
                lookback_days=None if lb is None else float(lb),
                checkpoints=tuple(cps),
                note=str(item.get("note") or "").strip(),
                tree=tree,
            )
        )
    if problems:
        raise InputError(problems)
    return CriteriaSet(
        trial=str(data["trial"]),
        protocol_version=str(data["protocol_version"]),
        criteria=tuple(out),
        title=str(data.get("title") or ""),
        source=str(data.get("source") or ""),
        params=params,
        notes=str(data.get("notes") or ""),
    )


def load_criteria(trial_or_path: str | Path) -> CriteriaSet:
    """The criteria of a shipped trial (``"NCT06849401"``) or of a YAML file on disk."""
    p = Path(trial_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        text = p.read_text(encoding="utf-8")
        where = str(p)
    else:
        return _load_shipped(str(trial_or_path))
    return _parse(text, where)


@lru_cache(maxsize=32)
def _load_shipped(trial: str) -> CriteriaSet:
    """A shipped trial's criteria (parsed and validated once per process)."""
    entry = resources.files("cd7kit.clinical.eligibility") / "criteria" / f"{trial}.yaml"
    if not entry.is_file():
        raise NotFoundError(f"no criteria file for trial {trial!r}; shipped: {', '.join(shipped_trials())}")
    return _parse(entry.read_text(encoding="utf-8"), f"{trial}.yaml")


def _parse(text: str, where: str) -> CriteriaSet:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError([Problem(f"not valid YAML: {exc}", where)]) from exc
    return criteria_from_dict(data, where)


def read_json(path: Path) -> Any:
    """The content of a JSON input file (a patient file, a ClinicalTrials.gov record); a missing or
    malformed file is an :class:`InputError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError([Problem("file not found", str(path))]) from exc
    except json.JSONDecodeError as exc:
        raise InputError([Problem(f"not valid JSON: {exc}", str(path))]) from exc


def shipped_trials() -> list[str]:
    folder = resources.files("cd7kit.clinical.eligibility") / "criteria"
    return sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith(".yaml"))


__all__ = ["Criterion", "CriteriaSet", "CHECKPOINTS", "CATEGORIES", "criteria_from_dict", "load_criteria", "shipped_trials"]
