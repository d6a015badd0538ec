"""Evaluate a trial's criteria for one subject at one checkpoint, with three-valued logic.

Each criterion is MET, NOT_MET or UNKNOWN, with the Study rows that decided it (evidence, by
``row_id``) and, when unknown, the data still missing. The verdict follows Dameron et al.
(J Biomed Semantics 2013;4:17, "Include / Exclude / Propose"): INELIGIBLE as soon as any inclusion
criterion is NOT_MET or any exclusion criterion is MET, whatever is still unknown; ELIGIBLE only when
every inclusion is MET and every exclusion NOT_MET; otherwise PENDING (an unknown exclusion makes the
verdict pending, never eligible). Logic is Kleene's, as in HL7 CQL 1.5.3.

Facts and the open/closed world:

* observations (labs, flow, scores, serology, checklist answers) are *open world*: a value that is
  not in the look-back window is unknown;
* interventions and events of a Study are *closed world*: the Study is the record of what was given
  and what happened, so no immunosuppressant recorded means none given. A single-patient JSON file
  that has no ``interventions`` (or ``events``) key leaves them open world (unknown);
* attestations (investigator judgements, consent) are plain input data; overrides replace a
  criterion's computed result, and both the computed and the overridden result are reported.

Checkpoints: ``screening`` (the disposition event ``screened``; else ``enrolled``), ``pre-lymphodepletion``
(the first lymphodepletion intervention) and ``pre-infusion`` (the first CAR infusion, day 0). A
criterion's window is ``[checkpoint - lookback_days, checkpoint]`` (inclusive, in study days).

The engine is pure: no database, no printing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Rule, Study, jsonable
from cd7kit.errors import InputError, NotFoundError

from . import expr as X
from .criteria import CHECKPOINTS, CriteriaSet, Criterion, load_criteria

MET, NOT_MET, UNKNOWN = "MET", "NOT_MET", "UNKNOWN"
ELIGIBLE, INELIGIBLE, PENDING = "ELIGIBLE", "INELIGIBLE", "PENDING"
RESULTS = (MET, NOT_MET, UNKNOWN)

_YES = {"yes", "y", "true", "positive", "pos", "present", "reactive", "detected", "1"}
_NO = {"no", "n", "false", "negative", "neg", "absent", "non-reactive", "nonreactive", "not detected", "undetected", "0"}

DAMERON = "Dameron O, et al. J Biomed Semantics 2013;4:17 (Include/Exclude/Propose); HL7 CQL 1.5.3 three-valued logic"


def _tri(b: bool | None) -> str:
    return UNKNOWN if b is None else (MET if b else NOT_MET)


@dataclass(frozen=True)
class CriterionResult:
    """The result of one criterion: final value (after any override), computed value, evidence, missing."""

    criterion: Criterion
    trial: str
    protocol_version: str
    checkpoint: str
    computed: str
    evidence: tuple[Evidence, ...] = ()
    missing: tuple[str, ...] = ()
    #: the part of ``evidence`` that decided the value (e.g. only the failing lab of an 'and')
    deciding: tuple[Evidence, ...] = ()
    override: Mapping[str, Any] | None = None
    attestation: Mapping[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.criterion.id

    @property
    def category(self) -> str:
        return self.criterion.category

    @property
    def value(self) -> str:
        if self.override is not None:
            return str(self.override["result"])
        return self.computed

    @property
    def rule(self) -> Rule:
        c = self.criterion
        return Rule(
            system=self.trial,
            version=self.protocol_version,
            options={"criterion_id": c.id, "category": c.category, "checkpoint": self.checkpoint, "lookback_days": c.lookback_days},
            source=c.text,
        )

    def excludes(self) -> bool | None:
        """True if this result makes the subject ineligible, None if it leaves it undecided."""
        v = self.value
        if v == UNKNOWN:
            return None
        return (v == NOT_MET) if self.category == "inclusion" else (v == MET)

    def to_dict(self) -> dict[str, Any]:
        c = self.criterion
        return jsonable(
            {
                "name": c.id,
                "criterion_id": c.id,
                "category": c.category,
                "text": c.text,
                "value": self.value,
                "computed": self.computed,
                "override": dict(self.override) if self.override else None,
                "attestation": dict(self.attestation) if self.attestation else None,
                "expression": c.expression,
                "evidence": [e.to_dict() for e in self.evidence],
                "deciding_evidence": [e.to_dict() for e in self.deciding],
                "missing": list(self.missing),
                "rule": {"trial": self.trial, "protocol_version": self.protocol_version, "criterion_id": c.id, "text": c.text, **self.rule.to_dict()},
            }
        )


def verdict_of(results: Iterable[CriterionResult], computed: bool = False) -> str:
    """Dameron's rule over criterion results (``computed=True`` ignores overrides)."""
    any_unknown = False
    for r in results:
        v = r.computed if computed else r.value
        if v == UNKNOWN:
            any_unknown = True
        elif (v == NOT_MET) if r.category == "inclusion" else (v == MET):
            return INELIGIBLE
    return PENDING if any_unknown else ELIGIBLE


@dataclass(frozen=True)
class EligibilityReport:
    """All criterion results of one subject at one checkpoint, and the verdict."""

    trial: str
    protocol_version: str
    subject_id: str
    checkpoint: str
    checkpoint_day: float | None
    results: tuple[CriterionResult, ...]
    source: str = ""

    @property
    def verdict(self) -> str:
        return verdict_of(self.results)

    @property
    def computed_verdict(self) -> str:
        return verdict_of(self.results, computed=True)

    @property
    def value(self) -> str:
        return self.verdict

    @property
    def reasons(self) -> list[CriterionResult]:
        """The criteria that make the subject ineligible (inclusion NOT_MET, exclusion MET)."""
        return [r for r in self.results if r.excludes() is True]

    @property
    def pending(self) -> list[CriterionResult]:
        return [r for r in self.results if r.value == UNKNOWN]

    @property
    def missing(self) -> list[str]:
        out: list[str] = []
        for r in self.pending:
            for m in r.missing:
                item = f"{r.id}: {m}"
                if item not in out:
                    out.append(item)
        return out

    @property
    def evidence(self) -> list[Evidence]:
        seen: set[tuple[str, Any]] = set()
        out: list[Evidence] = []
        for r in self.results:
            for e in r.evidence:
                key = (e.table, e.row_id if e.row_id is not None else e.what)
                if key not in seen:
                    seen.add(key)
                    out.append(e)
        return out

    def result(self, criterion_id: str) -> CriterionResult:
        for r in self.results:
            if r.id == criterion_id:
                return r
        raise NotFoundError(f"criterion {criterion_id!r} was not evaluated at {self.checkpoint}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": "eligibility",
                "subject_id": self.subject_id,
                "checkpoint": self.checkpoint,
                "day": self.checkpoint_day,
                "value": self.verdict,
                "verdict": self.verdict,
                "computed_verdict": self.computed_verdict,
                "reasons": [r.id for r in self.reasons],
                "pending": [r.id for r in self.pending],
                "counts": {v: sum(1 for r in self.results if r.value == v) for v in RESULTS},
                "criteria": [r.to_dict() for r in self.results],
                "evidence": [e.to_dict() for e in self.evidence],
                "missing": self.missing,
                "rule": {"system": self.trial, "version": self.protocol_version, "options": {"checkpoint": self.checkpoint}, "source": DAMERON},
            }
        )


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------


def checkpoint_day(study: Study, subject_id: str, checkpoint: str) -> float | None:
    """The study day of a checkpoint for a subject, or ``None`` when it has not been reached."""
    if checkpoint not in CHECKPOINTS:
        raise InputError(f"unknown checkpoint {checkpoint!r}; use one of {', '.join(CHECKPOINTS)}")
    if "checkpoint_days" in study.meta and checkpoint in study.meta["checkpoint_days"].get(subject_id, {}):
        return float(study.meta["checkpoint_days"][subject_id][checkpoint])
    if checkpoint == "screening":
        ev = study.events
        disp = ev[(ev["subject_id"] == subject_id) & (ev["kind"] == "disposition")]
        terms = disp["term"].str.strip().str.casefold()
        for t in ("screened", "enrolled"):
            hit = disp[terms == t]
            if not hit.empty:
                return float(hit["day"].min())
        return None
    if checkpoint == "pre-lymphodepletion":
        return study.lymphodepletion_start(subject_id)
    inf = study.infusions(subject_id)
    return None if inf.empty else float(inf["start_day"].min())


# --------------------------------------------------------------------------------------------
# facts
# --------------------------------------------------------------------------------------------


def _key(rec: Mapping[str, Any]) -> tuple[str, str | None]:
    cp = rec.get("checkpoint")
    if cp is not None and isinstance(cp, float) and math.isnan(cp):
        cp = None
    return str(rec.get("criterion_id")), (None if cp in (None, "", "*", "any") else str(cp))


def _pick(records: Sequence[Mapping[str, Any]], subject_id: str, criterion_id: str, checkpoint: str) -> Mapping[str, Any] | None:
    """The latest record for the criterion at this checkpoint (a checkpoint-specific one wins)."""
    best: Mapping[str, Any] | None = None
    best_rank = -1
    for i, r in enumerate(records):
        if r.get("subject_id") not in (None, subject_id):
            continue
        cid, cp = _key(r)
        if cid != criterion_id or cp not in (None, checkpoint):
            continue
        rank = (2 if cp is not None else 1) * 1_000_000 + i
        if rank > best_rank:
            best, best_rank = r, rank
    return best


def _na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if _na(v) else v) for k, v in r.items()} for r in df.to_dict("records")]


@dataclass(frozen=True)
class _SubjectData:
    """One subject's rows as plain records (fast to scan), observations grouped by code and sorted."""

    subject: dict[str, Any] | None
    obs_by_code: dict[str, list[dict[str, Any]]]
    interventions: list[dict[str, Any]]
    events: list[dict[str, Any]]


def _subject_data(study: Study, subject_id: str, cache: dict[str, Any] | None = None) -> _SubjectData:
    """One subject's rows as records; ``cache`` (owned by the caller, one Study) avoids rebuilding them."""
    if cache is not None and subject_id in cache:
        return cache[subject_id]
    obs = study.observations[study.observations["subject_id"] == subject_id].sort_values(["day", "row_id"], kind="stable")
    by_code: dict[str, list[dict[str, Any]]] = {}
    for r in _records(obs):
        by_code.setdefault(str(r["code"]), []).append(r)
    subj = _records(study.subjects[study.subjects["subject_id"] == subject_id])
    data = _SubjectData(
        subject=subj[0] if subj else None,
        obs_by_code=by_code,
        interventions=_records(study.interventions[study.interventions["subject_id"] == subject_id]),
        events=_records(study.events[study.events["subject_id"] == subject_id]),
    )
    if cache is not None:
        cache[subject_id] = data
    return data


def _as_list(x: Any) -> list[Any]:
    return list(x) if isinstance(x, list) else [x]


_EPS = 1e-9


class _Facts:
    """Fact accessors for one subject, checkpoint and criterion; records evidence and missing data."""

    def __init__(
        self,
        study: Study,
        subject_id: str,
        day: float,
        checkpoint: str,
        criterion: Criterion,
        params: Mapping[str, Any],
        attestations: Sequence[Mapping[str, Any]],
        cache: dict[str, Any] | None = None,
    ):
        self.sid = subject_id
        self.day = day
        self.checkpoint = checkpoint
        self.crit = criterion
        self.params = params
        self.attestations = attestations
        self.evidence: list[Evidence] = []
        self.touched: list[int] = []
        self.missing: list[str] = []
        self.attestation: Mapping[str, Any] | None = None
        open_world = set(study.meta.get("open_world", ()))
        self.iv_known = "interventions" not in open_world
        self.ev_known = "events" not in open_world
        self.data = _subject_data(study, subject_id, cache)

    # -- helpers -----------------------------------------------------------------------------
    def _miss(self, what: str) -> None:
        if what not in self.missing:
            self.missing.append(what)

    def _add(self, ev: Evidence) -> None:
        for i, e in enumerate(self.evidence):
            if e.table == ev.table and e.row_id == ev.row_id and (ev.row_id is not None or e.what == ev.what):
                self.touched.append(i)
                return
        self.touched.append(len(self.evidence))
        self.evidence.append(ev)

    def _window(self, kw: Mapping[str, Any]) -> float | None:
        w = kw.get("within", self.crit.lookback_days)
        return None if w is None else float(w)

    def _where(self, w: float | None) -> str:
        span = "any time" if w is None else f"the {w:g} days"
        return f"{span} before {self.checkpoint} (day {self.day:g})"

    def _latest_obs(self, code: str, kw: Mapping[str, Any], column: str) -> dict[str, Any] | None:
        w = self._window(kw)
        lo = -math.inf if w is None else self.day - w - _EPS
        spec = kw.get("specimen")
        for r in reversed(self.data.obs_by_code.get(code, ())):
            d = float(r["day"])
            if d > self.day + _EPS:
                continue
            if d < lo:
                break
            if spec is not None and r.get("specimen") != spec:
                continue
            v = r.get(column)
            if v is None or (column == "value_text" and not str(v).strip()):
                continue
            return r
        self._miss(f"{code} ({'result' if column == 'value_text' else 'value'}) within {self._where(w)}")
        return None

    def _obs_evidence(self, row: Mapping[str, Any], note: str, value: Any = None) -> None:
        self._add(
            Evidence("observations", int(row["row_id"]), self.sid, float(row["day"]), str(row["code"]), row.get("value") if value is None else value, str(row["unit"]), note)
        )

    # -- observation functions -----------------------------------------------------------------
    def lab(self, args: list[Any], kw: dict[str, Any]) -> float | None:
        row = self._latest_obs(args[0], kw, "value")
        if row is None:
            return None
        self._obs_evidence(row, "lab")
        return float(row["value"])

    def _limit(self, args: list[Any], kw: dict[str, Any], col: str) -> float | None:
        row = self._latest_obs(args[0], kw, "value")
        if row is None:
            return None
        lim = row.get(col)
        if lim is None:
            self._miss(f"{col.upper()} of {args[0]} (row {int(row['row_id'])})")
            return None
        self._obs_evidence(row, col)
        return float(lim)

    def uln(self, args: list[Any], kw: dict[str, Any]) -> float | None:
        return self._limit(args, kw, "uln")

    def lln(self, args: list[Any], kw: dict[str, Any]) -> float | None:
        return self._limit(args, kw, "lln")

    def text(self, args: list[Any], kw: dict[str, Any]) -> str | None:
        row = self._latest_obs(args[0], kw, "value_text")
        if row is None:
            return None
        self._obs_evidence(row, "text", row["value_text"])
        return str(row["value_text"]).strip()

    def flag(self, args: list[Any], kw: dict[str, Any]) -> bool | None:
        t = self.text(args, kw)
        if t is None:
            return None
        s = t.casefold()
        if s in _YES:
            return True
        if s in _NO:
            return False
        self._miss(f"{args[0]} result {t!r} is neither yes/positive/present nor no/negative/absent")
        return None

    # -- subject and parameters ---------------------------------------------------------------
    def subject(self, args: list[Any], kw: dict[str, Any]) -> Any:
        name = str(args[0])
        subj = self.data.subject
        if subj is None:
            self._miss(f"subject {self.sid} in subjects")
            return None
        v = subj.get(name)
        if v is None:
            self._miss(f"subjects.{name}")
            return None
        if isinstance(v, (np.floating, np.integer)):
            v = float(v)
        self._add(Evidence("subjects", None, self.sid, None, name, v, None, "subject"))
        return v

    def name(self, n: str) -> Any:
        if n == "age":
            return self.subject(["age_years"], {})
        if n in ("sex", "diagnosis"):
            v = self.subject([n], {})
            if n == "sex" and v == "U":
                self._miss("sex")
                return None
            return v
        if n.startswith("subject."):
            return self.subject([n[8:]], {})
        if n.startswith("param."):
            return self.params[n[6:]]
        raise X.ExpressionError(f"unknown name {n!r}")

    def param(self, args: list[Any], kw: dict[str, Any]) -> Any:
        return self.params[str(args[0])]

    # -- interventions (closed world in a Study) ---------------------------------------------
    def _ivs(self, args: list[Any], kw: Mapping[str, Any]) -> list[dict[str, Any]]:
        kinds = set(_as_list(args[0]))
        agents = {a.casefold() for a in _as_list(kw["agent"])} if kw.get("agent") is not None else None
        words = [w.casefold() for w in _as_list(kw["agent_contains"])] if kw.get("agent_contains") is not None else None
        routes = {r.casefold() for r in _as_list(kw["exclude_routes"])} if kw.get("exclude_routes") else set()
        devices = set(_as_list(kw["exclude_devices"])) if kw.get("exclude_devices") else set()
        out = []
        for r in self.data.interventions:
            if r["kind"] not in kinds or float(r["start_day"]) > self.day + _EPS:
                continue
            agent = str(r.get("agent") or "").casefold()
            if agents is not None and agent not in agents:
                continue
            if words is not None and not any(w in agent for w in words):
                continue
            if str(r.get("route") or "").casefold() in routes or (r.get("device") in devices):
                continue
            out.append(r)
        return out

    @staticmethod
    def _end(r: Mapping[str, Any]) -> float:
        return float(r["end_day"] if r.get("end_day") is not None else r["start_day"])

    def _iv_evidence(self, rows: list[dict[str, Any]], note: str) -> None:
        for r in rows:
            self._add(Evidence("interventions", int(r["row_id"]), self.sid, float(r["start_day"]), str(r["kind"]), r.get("agent"), None, note))

    def _iv_open(self, args: list[Any]) -> None:
        self._miss(f"record of {args[0]} interventions (none given for this patient)")

    def _active(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        d = math.floor(self.day + _EPS)
        return [r for r in rows if math.floor(self._end(r)) >= d]

    def any_intervention(self, args: list[Any], kw: dict[str, Any]) -> bool | None:
        if not self.iv_known:
            self._iv_open(args)
            return None
        rows = self._ivs(args, kw)
        if kw.get("within") is not None:
            rows = [r for r in rows if self._end(r) >= self.day - float(kw["within"]) - _EPS]
        self._iv_evidence(rows, "intervention before checkpoint")
        return bool(rows)

    def active_intervention(self, args: list[Any], kw: dict[str, Any]) -> bool | None:
        if not self.iv_known:
            self._iv_open(args)
            return None
        act = self._active(self._ivs(args, kw))
        self._iv_evidence(act, "ongoing at checkpoint")
        return bool(act)

    def days_since_intervention(self, args: list[Any], kw: dict[str, Any]) -> float | None:
        if not self.iv_known:
            self._iv_open(args)
            return None
        rows = self._ivs(args, kw)
        if not rows:
            return math.inf
        act = self._active(rows)
        if act:
            self._iv_evidence(act, "ongoing at checkpoint")
            return 0.0
        last = max(self._end(r) for r in rows)
        self._iv_evidence([r for r in rows if self._end(r) == last], "last administration")
        return float(self.day - last)

    # -- events (closed world in a Study) ----------------------------------------------------
    def _evs(self, args: list[Any], kw: Mapping[str, Any]) -> list[dict[str, Any]]:
        kinds = set(_as_list(args[0]))
        terms = {t.casefold() for t in _as_list(kw["term"])} if kw.get("term") is not None else None
        words = [w.casefold() for w in _as_list(kw["term_contains"])] if kw.get("term_contains") is not None else None
        out = []
        for r in self.data.events:
            if r["kind"] not in kinds or float(r["day"]) > self.day + _EPS:
                continue
            term = str(r.get("term") or "").strip().casefold()
            if terms is not None and term not in terms:
                continue
            if words is not None and not any(w in term for w in words):
                continue
            out.append(r)
        return out

    def _ev_evidence(self, rows: list[dict[str, Any]], note: str) -> None:
        for r in rows:
            g = r.get("grade")
            self._add(Evidence("events", int(r["row_id"]), self.sid, float(r["day"]), str(r["kind"]), f"{r['term']}" + (f" (grade {int(g)})" if g is not None else ""), None, note))

    def _graded(self, rows: list[dict[str, Any]], kw: Mapping[str, Any], args: list[Any], note: str) -> bool | None:
        g = kw.get("min_grade")
        if g is None:
            self._ev_evidence(rows, note)
            return bool(rows)
        hit = [r for r in rows if r.get("grade") is not None and float(r["grade"]) >= float(g)]
        if hit:
            self._ev_evidence(hit, note)
            return True
        ungraded = [r for r in rows if r.get("grade") is None]
        if ungraded:
            self._ev_evidence(ungraded, note + " (grade not recorded)")
            self._miss(f"grade of {args[0]} event(s) row {', '.join(str(r['row_id']) for r in ungraded)}")
            return None
        self._ev_evidence(rows, note)
        return False

    def any_event(self, args: list[Any], kw: dict[str, Any]) -> bool | None:
        if not self.ev_known:
            self._miss(f"record of {args[0]} events (none given for this patient)")
            return None
        rows = self._evs(args, kw)
        if kw.get("within") is not None:
            lo = self.day - float(kw["within"]) - _EPS
            rows = [r for r in rows if float(r["end_day"] if r.get("end_day") is not None else r["day"]) >= lo]
        return self._graded(rows, kw, args, "event before checkpoint")

    def active_event(self, args: list[Any], kw: dict[str, Any]) -> bool | None:
        if not self.ev_known:
            self._miss(f"record of {args[0]} events (none given for this patient)")
            return None
        rows = [r for r in self._evs(args, kw) if r.get("end_day") is None or float(r["end_day"]) >= self.day - _EPS]
        return self._graded(rows, kw, args, "unresolved at checkpoint")

    # -- attestations ------------------------------------------------------------------------
    def attested(self, args: list[Any], kw: dict[str, Any]) -> bool | None:
        cid = str(args[0]) if args else self.crit.id
        rec = _pick(self.attestations, self.sid, cid, self.checkpoint)
        if rec is None or rec.get("value") is None:
            self._miss(f"attestation of {cid} by the investigator")
            return None
        self.attestation = rec
        return bool(rec["value"])

    def handlers(self) -> dict[str, X.Handler]:
        h: dict[str, X.Handler] = {
            name: getattr(self, name)
            for name in (
                "lab",
                "uln",
                "lln",
                "text",
                "flag",
                "subject",
                "param",
                "any_intervention",
                "active_intervention",
                "days_since_intervention",
                "any_event",
                "active_event",
                "attested",
            )
        }
        h["any_assessed"] = lambda a, k: X.any_assessed(a)
        h["coalesce"] = lambda a, k: X.coalesce(a)
        h["known"] = lambda a, k: a[0] is not None
        h["floor"] = lambda a, k: None if a[0] is None else float(math.floor(float(a[0]) + _EPS))
        return h


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def evaluate_criterion(
    study: Study,
    subject_id: str,
    criterion: Criterion,
    criteria: CriteriaSet,
    checkpoint: str,
    day: float,
    attestations: Sequence[Mapping[str, Any]] = (),
    overrides: Sequence[Mapping[str, Any]] = (),
    cache: dict[str, Any] | None = None,
) -> CriterionResult:
    """Evaluate one criterion at a checkpoint day (``cache``: see :func:`screen`)."""
    facts = _Facts(study, subject_id, day, checkpoint, criterion, criteria.params, attestations, cache)
    deciding: set[int] = set()
    if criterion.tree is None:
        value = facts.attested([], {})
    else:
        v, deciding = X.Evaluator(facts.handlers(), facts.name, facts.touched).eval_decisive(criterion.tree)
        if v is not None and not isinstance(v, bool):
            raise X.ExpressionError(f"{criteria.trial} {criterion.id}: expression does not give true/false: {criterion.expression}")
        value = v
    computed = _tri(value)
    ov = _pick(overrides, subject_id, criterion.id, checkpoint)
    if ov is not None and ov.get("result") not in RESULTS:
        raise InputError(f"override of {criterion.id} has result {ov.get('result')!r}; use one of {', '.join(RESULTS)}")
    return CriterionResult(
        criterion=criterion,
        trial=criteria.trial,
        protocol_version=criteria.protocol_version,
        checkpoint=checkpoint,
        computed=computed,
        evidence=tuple(facts.evidence),
        deciding=tuple(facts.evidence[i] for i in sorted(deciding)),
        missing=tuple(facts.missing) if computed == UNKNOWN else (),
        override=ov,
        attestation=facts.attestation,
    )


def _trial_records(records: Iterable[Mapping[str, Any]] | None, trial: str) -> list[Mapping[str, Any]]:
    out = []
    for r in records or ():
        t = r.get("trial")
        if t in (None, "", trial):
            out.append(r)
    return out


def screen(
    study: Study,
    subject_id: str,
    criteria: CriteriaSet | str = "NCT06849401",
    checkpoint: str = "screening",
    day: float | None = None,
    attestations: Iterable[Mapping[str, Any]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
    *,
    cache: dict[str, Any] | None = None,
) -> EligibilityReport:
    """Evaluate every criterion that applies at ``checkpoint`` for one subject of a Study.

    ``cache``: a dict the caller owns for one Study, reused across calls so each subject's rows are
    prepared once (the screening log passes one); by default a fresh one per call.

    ``attestations``: records ``{subject_id, criterion_id, checkpoint (optional), value: bool, actor, ...}``;
    ``overrides``: records ``{subject_id, criterion_id, checkpoint (optional), result: MET|NOT_MET|UNKNOWN,
    reason, actor, ...}``. Records with a ``trial`` other than this one are ignored. ``day`` overrides the
    checkpoint day found in the Study. A checkpoint that has not been reached raises ``InputError``.
    """
    cs = load_criteria(criteria) if isinstance(criteria, str) else criteria
    if checkpoint not in CHECKPOINTS:
        raise InputError(f"unknown checkpoint {checkpoint!r}; use one of {', '.join(CHECKPOINTS)}")
    if subject_id not in set(study.subjects["subject_id"]):
        raise NotFoundError(f"no subject {subject_id!r} in study {study.study_id!r}")
    if day is None:
        day = checkpoint_day(study, subject_id, checkpoint)
        if day is None:
            raise InputError(
                f"subject {subject_id} has not reached the {checkpoint} checkpoint "
                "(no 'screened'/'enrolled' disposition event, lymphodepletion or infusion recorded); give the day explicitly"
            )
    att = _trial_records(attestations if attestations is not None else study.meta.get("eligibility_attestations"), cs.trial)
    ovr = _trial_records(overrides if overrides is not None else study.meta.get("eligibility_overrides"), cs.trial)
    cache = {} if cache is None else cache
    results = tuple(evaluate_criterion(study, subject_id, c, cs, checkpoint, float(day), att, ovr, cache) for c in cs.at(checkpoint))
    return EligibilityReport(cs.trial, cs.protocol_version, subject_id, checkpoint, float(day), results, cs.source)


__all__ = [
    "MET",
    "NOT_MET",
    "UNKNOWN",
    "ELIGIBLE",
    "INELIGIBLE",
    "PENDING",
    "CriterionResult",
    "EligibilityReport",
    "checkpoint_day",
    "evaluate_criterion",
    "screen",
    "verdict_of",
]
