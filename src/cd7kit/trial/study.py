"""Dose escalation on a cd7kit Study: DLT definition and window, escalation state, the NCT06849401 preset.

A subject counts at its ``subjects.dose_level`` (1-based) once it has been infused (a ``car_infusion``
intervention) or, where the study records no infusions at all, once it has a dose level. A DLT is an
event of one of the DLT kinds (default: kind ``dlt``, until the grading engine provides graded DLTs),
optionally of at least a given grade, on days ``window_start``..``window_days`` after the first
infusion (day 0; default 0..28, the DLT window of DESIGN.md). A subject without a DLT whose follow-up
(last recorded day, or the study's ``meta["data_cutoff_day"]`` per subject if given) is shorter than
the window is *pending*: counted as complete for BOIN and 3+3 conduct (as trial teams do once the
window has passed; the state flags them in ``missing``) and as pending, with its follow-up, for TITE-BOIN.

NCT06849401 (ClinicalTrials.gov, VGO-Cs01p CD7 CAR-NK for R/R T-ALL; early phase 1, 5-9 subjects):
three sequential dose levels 4e7, 1.2e8, 3.6e8 CAR-NK cells/kg, six infusions per subject, 12-month
follow-up. The preset uses cohorts of 3, a target DLT rate of 0.3 and a maximum of 9 patients
(``ncohort=3``; 12 with ``ncohort=4``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cd7kit.data import Study
from cd7kit.data.result import Evidence, Rule, jsonable
from cd7kit.errors import InputError, Problem

from .base import Decision, TrialData


@dataclass(frozen=True)
class DltDefinition:
    """Which events are DLTs: event kinds, minimum grade, and the window in days after the first infusion."""

    kinds: tuple[str, ...] = ("dlt",)
    min_grade: int | None = None
    window_start: float = 0.0
    window_days: float = 28.0

    @property
    def rule(self) -> Rule:
        return Rule(
            "DLT definition",
            "cd7kit 1",
            {"kinds": list(self.kinds), "min_grade": self.min_grade, "window_start": self.window_start, "window_days": self.window_days},
            "protocol DLT window: days 0-28 after the first infusion (DESIGN.md); DLTs as events of kind 'dlt' until graded DLTs are available",
        )

    def is_dlt(self, events: pd.DataFrame) -> pd.Series:
        m = events["kind"].isin(self.kinds) & (events["day"] >= self.window_start) & (events["day"] <= self.window_days)
        if self.min_grade is not None:
            m &= events["grade"].fillna(-1).astype(float) >= self.min_grade
        return m


@dataclass(frozen=True)
class Preset:
    """A trial's dose levels and escalation settings."""

    name: str
    dose_levels: tuple[float, ...]
    dose_unit: str
    cohortsize: int
    target: float
    ncohort: int
    max_ncohort: int
    source: str
    dlt: DltDefinition = field(default_factory=DltDefinition)

    @property
    def labels(self) -> list[str]:
        def sci(v: float) -> str:
            m, e = f"{v:.3g}".split("e") if "e" in f"{v:.3g}" else (f"{v:.3g}", "")
            return f"{m}e{int(e)}" if e else m

        return [f"{sci(v)} {self.dose_unit}" for v in self.dose_levels]

    def design(self, name: str = "boin", **options: Any) -> Any:
        from . import get_design

        opts: dict[str, Any] = {"target": self.target, "ncohort": self.ncohort, "cohortsize": self.cohortsize}
        opts.update(options)
        return get_design(name, ndose=len(self.dose_levels), **opts)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": self.name,
                "dose_levels": list(self.dose_levels),
                "dose_unit": self.dose_unit,
                "labels": self.labels,
                "cohortsize": self.cohortsize,
                "target": self.target,
                "max_n": self.ncohort * self.cohortsize,
                "max_n_upper": self.max_ncohort * self.cohortsize,
                "source": self.source,
                "dlt": self.dlt.rule.to_dict(),
            }
        )


NCT06849401 = Preset(
    name="NCT06849401",
    dose_levels=(4e7, 1.2e8, 3.6e8),
    dose_unit="cells/kg",
    cohortsize=3,
    target=0.3,
    ncohort=3,
    max_ncohort=4,
    source="ClinicalTrials.gov NCT06849401 (VGO-Cs01p CD7 CAR-NK, R/R T-ALL; updated 2025-05-15): up to three sequential dose levels 4e7, 1.2e8, 3.6e8 cells/kg",
)

PRESETS: dict[str, Preset] = {"NCT06849401": NCT06849401}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError([Problem("unknown preset", column="preset", value=name, expected=", ".join(PRESETS))]) from None


@dataclass(frozen=True)
class DoseState:
    dose: int
    label: str | None
    n: int
    dlt: int
    pending: int
    subjects: list[str]
    dlt_subjects: list[str]
    pending_followup: list[float]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self.__dict__)


@dataclass(frozen=True)
class EscalationState:
    """Per-dose patients, DLTs and pending patients of a Study, the current dose and the recommendation."""

    study_id: str | None
    design: str
    target: float
    doses: list[DoseState]
    current: int | None
    recommendation: Decision | None
    evidence: list[Evidence]
    missing: list[str]
    rule: Rule

    @property
    def value(self) -> int | None:
        return None if self.recommendation is None else self.recommendation.value

    def data(self) -> TrialData:
        return TrialData.of(
            [d.n for d in self.doses], [d.dlt for d in self.doses], self.current, [d.pending_followup for d in self.doses], self.evidence
        )

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": "escalation_state",
                "study_id": self.study_id,
                "design": self.design,
                "target": self.target,
                "value": self.value,
                "next_dose": self.value,
                "current": self.current,
                "doses": [d.to_dict() for d in self.doses],
                "n": [d.n for d in self.doses],
                "y": [d.dlt for d in self.doses],
                "recommendation": None if self.recommendation is None else self.recommendation.to_dict(),
                "evidence": [e.to_dict() for e in self.evidence],
                "rule": self.rule.to_dict(),
                "missing": list(self.missing),
            }
        )


def _followup_days(study: Study) -> dict[str, float]:
    """Each subject's last study day with any record (observation, event, intervention start or end), or
    the per-subject ``data_cutoff_day`` of the Study's meta when later: one group-by per table, not one
    scan per subject."""
    parts = []
    for tname, col in (("observations", "day"), ("events", "day"), ("interventions", "start_day"), ("interventions", "end_day")):
        t = getattr(study, tname)
        if len(t):
            parts.append(t[["subject_id", col]].rename(columns={col: "day"}).dropna())
    last: dict[str, float] = {}
    if parts:
        last = {str(k): float(v) for k, v in pd.concat(parts).groupby("subject_id", observed=True)["day"].max().items()}
    cutoff = study.meta.get("data_cutoff_day") if isinstance(study.meta, Mapping) else None
    if isinstance(cutoff, Mapping):
        for sid, day in cutoff.items():
            last[str(sid)] = max(float(day), last.get(str(sid), float("-inf")))
    return last


def escalation_state(
    study: Study,
    design: str = "boin",
    target: float = 0.3,
    dlt: DltDefinition | None = None,
    ndose: int | None = None,
    dose_labels: Sequence[str] | None = None,
    **options: Any,
) -> EscalationState:
    """The escalation state of a Study and the next recommended dose, with the subjects/events behind it.

    ``design`` is any name accepted by :func:`cd7kit.trial.get_design` ("boin", "3+3", "tite-boin",
    "crm", "boin12"); ``options`` go to the design. ``ndose`` defaults to the preset's number of dose
    levels when ``study.meta["preset"]`` names one, else to the highest dose level seen. The current
    dose is the dose level of the last infused subject (by ``reference_date`` when all have one, else
    by the order of the subjects table).
    """
    from . import get_design

    dlt = dlt or DltDefinition()
    subj = study.subjects
    pre = PRESETS.get(str(study.meta.get("preset"))) if study.meta.get("preset") else None
    missing: list[str] = []
    infusions = study.infusions()
    has_infusions = len(infusions) > 0
    dosed = subj[subj["dose_level"].notna() & ~subj["status"].isin(["screened", "screen_failure"])]
    if has_infusions:
        no_inf = dosed[~dosed["subject_id"].isin(set(infusions["subject_id"]))]
        for sid in no_inf["subject_id"]:
            missing.append(f"subject {sid} has a dose level but no recorded infusion: not counted")
        dosed = dosed[dosed["subject_id"].isin(set(infusions["subject_id"]))]
    max_level = int(dosed["dose_level"].max()) if len(dosed) else 0
    if ndose is None:
        ndose = len(pre.dose_levels) if pre else max(max_level, 1)
    if max_level > ndose:
        raise InputError([Problem("a subject's dose level is above the number of dose levels", column="dose_level", value=max_level, expected=f"1..{ndose}")])
    labels = list(dose_labels) if dose_labels is not None else (pre.labels if pre else [None] * ndose)
    ev_tab = study.events[study.events["subject_id"].isin(set(dosed["subject_id"]))]
    dlt_rows = ev_tab[dlt.is_dlt(ev_tab)]
    evidence: list[Evidence] = []
    doses: list[DoseState] = []
    followup = _followup_days(study)
    for level in range(1, ndose + 1):
        s_ids = list(dosed.loc[dosed["dose_level"] == level, "subject_id"])
        with_dlt: list[str] = []
        pend: list[float] = []
        for sid in s_ids:
            rows = dlt_rows[dlt_rows["subject_id"] == sid]
            srow = subj[subj["subject_id"] == sid].index[0]
            if len(rows):
                with_dlt.append(sid)
                first = rows.sort_values("day").iloc[0]
                evidence.append(
                    Evidence("events", int(first["row_id"]), sid, float(first["day"]), str(first["kind"]), first.get("term"), None,
                             f"DLT at dose level {level} on day {first['day']:g} ({first.get('term')}, grade {first.get('grade')})")
                )
            else:
                fu = followup.get(sid)
                if fu is None or fu < dlt.window_days:
                    pend.append(0.0 if fu is None else max(fu, 0.0))
                    missing.append(f"subject {sid} (dose level {level}) has {0 if fu is None else fu:g} of {dlt.window_days:g} days of DLT follow-up")
                evidence.append(Evidence("subjects", int(srow) + 1, sid, None, "dose_level", level, None, f"treated at dose level {level}, no DLT in the window"))
        doses.append(DoseState(level, labels[level - 1] if level - 1 < len(labels) else None, len(s_ids), len(with_dlt), len(pend), s_ids, with_dlt, pend))
    current = None
    if len(dosed):
        order = dosed
        if dosed["reference_date"].notna().all():
            order = dosed.assign(_d=pd.to_datetime(dosed["reference_date"], errors="coerce")).sort_values("_d", kind="stable")
        current = int(order["dose_level"].iloc[-1])
    opts = dict(options)
    if pre:
        opts.setdefault("ncohort", pre.ncohort)
        opts.setdefault("cohortsize", pre.cohortsize)
    if design in ("tite-boin",):
        opts.setdefault("window", dlt.window_days)
    dsg = get_design(design, target=target, ndose=ndose, **opts)
    rec: Decision | None = None
    if current is None:
        rec = None
        missing.append("no subject has been treated yet: start at dose level 1")
    else:
        at_current = set(doses[current - 1].subjects)
        driving = [e for e in evidence if e.table == "events" or e.subject_id in at_current]
        data = TrialData.of(
            [d.n for d in doses], [d.dlt for d in doses], current,
            [d.pending_followup for d in doses] if design == "tite-boin" else None, driving,
        )
        rec = dsg.next_dose(data)
    rule = Rule("escalation state", "cd7kit 1", {"design": design, "target": target, **{k: v for k, v in opts.items()}, "dlt": dlt.rule.options}, dlt.rule.source)
    return EscalationState(study.study_id, design, target, doses, current, rec, evidence, missing, rule)


def next_dose_for_study(study: Study, design: str = "boin", target: float = 0.3, **options: Any) -> Decision | None:
    """The recommendation of :func:`escalation_state` (``None`` before the first subject is treated)."""
    return escalation_state(study, design, target, **options).recommendation


__all__ = ["DltDefinition", "Preset", "NCT06849401", "PRESETS", "preset", "EscalationState", "DoseState", "escalation_state", "next_dose_for_study"]
