"""The study overview that the demo, the dashboard and the safety report all show, computed in one place.

It only calls the engines: the screening flow (``clinical.eligibility``), the escalation state and its
recommendation (``trial``), and each subject's maximum grades and best response (``clinical``). A study
says which subjects belong to the trial in ``meta["trial_subjects"]`` (the demo study also holds two
published case-report patients who are not trial subjects) and which criteria apply in ``meta["trial"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cd7kit.clinical.eligibility.log import trial_subject_ids
from cd7kit.data import Study, jsonable


@dataclass(frozen=True)
class StudyOverview:
    """Engine results for a study: screening flow (or None without a trial), escalation state, grades."""

    summary: dict[str, Any]
    screening: Any  # cd7kit.clinical.eligibility.ScreeningFlow | None
    escalation: Any  # cd7kit.trial.EscalationState
    grading: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "summary": self.summary,
                "screening": None if self.screening is None else self.screening.to_dict(),
                "escalation": self.escalation.to_dict(),
                "grading": self.grading,
            }
        )


def study_overview(study: Study, design: str = "boin", target: float = 0.3) -> StudyOverview:
    """Compute the overview (pure: no database, no output)."""
    from cd7kit.clinical import grading_overview
    from cd7kit.trial import escalation_state

    ids = trial_subject_ids(study)
    flow = None
    if study.meta.get("trial"):
        from cd7kit.clinical.eligibility import screening_flow

        flow = screening_flow(study, str(study.meta["trial"]), subject_ids=ids)
    escalation = escalation_state(study.restrict(ids), design=design, target=target)
    return StudyOverview(study.summary(), flow, escalation, grading_overview(study))


__all__ = ["StudyOverview", "study_overview", "trial_subject_ids"]
