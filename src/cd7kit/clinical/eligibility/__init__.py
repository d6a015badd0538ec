"""Computable eligibility: criteria files, three-valued evaluation, overrides and the screening log.

A trial's inclusion and exclusion criteria are data (one YAML file per trial and protocol version,
``criteria/<trial>.yaml``); each criterion's expression is written in a small, safe language
(:mod:`.expr`) and evaluated with Kleene three-valued logic (HL7 CQL 1.5.3) against a
:class:`~cd7kit.data.Study` at a checkpoint (screening, pre-lymphodepletion, pre-infusion). The verdict
follows Dameron et al. (J Biomed Semantics 2013;4:17): any inclusion NOT_MET or exclusion MET makes a
subject INELIGIBLE whatever else is unknown; an unknown criterion otherwise leaves the verdict PENDING.
ClinicalTrials.gov API v2 records are turned into criteria skeletons (:mod:`.ctgov`). See
``docs/eligibility.md``.
"""

from .criteria import CHECKPOINTS, CriteriaSet, Criterion, criteria_from_dict, load_criteria, shipped_trials
from .ctgov import criteria_from_ctgov, read_ctgov
from .engine import (
    ELIGIBLE,
    INELIGIBLE,
    MET,
    NOT_MET,
    PENDING,
    UNKNOWN,
    CriterionResult,
    EligibilityReport,
    checkpoint_day,
    screen,
    verdict_of,
)
from .expr import ExpressionError
from .log import ScreeningFlow, screening_flow, screening_log
from .patient import patient_to_study, read_patient, screen_patient

__all__ = [
    "CHECKPOINTS",
    "CriteriaSet",
    "Criterion",
    "CriterionResult",
    "EligibilityReport",
    "ExpressionError",
    "ScreeningFlow",
    "MET",
    "NOT_MET",
    "UNKNOWN",
    "ELIGIBLE",
    "INELIGIBLE",
    "PENDING",
    "checkpoint_day",
    "criteria_from_ctgov",
    "criteria_from_dict",
    "load_criteria",
    "patient_to_study",
    "read_ctgov",
    "read_patient",
    "screen",
    "screen_patient",
    "screening_flow",
    "screening_log",
    "shipped_trials",
    "verdict_of",
]
