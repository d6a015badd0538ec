"""Clinical engines over a Study: grading, DLT derivation, prognostic scores, response, TA-TMA.

Pure functions (no database, no printing). Entry points:

* :func:`grade_all` -- the graders of :mod:`cd7kit.clinical.grading` (``crs``, ``icans``, ``ctcae``,
  ``icaht``) and, when asked, the scores, response and TA-TMA assessments, as lists of
  :class:`~cd7kit.data.Result` per system;
* :func:`grading_overview` -- per subject: maximum CRS and ICANS grade, worst cytopenia grades, early ICAHT
  and best overall response (for ``cd7kit demo``);
* :func:`cd7kit.clinical.dlt.dlt_events` -- DLT events for the dose-escalation engine.

Submodules are imported lazily so that importing :mod:`cd7kit.clinical` stays cheap.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from cd7kit.data import Result, Study

#: Systems :func:`grade_all` knows, in output order.
SYSTEMS = ("crs", "icans", "ctcae", "icaht", "scores", "response", "tma")
GRADING_SYSTEMS = ("crs", "icans", "ctcae", "icaht")

#: Rule files whose declared options belong to each grading system (for routing bare option names).
_OPTION_FILES = {"crs": "astct_crs", "icans": "astct_icans", "ctcae": "ctcae_options", "icaht": "icaht", "dlt": "dlt"}


#: The function behind each system: (module of this package, function name); imported on first use.
_RUNNERS = {
    "crs": ("grading.crs", "grade_crs"),
    "icans": ("grading.icans", "grade_icans"),
    "ctcae": ("grading.ctcae", "grade_ctcae"),
    "icaht": ("grading.icaht", "grade_icaht"),
    "scores": ("scores", "compute_scores"),
    "response": ("response", "assess_response"),
    "tma": ("tma", "assess_tma"),
    "dlt": ("dlt", "derive_dlt"),
}


def _runner(system: str) -> Any:
    module, name = _RUNNERS[system]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def split_options(options: Mapping[str, Any] | None, systems: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Route ``system.name=value`` options to their system (prefix removed for scores/response/tma).

    A bare ``name`` goes to the only system asked for; with several systems it must carry a prefix,
    unless exactly one of the grading systems declares it.
    """
    from cd7kit.errors import InputError, Problem

    from .grading._common import option_specs

    systems = list(systems)
    out: dict[str, dict[str, Any]] = {s: {} for s in systems}
    problems: list[Problem] = []
    for key, value in (options or {}).items():
        key = str(key)
        if "." in key:
            prefix, name = key.split(".", 1)
            if prefix not in out:
                if prefix in SYSTEMS or prefix == "dlt":
                    continue  # an option of a system not run this time
                problems.append(Problem("unknown option prefix", column=key, value=value, expected=", ".join(list(SYSTEMS) + ["dlt"])))
                continue
            out[prefix][name if prefix not in _OPTION_FILES else key] = value
        elif len(systems) == 1:
            out[systems[0]][key] = value
        else:
            owners = [s for s in systems if s in _OPTION_FILES and key in option_specs(_OPTION_FILES[s])]
            if len(owners) != 1:
                problems.append(Problem("ambiguous or unknown option: prefix it with its system (e.g. crs.include_inotropes)", column=key, value=value, expected="system.name"))
                continue
            out[owners[0]][owners[0] + "." + key] = value
    if problems:
        raise InputError(problems)
    return out


def grade_all(
    study: Study,
    subject_id: str | None = None,
    systems: Iterable[str] = GRADING_SYSTEMS,
    options: Mapping[str, Any] | None = None,
) -> dict[str, list[Result]]:
    """Run several systems on the same Study; ``{system: [Result, ...]}`` in the order asked."""
    systems = list(systems)
    unknown = [s for s in systems if s not in SYSTEMS and s != "dlt"]
    if unknown:
        from cd7kit.errors import InputError, Problem

        raise InputError([Problem("unknown grading system", column="system", value=s, expected=", ".join(SYSTEMS)) for s in unknown])
    routed = split_options(options, systems)
    st = study
    if subject_id is not None:
        if subject_id not in set(study.subjects["subject_id"]):
            from cd7kit.errors import InputError, Problem

            raise InputError([Problem("no such subject in the study", column="subject_id", value=subject_id, expected=", ".join(map(str, study.subjects["subject_id"][:20])))])
        st = study.subject(subject_id)
    with _gc_paused():
        return {s: _runner(s)(st, None, routed[s]) for s in systems}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the engines build their results.

    A run over 1,000 subjects creates a few hundred thousand small containers (results, evidence, details);
    the collector would otherwise re-scan them many times during the build (about a fifth of the run time in
    bench_grading). Nothing here creates reference cycles that need collecting; the previous state is
    restored afterwards, and the collector then runs as usual.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def grading_overview(study: Study, options: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per subject: max CRS and ICANS grade, worst cytopenia grades (CTCAE), early ICAHT, best response."""
    res = grade_all(study, systems=("crs", "icans", "ctcae", "icaht"), options=options)
    out: dict[str, dict[str, Any]] = {str(s): {"max_crs": None, "max_icans": None, "worst_cytopenia": {}, "icaht_early": None} for s in study.subjects["subject_id"]}
    for r in res["crs"]:
        out[str(r.subject_id)]["max_crs"] = r.value
    for r in res["icans"]:
        out[str(r.subject_id)]["max_icans"] = r.value
    cyto = {"neutrophil_count_decreased", "platelet_count_decreased", "thrombocytopenia", "anemia", "white_blood_cell_decreased", "lymphocyte_count_decreased"}
    for r in res["ctcae"]:
        term = r.name.split(":", 1)[1]
        if term in cyto:
            out[str(r.subject_id)]["worst_cytopenia"][term] = r.value
    for r in res["icaht"]:
        if r.name == "icaht:early":
            out[str(r.subject_id)]["icaht_early"] = r.value
    try:
        from .response import assess_response
    except ImportError:  # grading B's module not present in this build
        return out
    for r in assess_response(study):
        if r.name == "Best overall response" and str(r.subject_id) in out:
            out[str(r.subject_id)]["best_response"] = r.value
    return out


__all__ = ["grade_all", "grading_overview", "split_options", "SYSTEMS", "GRADING_SYSTEMS"]
