"""The 3+3 design: decision rules, trial conduct, and operating characteristics by exact enumeration.

Rules (Storer 1989, Biometrics 45:925-937, "design A"; Le Tourneau, Lee, Siu 2009, J Natl Cancer Inst
101:708-720): treat 3 patients at the current dose; 0/3 DLT -> escalate; 1/3 -> treat 3 more at the
same dose; then <= 1/6 -> escalate; >= 2/3 or >= 2/6 -> the dose exceeds the MTD and the trial
stops with the next lower dose as MTD (none if it was the lowest). Clearing the highest dose
(0/3 or <= 1/6) stops with the highest dose as MTD. With ``deescalate=True`` (the "de-escalation"
variant used by many protocols and by MD Anderson's trial-design tools) the MTD must have 6 patients:
if the next lower dose has only 3, 3 more are treated there, and de-escalation continues while that
dose shows >= 2/6.

Operating characteristics are computed exactly by enumerating every sequence of cohort outcomes with
its binomial probability (no Monte-Carlo error); :func:`simulate` is the same rules run by simulation,
and the tests check that the two agree within Monte-Carlo error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import comb
from typing import Any

import numpy as np

from cd7kit.data.result import Rule
from cd7kit.errors import InputError, Problem

from .base import (
    Decision,
    MtdSelection,
    OperatingCharacteristics,
    TrialData,
    as_trial_data,
    check_p_true,
    summarise,
)
from .rng import make_stream

SYSTEM = "3+3"
VERSION = "Storer 1989 design A"
SOURCE = "Storer, Biometrics 1989;45:925-937; Le Tourneau et al., J Natl Cancer Inst 2009;101:708-720"
COHORT = 3


def _step(n: Sequence[int], y: Sequence[int], c: int, deescalate: bool) -> tuple[str, int | None, int | None, str]:
    """One 3+3 decision after a cohort at dose c (0-based): (action, next dose 0-based, MTD 0-based, reason).

    MTD ``-1`` means "no dose"; action is escalate | stay | de-escalate | stop.
    """
    nd = len(n)
    nc, yc = n[c], y[c]
    obs = f"{yc}/{nc} DLT at dose {c + 1}"
    if nc not in (3, 6):
        raise InputError([Problem(f"3+3 needs 3 or 6 patients at the current dose, found {nc}", column="n", value=nc, expected="3 or 6")])
    next_closed = c + 1 < nd and n[c + 1] > 0 and y[c + 1] >= 2
    if yc >= 2:  # the dose is too toxic
        if c == 0:
            return "stop", None, -1, f"{obs}: the lowest dose exceeds the MTD; stop, no MTD"
        if deescalate and n[c - 1] == 3:
            return "de-escalate", c - 1, None, f"{obs}: dose {c + 1} exceeds the MTD; treat 3 more at dose {c}"
        if deescalate and n[c - 1] == 6 and y[c - 1] >= 2:  # cannot happen by the rules, kept for safety
            return "stop", None, -1, f"{obs}: no dose below is tolerated; stop, no MTD"
        return "stop", None, c - 1, f"{obs}: dose {c + 1} exceeds the MTD; stop, MTD = dose {c}"
    if nc == 3 and yc == 1:
        return "stay", c, None, f"{obs}: treat 3 more at dose {c + 1}"
    if nc == 3 and yc == 0 and deescalate and next_closed:
        return "stay", c, None, f"{obs}: the next dose exceeds the MTD and the MTD needs 6 patients; treat 3 more"
    # cleared: 0/3 or <= 1/6
    if c == nd - 1:
        return "stop", None, c, f"{obs}: the highest dose is cleared; stop, MTD = dose {c + 1} (highest dose)"
    if next_closed:
        return "stop", None, c, f"{obs}: dose {c + 2} exceeds the MTD; stop, MTD = dose {c + 1}"
    return "escalate", c + 1, None, f"{obs}: escalate"


@dataclass(frozen=True)
class ThreePlusThree:
    """The 3+3 design with the common interface (``decision_table``, ``next_dose``, ``select_mtd``, ``simulate``, ``exact``)."""

    deescalate: bool = False
    startdose: int = 1

    name = "3+3"
    cohortsize = COHORT

    @property
    def rule(self) -> Rule:
        return Rule(SYSTEM, VERSION, {"deescalate": self.deescalate, "startdose": self.startdose}, SOURCE)

    def decision_table(self, full: bool = False) -> list[dict[str, Any]]:
        """The protocol table: action for each number of DLTs among 3 and among 6 patients."""
        rows = [
            {"n": 3, "dlt": "0", "action": "escalate (or stop with this dose as MTD at the highest dose)"},
            {"n": 3, "dlt": "1", "action": "treat 3 more patients at this dose"},
            {"n": 3, "dlt": ">= 2", "action": "stop; MTD = next lower dose" + ("  (after 3 more there if it has only 3)" if self.deescalate else "")},
            {"n": 6, "dlt": "<= 1", "action": "escalate (or stop with this dose as MTD at the highest dose)"},
            {"n": 6, "dlt": ">= 2", "action": "stop; MTD = next lower dose" + ("  (after 3 more there if it has only 3)" if self.deescalate else "")},
        ]
        return rows

    def next_dose(self, data: TrialData | Mapping[str, Any]) -> Decision:
        d = as_trial_data(data)
        if d.current is None:
            raise InputError([Problem("the current dose is needed", column="current")])
        action, nxt, mtd, reason = _step(d.n, d.y, d.current - 1, self.deescalate)
        sel = None
        if action == "stop":
            sel = self._selection(d, None if mtd is None or mtd < 0 else mtd + 1, reason)
        return Decision(None if nxt is None else nxt + 1, action, d.current, reason, self.rule, d.data_evidence(), (), [], sel, {"n": list(d.n), "y": list(d.y)})

    def _selection(self, d: TrialData, mtd: int | None, reason: str) -> MtdSelection:
        ph = [None if ni == 0 else yi / ni for ni, yi in zip(d.n, d.y, strict=True)]
        none = [None] * d.ndose
        return MtdSelection(mtd, float("nan"), ph, none, none, none, [], reason, self.rule, d.data_evidence())

    def select_mtd(self, data: TrialData | Mapping[str, Any]) -> MtdSelection:
        """The highest dose with >= 3 patients and < 2 DLTs (< 1/3 with 3, <= 1/6 with 6) below any dose with >= 2 DLTs."""
        d = as_trial_data(data)
        mtd = None
        for i, (ni, yi) in enumerate(zip(d.n, d.y, strict=True)):
            if ni == 0:
                break
            if yi >= 2:
                break
            if (ni == 3 and yi == 0) or (ni >= 6 and yi <= 1):
                mtd = i + 1
        reason = "highest dose cleared (0/3 or <= 1/6) below the first dose with >= 2 DLTs" if mtd else "no dose is cleared"
        return self._selection(d, mtd, reason)

    # -- operating characteristics ------------------------------------------------------------
    def exact(self, p_true: Sequence[float], target: float = 0.3) -> dict[str, Any]:
        """Exact OCs by enumeration: selection %, mean patients / DLTs per dose, stop %, mean n, overdose %.

        Overdose % = probability that more than 60% / 80% of the maximum sample size (6 per dose) is
        treated at doses with ``p_true > target``.
        """
        p = check_p_true(p_true)
        nd = len(p)
        max_n = 2 * COHORT * nd
        target_over = p > target
        sel = np.zeros(nd)
        stop = 0.0
        en = np.zeros(nd)
        ey = np.zeros(nd)
        od60 = od80 = 0.0
        pbin = [[comb(COHORT, k) * q**k * (1 - q) ** (COHORT - k) for k in range(COHORT + 1)] for q in p]

        def rec(n: tuple[int, ...], y: tuple[int, ...], c: int, prob: float) -> None:
            nonlocal stop, od60, od80
            for k in range(COHORT + 1):
                pk = prob * pbin[c][k]
                if pk == 0.0:
                    continue
                n2 = list(n)
                y2 = list(y)
                n2[c] += COHORT
                y2[c] += k
                action, nxt, mtd, _ = _step(n2, y2, c, self.deescalate)
                if action == "stop":
                    if mtd is None or mtd < 0:
                        stop += pk
                    else:
                        sel[mtd] += pk
                    na = np.array(n2, dtype=float)
                    en[:] += pk * na
                    ey[:] += pk * np.array(y2, dtype=float)
                    no = na[target_over].sum()
                    od60 += pk * (no > 0.6 * max_n)
                    od80 += pk * (no > 0.8 * max_n)
                else:
                    assert nxt is not None
                    rec(tuple(n2), tuple(y2), nxt, pk)

        rec(tuple([0] * nd), tuple([0] * nd), self.startdose - 1, 1.0)
        return {
            "selection_pct": 100 * sel,
            "patients_mean": en,
            "dlt_mean": ey,
            "stop_pct": 100 * stop,
            "n_mean": float(en.sum()),
            "dlt_total_mean": float(ey.sum()),
            "overdose60_pct": 100 * od60,
            "overdose80_pct": 100 * od80,
        }

    def exact_oc(self, p_true: Sequence[float], target: float = 0.3) -> dict[str, Any]:
        """:meth:`exact` as a JSON-ready dict with the design, scenario and rule."""
        out = self.exact(p_true, target)
        out.update({"design": "3+3", "method": "exact enumeration", "target": target, "p_true": list(map(float, p_true))})
        out["rule"] = self.rule.to_dict()
        return out

    def simulate(self, p_true: Sequence[float], ntrial: int = 1000, seed: int | None = 6, rng: str = "numpy", per_trial: bool = False, target: float = 0.3) -> OperatingCharacteristics:
        """The same rules by simulation (one uniform per patient); agrees with :meth:`exact` within MC error."""
        p = check_p_true(p_true)
        nd = len(p)
        max_cohorts = 2 * nd + (nd if self.deescalate else 0)
        u = make_stream(rng, seed).runif(ntrial * max_cohorts * COHORT).reshape(ntrial, max_cohorts * COHORT)
        N = np.zeros((ntrial, nd), dtype=np.int64)
        Y = np.zeros((ntrial, nd), dtype=np.int64)
        sel = np.zeros(ntrial, dtype=np.int64)
        for t in range(ntrial):
            n = [0] * nd
            y = [0] * nd
            c = self.startdose - 1
            pos = 0
            while True:
                k = int(np.sum(u[t, pos : pos + COHORT] < p[c]))
                pos += COHORT
                n[c] += COHORT
                y[c] += k
                action, nxt, mtd, _ = _step(n, y, c, self.deescalate)
                if action == "stop":
                    sel[t] = 0 if mtd is None or mtd < 0 else mtd + 1
                    break
                assert nxt is not None
                c = nxt
            N[t], Y[t] = n, y
        rule = Rule(SYSTEM, VERSION, {"deescalate": self.deescalate, "startdose": self.startdose, "ntrial": ntrial, "seed": seed, "rng": rng}, SOURCE)
        return summarise("3+3", p, target, N, Y, sel, 2 * COHORT * nd, rule, per_trial)


__all__ = ["ThreePlusThree"]
