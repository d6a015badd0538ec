"""TITE-BOIN: BOIN with late-onset toxicity -- decisions with pending patients, decision table, simulation.

Sources: Yuan Y, Lin R, Li D, Nie L, Warren KE (2018) Clin Cancer Res 24:4921-4930 (TITE-BOIN, single
mean imputation); Lin R, Yuan Y (2020) Biostatistics 21:807-824 (time-to-event BOIN/keyboard/mTPI via
the effective sample size); CRAN TITEgBOIN 0.4.0 (``next_TITE_QuasiBOIN``, ``get_oc_TITE_QuasiBOIN``).

At the current dose with n patients, y observed DLTs and c pending patients (no DLT yet, follow-up
t_i shorter than the window T), STFT = sum(t_i / T) (the uniform time-to-DLT prior of TITEgBOIN):

* ``estimator="ess"`` (Lin & Yuan 2020, TITEgBOIN): p_hat = y / (n - c + STFT); de-escalate if
  p_hat >= lambda_d.
* ``estimator="imputation"`` (Yuan et al. 2018): pi_hat = (y + phi/2) / (n - c + 1) (Beta(phi/2, 1 - phi/2)
  prior, completed patients), p_hat = (y + pi_hat/(1 - pi_hat) (c - STFT)) / n; de-escalation uses the
  observed count, y >= BOIN's de-escalation boundary at n.

Both: accrual is suspended while c > maxpen x n (maxpen 0.5) or no patient at the dose is evaluable;
elimination uses the observed y/n with Beta(1,1) (n >= 3); escalate if p_hat <= lambda_e (stay if the
next dose is eliminated or this is the highest); at the lowest dose a de-escalation means stay;
n.earlystop stops only on a "stay". Simulation: Weibull time to DLT with P(DLT by T) = p_true and a
share ``alpha1`` (0.5) of DLTs in the first half of the window; exponential inter-arrival times
(``accrual`` patients per time unit); the next decision is taken at the next arrival, later if
accrual is suspended (until the next DLT or completed follow-up); the MTD is selected with BOIN's
isotonic rule once every patient's window is complete. Two uniforms per patient (arrival, toxicity).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from cd7kit.data.result import Rule
from cd7kit.errors import InputError, Problem

from . import boin as B
from ._boin_fast import select_mtd_kernel
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

SYSTEM = "TITE-BOIN"
VERSION = "Yuan et al. 2018 / Lin & Yuan 2020; TITEgBOIN 0.4.0 rules"
SOURCE = "Yuan et al., Clin Cancer Res 2018;24:4921-4930; Lin & Yuan, Biostatistics 2020;21:807-824; CRAN TITEgBOIN 0.4.0"


def estimate(n: int, y: int, c: int, stft: float, target: float, estimator: str) -> float | None:
    """The DLT-rate estimate at a dose with pending patients (``None`` if no patient is evaluable)."""
    if estimator == "ess":
        den = n - c + stft
        return None if den <= 0 else y / den
    if n <= 0:
        return None
    pi = (y + target / 2) / (n - c + 1)
    return (y + pi / (1 - pi) * (c - stft)) / n


@dataclass(frozen=True)
class TiteBoin:
    """TITE-BOIN design with the common interface; times are in the unit of ``window``."""

    target: float = 0.3
    ncohort: int = 10
    cohortsize: int = 3
    startdose: int = 1
    window: float = 28.0
    accrual: float = 10.0
    estimator: str = "ess"
    maxpen: float = 0.5
    n_earlystop: int = 100
    cutoff_eli: float = 0.95
    p_saf: float | None = None
    p_tox: float | None = None
    alpha1: float = 0.5

    name = "tite-boin"

    def __post_init__(self) -> None:
        problems = []
        if self.estimator not in ("ess", "imputation"):
            problems.append(Problem("unknown TITE estimator", column="estimator", value=self.estimator, expected="ess or imputation"))
        if self.window <= 0 or self.accrual <= 0:
            problems.append(Problem("window and accrual must be positive", column="window", value=(self.window, self.accrual)))
        if not 0 < self.alpha1 < 1:
            problems.append(Problem("alpha1 must be in (0, 1)", column="alpha1", value=self.alpha1))
        if problems:
            raise InputError(problems)
        B.check_design(self.target, self.p_saf, self.p_tox, 0.05, self.cutoff_eli)

    @property
    def lambdas(self) -> tuple[float, float]:
        ps, pt = B.check_design(self.target, self.p_saf, self.p_tox, 0.05, self.cutoff_eli)
        return B.lambdas(self.target, ps, pt)

    @property
    def rule(self) -> Rule:
        return Rule(SYSTEM, VERSION, {"target": self.target, "estimator": self.estimator, "window": self.window, "maxpen": self.maxpen,
                                      "cutoff_eli": self.cutoff_eli, "n_earlystop": self.n_earlystop, "ncohort": self.ncohort,
                                      "cohortsize": self.cohortsize, "accrual": self.accrual}, SOURCE)

    # -- conduct ----------------------------------------------------------------------------------
    def next_dose(self, data: TrialData | Mapping[str, Any]) -> Decision:
        """Next dose with pending patients: ``data.pending[d]`` = follow-up times of dose d's pending patients."""
        d = as_trial_data(data)
        if d.current is None:
            raise InputError([Problem("the current dose is needed", column="current")])
        lam_e, lam_d = self.lambdas
        nn, yy = list(d.n), list(d.y)
        nd = len(nn)
        k = d.current - 1
        pend = d.pending[k] if d.pending else ()
        c = len(pend)
        stft = sum(min(t, self.window) / self.window for t in pend)
        elim, _f, _s = B._eliminated(nn, yy, self.target, self.cutoff_eli, False, 0.05)
        eliminated = [i + 1 for i in range(nd) if elim[i]]
        details: dict[str, Any] = {"n": nn, "y": yy, "pending": c, "stft": stft, "lambda_e": lam_e, "lambda_d": lam_d}
        ev = d.data_evidence()

        def dec(value: int | None, action: str, reason: str, mtd: MtdSelection | None = None) -> Decision:
            return Decision(value, action, k + 1, reason, self.rule, ev, (), eliminated, mtd, details)

        if elim[0]:
            return dec(None, "stop", f"dose 1 is eliminated (P(toxicity > {self.target}) > {self.cutoff_eli}): stop, no MTD")
        if sum(nn) >= self.ncohort * self.cohortsize:
            return dec(None, "stop", "the maximum sample size is reached: stop and select the MTD when every window is complete",
                       B.select_mtd(self.target, nn, yy, self.cutoff_eli))
        n, y = nn[k], yy[k]
        if n == 0:
            raise InputError([Problem("no patient has been treated at the current dose", column="current", value=k + 1)])
        if elim[k]:
            return dec(k, "de-escalate", f"dose {k + 1} is eliminated: de-escalate")
        if c > self.maxpen * n:
            return dec(k + 1, "suspend", f"{c} of {n} patients at dose {k + 1} are pending (> {self.maxpen:.0%}): suspend accrual")
        ph = estimate(n, y, c, stft, self.target, self.estimator)
        if ph is None:
            return dec(k + 1, "suspend", f"no evaluable patient at dose {k + 1}: suspend accrual")
        details["p_hat"] = ph
        be, bd, _el = B._thresholds(n, self.target, lam_e, lam_d, self.cutoff_eli)
        top = k == nd - 1
        next_elim = (not top) and elim[k + 1]
        deesc = ph >= lam_d if self.estimator == "ess" else y >= bd
        esc = ph <= lam_e
        stay = not esc and not deesc or (esc and (top or next_elim)) or (deesc and k == 0)
        obs = f"{y} DLT, {c} pending (STFT {stft:.2f}) of {n} at dose {k + 1}: p_hat = {ph:.3f}"
        if deesc and k == 0 and c > 0:
            return dec(k + 1, "suspend", f"{obs}: de-escalation at the lowest dose with pending patients: suspend accrual")
        if n >= self.n_earlystop and stay:
            return dec(None, "stop", f"{obs}; {n} patients at the dose and the decision is to stay: stop and select the MTD",
                       B.select_mtd(self.target, nn, yy, self.cutoff_eli))
        if esc and not top and not next_elim:
            return dec(k + 2, "escalate", f"{obs} <= lambda_e = {lam_e:.4f}: escalate")
        if deesc and k > 0:
            return dec(k, "de-escalate", f"{obs}: de-escalate")
        return dec(k + 1, "stay", f"{obs}: stay")

    def select_mtd(self, data: TrialData | Mapping[str, Any]) -> MtdSelection:
        d = as_trial_data(data)
        return B.select_mtd(self.target, d.n, d.y, self.cutoff_eli)

    def decision_table(self, full: bool = False) -> dict[str, Any]:
        """Decisions over n (multiples of the cohort size), DLTs y and pending c; escalation needs STFT >= a threshold.

        Each row: n, y, pending, decision ("escalate", "stay", "de-escalate", "eliminate", "suspend") and, where
        the decision depends on follow-up, ``escalate_if_stft_ge`` (total follow-up of pending patients in
        windows) above which it is "escalate" (below: "stay").
        """
        lam_e, lam_d = self.lambdas
        rows = []
        N = self.ncohort * self.cohortsize
        ns = range(1, N + 1) if full else range(self.cohortsize, N + 1, self.cohortsize)
        for n in ns:
            be, bd, el = B._thresholds(n, self.target, lam_e, lam_d, self.cutoff_eli)
            for y in range(0, n + 1):
                if el is not None and y >= el:
                    rows.append({"n": n, "y": y, "pending": None, "decision": "eliminate", "escalate_if_stft_ge": None})
                    continue
                for c in range(0, n - y + 1):
                    row: dict[str, Any] = {"n": n, "y": y, "pending": c, "escalate_if_stft_ge": None}
                    if c > self.maxpen * n:
                        row["decision"] = "suspend"
                    elif self.estimator == "imputation" and y >= bd:
                        row["decision"] = "de-escalate"
                    elif c == 0:
                        ph = y / n
                        row["decision"] = "escalate" if ph <= lam_e else "de-escalate" if ph >= lam_d else "stay"
                    else:
                        row.update(self._stft_rule(n, y, c, lam_e, lam_d))
                    rows.append(row)
        return {"design": "tite-boin", "estimator": self.estimator, "lambda_e": lam_e, "lambda_d": lam_d, "window": self.window, "table": rows,
                "rule": self.rule.to_dict()}

    def _stft_rule(self, n: int, y: int, c: int, lam_e: float, lam_d: float) -> dict[str, Any]:
        """Decision with c pending as a function of STFT in [0, c)."""
        if self.estimator == "ess":
            # p_hat = y / (n - c + s): decreasing in s
            if y == 0:
                return {"decision": "escalate" if n - c > 0 else "escalate once any follow-up accrues", "escalate_if_stft_ge": None if n - c > 0 else 0.0}
            s_esc = y / lam_e - (n - c)  # escalate if s >= s_esc
            s_deesc = y / lam_d - (n - c)  # de-escalate if s <= s_deesc
            if s_esc <= 0:
                return {"decision": "escalate", "escalate_if_stft_ge": None}
            if s_deesc >= c:
                return {"decision": "de-escalate", "escalate_if_stft_ge": None}
            if s_esc < c:
                return {"decision": "escalate if STFT >= threshold, else " + (f"de-escalate if STFT <= {s_deesc:.3f}" if s_deesc > 0 else "stay"),
                        "escalate_if_stft_ge": round(s_esc, 4), "deescalate_if_stft_le": round(s_deesc, 4) if s_deesc > 0 else None}
            if s_deesc > 0:
                return {"decision": "stay; de-escalate if STFT <= threshold", "deescalate_if_stft_le": round(s_deesc, 4)}
            return {"decision": "stay"}
        pi = (y + self.target / 2) / (n - c + 1)
        # p_hat <= lam_e  <=>  c - s <= (n lam_e - y)(1 - pi)/pi
        s_esc = c - (n * lam_e - y) * (1 - pi) / pi
        if n * lam_e - y < 0:
            return {"decision": "stay"}
        if s_esc <= 0:
            return {"decision": "escalate"}
        if s_esc < c:
            return {"decision": "escalate if STFT >= threshold, else stay", "escalate_if_stft_ge": round(s_esc, 4)}
        return {"decision": "stay"}

    # -- simulation -------------------------------------------------------------------------------
    def weibull(self, p: float) -> tuple[float, float]:
        """(shape k, scale) of the Weibull time to DLT with F(window) = p and F(window/2) = alpha1 p."""
        p = min(max(p, 1e-12), 1 - 1e-12)
        A = -math.log(1 - p)
        Bv = -math.log(1 - self.alpha1 * p)
        k = math.log(A / Bv) / math.log(2.0)
        return k, self.window / A ** (1 / k)

    def simulate(self, p_true: Sequence[float], ntrial: int = 1000, seed: int | None = 6, rng: str = "numpy", per_trial: bool = False,
                 engine: str = "fast") -> OperatingCharacteristics:
        """Operating characteristics and trial duration; ``engine="reference"`` runs :meth:`next_dose` in Python on the same uniforms."""
        p = check_p_true(p_true)
        lam_e, lam_d = self.lambdas
        N = self.ncohort * self.cohortsize
        b = B.boundaries(self.target, self.ncohort, self.cohortsize, N, self.p_saf, self.p_tox, self.cutoff_eli)
        t = B._sim_tables(b)
        shape = np.array([self.weibull(float(v))[0] for v in p])
        scale = np.array([self.weibull(float(v))[1] for v in p])
        stream = make_stream(rng, seed)
        u = stream.runif(ntrial * N * 2)
        w = stream.runif(ntrial * N * 2)
        if engine == "reference":
            Nm, Ym, sel, dur = self._simulate_reference(u, w, p, shape, scale, ntrial)
            rule = Rule(SYSTEM, VERSION, {**self.rule.options, "ntrial": ntrial, "seed": seed, "rng": rng, "alpha1": self.alpha1, "engine": engine}, SOURCE)
            return summarise("tite-boin", p, self.target, Nm, Ym, sel, N, rule, per_trial, duration=dur)
        Nm, Ym, sel, dur = _simulate(u, w, p, shape, scale, int(ntrial), int(self.ncohort), int(self.cohortsize), int(self.startdose - 1), float(self.window),
                                     float(self.accrual), self.estimator == "ess", float(self.maxpen), int(self.n_earlystop), float(self.target),
                                     float(lam_e), float(lam_d), t.be, t.bd, t.el, t.stop)
        rule = Rule(SYSTEM, VERSION, {**self.rule.options, "ntrial": ntrial, "seed": seed, "rng": rng, "alpha1": self.alpha1}, SOURCE)
        return summarise("tite-boin", p, self.target, Nm, Ym, sel, N, rule, per_trial, duration=dur)

    def _simulate_reference(self, u: np.ndarray, w: np.ndarray, p: np.ndarray, shape: np.ndarray, scale: np.ndarray, ntrial: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The simulation in plain Python, every decision by :meth:`next_dose` (same uniforms as the kernel)."""
        nd, cs, T, Nmax = len(p), self.cohortsize, self.window, self.ncohort * self.cohortsize
        Nm = np.zeros((ntrial, nd), dtype=np.int64)
        Ym = np.zeros((ntrial, nd), dtype=np.int64)
        sel = np.zeros(ntrial, dtype=np.int64)
        dur = np.zeros(ntrial)
        pos = wpos = 0
        for trial in range(ntrial):
            pts: list[tuple[float, float, int]] = []  # arrival, time to DLT (inf: none in the window), dose
            d, now, earlystop = self.startdose - 1, 0.0, False
            for _c in range(self.ncohort):
                for k in range(cs):
                    gap = -math.log(u[pos]) / self.accrual
                    v = u[pos + 1]
                    pos += 2
                    if not pts or k > 0:
                        now += gap
                    t_dlt = scale[d] * (-math.log(1.0 - v)) ** (1.0 / shape[d]) if v < p[d] else math.inf
                    pts.append((now, t_dlt, d))
                if len(pts) >= Nmax:
                    break
                now += -math.log(u[pos]) / self.accrual
                stop = False
                while True:
                    n = [0] * nd
                    y = [0] * nd
                    pend: list[list[float]] = [[] for _ in range(nd)]
                    for a, t_dlt, dj in pts:
                        n[dj] += 1
                        if a + t_dlt <= now:
                            y[dj] += 1
                        elif now - a < T:
                            pend[dj].append(now - a)
                    dec = self.next_dose(TrialData.of(n, y, d + 1, pend))
                    if dec.action == "stop":
                        earlystop = dec.mtd is None
                        stop = True
                        break
                    if dec.action != "suspend":
                        assert dec.value is not None
                        d = dec.value - 1
                        break
                    events = [a + min(t_dlt, T) for a, t_dlt, dj in pts if dj == d and not a + t_dlt <= now and now - a < T]
                    now = min(events) + (-math.log(w[wpos % len(w)]) / self.accrual)
                    wpos += 1
                if stop:
                    break
            n = [0] * nd
            y = [0] * nd
            for _a, t_dlt, dj in pts:
                n[dj] += 1
                y[dj] += t_dlt <= T
            Nm[trial], Ym[trial] = n, y
            if earlystop:
                dur[trial] = now
            else:
                dur[trial] = max(a + min(t_dlt, T) for a, t_dlt, _ in pts)
                m = B.select_mtd(self.target, n, y, self.cutoff_eli)
                sel[trial] = 0 if m.mtd is None else m.mtd
        return Nm, Ym, sel, dur


@njit(cache=True)
def _simulate(u, w, p, shape, scale, ntrial, ncohort, cs, start, T, accrual, ess, maxpen, n_earlystop, target, lam_e, lam_d, be, bd, el, stop):  # pragma: no cover - compiled
    """Two uniforms per patient in ``u`` (arrival gap, toxicity); ``w`` gives the arrival gaps after a suspension."""
    nd = p.shape[0]
    Nmax = ncohort * cs
    Nm = np.zeros((ntrial, nd), dtype=np.int64)
    Ym = np.zeros((ntrial, nd), dtype=np.int64)
    sel = np.zeros(ntrial, dtype=np.int64)
    dur = np.zeros(ntrial)
    arr = np.zeros(Nmax)
    tdlt = np.zeros(Nmax)
    dose = np.zeros(Nmax, dtype=np.int64)
    elim = np.zeros(nd, dtype=np.bool_)
    n = np.zeros(nd, dtype=np.int64)
    y = np.zeros(nd, dtype=np.int64)
    pos = 0
    wpos = 0
    nw = w.shape[0]
    for trial in range(ntrial):
        elim[:] = False
        d = start
        npat = 0
        now = 0.0
        earlystop = False
        done = False
        for _c in range(ncohort):
            # enrol one cohort at dose d: patient arrivals are exponential gaps apart; the cohort's first
            # patient arrives at the decision time `now` (its gap uniform was the wait before the decision)
            for k in range(cs):
                gap = -math.log(u[pos]) / accrual
                v = u[pos + 1]
                pos += 2
                if npat == 0 or k > 0:
                    now = now + gap
                arr[npat] = now
                dose[npat] = d
                tdlt[npat] = scale[d] * (-math.log(1.0 - v)) ** (1.0 / shape[d]) if v < p[d] else np.inf
                npat += 1
            if npat >= Nmax:
                break
            now = now + (-math.log(u[pos]) / accrual)  # the next patient arrives: decide then
            while True:
                n[:] = 0
                y[:] = 0
                c = 0
                stft = 0.0
                nxt_event = np.inf
                for j in range(npat):
                    dj = dose[j]
                    n[dj] += 1
                    if arr[j] + tdlt[j] <= now:
                        y[dj] += 1
                    elif now - arr[j] < T and dj == d:
                        c += 1
                        stft += (now - arr[j]) / T
                        ev = arr[j] + min(tdlt[j], T)
                        if ev < nxt_event:
                            nxt_event = ev
                for i in range(nd):
                    if n[i] >= 3 and el[n[i]] >= 0 and y[i] >= el[n[i]]:
                        for kk in range(i, nd):
                            elim[kk] = True
                        break
                if elim[0]:
                    earlystop = True
                    break
                nc = n[d]
                yc = y[d]
                if elim[d]:
                    d -= 1
                    break
                suspend = c > maxpen * nc
                ph = 0.0
                if not suspend:
                    if ess:
                        den = nc - c + stft
                        if den <= 0:
                            suspend = True
                        else:
                            ph = yc / den
                    else:
                        pi = (yc + target / 2) / (nc - c + 1)
                        ph = (yc + pi / (1 - pi) * (c - stft)) / nc
                if not suspend:
                    top = d == nd - 1
                    next_elim = False
                    if not top:
                        next_elim = elim[d + 1]
                    if ess:
                        deesc = ph >= lam_d
                    else:
                        deesc = yc >= bd[nc]
                    esc = ph <= lam_e
                    if deesc and d == 0 and c > 0:
                        suspend = True
                    else:
                        stay = (not esc and not deesc) or (esc and (top or next_elim)) or (deesc and d == 0)
                        if nc >= n_earlystop and stay:
                            done = True
                            break
                        if esc and not top and not next_elim:
                            d += 1
                        elif deesc and d > 0:
                            d -= 1
                        break
                if nxt_event == np.inf:
                    break
                # suspended: patients arriving meanwhile are not enrolled; after the next DLT or completed
                # window the next patient arrives an exponential gap later (memoryless accrual)
                now = nxt_event + (-math.log(w[wpos % nw]) / accrual)
                wpos += 1
            if earlystop or done:
                break
        n[:] = 0
        y[:] = 0
        last = 0.0
        for j in range(npat):
            n[dose[j]] += 1
            end = arr[j] + min(tdlt[j], T)
            if tdlt[j] <= T:
                y[dose[j]] += 1
            if end > last:
                last = end
        if earlystop:
            dur[trial] = now
            sel[trial] = 0
        else:
            dur[trial] = last
            sel[trial] = select_mtd_kernel(n, y, el, stop, target, False, False, lam_d)
        for i in range(nd):
            Nm[trial, i] = n[i]
            Ym[trial, i] = y[i]
    return Nm, Ym, sel, dur


__all__ = ["TiteBoin", "estimate"]
