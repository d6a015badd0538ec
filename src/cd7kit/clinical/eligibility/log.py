"""Screening log and CONSORT-style flow of a study.

The log is the verdict of every subject at every checkpoint it has reached (screening,
pre-lymphodepletion, pre-infusion). The flow counts subjects through the stages
screened -> eligible -> enrolled -> lymphodepleted -> infused -> evaluable and lists, for every
subject who left the flow, the stage it left and why (the criteria that made it ineligible, with their
verbatim text). This is the participant-flow diagram of CONSORT 2010 (Schulz KF et al., BMJ
2010;340:c332, item 13 and figure 1) applied to an early-phase trial's screening.

Stage definitions (from the Study, never assumed):

* screened: every subject in ``subjects``;
* eligible: screening verdict ELIGIBLE (PENDING subjects are counted apart);
* enrolled: ``status == "enrolled"`` or a ``disposition`` event ``enrolled``;
* lymphodepleted: a ``lymphodepletion`` intervention;
* infused: a ``car_infusion`` intervention;
* evaluable: a ``disposition`` event ``evaluable``, else infused and followed through the day-28 DLT
  window (an observation or event on day >= 28, or death before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cd7kit.data import Study, jsonable

from .criteria import CHECKPOINTS, CriteriaSet, load_criteria
from .engine import ELIGIBLE, INELIGIBLE, EligibilityReport, checkpoint_day, screen

STAGES = ("screened", "eligible", "enrolled", "lymphodepleted", "infused", "evaluable")
DLT_WINDOW_DAYS = 28.0


def trial_subject_ids(study: Study) -> list[str]:
    """The trial's subjects: ``meta["trial_subjects"]`` when given (a study may also hold patients who are
    not in the trial, e.g. published case reports), else every subject."""
    return list(study.meta.get("trial_subjects") or study.subject_ids)


def screening_log(
    study: Study,
    criteria: CriteriaSet | str = "NCT06849401",
    attestations: Iterable[Mapping[str, Any]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
    checkpoints: Iterable[str] = CHECKPOINTS,
    subject_ids: Iterable[str] | None = None,
) -> list[EligibilityReport]:
    """Every subject's report at every checkpoint it has reached, in subject then checkpoint order.

    ``subject_ids`` restricts the log to some subjects (default: all subjects of the Study).
    """
    cs = load_criteria(criteria) if isinstance(criteria, str) else criteria
    att = list(attestations) if attestations is not None else None
    ovr = list(overrides) if overrides is not None else None
    out: list[EligibilityReport] = []
    cache: dict[str, Any] = {}
    checkpoints = list(checkpoints)
    for sid in study.subject_ids if subject_ids is None else list(subject_ids):
        for cp in checkpoints:
            day = checkpoint_day(study, sid, cp)
            if day is None:
                continue
            out.append(screen(study, sid, cs, cp, day=day, attestations=att, overrides=ovr, cache=cache))
    return out


def log_frame(reports: Iterable[EligibilityReport]) -> pd.DataFrame:
    """The log as a table: subject, checkpoint, day, verdict, computed verdict, reasons, pending."""
    rows = [
        {
            "subject_id": r.subject_id,
            "checkpoint": r.checkpoint,
            "day": r.checkpoint_day,
            "verdict": r.verdict,
            "computed_verdict": r.computed_verdict,
            "reasons": ",".join(x.id for x in r.reasons),
            "pending": ",".join(x.id for x in r.pending),
            "overridden": ",".join(x.id for x in r.results if x.override is not None),
        }
        for r in reports
    ]
    return pd.DataFrame(rows, columns=["subject_id", "checkpoint", "day", "verdict", "computed_verdict", "reasons", "pending", "overridden"])


@dataclass(frozen=True)
class ScreeningFlow:
    """CONSORT-style counts, who left at which stage and why, and the screening log."""

    trial: str
    protocol_version: str
    stages: tuple[tuple[str, tuple[str, ...]], ...]
    excluded: tuple[Mapping[str, Any], ...]
    pending: tuple[str, ...]
    discrepancies: tuple[Mapping[str, Any], ...]
    log: tuple[EligibilityReport, ...] = field(default=(), repr=False)

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.stages}

    @property
    def value(self) -> dict[str, int]:
        return self.counts

    def lines(self) -> list[str]:
        """A plain-text flow (what ``cd7kit demo`` prints)."""
        c = self.counts
        out = [f"Screening flow, {self.trial} ({self.protocol_version})"]
        for name in STAGES:
            out.append(f"  {name:<15}{c[name]:>4}")
        if self.pending:
            out.append(f"  screening verdict pending: {', '.join(self.pending)}")
        for ex in self.excluded:
            why = "; ".join(f"{r['criterion_id']} {r['summary']}" for r in ex["reasons"]) or ex["note"]
            out.append(f"  - {ex['subject_id']} not {ex['lost_at']}: {why}")
        for d in self.discrepancies:
            out.append(f"  ! {d['subject_id']}: {d['note']}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": "screening_flow",
                "value": self.counts,
                "trial": self.trial,
                "protocol_version": self.protocol_version,
                "stages": [{"stage": n, "n": len(ids), "subject_ids": list(ids)} for n, ids in self.stages],
                "excluded": [dict(e) for e in self.excluded],
                "pending": list(self.pending),
                "discrepancies": [dict(d) for d in self.discrepancies],
                "log": log_frame(self.log),
                "rule": {"system": self.trial, "version": self.protocol_version, "source": "CONSORT 2010 flow (Schulz et al., BMJ 2010;340:c332)"},
                "evidence": [],
                "missing": [],
            }
        )


def _short(text: str, n: int = 70) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


def _reason_rows(rep: EligibilityReport) -> list[dict[str, Any]]:
    out = []
    for r in rep.reasons:
        ev = "; ".join(
            f"{e.what} {e.value}{(' ' + e.unit) if e.unit and e.unit not in ('1',) else ''} (day {e.day:g})" if e.day is not None else f"{e.what} {e.value}"
            for e in (r.deciding or r.evidence)
        )
        out.append(
            {
                "criterion_id": r.id,
                "category": r.category,
                "result": r.value,
                "text": r.criterion.text,
                "summary": f"{'inclusion not met' if r.category == 'inclusion' else 'exclusion met'}: {_short(r.criterion.text)}" + (f" [{ev}]" if ev else ""),
                "overridden": r.override is not None,
            }
        )
    return out


def _evaluable(study: Study, sid: str) -> bool:
    ev = study.events[study.events["subject_id"] == sid]
    disp = ev[(ev["kind"] == "disposition")]["term"].str.strip().str.casefold()
    if (disp == "evaluable").any():
        return True
    if (disp == "not evaluable").any():
        return False
    if study.infusions(sid).empty:
        return False
    obs_days = study.observations.loc[study.observations["subject_id"] == sid, "day"]
    if (obs_days >= DLT_WINDOW_DAYS).any() or (ev["day"] >= DLT_WINDOW_DAYS).any():
        return True
    return bool(((ev["kind"] == "death") & (ev["day"] < DLT_WINDOW_DAYS)).any())


def screening_flow(
    study: Study,
    criteria: CriteriaSet | str = "NCT06849401",
    attestations: Iterable[Mapping[str, Any]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
    subject_ids: Iterable[str] | None = None,
) -> ScreeningFlow:
    """The CONSORT-style flow of a study.

    ``attestations`` / ``overrides`` default to ``study.meta["eligibility_attestations"]`` /
    ``["eligibility_overrides"]``; ``subject_ids`` restricts the flow to the trial's subjects (default:
    every subject of the Study).
    """
    cs = load_criteria(criteria) if isinstance(criteria, str) else criteria
    ids = study.subject_ids if subject_ids is None else list(subject_ids)
    log = screening_log(study, cs, attestations, overrides, subject_ids=ids)
    at_screening = {r.subject_id: r for r in log if r.checkpoint == "screening"}
    later = {(r.subject_id, r.checkpoint): r for r in log}
    subj = study.subjects
    ev = study.events
    enrolled_ev = set(ev.loc[(ev["kind"] == "disposition") & (ev["term"].str.strip().str.casefold() == "enrolled"), "subject_id"])
    stage_ids: dict[str, list[str]] = {s: [] for s in STAGES}
    excluded: list[dict[str, Any]] = []
    pending: list[str] = []
    discrepancies: list[dict[str, Any]] = []
    for row in subj[subj["subject_id"].isin(ids)].itertuples():
        sid = str(row.subject_id)
        stage_ids["screened"].append(sid)
        rep = at_screening.get(sid)
        verdict = rep.verdict if rep else None
        enrolled = row.status == "enrolled" or sid in enrolled_ev
        ld = study.lymphodepletion_start(sid) is not None
        infused = not study.infusions(sid).empty
        if verdict == ELIGIBLE:
            stage_ids["eligible"].append(sid)
        elif verdict is None or verdict != INELIGIBLE:
            pending.append(sid)
        if enrolled:
            stage_ids["enrolled"].append(sid)
        if enrolled and ld:
            stage_ids["lymphodepleted"].append(sid)
        if enrolled and ld and infused:
            stage_ids["infused"].append(sid)
        if enrolled and infused and _evaluable(study, sid):
            stage_ids["evaluable"].append(sid)
        if enrolled and verdict == INELIGIBLE and rep is not None:
            discrepancies.append({"subject_id": sid, "note": f"enrolled although the screening verdict is INELIGIBLE ({', '.join(r.id for r in rep.reasons)})"})
        if not enrolled:
            reasons = _reason_rows(rep) if rep is not None and verdict == INELIGIBLE else []
            note = {
                None: "no screening checkpoint recorded",
                "PENDING": "screening verdict pending: " + (", ".join(r.id for r in rep.pending) if rep else ""),
                ELIGIBLE: "eligible at screening but not enrolled (status " + str(row.status) + ")",
            }.get(verdict, "")
            excluded.append({"subject_id": sid, "lost_at": "enrolled" if verdict == ELIGIBLE else "eligible", "verdict": verdict, "status": row.status, "reasons": reasons, "note": note})
        elif not ld or not infused:
            stage = "lymphodepleted" if not ld else "infused"
            cp = "pre-lymphodepletion" if not ld else "pre-infusion"
            prev = later.get((sid, "pre-lymphodepletion")) if stage == "infused" else at_screening.get(sid)
            reasons = _reason_rows(prev) if prev is not None and prev.verdict == INELIGIBLE else []
            excluded.append({"subject_id": sid, "lost_at": stage, "verdict": prev.verdict if prev else None, "status": row.status, "reasons": reasons, "note": f"no {cp.replace('pre-', '')} recorded"})
    stages = tuple((s, tuple(stage_ids[s])) for s in STAGES)
    return ScreeningFlow(cs.trial, cs.protocol_version, stages, tuple(excluded), tuple(pending), tuple(discrepancies), tuple(log))


__all__ = ["STAGES", "ScreeningFlow", "screening_flow", "screening_log", "log_frame", "trial_subject_ids"]
