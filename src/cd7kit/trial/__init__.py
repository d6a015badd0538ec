"""Dose-escalation designs: decision tables, trial conduct and simulation (a pure engine: no database).

Designs share one interface: ``decision_table()``, ``next_dose(data)``, ``select_mtd(data)`` and
``simulate(p_true, ...)`` returning :class:`~cd7kit.trial.base.OperatingCharacteristics`.

* :class:`~cd7kit.trial.boin.Boin` -- BOIN with the exact semantics of R BOIN 2.7.2 (Liu & Yuan 2015);
  ``rng="r"`` reproduces ``get.oc`` trial by trial.
* :class:`~cd7kit.trial.threeplusthree.ThreePlusThree` -- 3+3 with exact (enumerated) OCs.
* :class:`~cd7kit.trial.crm.Crm` -- CRM with dfcrm semantics (O'Quigley 1990; Cheung 2011).
* :class:`~cd7kit.trial.tite.TiteBoin` -- TITE-BOIN (Yuan et al. 2018; Lin & Yuan 2020).
* :class:`~cd7kit.trial.boin12.Boin12` -- BOIN12 (Lin, Zhou & Yuan 2020).
* :mod:`cd7kit.trial.study` -- DLT window on a Study, :func:`escalation_state`, the NCT06849401 preset.

Dose levels are 1-based in every public interface.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cd7kit.errors import InputError, Problem

from .base import Decision, MtdSelection, OperatingCharacteristics, TrialData
from .boin import Boin, BoinBoundaries, boundaries, lambdas, select_mtd
from .study import (
    NCT06849401,
    DltDefinition,
    EscalationState,
    Preset,
    escalation_state,
    next_dose_for_study,
    preset,
)
from .threeplusthree import ThreePlusThree

#: options that describe the trial rather than a design, ignored by designs that do not use them
_GENERIC = {"target", "ncohort", "cohortsize", "ndose", "window", "startdose"}


def _designs() -> dict[str, type]:
    out: dict[str, type] = {"boin": Boin, "3+3": ThreePlusThree}
    try:
        from .crm import Crm

        out["crm"] = Crm
    except ImportError:  # pragma: no cover
        pass
    try:
        from .tite import TiteBoin

        out["tite-boin"] = TiteBoin
    except ImportError:  # pragma: no cover
        pass
    try:
        from .boin12 import Boin12

        out["boin12"] = Boin12
    except ImportError:  # pragma: no cover
        pass
    return out


DESIGNS = ("boin", "3+3", "tite-boin", "crm", "boin12")


def get_design(name: str, ndose: int | None = None, **options: Any) -> Any:
    """A design object by name ("boin", "3+3", "tite-boin", "crm", "boin12") with its options.

    Options a design does not have are an error, except the generic trial options (target, ncohort,
    cohortsize, window, startdose) which designs without them ignore. ``ndose`` is passed to designs
    that need it (CRM skeleton length).
    """
    designs = _designs()
    if name not in designs:
        raise InputError([Problem("unknown design", column="design", value=name, expected=", ".join(designs))])
    cls = designs[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    if "ndose" in fields and ndose is not None:
        options["ndose"] = ndose
    unknown = [k for k in options if k not in fields and k not in _GENERIC]
    if unknown:
        raise InputError([Problem(f"option not used by the {name} design", column=k, value=options[k]) for k in unknown])
    return cls(**{k: v for k, v in options.items() if k in fields and v is not None})


__all__ = [
    "Boin",
    "BoinBoundaries",
    "ThreePlusThree",
    "TrialData",
    "Decision",
    "MtdSelection",
    "OperatingCharacteristics",
    "boundaries",
    "lambdas",
    "select_mtd",
    "get_design",
    "DESIGNS",
    "DltDefinition",
    "Preset",
    "NCT06849401",
    "preset",
    "EscalationState",
    "escalation_state",
    "next_dose_for_study",
]
