"""Attestations and overrides as plain records, and their shape as store annotations.

The engine takes attestations (an investigator's judgement, consent, agreement: true/false) and
overrides (an investigator replaces a criterion's computed result, with a reason) as plain records::

    {"trial", "subject_id", "criterion_id", "checkpoint" (None = every checkpoint),
     "value": bool  |  "result": "MET"|"NOT_MET"|"UNKNOWN", "actor", "role", "reason", ...}

The command line stores them through the store's audited annotation service (kinds
``eligibility_attestation`` and ``eligibility_override``; key ``<trial>:<criterion>:<checkpoint or *>``,
so a new act on the same key supersedes the old one, with a reason, and both stay in the audit trail).
These helpers only reshape dictionaries; they touch no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cd7kit.data import Study
from cd7kit.errors import InputError, Problem

from .criteria import CHECKPOINTS, CriteriaSet
from .engine import RESULTS

ATTESTATION_KIND = "eligibility_attestation"
OVERRIDE_KIND = "eligibility_override"


def annotation_key(trial: str, criterion_id: str, checkpoint: str | None) -> str:
    return f"{trial}:{criterion_id}:{checkpoint or '*'}"


def _validate(criteria: CriteriaSet, criterion_id: str, checkpoint: str | None) -> list[Problem]:
    problems = []
    if criterion_id not in criteria.ids():
        problems.append(Problem(f"{criteria.trial} has no criterion {criterion_id!r}", column="criterion", value=criterion_id, expected=", ".join(criteria.ids())))
    if checkpoint is not None and checkpoint not in CHECKPOINTS:
        problems.append(Problem("unknown checkpoint", column="checkpoint", value=checkpoint, expected="|".join(CHECKPOINTS)))
    return problems


def _annotation(criteria: CriteriaSet, criterion_id: str, checkpoint: str | None, **fields: Any) -> tuple[str, dict[str, Any]]:
    key = annotation_key(criteria.trial, criterion_id, checkpoint)
    return key, {"trial": criteria.trial, "protocol_version": criteria.protocol_version, "criterion_id": criterion_id, "checkpoint": checkpoint, **fields}


def attestation_annotation(criteria: CriteriaSet, criterion_id: str, value: bool, checkpoint: str | None = None) -> tuple[str, dict[str, Any]]:
    """(key, value dict) of an attestation annotation; raises InputError for an unknown criterion."""
    problems = _validate(criteria, criterion_id, checkpoint)
    if problems:
        raise InputError(problems)
    return _annotation(criteria, criterion_id, checkpoint, value=bool(value))


def override_annotation(
    criteria: CriteriaSet, criterion_id: str, result: str, checkpoint: str | None = None, computed: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(key, value dict) of an override annotation; ``result`` is MET, NOT_MET or UNKNOWN."""
    r = str(result).strip().upper().replace("-", "_").replace(" ", "_")
    problems = _validate(criteria, criterion_id, checkpoint)
    if r not in RESULTS:
        problems.append(Problem("unknown result", column="result", value=result, expected="|".join(RESULTS)))
    if problems:
        raise InputError(problems)
    return _annotation(criteria, criterion_id, checkpoint, result=r, computed=computed)


def records_from_annotations(annotations: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Store annotation dicts (``Store.annotations``) -> engine records, oldest first."""
    out = []
    for a in annotations:
        v = dict(a.get("value") or {})
        out.append(
            {
                **v,
                "subject_id": a.get("subject_id"),
                "actor": a.get("actor"),
                "role": a.get("role"),
                "reason": a.get("reason"),
                "recorded_at": a.get("created_at"),
                "annotation_id": a.get("id"),
                "audit_id": a.get("audit_id"),
            }
        )
    return out


def study_records(
    study: Study, attestation_annotations: Iterable[Mapping[str, Any]] = (), override_annotations: Iterable[Mapping[str, Any]] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The attestations and overrides the engine takes for a study: the study's own
    (``meta["eligibility_attestations"]`` / ``["eligibility_overrides"]``), then the stored annotations
    (later records win in :func:`cd7kit.clinical.eligibility.screen`)."""
    att = [dict(r) for r in study.meta.get("eligibility_attestations") or []] + records_from_annotations(attestation_annotations)
    ovr = [dict(r) for r in study.meta.get("eligibility_overrides") or []] + records_from_annotations(override_annotations)
    return att, ovr


__all__ = [
    "ATTESTATION_KIND",
    "OVERRIDE_KIND",
    "annotation_key",
    "attestation_annotation",
    "override_annotation",
    "records_from_annotations",
    "study_records",
]
