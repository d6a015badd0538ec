"""Time-to-event outcomes after CAR infusion: overall survival, event-free survival and the cumulative
incidence of relapse with non-relapse death as a competing risk.

Definitions (time zero = day 0, the first infusion; CIBMTR/EBMT cellular-therapy reporting conventions):

- **OS**: death from any cause (events of kind ``death``); otherwise censored at last contact (the last
  day with any observation, intervention or event).
- **EFS**: the first of relapse (``relapse``), progression (``response`` with term ``PD``), treatment failure
  (``response`` with term ``NR``) or death. ``failure_at`` chooses where treatment failure counts:
  ``"assessment"`` (default, the day of the response assessment) or ``"day0"`` (the convention of some
  CAR-T filings, which date primary refractoriness to infusion).
- **CIR**: relapse or progression, with death without prior relapse as the competing event
  (Aalen-Johansen estimator, lifelines ``AalenJohansenFitter``; Gooley et al., Stat Med 1999;18:695).
  After allogeneic HSCT such deaths are transplant-related (e.g. TA-TMA in the seed case report).
- ``censor_at_hsct``: censor EFS and CIR at consolidative HSCT (an option: analyses of CAR-T without
  consolidation do this; the default keeps follow-up through HSCT).

Kaplan-Meier estimates with log-log 95% intervals and numbers at risk come from lifelines
(``KaplanMeierFitter``; Davidson-Pilon, JOSS 2019). Every subject's time and event carries the row that
decided it, so a survival curve can be traced back to the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Rule, Study, jsonable

RULE_SOURCE = "CIBMTR cellular-therapy outcome definitions; Kaplan-Meier (lifelines); Aalen-Johansen (Gooley et al., Stat Med 1999)"


@dataclass(frozen=True)
class TimeToEvent:
    """Per-subject durations and event codes with the evidence row for each."""

    endpoint: str
    table: pd.DataFrame  # subject_id, duration, event (0 censored, 1 event, 2 competing), evidence_table, evidence_row, reason
    rule: Rule

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "subjects": jsonable(self.table), "rule": self.rule.to_dict()}


@dataclass(frozen=True)
class SurvivalEstimate:
    """A Kaplan-Meier (or cumulative-incidence) curve with its at-risk table."""

    endpoint: str
    estimator: str
    timeline: np.ndarray
    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    at_risk: pd.DataFrame  # day, at_risk, events, censored
    median: float | None
    n: int
    n_events: int
    rule: Rule
    data: TimeToEvent = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "endpoint": self.endpoint,
                "estimator": self.estimator,
                "value": {"median_days": self.median, "n": self.n, "n_events": self.n_events},
                "curve": {"day": self.timeline, "estimate": self.estimate, "lower": self.lower, "upper": self.upper},
                "at_risk": self.at_risk,
                "evidence": self.data.table,
                "rule": self.rule.to_dict(),
                "missing": [],
            }
        )


def _last_contact(study: Study) -> pd.Series:
    days = pd.concat(
        [
            study.observations[["subject_id", "day"]],
            study.interventions[["subject_id", "start_day"]].rename(columns={"start_day": "day"}),
            study.interventions[["subject_id", "end_day"]].rename(columns={"end_day": "day"}).dropna(),
            study.events[["subject_id", "day"]],
        ]
    )
    return days.groupby("subject_id")["day"].max()


def _infused(study: Study) -> list[str]:
    return sorted(study.infusions()["subject_id"].unique())


def _first(ev: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    return ev[mask & (ev["day"] >= 0)].sort_values(["subject_id", "day", "row_id"]).groupby("subject_id").head(1).set_index("subject_id")


def time_to_event(study: Study, endpoint: str = "os", *, failure_at: str = "assessment", censor_at_hsct: bool = False) -> TimeToEvent:
    """Durations (days from first infusion) and events for ``os``, ``efs`` or ``cir`` for infused subjects."""
    if endpoint not in ("os", "efs", "cir"):
        raise ValueError("endpoint must be os, efs or cir")
    if failure_at not in ("assessment", "day0"):
        raise ValueError("failure_at must be 'assessment' or 'day0'")
    ev = study.events
    last = _last_contact(study)
    death = _first(ev, ev["kind"] == "death")
    progression = (ev["kind"] == "relapse") | ((ev["kind"] == "response") & ev["term"].isin(["PD"]))
    failure = (ev["kind"] == "response") & ev["term"].isin(["NR"])
    relapse = _first(ev, progression | (failure if endpoint == "efs" else pd.Series(False, index=ev.index)))
    hsct = _first(ev, ev["kind"] == "hsct")
    rows = []
    for sid in _infused(study):
        censor_day = float(last.get(sid, 0.0))
        reason = "censored at last contact"
        if censor_at_hsct and endpoint != "os" and sid in hsct.index:
            censor_day, reason = float(hsct.at[sid, "day"]), "censored at HSCT"
        candidates: list[tuple[float, int, int, str]] = []
        if endpoint in ("efs", "cir") and sid in relapse.index:
            r = relapse.loc[sid]
            day = 0.0 if (endpoint == "efs" and failure_at == "day0" and r["term"] == "NR") else float(r["day"])
            candidates.append((day, 1, int(r["row_id"]), f"{r['kind']} {r['term']}"))
        if sid in death.index:
            d = death.loc[sid]
            code = 1 if endpoint in ("os", "efs") else 2
            candidates.append((float(d["day"]), code, int(d["row_id"]), "death" if code == 1 else "death without relapse (competing)"))
        candidates = [c for c in candidates if c[0] <= censor_day or reason == "censored at last contact"]
        if candidates:
            day, code, row, why = min(candidates, key=lambda c: (c[0], -c[1]))
            rows.append({"subject_id": sid, "duration": day, "event": code, "evidence_table": "events", "evidence_row": row, "reason": why})
        else:
            rows.append({"subject_id": sid, "duration": censor_day, "event": 0, "evidence_table": None, "evidence_row": None, "reason": reason})
    rule = Rule("cd7kit outcomes", "1", {"endpoint": endpoint, "failure_at": failure_at, "censor_at_hsct": censor_at_hsct}, RULE_SOURCE)
    return TimeToEvent(endpoint, pd.DataFrame(rows, columns=["subject_id", "duration", "event", "evidence_table", "evidence_row", "reason"]), rule)


def _at_risk(durations: np.ndarray, events: np.ndarray, days: Sequence[float]) -> pd.DataFrame:
    out = []
    for d in days:
        out.append({"day": float(d), "at_risk": int((durations >= d).sum()), "events": int(((durations <= d) & (events > 0)).sum()), "censored": int(((durations <= d) & (events == 0)).sum())})
    return pd.DataFrame(out)


def kaplan_meier(study: Study, endpoint: str = "os", *, at_days: Sequence[float] = (0, 28, 90, 180, 365), **options: Any) -> SurvivalEstimate:
    """Kaplan-Meier estimate of OS or EFS (lifelines), with numbers at risk at ``at_days``."""
    from lifelines import KaplanMeierFitter

    if endpoint == "cir":
        raise ValueError("use cumulative_incidence for cir")
    tte = time_to_event(study, endpoint, **options)
    t = tte.table
    d = t["duration"].to_numpy(dtype=float)
    e = (t["event"].to_numpy() == 1).astype(int)
    kmf = KaplanMeierFitter().fit(d, e, label=endpoint)
    ci = kmf.confidence_interval_survival_function_
    med = float(kmf.median_survival_time_)
    return SurvivalEstimate(
        endpoint, "Kaplan-Meier", kmf.timeline, kmf.survival_function_.iloc[:, 0].to_numpy(), ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy(),
        _at_risk(d, e, at_days), None if np.isinf(med) else med, len(t), int(e.sum()), tte.rule, tte,
    )


def cumulative_incidence(study: Study, *, at_days: Sequence[float] = (0, 28, 90, 180, 365), **options: Any) -> SurvivalEstimate:
    """Cumulative incidence of relapse/progression with death without relapse as a competing risk."""
    from lifelines import AalenJohansenFitter

    tte = time_to_event(study, "cir", **options)
    t = tte.table
    d = t["duration"].to_numpy(dtype=float)
    e = t["event"].to_numpy(dtype=int)
    if (e == 1).sum() == 0:
        timeline = np.array([0.0, float(d.max()) if len(d) else 0.0])
        zero = np.zeros_like(timeline)
        return SurvivalEstimate("cir", "Aalen-Johansen", timeline, zero, zero, zero, _at_risk(d, e, at_days), None, len(t), 0, tte.rule, tte)
    # lifelines' Aalen-Johansen breaks ties by jittering; a fixed seed keeps the estimate reproducible
    ajf = AalenJohansenFitter(calculate_variance=True, seed=2026).fit(d, e, event_of_interest=1)
    cif = ajf.cumulative_density_
    ci = ajf.confidence_interval_cumulative_density_
    return SurvivalEstimate(
        "cir", "Aalen-Johansen", cif.index.to_numpy(dtype=float), cif.iloc[:, 0].to_numpy(), ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy(),
        _at_risk(d, e, at_days), None, len(t), int((e == 1).sum()), tte.rule, tte,
    )


__all__ = ["time_to_event", "kaplan_meier", "cumulative_incidence", "TimeToEvent", "SurvivalEstimate"]
