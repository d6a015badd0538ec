"""CRM: the continual reassessment method with the semantics of R dfcrm 0.2-2.1 (Ken Cheung).

Sources: O'Quigley J, Pepe M, Fisher L (1990) Biometrics 46:33-48 (the design); Cheung YK (2011)
*Dose Finding by the Continual Reassessment Method*, Chapman & Hall, and the R package dfcrm
(``crm``, ``crmsim``, ``getprior``); Lee SM, Cheung YK (2009) Clin Trials 6:227-238 (skeletons by
indifference intervals, ``getprior``).

* empiric ("power") model p_i = skeleton_i ^ exp(a); logistic p_i = expit(intcpt + exp(a) x_i) with
  x_i = logit(skeleton_i) - intcpt (intcpt = 3); prior a ~ N(0, scale^2), scale = sqrt(1.34).
* Bayes estimate: posterior mean of a (dfcrm integrates with ``integrate``); the plug-in
  ptox_i = p_i(E[a]); the recommended dose is the one with ptox closest to the target.
* ``crmsim`` conduct: cohorts of ``cohortsize`` from ``startdose``; with ``restrict`` (default) no
  skipping doses when escalating and no escalation right after a cohort whose DLT rate is >= target;
  no early stopping; the MTD is the recommendation after the last cohort.

The reference path integrates with :func:`scipy.integrate.quad` (as dfcrm); the fast path uses a
fixed Simpson rule on a in [-10, 10] with the log-likelihood table precomputed (numba), and a test
checks the two posterior means agree to 1e-8.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from scipy import integrate, special

from cd7kit.data.result import Rule
from cd7kit.errors import InputError, Problem

from ._kernels import count_below, memo_fits, state_key
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

SYSTEM = "CRM"
VERSION = "dfcrm 0.2-2.1 semantics"
SOURCE = "O'Quigley et al., Biometrics 1990;46:33-48; Cheung 2011 (dfcrm); Lee & Cheung, Clin Trials 2009;6:227-238 (getprior)"
SCALE = math.sqrt(1.34)


def getprior(halfwidth: float, target: float, nu: int, nlevel: int, model: str = "empiric", intcpt: float = 3.0) -> np.ndarray:
    """Skeleton by the indifference-interval method (dfcrm ``getprior``): dose ``nu`` (1-based) is the prior MTD."""
    problems = []
    if not 0 < halfwidth < min(target, 1 - target):
        problems.append(Problem("halfwidth must be between 0 and min(target, 1 - target)", column="halfwidth", value=halfwidth))
    if not 1 <= nu <= nlevel:
        problems.append(Problem("nu must be one of the dose levels", column="nu", value=nu, expected=f"1..{nlevel}"))
    if model not in ("empiric", "logistic"):
        problems.append(Problem("unknown model", column="model", value=model, expected="empiric or logistic"))
    if problems:
        raise InputError(problems)
    lo, hi = target - halfwidth, target + halfwidth
    x = np.full(nlevel, np.nan)
    k0 = nu - 1
    if model == "empiric":
        x[k0] = target
        for k in range(k0, 0, -1):
            b = math.log(math.log(hi) / math.log(x[k]))
            x[k - 1] = math.exp(math.log(lo) / math.exp(b))
        for k in range(k0, nlevel - 1):
            b = math.log(math.log(lo) / math.log(x[k]))
            x[k + 1] = math.exp(math.log(hi) / math.exp(b))
        return x
    def lg(p: float) -> float:
        return math.log(p / (1 - p)) - intcpt

    x[k0] = lg(target)
    for k in range(k0, 0, -1):
        b = math.log(lg(hi) / x[k])
        x[k - 1] = lg(lo) / math.exp(b)
    for k in range(k0, nlevel - 1):
        b = math.log(lg(lo) / x[k])
        x[k + 1] = lg(hi) / math.exp(b)
    return 1 / (1 + np.exp(-intcpt - x))


def _ptox(skeleton: np.ndarray, a: float, model: str, intcpt: float) -> np.ndarray:
    if model == "empiric":
        return skeleton ** math.exp(a)
    x = np.log(skeleton / (1 - skeleton)) - intcpt
    return special.expit(intcpt + math.exp(a) * x)


def posterior_mean_quad(skeleton: Sequence[float] | np.ndarray, n: Sequence[int], y: Sequence[int], model: str = "empiric", scale: float = SCALE, intcpt: float = 3.0) -> float:
    """E[a | data] as dfcrm: denominator over (-inf, inf), numerator over (-10, 10), by adaptive quadrature."""
    sk = np.asarray(skeleton, dtype=float)
    nn = np.asarray(n, dtype=float)
    yy = np.asarray(y, dtype=float)

    def lik(a: float) -> float:
        if abs(a) > 40:  # prior density below 1e-300
            return 0.0
        p = _ptox(sk, a, model, intcpt)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.sum(np.where(yy > 0, yy * np.log(p), 0.0) + np.where(nn - yy > 0, (nn - yy) * np.log1p(-p), 0.0))
        return math.exp(ll - a * a / (2 * scale * scale)) / (scale * math.sqrt(2 * math.pi))

    den = integrate.quad(lik, -np.inf, np.inf, epsabs=0.0, epsrel=1e-10, limit=200)[0]
    num = integrate.quad(lambda a: a * lik(a), -10, 10, epsabs=1e-12 * den, epsrel=1e-10, limit=200)[0]
    return num / den


def _grid(scale: float, npts: int = 401) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(-10.0, 10.0, npts)
    h = a[1] - a[0]
    w = np.ones(npts)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    w *= h / 3
    logw = np.log(w) - a * a / (2 * scale * scale)
    return a, logw


def _tables(skeleton: np.ndarray, model: str, intcpt: float, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log p_i(a_g) and log(1 - p_i(a_g)) on the grid (G x ndose)."""
    P = np.stack([_ptox(skeleton, float(ai), model, intcpt) for ai in a])
    with np.errstate(divide="ignore"):
        return np.log(P), np.log1p(-P)


@njit(cache=True)
def _post_mean(n, y, a, logw, LP, LQ):  # pragma: no cover - compiled
    G = a.shape[0]
    nd = n.shape[0]
    ll = np.empty(G)
    mx = -np.inf
    for g in range(G):
        s = logw[g]
        for i in range(nd):
            if n[i] > 0:
                if y[i] > 0:
                    s += y[i] * LP[g, i]
                if n[i] - y[i] > 0:
                    s += (n[i] - y[i]) * LQ[g, i]
        ll[g] = s
        if s > mx:
            mx = s
    num = 0.0
    den = 0.0
    for g in range(G):
        e = np.exp(ll[g] - mx)
        num += a[g] * e
        den += e
    return num / den


@njit(cache=True)
def _recommend(est, skeleton, model, intcpt, target):  # pragma: no cover - compiled
    nd = skeleton.shape[0]
    best = 0
    bd = np.inf
    ea = np.exp(est)
    for i in range(nd):
        if model == 0:
            p = skeleton[i] ** ea
        else:
            x = np.log(skeleton[i] / (1 - skeleton[i])) - intcpt
            p = 1.0 / (1.0 + np.exp(-intcpt - ea * x))
        d = abs(p - target)
        if d < bd:
            bd = d
            best = i
    return best


@njit(cache=True)
def _simulate(u, p, skeleton, model, intcpt, target, ntrial, ncohort, cs, start, restrict, use_memo, a, logw, LP, LQ):  # pragma: no cover - compiled
    nd = p.shape[0]
    N = np.zeros((ntrial, nd), dtype=np.int64)
    Y = np.zeros((ntrial, nd), dtype=np.int64)
    sel = np.zeros(ntrial, dtype=np.int64)
    pos = 0
    n = np.zeros(nd, dtype=np.int64)
    y = np.zeros(nd, dtype=np.int64)
    base = ncohort * cs + 1
    memo = dict()  # the recommendation depends only on (n, y): memoised within the run (exact)
    memo[np.int64(-1)] = np.int64(0)
    for t in range(ntrial):
        n[:] = 0
        y[:] = 0
        d = start
        rec = start
        for _c in range(ncohort):
            tox = count_below(u, pos, cs, p[d])
            pos += cs
            n[d] += cs
            y[d] += tox
            if use_memo:
                key = state_key(n, y, base)
                if key in memo:
                    rec = memo[key]
                else:
                    rec = _recommend(_post_mean(n, y, a, logw, LP, LQ), skeleton, model, intcpt, target)
                    memo[key] = rec
            else:
                rec = _recommend(_post_mean(n, y, a, logw, LP, LQ), skeleton, model, intcpt, target)
            nxt = rec
            if restrict:
                if nxt > d + 1:
                    nxt = d + 1
                if tox / cs >= target and nxt > d:
                    nxt = d
            d = nxt
        for i in range(nd):
            N[t, i] = n[i]
            Y[t, i] = y[i]
        sel[t] = rec + 1
    return N, Y, sel


@dataclass(frozen=True)
class Crm:
    """CRM design (dfcrm semantics) with the common interface."""

    target: float = 0.3
    ndose: int = 5
    skeleton: tuple[float, ...] | None = None
    model: str = "empiric"
    scale: float = SCALE
    intcpt: float = 3.0
    ncohort: int = 10
    cohortsize: int = 3
    startdose: int = 1
    restrict: bool = True

    name = "crm"

    def __post_init__(self) -> None:
        problems = []
        if self.model not in ("empiric", "logistic"):
            problems.append(Problem("unknown CRM model", column="model", value=self.model, expected="empiric or logistic"))
        sk = self.skeleton
        if sk is not None:
            if len(sk) != self.ndose:
                problems.append(Problem("the skeleton needs one probability per dose", column="skeleton", value=len(sk), expected=str(self.ndose)))
            if any(not 0 < v < 1 for v in sk) or any(b <= a for a, b in zip(sk, sk[1:], strict=False)):
                problems.append(Problem("the skeleton must be strictly increasing probabilities in (0, 1)", column="skeleton", value=list(sk)))
        if not 0 < self.target < 1:
            problems.append(Problem("target must be a probability", column="target", value=self.target))
        if problems:
            raise InputError(problems)

    @property
    def skel(self) -> np.ndarray:
        if self.skeleton is not None:
            return np.asarray(self.skeleton, dtype=float)
        hw = min(0.05, self.target / 2)
        return getprior(hw, self.target, (self.ndose + 1) // 2, self.ndose, self.model, self.intcpt)

    @property
    def rule(self) -> Rule:
        return Rule(SYSTEM, VERSION, {"target": self.target, "skeleton": [float(v) for v in self.skel], "model": self.model, "scale": self.scale,
                                      "intcpt": self.intcpt, "restrict": self.restrict, "ncohort": self.ncohort, "cohortsize": self.cohortsize}, SOURCE)

    def posterior(self, data: TrialData | Mapping[str, Any]) -> dict[str, Any]:
        """Posterior mean of a (by quadrature, as dfcrm) and the plug-in DLT probabilities."""
        d = as_trial_data(data)
        if d.ndose != self.ndose:
            raise InputError([Problem("data and skeleton have different numbers of doses", column="n", value=d.ndose, expected=str(self.ndose))])
        est = posterior_mean_quad(self.skel, d.n, d.y, self.model, self.scale, self.intcpt)
        ptox = _ptox(self.skel, est, self.model, self.intcpt)
        return {"a_mean": est, "ptox": ptox, "recommended": int(np.argmin(np.abs(ptox - self.target))) + 1}

    def decision_table(self, full: bool = False) -> list[dict[str, Any]]:
        """The recommended dose after one cohort at each dose with 0..cohortsize DLTs (model-based: no fixed boundaries)."""
        rows = []
        for dose in range(1, self.ndose + 1):
            for k in range(self.cohortsize + 1):
                n = [0] * self.ndose
                y = [0] * self.ndose
                n[dose - 1], y[dose - 1] = self.cohortsize, k
                rows.append({"dose": dose, "n": self.cohortsize, "dlt": k, "next_dose": self.next_dose(TrialData.of(n, y, dose)).value})
        return rows

    def next_dose(self, data: TrialData | Mapping[str, Any], last_cohort_dlt: int | None = None) -> Decision:
        """Recommended dose for the next cohort; with ``restrict``, no skipping and no escalation after a toxic cohort."""
        d = as_trial_data(data)
        post = self.posterior(d)
        rec = post["recommended"]
        reason = f"posterior mean a = {post['a_mean']:.4f}; dose {rec} has estimated DLT rate {post['ptox'][rec - 1]:.3f}, closest to {self.target}"
        nxt = rec
        action = "stay"
        if d.current is not None:
            c = d.current
            if self.restrict and nxt > c + 1:
                nxt = c + 1
                reason += f"; no skipping: dose {nxt}"
            if self.restrict and last_cohort_dlt is not None and last_cohort_dlt / self.cohortsize >= self.target and nxt > c:
                nxt = c
                reason += "; no escalation after a cohort with DLT rate >= target"
            action = "escalate" if nxt > c else "de-escalate" if nxt < c else "stay"
        details = {"a_mean": post["a_mean"], "ptox": post["ptox"], "recommended": rec}
        return Decision(nxt, action, d.current, reason, self.rule, d.data_evidence(), (), (), None, details)

    def select_mtd(self, data: TrialData | Mapping[str, Any]) -> MtdSelection:
        d = as_trial_data(data)
        post = self.posterior(d)
        none = [None] * d.ndose
        pt = [float(v) for v in post["ptox"]]
        return MtdSelection(post["recommended"], self.target, pt, none, none, none, [], f"plug-in DLT rate closest to {self.target} (posterior mean a = {post['a_mean']:.4f})",
                            self.rule, d.data_evidence(), (), {"a_mean": post["a_mean"]})

    def simulate(self, p_true: Sequence[float], ntrial: int = 1000, seed: int | None = 6, rng: str = "numpy", per_trial: bool = False, engine: str = "fast") -> OperatingCharacteristics:
        """crmsim-style simulation (one uniform per patient; ``rng="r"`` uses R's runif stream, not dfcrm's rbinom)."""
        p = check_p_true(p_true)
        if len(p) != self.ndose:
            raise InputError([Problem("p_true needs one probability per dose", column="p_true", value=len(p), expected=str(self.ndose))])
        u = make_stream(rng, seed).runif(ntrial * self.ncohort * self.cohortsize)
        sk = self.skel
        if engine == "reference":
            N, Y, sel = self._simulate_reference(u, p, ntrial)
        else:
            a, logw = _grid(self.scale)
            LP, LQ = _tables(sk, self.model, self.intcpt, a)
            N, Y, sel = _simulate(u, p, sk, 0 if self.model == "empiric" else 1, float(self.intcpt), float(self.target), int(ntrial), int(self.ncohort),
                                  int(self.cohortsize), int(self.startdose - 1), bool(self.restrict),
                                  memo_fits(self.ndose, self.ncohort * self.cohortsize + 1), a, logw, LP, LQ)
        rule = Rule(SYSTEM, VERSION, {**self.rule.options, "ntrial": ntrial, "seed": seed, "rng": rng, "engine": engine, "startdose": self.startdose}, SOURCE)
        return summarise("crm", p, self.target, N, Y, sel, self.ncohort * self.cohortsize, rule, per_trial)

    def _simulate_reference(self, u: np.ndarray, p: np.ndarray, ntrial: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nd, cs = len(p), self.cohortsize
        N = np.zeros((ntrial, nd), dtype=np.int64)
        Y = np.zeros((ntrial, nd), dtype=np.int64)
        sel = np.zeros(ntrial, dtype=np.int64)
        pos = 0
        for t in range(ntrial):
            n, y = [0] * nd, [0] * nd
            d = self.startdose
            rec = d
            for _ in range(self.ncohort):
                tox = int(np.sum(u[pos : pos + cs] < p[d - 1]))
                pos += cs
                n[d - 1] += cs
                y[d - 1] += tox
                dec = self.next_dose(TrialData.of(n, y, d), last_cohort_dlt=tox)
                rec = dec.details["recommended"]
                assert dec.value is not None
                d = dec.value
            N[t], Y[t], sel[t] = n, y, rec
        return N, Y, sel


__all__ = ["Crm", "getprior", "posterior_mean_quad"]
