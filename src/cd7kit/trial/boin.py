"""BOIN: the Bayesian optimal interval design (single agent), with the exact semantics of R BOIN 2.7.2.

Sources: Liu S, Yuan Y (2015) J R Stat Soc C 64:507-523 (the design); Yuan Y, Hess KR, Hilsenbeck SG,
Gilbert MR (2016) Clin Cancer Res 22:4291-4301 (Table 1: lambda_e/lambda_d; the protocol decision
table); Yan F et al. (2020) J Stat Softw 94(13) and the R package BOIN 2.7.2 (CRAN, 2021-01-19;
functions ``get.boundary``, ``get.oc``, ``select.mtd``), whose behaviour is reproduced here:

* boundaries: lambda_e = log((1-phi1)/(1-phi)) / log(phi(1-phi1)/(phi1(1-phi))), lambda_d likewise
  with phi2; p.saf = phi1 = 0.6 target, p.tox = phi2 = 1.4 target by default. Escalate if
  y <= floor(lambda_e n); de-escalate if y >= ceiling(lambda_d n), except that when lambda_d n is
  within 1e-12 of an integer k the threshold is k + 1 (2.7.2). Elimination (n >= 3): smallest y with
  P(p > target | y, n; Beta(1,1)) > cutoff.eli; the de-escalation threshold is capped by it.
* ``get.oc``: one uniform per patient in order, the last cohort truncated to the maximum sample size;
  elimination (and the extrasafe stop, evaluated only where an elimination boundary exists);
  n.earlystop "with stay" (2.6.8+); titration: ``ndose`` uniforms, one patient per dose up to the
  first DLT (or every dose), then the first cohort adds cohortsize-1 patients at that dose. (BOIN
  2.7.1 gave that first cohort one dose lower and only in the first simulated trial; 2.7.2 does not:
  the spec's get.oc titration example, 0.8/21.6/67.9/9.7/0.0, is reproduced only by the 2.7.2 rule.)
* ``select.mtd``: elimination scan, weighted PAVA (merging the first violation repeatedly) on
  (y+0.05)/(n+0.1) with weights 1/variance, + k*1e-10 tie breaking, closest to target; boundMTD
  (2.7.2: no MTD if every estimate > lambda_d, else among estimates <= lambda_d); 99 (here ``None``)
  when the lowest dose is eliminated. Display estimates and 95% intervals as select.mtd computes them
  (R prints the interval of the i-th *treated* dose against dose i when a dose is skipped; cd7kit
  reports each dose's own interval).

Simulation has a clear reference implementation (:func:`simulate_reference`, plain Python) and a
compiled one (:mod:`cd7kit.trial._boin_fast`, numba) that consume the same uniforms; tests check that
they agree trial by trial. With ``rng="r"`` the uniforms are R's Mersenne-Twister stream after
``set.seed(seed)`` so the result equals ``get.oc`` trial by trial.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from cd7kit.data.result import Evidence, Rule, jsonable
from cd7kit.errors import InputError, Problem

from ._kernels import binomial_cdf_table
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

SYSTEM = "BOIN"
VERSION = "R BOIN 2.7.2 semantics"
SOURCE = (
    "Liu & Yuan, J R Stat Soc C 2015;64:507-523; Yuan et al., Clin Cancer Res 2016;22:4291-4301 (Table 1); "
    "R package BOIN 2.7.2 (get.boundary, get.oc, select.mtd)"
)
NA = -1  # "no boundary" in integer tables


# ---------------------------------------------------------------------------------------------
# boundaries
# ---------------------------------------------------------------------------------------------
def check_design(
    target: float,
    p_saf: float | None = None,
    p_tox: float | None = None,
    offset: float = 0.05,
    cutoff_eli: float = 0.95,
) -> tuple[float, float]:
    """R BOIN's input checks; returns (p_saf, p_tox) with the defaults 0.6/1.4 x target."""
    problems: list[Problem] = []
    ps = 0.6 * target if p_saf is None else float(p_saf)
    pt = 1.4 * target if p_tox is None else float(p_tox)
    if target < 0.05:
        problems.append(Problem("the target is too low", column="target", value=target, expected=">= 0.05"))
    if target > 0.6:
        problems.append(Problem("the target is too high", column="target", value=target, expected="<= 0.6"))
    if (target - ps) < 0.1 * target:
        problems.append(Problem("the probability deemed safe cannot be higher than or too close to the target", column="p_saf", value=ps, expected=f"<= {0.9 * target:.4g}"))
    if ps <= 0:
        problems.append(Problem("p_saf must be positive", column="p_saf", value=ps, expected="> 0"))
    if (pt - target) < 0.1 * target:
        problems.append(Problem("the probability deemed toxic cannot be lower than or too close to the target", column="p_tox", value=pt, expected=f">= {1.1 * target:.4g}"))
    if pt >= 1:
        problems.append(Problem("p_tox must be below 1", column="p_tox", value=pt, expected="< 1"))
    if offset >= 0.5:
        problems.append(Problem("the offset is too large", column="offset", value=offset, expected="< 0.5"))
    if not 0 < cutoff_eli < 1:
        problems.append(Problem("the elimination cutoff must be a probability", column="cutoff_eli", value=cutoff_eli, expected="0 < cutoff < 1"))
    if problems:
        raise InputError(problems)
    return ps, pt


def lambdas(target: float, p_saf: float | None = None, p_tox: float | None = None) -> tuple[float, float]:
    """(lambda_e, lambda_d) of the local BOIN (equal prior probabilities of the three hypotheses)."""
    ps = 0.6 * target if p_saf is None else p_saf
    pt = 1.4 * target if p_tox is None else p_tox
    lam_e = math.log((1 - ps) / (1 - target)) / math.log(target * (1 - ps) / (ps * (1 - target)))
    lam_d = math.log((1 - target) / (1 - pt)) / math.log(pt * (1 - target) / (target * (1 - pt)))
    return lam_e, lam_d


def p_over(target: float, y: int, n: int) -> float:
    """P(p > target | y DLTs in n patients) with a Beta(1,1) prior (R: 1 - pbeta(target, y+1, n-y+1))."""
    return 1.0 - float(special.betainc(y + 1, n - y + 1, target))


def escalate_max(n: int, lam_e: float) -> int:
    return math.floor(lam_e * n)


def deescalate_min_raw(n: int, lam_d: float) -> int:
    """ceiling(lambda_d n), or k+1 when lambda_d n is within 1e-12 of an integer k (BOIN 2.7.2)."""
    x = lam_d * n
    k = round(x)
    if abs(x - k) < 1e-12:
        return int(k) + 1
    return math.ceil(x)


def eliminate_min(n: int, target: float, cutoff: float) -> int | None:
    """Smallest y in 1..n with P(p > target | y, n) > cutoff, for n >= 3; ``None`` otherwise."""
    if n < 3:
        return None
    for y in range(1, n + 1):
        if p_over(target, y, n) > cutoff:
            return y
    return None


@functools.lru_cache(maxsize=16)
def _p_over_grid(N: int, target: float) -> np.ndarray:
    """P(p > target | y, n) (Beta(1,1)) for n = 1..N (rows) and y = 1..N (columns); NaN where y > n."""
    n, y = np.tril_indices(N)
    grid = np.full((N, N), np.nan)
    grid[n, y] = 1.0 - special.betainc(y + 2, n - y + 1, target)  # row n-1, column y-1
    grid.flags.writeable = False
    return grid


def _eliminate_table(N: int, target: float, cutoff: float) -> np.ndarray:
    """:func:`eliminate_min` for n = 1..N at once (NA = -1); the same 1 - pbeta values, vectorised."""
    with np.errstate(invalid="ignore"):
        hit = _p_over_grid(N, float(target)) > cutoff
    hit[:2] = False  # no elimination below 3 patients
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, NA).astype(np.int64)


@dataclass(frozen=True)
class BoinBoundaries:
    """BOIN decision boundaries for n = 1..N patients at a dose (``get.boundary``'s full table)."""

    target: float
    p_saf: float
    p_tox: float
    lambda_e: float
    lambda_d: float
    cutoff_eli: float
    cohortsize: int
    ncohort: int
    n_earlystop: int
    extrasafe: bool
    offset: float
    n: np.ndarray
    escalate_max: np.ndarray
    deescalate_min: np.ndarray
    eliminate_min: np.ndarray  # NA (-1) where no elimination (n < 3)
    stop_min: np.ndarray | None  # extrasafe stopping boundary for the lowest dose

    def rows(self, full: bool = True) -> list[dict[str, Any]]:
        """Rows of the table: every n (``full``) or n = cohortsize, 2 cohortsize, ... up to min(N, n.earlystop)."""
        last = min(int(self.n[-1]), self.n_earlystop)
        keep = [i for i in range(len(self.n)) if self.n[i] <= last and (full or self.n[i] % self.cohortsize == 0)]
        out = []
        for i in keep:
            row: dict[str, Any] = {
                "n": int(self.n[i]),
                "escalate_max": int(self.escalate_max[i]),
                "deescalate_min": int(self.deescalate_min[i]),
                "eliminate_min": None if self.eliminate_min[i] == NA else int(self.eliminate_min[i]),
            }
            if self.stop_min is not None:
                row["stop_min"] = None if self.stop_min[i] == NA else int(self.stop_min[i])
            out.append(row)
        return out

    @property
    def rule(self) -> Rule:
        return Rule(
            SYSTEM,
            VERSION,
            {
                "target": self.target,
                "p_saf": self.p_saf,
                "p_tox": self.p_tox,
                "cutoff_eli": self.cutoff_eli,
                "extrasafe": self.extrasafe,
                "offset": self.offset,
                "ncohort": self.ncohort,
                "cohortsize": self.cohortsize,
                "n_earlystop": self.n_earlystop,
            },
            SOURCE,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"lambda_e": self.lambda_e, "lambda_d": self.lambda_d, "table": self.rows(full=True)}
        d["cohort_table"] = self.rows(full=False)
        if self.extrasafe:
            d["stop_cutoff"] = self.cutoff_eli - self.offset
        d["rule"] = self.rule.to_dict()
        return jsonable(d)


def boundaries(
    target: float,
    ncohort: int,
    cohortsize: int,
    n_earlystop: int = 100,
    p_saf: float | None = None,
    p_tox: float | None = None,
    cutoff_eli: float = 0.95,
    extrasafe: bool = False,
    offset: float = 0.05,
) -> BoinBoundaries:
    """BOIN boundaries as R BOIN 2.7.2 ``get.boundary`` (all n from 1 to ncohort x cohortsize)."""
    problems = []
    if ncohort < 1:
        problems.append(Problem("ncohort must be at least 1", column="ncohort", value=ncohort, expected=">= 1"))
    if cohortsize < 1:
        problems.append(Problem("cohortsize must be at least 1", column="cohortsize", value=cohortsize, expected=">= 1"))
    if problems:
        raise InputError(problems)
    ps, pt = check_design(target, p_saf, p_tox, offset, cutoff_eli)
    lam_e, lam_d = lambdas(target, ps, pt)
    N = ncohort * cohortsize
    ns = np.arange(1, N + 1)
    be = np.array([escalate_max(int(k), lam_e) for k in ns], dtype=np.int64)
    el = _eliminate_table(N, target, cutoff_eli)
    bd = np.array([deescalate_min_raw(int(k), lam_d) for k in ns], dtype=np.int64)
    cap = (el != NA) & (bd > el)
    bd[cap] = el[cap]
    stop = None
    if extrasafe:
        stop = _eliminate_table(N, target, cutoff_eli - offset)
    return BoinBoundaries(target, ps, pt, lam_e, lam_d, cutoff_eli, cohortsize, ncohort, n_earlystop, extrasafe, offset, ns, be, bd, el, stop)


def _thresholds(n: int, target: float, lam_e: float, lam_d: float, cutoff: float) -> tuple[int, int, int | None]:
    el = eliminate_min(n, target, cutoff)
    bd = deescalate_min_raw(n, lam_d)
    if el is not None and bd > el:
        bd = el
    return escalate_max(n, lam_e), bd, el


# ---------------------------------------------------------------------------------------------
# MTD selection
# ---------------------------------------------------------------------------------------------
def pava(x: Sequence[float] | np.ndarray, w: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Weighted pool-adjacent-violators as in R BOIN's select.mtd: merge the first violation, repeat.

    Pooled values are sums in extended precision (R's ``sum`` accumulates in long double).
    """
    xs = np.asarray(x, dtype=float).copy()
    ws = np.ones_like(xs) if w is None else np.asarray(w, dtype=float)
    n = len(xs)
    if n <= 1:
        return xs
    lvl = np.arange(n)
    while True:
        viol = np.flatnonzero(np.diff(xs) < 0)
        if not len(viol):
            return xs
        i = int(viol[0])
        members = (lvl == lvl[i]) | (lvl == lvl[i + 1])
        num = np.sum((xs[members] * ws[members]).astype(np.longdouble))
        den = np.sum(ws[members].astype(np.longdouble))
        xs[members] = float(num / den)
        lvl[members] = lvl[i]


def _eliminated(n: Sequence[int], y: Sequence[int], target: float, cutoff: float, extrasafe: bool, offset: float) -> tuple[list[bool], int | None, bool]:
    nd = len(n)
    elim = [False] * nd
    first = None
    for i in range(nd):
        if n[i] >= 3 and p_over(target, y[i], n[i]) > cutoff:
            first = i
            for j in range(i, nd):
                elim[j] = True
            break
    safe_stop = False
    if extrasafe and n[0] >= 3 and p_over(target, y[0], n[0]) > cutoff - offset:
        elim = [True] * nd
        safe_stop = True
    return elim, first, safe_stop


def select_mtd(
    target: float,
    n: Sequence[int] | TrialData | Mapping[str, Any],
    y: Sequence[int] | None = None,
    cutoff_eli: float = 0.95,
    extrasafe: bool = False,
    offset: float = 0.05,
    boundmtd: bool = False,
    p_tox: float | None = None,
) -> MtdSelection:
    """The MTD as R BOIN 2.7.2 ``select.mtd`` (``None`` for R's 99), with isotonic estimates and 95% CIs."""
    data = as_trial_data(n) if y is None else TrialData.of(n, y)  # type: ignore[arg-type]
    nn, yy = list(data.n), list(data.y)
    nd = len(nn)
    pt = 1.4 * target if p_tox is None else p_tox
    lam_d = lambdas(target, None, pt)[1]
    rule = Rule(SYSTEM, VERSION, {"target": target, "cutoff_eli": cutoff_eli, "extrasafe": extrasafe, "offset": offset, "boundmtd": boundmtd, "p_tox": pt}, SOURCE)
    elim, first, safe_stop = _eliminated(nn, yy, target, cutoff_eli, extrasafe, offset)
    adm = [nn[i] > 0 and not elim[i] for i in range(nd)]
    mtd: int | None
    missing: list[str] = []
    if elim[0] or sum(nn[i] for i in range(nd) if not elim[i]) == 0:
        mtd = None
        if safe_stop:
            reason = f"extrasafe: P(toxicity of dose 1 > {target}) > {cutoff_eli - offset:.3g}; no dose is selected"
        elif elim[0]:
            reason = f"dose 1 is eliminated (P(toxicity > {target}) > {cutoff_eli}); no dose is selected"
        else:
            reason = "no patient has been treated at an admissible dose"
            missing.append("patients treated at a dose that is not eliminated")
    else:
        idx = [i for i in range(nd) if adm[i]]
        ya = np.array([yy[i] for i in idx], dtype=float)
        na = np.array([nn[i] for i in idx], dtype=float)
        ph = (ya + 0.05) / (na + 0.1)
        var = (ya + 0.05) * (na - ya + 0.05) / ((na + 0.1) ** 2 * (na + 0.1 + 1))
        ph = pava(ph, 1 / var) + np.arange(1, len(ph) + 1) * 1e-10
        if boundmtd and np.all(ph > lam_d):
            mtd = None
            reason = f"boundMTD: every isotonic estimate exceeds lambda_d = {lam_d:.4f}; no dose is selected"
        else:
            cand = np.flatnonzero(ph <= lam_d) if boundmtd else np.arange(len(ph))
            dist = np.abs(ph[cand] - target)
            k = int(cand[int(np.argmin(dist))])  # argmin returns the first of equal values (R's stable sort)
            mtd = idx[k] + 1
            reason = f"isotonic estimate {ph[k]:.3f} is closest to the target {target}"
            if boundmtd:
                reason += f" among doses with estimate <= lambda_d = {lam_d:.4f}"
    # display estimates over treated doses (select.mtd's p_est and p_overdose)
    trt = [i for i in range(nd) if nn[i] > 0]
    phat_all: list[float | None] = [None] * nd
    lo: list[float | None] = [None] * nd
    hi: list[float | None] = [None] * nd
    pod: list[float | None] = [None] * nd
    if trt:
        yt = np.array([yy[i] for i in trt], dtype=float)
        nt = np.array([nn[i] for i in trt], dtype=float)
        a, b = yt + 0.05, nt - yt + 0.05
        w = 1 / (a * b / ((nt + 0.1) ** 2 * (nt + 0.1 + 1)))
        est = pava(a / (nt + 0.1), w)
        low = pava(stats.beta.ppf(0.025, a, b), w)
        upp = pava(stats.beta.ppf(0.975, a, b), w)
        over = pava(1 - special.betainc(a, b, target))
        for k, i in enumerate(trt):
            phat_all[i], lo[i], hi[i], pod[i] = float(est[k]), float(low[k]), float(upp[k]), float(over[k])
    eliminated = [i + 1 for i in range(nd) if elim[i]]
    return MtdSelection(
        mtd=mtd,
        target=target,
        phat=phat_all,
        ci_lower=lo,
        ci_upper=hi,
        p_overdose=pod,
        eliminated=eliminated,
        reason=reason,
        rule=rule,
        evidence=data.data_evidence(),
        missing=missing,
        details={"first_eliminated": None if first is None else first + 1, "n": nn, "y": yy},
    )


# ---------------------------------------------------------------------------------------------
# trial conduct
# ---------------------------------------------------------------------------------------------
def next_dose(
    target: float,
    data: TrialData | Mapping[str, Any],
    max_n: int | None = None,
    n_earlystop: int = 100,
    p_saf: float | None = None,
    p_tox: float | None = None,
    cutoff_eli: float = 0.95,
    extrasafe: bool = False,
    offset: float = 0.05,
    boundmtd: bool = False,
) -> Decision:
    """The dose for the next cohort after the last cohort at ``data.current`` (get.oc's rules, in order).

    Doses with n >= 3 whose DLT count reaches the elimination boundary are eliminated with all higher
    doses; the lowest dose eliminated (or the extrasafe rule) stops the trial without an MTD; at
    ``max_n`` patients, or with ``n_earlystop`` patients at the current dose and a "stay" decision,
    the trial stops and the MTD is selected.
    """
    d = as_trial_data(data)
    if d.current is None:
        raise InputError([Problem("the current dose (the dose of the last cohort) is needed", column="current", expected="1..number of doses")])
    ps, pt = check_design(target, p_saf, p_tox, offset, cutoff_eli)
    lam_e, lam_d = lambdas(target, ps, pt)
    opts = {"target": target, "p_saf": ps, "p_tox": pt, "cutoff_eli": cutoff_eli, "extrasafe": extrasafe, "offset": offset, "n_earlystop": n_earlystop, "max_n": max_n, "boundmtd": boundmtd}
    rule = Rule(SYSTEM, VERSION, opts, SOURCE)
    nn, yy = list(d.n), list(d.y)
    nd = len(nn)
    c = d.current - 1
    elim, _first, safe_stop = _eliminated(nn, yy, target, cutoff_eli, extrasafe, offset)
    eliminated = [i + 1 for i in range(nd) if elim[i]]
    ev = d.data_evidence()
    details: dict[str, Any] = {"n": nn, "y": yy, "lambda_e": lam_e, "lambda_d": lam_d}

    def select() -> MtdSelection:
        return select_mtd(target, nn, yy, cutoff_eli, extrasafe, offset, boundmtd, pt)

    def stop(reason: str, with_mtd: bool) -> Decision:
        return Decision(None, "stop", c + 1, reason, rule, ev, (), eliminated, select() if with_mtd else None, details)

    if elim[0]:
        if safe_stop:
            return stop(f"extrasafe: P(toxicity of dose 1 > {target}) > {cutoff_eli - offset:.3g}: stop the trial, no MTD", False)
        return stop(f"dose 1 is eliminated (P(toxicity > {target}) > {cutoff_eli}): stop the trial, no MTD", False)
    if max_n is not None and sum(nn) >= max_n:
        return stop(f"the maximum sample size ({max_n}) is reached: stop and select the MTD", True)
    n_c, y_c = nn[c], yy[c]
    if n_c == 0:
        raise InputError([Problem("no patient has been treated at the current dose", column="current", value=c + 1)])
    be, bd, _el = _thresholds(n_c, target, lam_e, lam_d, cutoff_eli)
    details.update({"escalate_max": be, "deescalate_min": bd, "eliminate_min": _el})
    top = c == nd - 1
    next_elim = (not top) and elim[c + 1]
    if n_c >= n_earlystop and ((be < y_c < bd) or (c == 0 and y_c >= bd) or ((top or next_elim) and y_c <= be)):
        return stop(f"{n_c} patients at dose {c + 1} (n.earlystop = {n_earlystop}) and the decision is to stay: stop and select the MTD", True)
    obs = f"{y_c}/{n_c} DLT at dose {c + 1}"
    if y_c <= be and not top:
        if next_elim:
            return Decision(c + 1, "stay", c + 1, f"{obs} <= {be} (escalate) but dose {c + 2} is eliminated: stay", rule, ev, (), eliminated, None, details)
        return Decision(c + 2, "escalate", c + 1, f"{obs}: y <= {be} (lambda_e = {lam_e:.4f}): escalate", rule, ev, (), eliminated, None, details)
    if y_c >= bd and c > 0:
        why = f"dose {c + 1} is eliminated" if elim[c] else f"y >= {bd} (lambda_d = {lam_d:.4f})"
        return Decision(c, "de-escalate", c + 1, f"{obs}: {why}: de-escalate", rule, ev, (), eliminated, None, details)
    if y_c <= be and top:
        why = "escalation boundary met at the highest dose: stay"
    elif y_c >= bd:
        why = "de-escalation boundary met at the lowest dose: stay"
    else:
        why = f"{be} < y < {bd}: stay"
    return Decision(c + 1, "stay", c + 1, f"{obs}: {why}", rule, ev, (), eliminated, None, details)


# ---------------------------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SimTables:
    be: np.ndarray  # index n = 0..N (0 unused)
    bd: np.ndarray
    el: np.ndarray  # NA = -1
    stop: np.ndarray  # extrasafe (cutoff - offset) boundary, NA = -1
    lam_d: float


def _sim_tables(b: BoinBoundaries) -> _SimTables:
    def pad(a: np.ndarray) -> np.ndarray:
        return np.concatenate([[NA], a]).astype(np.int64)

    # select.mtd's extrasafe check (cutoff - offset) is needed even when extrasafe is off in get.oc's
    # loop only if extrasafe: compute it anyway (cheap) so the kernels stay uniform
    stop = b.stop_min
    if stop is None:
        stop = _eliminate_table(len(b.n), b.target, b.cutoff_eli - b.offset)
    return _SimTables(pad(b.escalate_max), pad(b.deescalate_min), pad(b.eliminate_min), pad(stop), b.lambda_d)


def _select_fast(n: np.ndarray, y: np.ndarray, t: _SimTables, target: float, extrasafe: bool, boundmtd: bool) -> int:
    """select.mtd for the reference simulation, from the precomputed elimination tables (0 = no MTD)."""
    nd = len(n)
    elim = np.zeros(nd, dtype=bool)
    for i in range(nd):
        if n[i] >= 3 and t.el[n[i]] != NA and y[i] >= t.el[n[i]]:
            elim[i:] = True
            break
    if extrasafe and n[0] >= 3 and t.stop[n[0]] != NA and y[0] >= t.stop[n[0]]:
        elim[:] = True
    if elim[0] or n[~elim].sum() == 0:
        return 0
    idx = np.flatnonzero((n > 0) & ~elim)
    ya, na = y[idx].astype(float), n[idx].astype(float)
    ph = (ya + 0.05) / (na + 0.1)
    var = (ya + 0.05) * (na - ya + 0.05) / ((na + 0.1) ** 2 * (na + 0.1 + 1))
    ph = pava(ph, 1 / var) + np.arange(1, len(ph) + 1) * 1e-10
    cand = np.arange(len(ph))
    if boundmtd:
        if np.all(ph > t.lam_d):
            return 0
        cand = np.flatnonzero(ph <= t.lam_d)
    return int(idx[cand[int(np.argmin(np.abs(ph[cand] - target)))]]) + 1


def _cohort_dlts_reference(u: np.ndarray, pos: int, drawn: int, m: int, p_d: float, cdf_m: np.ndarray | None) -> tuple[int, int]:
    """DLTs among m patients and the next position: one uniform per patient (``drawn`` consumed, the
    first m used, as get.oc) or, with ``cdf_m`` (fast mode), one uniform per cohort inverted through
    the Binomial(m, p_d) CDF: the number of CDF values k < m that the uniform reaches."""
    if cdf_m is not None:
        return int(np.searchsorted(cdf_m[:m], u[pos], side="right")), pos + 1
    return int(np.sum(u[pos : pos + m] < p_d)), pos + drawn


def simulate_reference(
    u: np.ndarray,
    p: np.ndarray,
    ntrial: int,
    ncohort: int,
    cohortsize: int,
    b: BoinBoundaries,
    startdose: int = 1,
    titration: bool = False,
    boundmtd: bool = False,
    cdf: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """get.oc's trial loop in plain Python over the uniforms ``u``; returns (N, Y, mtd, uniforms used).

    ``cdf`` (``cdf[d, m, k]`` = P(Binomial(m, p[d]) <= k)) switches to one uniform per cohort (fast mode).
    """
    t = _sim_tables(b)
    nd = len(p)
    npts = ncohort * cohortsize
    N = np.zeros((ntrial, nd), dtype=np.int64)
    Y = np.zeros((ntrial, nd), dtype=np.int64)
    sel = np.zeros(ntrial, dtype=np.int64)
    pos = 0
    for trial in range(ntrial):
        y = np.zeros(nd, dtype=np.int64)
        n = np.zeros(nd, dtype=np.int64)
        earlystop = False
        d = startdose - 1
        elimi = np.zeros(nd, dtype=bool)
        if titration:
            z = u[pos : pos + nd] < p
            pos += nd
            if not z.any():
                d = nd - 1
                n[:] = 1
            else:
                d = int(np.argmax(z))
                n[: d + 1] = 1
                y[d] = 1
        for _i in range(ncohort):
            if titration and _i == 0 and n[d] < cohortsize:
                k = cohortsize - 1
                tox, pos = _cohort_dlts_reference(u, pos, k, k, p[d], None if cdf is None else cdf[d, k])
                y[d] += tox
                n[d] += k
            else:
                m = min(cohortsize, npts - int(n.sum()))
                tox, pos = _cohort_dlts_reference(u, pos, cohortsize, m, p[d], None if cdf is None else cdf[d, m])
                y[d] += tox
                n[d] += m
                if n.sum() >= npts:
                    break
            nc = n[d]
            if t.el[nc] != NA:
                if y[d] >= t.el[nc]:
                    elimi[d:] = True
                    if d == 0:
                        earlystop = True
                        break
                if b.extrasafe and d == 0 and n[0] >= 3 and t.stop[n[0]] != NA and y[0] >= t.stop[n[0]]:
                    earlystop = True
                    break
            if nc >= b.n_earlystop and (
                (t.be[nc] < y[d] < t.bd[nc]) or (d == 0 and y[d] >= t.bd[nc]) or ((d == nd - 1 or elimi[d + 1]) and y[d] <= t.be[nc])
            ):
                break
            if y[d] <= t.be[nc] and d != nd - 1:
                if not elimi[d + 1]:
                    d += 1
            elif y[d] >= t.bd[nc] and d != 0:
                d -= 1
        N[trial], Y[trial] = n, y
        sel[trial] = 0 if earlystop else _select_fast(n, y, t, b.target, b.extrasafe, boundmtd)
    return N, Y, sel, pos


def simulate(
    target: float,
    p_true: Sequence[float],
    ncohort: int,
    cohortsize: int,
    n_earlystop: int = 100,
    startdose: int = 1,
    titration: bool = False,
    p_saf: float | None = None,
    p_tox: float | None = None,
    cutoff_eli: float = 0.95,
    extrasafe: bool = False,
    offset: float = 0.05,
    boundmtd: bool = False,
    ntrial: int = 1000,
    seed: int | None = 6,
    rng: str = "r",
    per_trial: bool = False,
    engine: str = "fast",
) -> OperatingCharacteristics:
    """Operating characteristics of BOIN by simulation, as R BOIN 2.7.2 ``get.oc``.

    ``rng="r"`` draws R's Mersenne-Twister stream after ``set.seed(seed)`` (seed 6 is get.oc's default),
    one uniform per patient, so results equal get.oc trial by trial. ``rng="numpy"`` is the fast mode:
    numpy's PCG64 and one uniform per cohort, turned into the cohort's DLT count by inverting the
    Binomial(cohort size, p) CDF -- the same distribution with a third of the draws for cohorts of 3
    (tested to agree with the R-compatible mode within Monte-Carlo error). ``engine="fast"`` runs the
    numba kernel, ``engine="reference"`` the plain-Python loop; both read the same uniforms and agree
    trial by trial.
    """
    p = check_p_true(p_true)
    problems = []
    if not 1 <= startdose <= len(p):
        problems.append(Problem("startdose is not one of the doses", column="startdose", value=startdose, expected=f"1..{len(p)}"))
    if ntrial < 1:
        problems.append(Problem("ntrial must be at least 1", column="ntrial", value=ntrial, expected=">= 1"))
    if engine not in ("fast", "reference"):
        problems.append(Problem("unknown engine", column="engine", value=engine, expected="'fast' or 'reference'"))
    if problems:
        raise InputError(problems)
    if cohortsize == 1:
        titration = False  # as get.oc
    # get.oc computes the boundaries with n.earlystop = ncohort*cohortsize
    b = boundaries(target, ncohort, cohortsize, ncohort * cohortsize, p_saf, p_tox, cutoff_eli, extrasafe, offset)
    b = BoinBoundaries(**{**b.__dict__, "n_earlystop": n_earlystop})
    nd = len(p)
    # fast mode (rng="numpy"): one uniform per cohort, inverted through the binomial CDF
    per_cohort = rng == "numpy"
    cdf = binomial_cdf_table(p, cohortsize)
    per_trial_draws = (ncohort if per_cohort else ncohort * cohortsize) + (nd if titration else 0)
    u = make_stream(rng, seed).runif(ntrial * per_trial_draws)
    if engine == "reference":
        N, Y, sel, _ = simulate_reference(u, p, ntrial, ncohort, cohortsize, b, startdose, titration, boundmtd, cdf if per_cohort else None)
    else:
        from ._boin_fast import simulate_boin_fast

        t = _sim_tables(b)
        N, Y, sel, _ = simulate_boin_fast(
            u, p, cdf, per_cohort, ntrial, ncohort, cohortsize, n_earlystop, startdose - 1, titration, t.be, t.bd, t.el, t.stop, extrasafe,
            boundmtd, target, t.lam_d,
        )
    rule = Rule(
        SYSTEM,
        VERSION,
        {
            **b.rule.options,
            "n_earlystop": n_earlystop,
            "startdose": startdose,
            "titration": titration,
            "boundmtd": boundmtd,
            "ntrial": ntrial,
            "seed": seed,
            "rng": rng,
            "engine": engine,
        },
        SOURCE,
    )
    return summarise("boin", p, target, N, Y, sel, ncohort * cohortsize, rule, per_trial, extra={"lambda_e": b.lambda_e, "lambda_d": b.lambda_d})


# ---------------------------------------------------------------------------------------------
# the design object
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Boin:
    """A BOIN design: ``boundaries()``, ``decision_table()``, ``next_dose(data)``, ``select_mtd(data)``, ``simulate(p_true)``."""

    target: float = 0.3
    ncohort: int = 10
    cohortsize: int = 3
    n_earlystop: int = 100
    startdose: int = 1
    titration: bool = False
    p_saf: float | None = None
    p_tox: float | None = None
    cutoff_eli: float = 0.95
    extrasafe: bool = False
    offset: float = 0.05
    boundmtd: bool = False

    name = "boin"

    def boundaries(self) -> BoinBoundaries:
        return boundaries(self.target, self.ncohort, self.cohortsize, self.n_earlystop, self.p_saf, self.p_tox, self.cutoff_eli, self.extrasafe, self.offset)

    def decision_table(self, full: bool = False) -> list[dict[str, Any]]:
        return self.boundaries().rows(full=full)

    def next_dose(self, data: TrialData | Mapping[str, Any]) -> Decision:
        return next_dose(self.target, data, self.ncohort * self.cohortsize, self.n_earlystop, self.p_saf, self.p_tox, self.cutoff_eli, self.extrasafe, self.offset, self.boundmtd)

    def select_mtd(self, data: TrialData | Mapping[str, Any]) -> MtdSelection:
        return select_mtd(self.target, as_trial_data(data), None, self.cutoff_eli, self.extrasafe, self.offset, self.boundmtd, self.p_tox)

    def simulate(self, p_true: Sequence[float], ntrial: int = 1000, seed: int | None = 6, rng: str = "r", per_trial: bool = False, engine: str = "fast") -> OperatingCharacteristics:
        return simulate(
            self.target, p_true, self.ncohort, self.cohortsize, self.n_earlystop, self.startdose, self.titration, self.p_saf, self.p_tox,
            self.cutoff_eli, self.extrasafe, self.offset, self.boundmtd, ntrial, seed, rng, per_trial, engine,
        )


__all__ = [
    "Boin",
    "BoinBoundaries",
    "boundaries",
    "lambdas",
    "select_mtd",
    "next_dose",
    "simulate",
    "simulate_reference",
    "pava",
    "p_over",
    "Evidence",
]
