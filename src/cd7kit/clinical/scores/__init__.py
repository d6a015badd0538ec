"""Prognostic scores: CAR-HEMATOTOX (before lymphodepletion) and the EASIX family as daily series.

* :mod:`.hematotox` -- CAR-HEMATOTOX (Rejeski K et al., Blood 2021;138:2499-2513).
* :mod:`.easix` -- EASIX (Luft T et al., Lancet Haematol 2017), s-EASIX and m-EASIX (Pennisi M et al.,
  Blood Adv 2021;5:3397), EASIX-pre with the Korell 2022 cut-off as a named option.

:func:`compute_scores` runs them all over a Study and returns :class:`~cd7kit.data.Result` objects; one
``options`` mapping serves every score (option names are unique across them, see
``docs/grading-scores-response-tma.md``). Rule data with sources: ``cd7kit/clinical/rules/scores_*.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cd7kit.data import Result, Study
from cd7kit.errors import InputError, Problem

from . import easix, hematotox
from .easix import compute_easix, easix_frame
from .hematotox import compute_hematotox, hematotox_frame


def default_options() -> dict[str, Any]:
    """Every option of every score with its default."""
    return {**hematotox.default_options(), **easix.default_options()}


def compute_scores(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """CAR-HEMATOTOX (total and risk group per subject), daily EASIX / s-EASIX / m-EASIX and EASIX-pre."""
    options = dict(options or {})
    hopts = hematotox.default_options()
    eopts = easix.default_options()
    unknown = [k for k in options if k not in hopts and k not in eopts]
    if unknown:
        raise InputError([Problem("unknown option for scores", column=k, value=options[k], expected=", ".join(sorted(default_options()))) for k in unknown])
    h = {k: v for k, v in options.items() if k in hopts}
    e = {k: v for k, v in options.items() if k in eopts}
    return compute_hematotox(study, subject_id, h) + compute_easix(study, subject_id, e)


__all__ = ["compute_scores", "compute_hematotox", "compute_easix", "hematotox_frame", "easix_frame", "default_options"]
