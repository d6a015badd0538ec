"""BOIN12: utility-based phase I/II dose finding (toxicity and efficacy) -- conduct, OBD selection, simulation.

Sources: Lin R, Zhou Y, Yan F, Li D, Yuan Y (2020) JCO Precis Oncol 4:1393-1402 (BOIN12, Table 2 and the
dose-exploration rule of its supplement); R package escalation (brockk/escalation, ``boin12_logic.R``),
whose behaviour is followed:

* utilities u1 = 100 (response, no DLT), u2 (neither; default 40), u3 (both; default 60), u4 = 0 (DLT,
  no response); u_bar = 100 phi_E (1-phi_T) + u2 (1-phi_T)(1-phi_E) + u3 phi_T phi_E + u4 phi_T (1-phi_E);
  benchmark u_b = u_bar + (100 - u_bar)/2.
* quasi-binomial pseudo-data x = (u1 y1 + u2 y2 + u3 y3 + u4 y4)/100; desirability (rank-based
  desirability score) = 100 P(U > u_b/100 | Beta(1 + x, 1 + n - x)).
* admissible among d-1, d, d+1: P(p_T > phi_T | data) < c_T (0.95) and P(p_E < phi_E | data) < c_E (0.90), Beta(1,1).
* at the current dose (BOIN boundaries of phi_T): n > 8, p_hat < lambda_d and d+1 untried -> escalate
  (dose exploration); p_hat >= lambda_d -> d-1 (stay at dose 1); lambda_e < p_hat < lambda_d and n >= N* (6)
  -> the more desirable of d-1, d (ties: d-1); no admissible dose -> stop; else the most desirable
  admissible of d-1, d, d+1 (ties -> the higher dose, as the BOIN12 Shiny app).
* final OBD: the isotonic MTD (BOIN select.mtd on toxicity), then the treated dose <= MTD with the
  highest posterior-mean utility (1 + x)/(2 + n) (ties -> lower dose). The exact OBD definition differs
  between implementations (escalation issue #8); this is the paper's description.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from cd7kit.data.result import Rule
from cd7kit.errors import InputError, Problem

from . import boin as B
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
SOURCE = "Lin, Zhou, Yan, Li, Yuan, JCO Precis Oncol 2020;4:1393-1402; R package escalation (boin12_logic.R)"


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
    ncohort: int = 10
    cohortsize: int = 3
    startdose: int = 1

    name = "boin12"

    def __post_init__(self) -> None:
        problems = []
        if not self.u4 <= min(self.u2, self.u3) <= max(self.u2, self.u3) <= self.u1:
            problems.append(Problem("utilities must satisfy u4 <= u2, u3 <= u1", column="u2", value=(self.u2, self.u3)))
        if not 0 < self.phi_e < 1:
            problems.append(Problem("phi_e must be a probability", column="phi_e", value=self.phi_e))
        if problems:
            raise InputError(problems)
        B.check_design(self.target)

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
                                      "n_star": self.n_star, "u_b": self.u_b}, SOURCE)

    def _counts(self, d: TrialData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not d.efficacy:
            raise InputError([Problem("BOIN12 needs the number of responses per dose", column="efficacy")])
        n = np.array(d.n, dtype=float)
        yt = np.array(d.y, dtype=float)
        ye = np.array(d.efficacy, dtype=float)
        both = np.array(d.both, dtype=float) if d.both else np.zeros_like(n)
        return n, yt, ye, both

    def desirability(self, n: np.ndarray, yt: np.ndarray, ye: np.ndarray, both: np.ndarray) -> np.ndarray:
        """100 P(U > u_b/100) per dose (rank-based desirability score)."""
        y1 = ye - both
        y3 = both
        y4 = yt - both
        y2 = n - y1 - y3 - y4
        x = (self.u1 * y1 + self.u2 * y2 + self.u3 * y3 + self.u4 * y4) / 100
        return 100 * (1 - special.betainc(1 + x, 1 + n - x, self.u_b / 100))

    def admissible(self, n: np.ndarray, yt: np.ndarray, ye: np.ndarray, current: int) -> list[int]:
        nd = len(n)
        out = []
        for k in sorted({max(0, current - 1), current, min(nd - 1, current + 1)}):
            too_toxic = 1 - special.betainc(1 + yt[k], 1 + n[k] - yt[k], self.target) >= self.c_t
            futile = special.betainc(1 + ye[k], 1 + n[k] - ye[k], self.phi_e) >= self.c_e
            if not too_toxic and not futile:
                out.append(k)
        return out

    def next_dose(self, data: TrialData | Mapping[str, Any]) -> Decision:
        d = as_trial_data(data)
        if d.current is None:
            raise InputError([Problem("the current dose is needed", column="current")])
        n, yt, ye, both = self._counts(d)
        nd = len(n)
        c = d.current - 1
        lam_e, lam_d = B.lambdas(self.target)
        rds = self.desirability(n, yt, ye, both)
        adm = self.admissible(n, yt, ye, c)
        pt = yt[c] / n[c] if n[c] > 0 else 0.0
        details = {"desirability": rds, "admissible": [k + 1 for k in adm], "p_hat_t": pt, "lambda_e": lam_e, "lambda_d": lam_d, "u_b": self.u_b}
        if n[c] == 0:
            raise InputError([Problem("no patient has been treated at the current dose", column="current", value=c + 1)])
        if n[c] > 8 and pt < lam_d and c != nd - 1 and n[c + 1] == 0:
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
            rule_ = self.rule
            return Decision(None, "stop", c + 1, "no admissible dose among d-1, d, d+1: stop", rule_, d.data_evidence(), (), [], self.select_mtd(d), details)
        else:
            best = max(rds[k] for k in adm)
            nxt = [k for k in adm if rds[k] == best][-1]
            why = f"most desirable admissible dose (score {best:.1f})"
        action = "escalate" if nxt > c else "de-escalate" if nxt < c else "stay"
        return Decision(nxt + 1, action, c + 1, why, self.rule, d.data_evidence(), (), [], None, details)

    def select_mtd(self, data: TrialData | Mapping[str, Any]) -> MtdSelection:
        """The optimal biological dose (OBD): highest posterior-mean utility among treated doses <= the isotonic MTD."""
        d = as_trial_data(data)
        n, yt, ye, both = self._counts(d)
        mtd = B.select_mtd(self.target, d.n, d.y)
        y1, y3, y4 = ye - both, both, yt - both
        x = (self.u1 * y1 + self.u2 * (n - y1 - y3 - y4) + self.u3 * y3 + self.u4 * y4) / 100
        util = (1 + x) / (2 + n)
        if mtd.mtd is None:
            obd, why = None, "no MTD (toxicity): no OBD"
        else:
            cand = [k for k in range(mtd.mtd) if n[k] > 0]
            obd = None if not cand else max(cand, key=lambda k: (util[k], -k)) + 1
            why = f"highest posterior-mean utility among treated doses <= MTD {mtd.mtd}"
        return MtdSelection(obd, self.target, mtd.phat, mtd.ci_lower, mtd.ci_upper, mtd.p_overdose, mtd.eliminated, why, self.rule,
                            d.data_evidence(), (), {"mtd": mtd.mtd, "utility": util})

    def decision_table(self, full: bool = False) -> list[dict[str, Any]]:
        """Desirability score for each (n, DLT, response) with n = cohort multiples (both = expected under independence is not assumed: both = 0)."""
        rows = []
        for nn in range(self.cohortsize, self.ncohort * self.cohortsize + 1, self.cohortsize):
            for t in range(nn + 1):
                for e in range(nn - t + 1):
                    r = self.desirability(np.array([nn], float), np.array([t], float), np.array([e], float), np.array([0.0]))[0]
                    rows.append({"n": nn, "dlt": t, "response": e, "desirability": round(float(r), 1)})
        return rows

    def simulate(self, p_true: Sequence[float], p_eff: Sequence[float], ntrial: int = 1000, seed: int | None = 6, rng: str = "numpy",
                 per_trial: bool = False, p_both: Sequence[float] | None = None) -> OperatingCharacteristics:
        """OBD selection by simulation; toxicity and response independent unless ``p_both`` (P(DLT and response)) is given."""
        pt = check_p_true(p_true)
        pe = check_p_true(p_eff)
        if len(pe) != len(pt):
            raise InputError([Problem("p_eff needs one probability per dose", column="p_eff", value=len(pe), expected=str(len(pt)))])
        pb = pt * pe if p_both is None else np.asarray(p_both, float)
        nd = len(pt)
        cs = self.cohortsize
        u = make_stream(rng, seed).runif(ntrial * self.ncohort * cs * 2).reshape(ntrial, -1)
        N = np.zeros((ntrial, nd), dtype=np.int64)
        Y = np.zeros((ntrial, nd), dtype=np.int64)
        E = np.zeros((ntrial, nd), dtype=np.int64)
        sel = np.zeros(ntrial, dtype=np.int64)
        pe_given_t = np.where(pt > 0, pb / np.maximum(pt, 1e-300), 0.0)
        pe_given_not = np.where(pt < 1, (pe - pb) / np.maximum(1 - pt, 1e-300), 0.0)
        for t in range(ntrial):
            n = np.zeros(nd)
            yt = np.zeros(nd)
            ye = np.zeros(nd)
            bo = np.zeros(nd)
            c = self.startdose - 1
            stopped = False
            for i in range(self.ncohort):
                uu = u[t, 2 * cs * i : 2 * cs * (i + 1)]
                tox = uu[:cs] < pt[c]
                eff = np.where(tox, uu[cs:] < pe_given_t[c], uu[cs:] < pe_given_not[c])
                n[c] += cs
                yt[c] += tox.sum()
                ye[c] += eff.sum()
                bo[c] += (tox & eff).sum()
                if i == self.ncohort - 1:
                    break
                dec = self.next_dose(TrialData.of(n.astype(int), yt.astype(int), c + 1, efficacy=ye.astype(int), both=bo.astype(int)))
                if dec.stop:
                    stopped = True
                    break
                assert dec.value is not None
                c = dec.value - 1
            N[t], Y[t], E[t] = n, yt, ye
            if not stopped:
                s = self.select_mtd(TrialData.of(n.astype(int), yt.astype(int), efficacy=ye.astype(int), both=bo.astype(int)))
                sel[t] = 0 if s.mtd is None else s.mtd
        rule = Rule(SYSTEM, VERSION, {**self.rule.options, "ntrial": ntrial, "seed": seed, "rng": rng, "p_eff": [float(v) for v in pe]}, SOURCE)
        return summarise("boin12", pt, self.target, N, Y, sel, self.ncohort * cs, rule, per_trial, extra={"response_mean": E.mean(axis=0)})


__all__ = ["Boin12"]
