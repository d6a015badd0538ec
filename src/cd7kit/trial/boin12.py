"""BOIN12: utility-based phase I/II dose finding (toxicity and efficacy) -- conduct, OBD selection, simulation.

Sources: Lin R, Zhou Y, Yan F, Li D, Yuan Y (2020) JCO Precis Oncol 4:1393-1402 (BOIN12: Table 2, the
decision rules; Table 3, the rank-based desirability scores; the worked example on p. 1396; the
dose-exploration rule and the trial of Figure S2 in the Data Supplement); R package escalation
(brockk/escalation, ``boin12_logic.R``, ``boin12_rds.R``), whose behaviour is followed and whose tests
transcribe the paper's numbers and the MD Anderson BOIN12 app's decisions:

* utilities u1 = 100 (response, no DLT), u2 (neither; default 40), u3 (both; default 60), u4 = 0 (DLT,
  no response); u_bar = 100 phi_E (1-phi_T) + u2 (1-phi_T)(1-phi_E) + u3 phi_T phi_E + u4 phi_T (1-phi_E);
  benchmark u_b = u_bar + (100 - u_bar)/2.
* quasi-binomial pseudo-data x = (u1 y1 + u2 y2 + u3 y3 + u4 y4)/100; desirability = 100 P(U > u_b/100 |
  Beta(1 + x, 1 + n - x)). The paper's rank-based desirability score (RDS, Table 3) is the rank of this
  probability among the admissible (n, DLTs, responses) combinations of the table (ties averaged);
  ranks and probabilities order doses identically, so decisions use the probability.
* admissible among d-1, d, d+1: P(p_T > phi_T | data) < c_T (0.95) and P(p_E < phi_E | data) < c_E (0.90), Beta(1,1).
* at the current dose (BOIN boundaries of phi_T): n >= ``n_explore`` (9), p_hat < lambda_d and d+1 untried
  -> escalate (dose exploration); p_hat >= lambda_d -> d-1 (stay at dose 1); lambda_e < p_hat < lambda_d
  and n >= N* (6) -> the more desirable of d-1, d (ties: d-1); no admissible dose -> stop, no dose
  selected; else the most desirable admissible of d-1, d, d+1 (ties -> the higher dose, as the BOIN12
  Shiny app). The trial stops at ``ncohort`` x ``cohortsize`` patients or when ``n_earlystop`` patients
  have been treated at a dose (escalation's ``stop_when_n_at_dose(n, "any")``).
* final OBD: the isotonic MTD (BOIN select.mtd on toxicity), then the treated dose <= MTD with the
  highest posterior-mean utility (1 + x)/(2 + n) (ties -> lower dose). The exact OBD definition differs
  between implementations (escalation issue #8); this is the paper's description.

Simulation has a plain-Python reference path (every decision through :meth:`Boin12.next_dose` and
:meth:`Boin12.select_mtd`) and a compiled one (numba) that read the same uniforms and agree trial by
trial; the compiled path calls scipy's own incomplete beta function (:data:`._kernels.betainc`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from scipy import special, stats

from cd7kit.data.result import Rule
from cd7kit.errors import InputError, Problem

from . import boin as B
from ._boin_fast import select_mtd_kernel
from ._kernels import betainc
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

SYSTEM = "BOIN12"
VERSION = "Lin et al. 2020 JCO PO; escalation 0.2.3 rules"
SOURCE = "Lin, Zhou, Yan, Li, Yuan, JCO Precis Oncol 2020;4:1393-1402 (Tables 2-3, Data Supplement); R package escalation (boin12_logic.R, boin12_rds.R)"
NO_EXPLORE = 10**9  # n_explore=None: the exploration rule never fires


@dataclass(frozen=True)
class Boin12:
    """BOIN12 design with the common interface; data need ``efficacy`` (responses) and ``both`` per dose."""

    target: float = 0.35  # phi_T
    phi_e: float = 0.25
    u2: float = 40.0
    u3: float = 60.0
    u1: float = 100.0
    u4: float = 0.0
    c_t: float = 0.95
    c_e: float = 0.90
    n_star: int = 6
    n_explore: int | None = 9
    ncohort: int = 10
    cohortsize: int = 3
    startdose: int = 1
    n_earlystop: int = 100

    name = "boin12"

    def __post_init__(self) -> None:
        problems = []
        if not self.u4 <= min(self.u2, self.u3) <= max(self.u2, self.u3) <= self.u1:
            problems.append(Problem("utilities must satisfy u4 <= u2, u3 <= u1", column="u2", value=(self.u2, self.u3)))
        if not 0 < self.phi_e < 1:
            problems.append(Problem("phi_e must be a probability", column="phi_e", value=self.phi_e))
        if self.ncohort < 1 or self.cohortsize < 1:
            problems.append(Problem("ncohort and cohortsize must be at least 1", column="ncohort", value=(self.ncohort, self.cohortsize)))
        if problems:
            raise InputError(problems)
        B.check_design(self.target)

    @property
    def max_n(self) -> int:
        return self.ncohort * self.cohortsize

    @property
    def u_bar(self) -> float:
        pt, pe = self.target, self.phi_e
        return self.u1 * pe * (1 - pt) + self.u2 * (1 - pt) * (1 - pe) + self.u3 * pt * pe + self.u4 * pt * (1 - pe)

    @property
    def u_b(self) -> float:
        return self.u_bar + (100 - self.u_bar) / 2

    @property
    def rule(self) -> Rule:
        return Rule(SYSTEM, VERSION, {"phi_t": self.target, "phi_e": self.phi_e, "u": [self.u1, self.u2, self.u3, self.u4], "c_t": self.c_t, "c_e": self.c_e,
                                      "n_star": self.n_star, "n_explore": self.n_explore, "u_b": self.u_b, "ncohort": self.ncohort,
                                      "cohortsize": self.cohortsize, "n_earlystop": self.n_earlystop}, SOURCE)

    def _counts(self, d: TrialData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not d.efficacy:
            raise InputError([Problem("BOIN12 needs the number of responses per dose", column="efficacy")])
        n = np.array(d.n, dtype=float)
        yt = np.array(d.y, dtype=float)
        ye = np.array(d.efficacy, dtype=float)
        both = np.array(d.both, dtype=float) if d.both else np.zeros_like(n)
        return n, yt, ye, both

    def pseudo_responses(self, n: np.ndarray, yt: np.ndarray, ye: np.ndarray, both: np.ndarray) -> np.ndarray:
        """x = (u1 y1 + u2 y2 + u3 y3 + u4 y4)/100, y1 = response only, y2 = neither, y3 = both, y4 = DLT only."""
        y1 = ye - both
        y3 = both
        y4 = yt - both
        y2 = n - y1 - y3 - y4
        return (self.u1 * y1 + self.u2 * y2 + self.u3 * y3 + self.u4 * y4) / 100

    def desirability(self, n: np.ndarray, yt: np.ndarray, ye: np.ndarray, both: np.ndarray) -> np.ndarray:
        """100 P(U > u_b/100 | Beta(1 + x, 1 + n - x)) per dose (ranked, this is the paper's RDS)."""
        x = self.pseudo_responses(n, yt, ye, both)
        return 100 * (1 - special.betainc(1 + x, 1 + n - x, self.u_b / 100))

    def inadmissible(self, n: np.ndarray, yt: np.ndarray, ye: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(too toxic: P(p_T > phi_T) >= c_T, futile: P(p_E < phi_E) >= c_E), Beta(1,1) prior, elementwise."""
        too_toxic = 1 - special.betainc(1 + yt, 1 + n - yt, self.target) >= self.c_t
        futile = special.betainc(1 + ye, 1 + n - ye, self.phi_e) >= self.c_e
        return too_toxic, futile

    def admissible(self, n: np.ndarray, yt: np.ndarray, ye: np.ndarray, current: int) -> list[int]:
        """The admissible doses (0-based) among current - 1, current, current + 1."""
        nd = len(n)
        too_toxic, futile = self.inadmissible(n, yt, ye)
        return [k for k in sorted({max(0, current - 1), current, min(nd - 1, current + 1)}) if not too_toxic[k] and not futile[k]]

    def next_dose(self, data: TrialData | Mapping[str, Any]) -> Decision:
        d = as_trial_data(data)
        if d.current is None:
            raise InputError([Problem("the current dose is needed", column="current")])
        n, yt, ye, both = self._counts(d)
        nd = len(n)
        c = d.current - 1
        if n[c] == 0:
            raise InputError([Problem("no patient has been treated at the current dose", column="current", value=c + 1)])
        lam_e, lam_d = B.lambdas(self.target)
        rds = self.desirability(n, yt, ye, both)
        adm = self.admissible(n, yt, ye, c)
        pt = yt[c] / n[c]
        details = {"desirability": rds, "admissible": [k + 1 for k in adm], "p_hat_t": pt, "lambda_e": lam_e, "lambda_d": lam_d, "u_b": self.u_b}
        ev = d.data_evidence()

        def stop(reason: str, select: bool) -> Decision:
            return Decision(None, "stop", c + 1, reason, self.rule, ev, (), [], self.select_mtd(d) if select else None, details)

        if n.sum() >= self.max_n:
            return stop(f"the maximum sample size ({self.max_n}) is reached: stop and select the OBD", True)
        if n[c] >= self.n_earlystop:
            return stop(f"{n[c]:.0f} patients at dose {c + 1} (n_earlystop = {self.n_earlystop}): stop and select the OBD", True)
        explore = self.n_explore if self.n_explore is not None else NO_EXPLORE
        if n[c] >= explore and pt < lam_d and c != nd - 1 and n[c + 1] == 0:
            nxt, why = c + 1, f"{n[c]:.0f} patients at dose {c + 1}, DLT rate {pt:.2f} < lambda_d and dose {c + 2} untried: explore it"
        elif pt >= lam_d:
            nxt, why = max(c - 1, 0), f"DLT rate {pt:.2f} >= lambda_d = {lam_d:.3f}: de-escalate"
        elif lam_e < pt < lam_d and n[c] >= self.n_star:
            if c - 1 in adm and c in adm:
                nxt = c - 1 if rds[c - 1] >= rds[c] else c
            else:
                nxt = c - 1 if c - 1 in adm else c if c in adm else 0
            why = f"lambda_e < DLT rate {pt:.2f} < lambda_d with n >= {self.n_star}: the more desirable of doses {max(c, 1)} and {c + 1}"
        elif not adm:
            return stop("no admissible dose among d-1, d, d+1: stop the trial, no dose is selected", False)
        else:
            best = max(rds[k] for k in adm)
            nxt = [k for k in adm if rds[k] == best][-1]
            why = f"most desirable admissible dose (score {best:.1f})"
        action = "escalate" if nxt > c else "de-escalate" if nxt < c else "stay"
        return Decision(nxt + 1, action, c + 1, why, self.rule, ev, (), [], None, details)

    def select_mtd(self, data: TrialData | Mapping[str, Any]) -> MtdSelection:
        """The optimal biological dose (OBD): highest posterior-mean utility among treated doses <= the isotonic MTD."""
        d = as_trial_data(data)
        n, yt, ye, both = self._counts(d)
        mtd = B.select_mtd(self.target, d.n, d.y)
        util = (1 + self.pseudo_responses(n, yt, ye, both)) / (2 + n)
        if mtd.mtd is None:
            obd, why = None, "no MTD (toxicity): no OBD"
        else:
            cand = [k for k in range(mtd.mtd) if n[k] > 0]
            obd = None if not cand else max(cand, key=lambda k: (util[k], -k)) + 1
            why = f"highest posterior-mean utility among treated doses <= MTD {mtd.mtd}"
        return MtdSelection(obd, self.target, mtd.phat, mtd.ci_lower, mtd.ci_upper, mtd.p_overdose, mtd.eliminated, why, self.rule,
                            d.data_evidence(), (), {"mtd": mtd.mtd, "utility": util})

    def rds_table(self, sample_sizes: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The rank-based desirability scores of Lin et al. 2020, Table 3 (there: n = 0, 3, 6, 9).

        For each n and every count of DLTs and of responses in 0..n: whether a dose with these data is
        admissible, its desirability 100 P(U > u_b/100) and its RDS, the rank of that probability among
        the admissible rows of the table (ties averaged; ``None`` = eliminated, the paper's "E"). The
        table by marginal counts needs u1 + u4 = u2 + u3 (then x does not depend on how many patients
        had both outcomes: x = ((u1 - u2) responses + (u4 - u2) DLTs + u2 n)/100).
        """
        if self.u1 + self.u4 != self.u2 + self.u3:
            raise InputError([Problem("the table by (n, DLTs, responses) needs u1 + u4 = u2 + u3; use desirability() with joint counts",
                                      column="u2", value=(self.u1, self.u2, self.u3, self.u4))])
        sizes = [0, *range(self.cohortsize, 3 * self.cohortsize + 1, self.cohortsize)] if sample_sizes is None else [int(s) for s in sample_sizes]
        grid = np.array([(n, t, e) for n in sizes for t in range(n + 1) for e in range(n + 1)], dtype=float)
        n, yt, ye = grid.T
        both = np.maximum(0.0, yt + ye - n)  # any feasible count gives the same x here
        prob = self.desirability(n, yt, ye, both)
        too_toxic, futile = self.inadmissible(n, yt, ye)
        ok = ~too_toxic & ~futile
        rank = np.full(len(grid), np.nan)
        rank[ok] = stats.rankdata(prob[ok])
        return [{"n": int(a), "dlt": int(t), "response": int(e), "admissible": bool(k), "desirability": float(p), "rds": float(r) if k else None}
                for (a, t, e), p, k, r in zip(grid, prob, ok, rank, strict=True)]

    def decision_table(self, full: bool = False) -> list[dict[str, Any]]:
        """The RDS table (:meth:`rds_table`) for n = 0 and 1-3 cohorts, or every cohort multiple up to the maximum (``full``)."""
        top = self.max_n if full else 3 * self.cohortsize
        return self.rds_table([0, *range(self.cohortsize, top + 1, self.cohortsize)])

    def simulate(self, p_true: Sequence[float], p_eff: Sequence[float], ntrial: int = 1000, seed: int | None = 6, rng: str = "numpy",
                 per_trial: bool = False, p_both: Sequence[float] | None = None, engine: str = "fast") -> OperatingCharacteristics:
        """OBD selection by simulation; toxicity and response independent unless ``p_both`` (P(DLT and response)) is given.

        Two uniforms per patient, a fixed block per trial (cohort i of trial t reads its toxicity
        uniforms, then its response uniforms, from block t); ``engine="fast"`` (numba) and
        ``engine="reference"`` (every decision through :meth:`next_dose`) agree trial by trial.
        """
        pt = check_p_true(p_true)
        pe = check_p_true(p_eff)
        if len(pe) != len(pt):
            raise InputError([Problem("p_eff needs one probability per dose", column="p_eff", value=len(pe), expected=str(len(pt)))])
        problems = []
        pb = pt * pe if p_both is None else np.asarray(p_both, float)
        if len(pb) != len(pt) or np.any(pb < np.maximum(0, pt + pe - 1) - 1e-12) or np.any(pb > np.minimum(pt, pe) + 1e-12):
            problems.append(Problem("p_both must be per dose, between max(0, p_true + p_eff - 1) and min(p_true, p_eff)", column="p_both"))
        if not 1 <= self.startdose <= len(pt):
            problems.append(Problem("startdose is not one of the doses", column="startdose", value=self.startdose, expected=f"1..{len(pt)}"))
        if engine not in ("fast", "reference"):
            problems.append(Problem("unknown engine", column="engine", value=engine, expected="'fast' or 'reference'"))
        if ntrial < 1:
            problems.append(Problem("ntrial must be at least 1", column="ntrial", value=ntrial, expected=">= 1"))
        if self.max_n >= 1 << 15:
            problems.append(Problem("the maximum sample size is too large to simulate", column="ncohort", value=self.max_n, expected="< 32768"))
        if problems:
            raise InputError(problems)
        pe_given_t = np.where(pt > 0, pb / np.maximum(pt, 1e-300), 0.0)
        pe_given_not = np.where(pt < 1, (pe - pb) / np.maximum(1 - pt, 1e-300), 0.0)
        u = make_stream(rng, seed).runif(ntrial * self.max_n * 2)
        if engine == "reference":
            N, Y, E, sel = self._simulate_reference(u, pt, pe_given_t, pe_given_not, ntrial)
        else:
            N, Y, E, sel = self._simulate_fast(u, pt, pe_given_t, pe_given_not, ntrial)
        rule = Rule(SYSTEM, VERSION, {**self.rule.options, "ntrial": ntrial, "seed": seed, "rng": rng, "engine": engine, "p_eff": [float(v) for v in pe]}, SOURCE)
        return summarise("boin12", pt, self.target, N, Y, sel, self.max_n, rule, per_trial, extra={"response_mean": E.mean(axis=0)})

    def _simulate_reference(self, u: np.ndarray, pt: np.ndarray, pe_t: np.ndarray, pe_n: np.ndarray, ntrial: int) -> tuple[np.ndarray, ...]:
        nd, cs = len(pt), self.cohortsize
        N = np.zeros((ntrial, nd), dtype=np.int64)
        Y = np.zeros((ntrial, nd), dtype=np.int64)
        E = np.zeros((ntrial, nd), dtype=np.int64)
        sel = np.zeros(ntrial, dtype=np.int64)
        for t in range(ntrial):
            n, yt, ye, bo = (np.zeros(nd, dtype=np.int64) for _ in range(4))
            c = self.startdose - 1
            pos = t * self.max_n * 2
            for _ in range(self.ncohort):
                tox = u[pos : pos + cs] < pt[c]
                v = u[pos + cs : pos + 2 * cs]
                eff = np.where(tox, v < pe_t[c], v < pe_n[c])
                pos += 2 * cs
                n[c] += cs
                yt[c] += tox.sum()
                ye[c] += eff.sum()
                bo[c] += (tox & eff).sum()
                dec = self.next_dose(TrialData.of(n, yt, c + 1, efficacy=ye, both=bo))
                if dec.stop:
                    sel[t] = 0 if dec.mtd is None or dec.mtd.mtd is None else dec.mtd.mtd
                    break
                assert dec.value is not None
                c = dec.value - 1
            N[t], Y[t], E[t] = n, yt, ye
        return N, Y, E, sel

    def _simulate_fast(self, u: np.ndarray, pt: np.ndarray, pe_t: np.ndarray, pe_n: np.ndarray, ntrial: int) -> tuple[np.ndarray, ...]:
        N = self.max_n
        counts = np.arange(N + 1, dtype=float)
        too_toxic, futile = self.inadmissible(counts[:, None], counts[None, :], counts[None, :])  # [n, y], y <= n read
        lam_e, lam_d = B.lambdas(self.target)
        el = np.concatenate([[B.NA], B._eliminate_table(N, self.target, 0.95)]).astype(np.int64)
        explore = NO_EXPLORE if self.n_explore is None else int(self.n_explore)
        return _simulate(
            u, pt, pe_t, pe_n, int(ntrial), int(self.ncohort), int(self.cohortsize), int(self.startdose - 1), int(self.n_earlystop), explore,
            int(self.n_star), float(lam_e), float(lam_d), np.array([self.u1, self.u2, self.u3, self.u4], dtype=float), float(self.u_b / 100),
            too_toxic, futile, el, float(self.target), betainc,
        )


# ---------------------------------------------------------------------------------------------
# compiled simulation: the same steps as Boin12.next_dose / select_mtd
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _pseudo_responses(k, n, yt, ye, bo, util):  # pragma: no cover - compiled
    """Boin12.pseudo_responses for dose k (the same arithmetic, so the same floating-point result)."""
    y1 = ye[k] - bo[k]
    y3 = bo[k]
    y4 = yt[k] - bo[k]
    y2 = n[k] - y1 - y3 - y4
    return (util[0] * y1 + util[1] * y2 + util[2] * y3 + util[3] * y4) / 100


@njit(cache=True)
def _desirability(k, n, yt, ye, bo, util, ub, memo, betainc_fn):  # pragma: no cover - compiled
    """Boin12.desirability for dose k, memoised on (n, DLTs, responses, both) within the run."""
    base = 1 << 15  # counts < 2^15 (checked by the caller): one int64 key
    key = ((n[k] * base + yt[k]) * base + ye[k]) * base + bo[k]
    if key in memo:
        return memo[key]
    x = _pseudo_responses(k, n, yt, ye, bo, util)
    r = 100 * (1 - betainc_fn(1 + x, 1 + n[k] - x, ub))
    memo[key] = r
    return r


@njit(cache=True)
def _admissible(k, n, yt, ye, too_toxic, futile):  # pragma: no cover - compiled
    return not too_toxic[n[k], yt[k]] and not futile[n[k], ye[k]]


@njit(cache=True)
def _next(c, n, yt, ye, bo, max_n, n_earlystop, explore, n_star, lam_e, lam_d, util, ub, too_toxic, futile, memo, betainc_fn):  # pragma: no cover - compiled
    """Boin12.next_dose: the next dose (0-based), -1 = stop without a dose, -2 = stop and select the OBD."""
    nd = n.shape[0]
    if n.sum() >= max_n or n[c] >= n_earlystop:
        return -2
    pt = yt[c] / n[c]
    if n[c] >= explore and pt < lam_d and c != nd - 1 and n[c + 1] == 0:
        return c + 1
    if pt >= lam_d:
        return max(c - 1, 0)
    if lam_e < pt < lam_d and n[c] >= n_star:
        prev_ok = c >= 1 and _admissible(c - 1, n, yt, ye, too_toxic, futile)
        cur_ok = _admissible(c, n, yt, ye, too_toxic, futile)
        if prev_ok and cur_ok:
            r_prev = _desirability(c - 1, n, yt, ye, bo, util, ub, memo, betainc_fn)
            r_cur = _desirability(c, n, yt, ye, bo, util, ub, memo, betainc_fn)
            return c - 1 if r_prev >= r_cur else c
        if prev_ok:
            return c - 1
        return c if cur_ok else 0
    best = -1
    best_r = -np.inf
    for k in range(max(c - 1, 0), min(c + 1, nd - 1) + 1):
        if _admissible(k, n, yt, ye, too_toxic, futile):
            r = _desirability(k, n, yt, ye, bo, util, ub, memo, betainc_fn)
            if r >= best_r:  # ties -> the higher dose
                best_r = r
                best = k
    return best  # -1 when none is admissible


@njit(cache=True)
def _obd(n, yt, ye, bo, util, el, target):  # pragma: no cover - compiled
    """Boin12.select_mtd: the isotonic MTD, then the highest (1 + x)/(2 + n) among treated doses <= MTD (1-based, 0 = none)."""
    mtd = select_mtd_kernel(n, yt, el, el, target, False, False, 1.0)  # select.mtd defaults: no extrasafe, no boundMTD
    obd = 0
    best = -np.inf
    for k in range(mtd):
        if n[k] > 0:
            v = (1 + _pseudo_responses(k, n, yt, ye, bo, util)) / (2 + n[k])
            if v > best:  # ties -> the lower dose
                best = v
                obd = k + 1
    return obd


@njit(cache=True)
def _simulate(u, pt, pe_t, pe_n, ntrial, ncohort, cs, start, n_earlystop, explore, n_star, lam_e, lam_d, util, ub, too_toxic, futile, el, target,
              betainc_fn):  # pragma: no cover - compiled
    nd = pt.shape[0]
    max_n = ncohort * cs
    N = np.zeros((ntrial, nd), dtype=np.int64)
    Y = np.zeros((ntrial, nd), dtype=np.int64)
    E = np.zeros((ntrial, nd), dtype=np.int64)
    sel = np.zeros(ntrial, dtype=np.int64)
    n = np.zeros(nd, dtype=np.int64)
    yt = np.zeros(nd, dtype=np.int64)
    ye = np.zeros(nd, dtype=np.int64)
    bo = np.zeros(nd, dtype=np.int64)
    memo = dict()
    memo[np.int64(-1)] = 0.0
    for t in range(ntrial):
        n[:] = 0
        yt[:] = 0
        ye[:] = 0
        bo[:] = 0
        c = start
        pos = t * max_n * 2
        for _i in range(ncohort):
            for k in range(cs):
                tox = u[pos + k] < pt[c]
                v = u[pos + cs + k]
                eff = v < pe_t[c] if tox else v < pe_n[c]
                yt[c] += tox
                ye[c] += eff
                bo[c] += tox and eff
            pos += 2 * cs
            n[c] += cs
            nxt = _next(c, n, yt, ye, bo, max_n, n_earlystop, explore, n_star, lam_e, lam_d, util, ub, too_toxic, futile, memo, betainc_fn)
            if nxt == -2:
                sel[t] = _obd(n, yt, ye, bo, util, el, target)
                break
            if nxt == -1:
                break
            c = nxt
        for k in range(nd):
            N[t, k] = n[k]
            Y[t, k] = yt[k]
            E[t, k] = ye[k]
    return N, Y, E, sel


__all__ = ["Boin12"]
