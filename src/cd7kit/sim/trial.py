"""The virtual-patient side of in-silico dose-escalation trials.

The escalation engine (``cd7kit.trial``, owned by the trial engineer) simulates designs from per-dose DLT
probabilities ``p_true``. This module supplies them from virtual patients instead of fixed guesses:

* :func:`dlt_outcomes` -- DLT yes/no (and time) for ``n`` fresh virtual patients at one dose level;
* :func:`dlt_probabilities` -- P(DLT) per dose level estimated from ``n_per_dose`` virtual patients, with a
  binomial standard error.

How to plug it in::

    from cd7kit.sim.trial import dlt_probabilities
    from cd7kit.trial import get_design
    p = dlt_probabilities("NCT06849401", n_per_dose=2000, seed=1)
    oc = get_design("boin", target=0.3).simulate(p_true=p.p, ntrial=1000)

For trial-by-trial simulation with individual patients, draw cohorts with :func:`dlt_outcomes` (one
call per cohort, a new seed per call) and feed the DLT counts to the design's ``next_dose``.

DLT definition used here [D]: grade >= 3 CRS within the 28-day window (from the simulated vitals and
support, as in :mod:`cd7kit.sim.cohort`) or ANC < 0.5 x 10^9/L still at day 28 after the first
infusion (prolonged grade 4 neutropenia). It is simulation-grade, not the protocol's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .cohort import FACEMASK_SPO2, VASOPRESSOR_SBP, Design, _design, _vitals, simulate_arrays


@dataclass(frozen=True)
class DltProbabilities:
    design: str
    doses_per_kg: tuple[float, ...]
    p: tuple[float, ...]
    se: tuple[float, ...]
    n_per_dose: int
    seed: int
    p_crs3: tuple[float, ...]
    p_neutropenia: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "virtual_patient_dlt_probabilities",
            "value": list(self.p),
            "details": {
                "design": self.design,
                "doses_per_kg": list(self.doses_per_kg),
                "se": list(self.se),
                "n_per_dose": self.n_per_dose,
                "p_grade3_crs": list(self.p_crs3),
                "p_prolonged_neutropenia": list(self.p_neutropenia),
            },
            "rule": {"system": "cd7kit.sim virtual patients (CK7)", "version": "1", "options": {"seed": self.seed}, "source": "DLT: grade>=3 CRS by day 28 or ANC<0.5 at day 28 [D]"},
            "evidence": [],
            "missing": [],
        }


def dlt_outcomes(design: str | Design, dose_level: int, n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """DLT outcomes of ``n`` virtual patients at ``dose_level`` (1-based): ``dlt``, ``crs3``, ``neutropenia``."""
    a = simulate_arrays(n, design, seed=seed, days=28, dose_level=dose_level)
    v = _vitals(a)
    win = a["t"] <= 28
    hypo = (v["SBP"][:, win] < VASOPRESSOR_SBP).any(axis=1)
    severe_hypox = (v["SPO2"][:, win] < FACEMASK_SPO2).any(axis=1)
    crs3 = hypo | severe_hypox
    neut = a["anc"][:, -1] < 0.5
    return {"dlt": crs3 | neut, "crs3": crs3, "neutropenia": neut}


def dlt_probabilities(design: str | Design = "NCT06849401", n_per_dose: int = 1000, seed: int = 1) -> DltProbabilities:
    """P(DLT) per dose level from virtual patients (independent seeds per level)."""
    d = _design(design)
    ps, ses, c3, nt = [], [], [], []
    for k in range(1, len(d.dose_levels) + 1):
        o = dlt_outcomes(d, k, n_per_dose, seed=seed * 1000 + k)
        p = float(o["dlt"].mean())
        ps.append(p)
        ses.append(float(np.sqrt(p * (1 - p) / n_per_dose)))
        c3.append(float(o["crs3"].mean()))
        nt.append(float(o["neutropenia"].mean()))
    return DltProbabilities(d.name, tuple(d.dose_levels), tuple(ps), tuple(ses), n_per_dose, seed, tuple(c3), tuple(nt))


__all__ = ["DltProbabilities", "dlt_outcomes", "dlt_probabilities"]
