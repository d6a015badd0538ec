"""Stochastic simulation and estimation (SSE) of the Stein 2019 model: does the population fit recover it?

The acceptance check of the kinetics module (issue 6; specs/kinetics.md section 6.1): simulate 60 subjects x
12 samples from the Stein 2019 model with its published between-subject variability and residual error,
censor below the LLOQ, re-estimate by SAEM (M3 likelihood for BLQ), and repeat over independent replicates.

What "fixed effects recovered within 20 %" can mean here. With Stein's variances the *realised* typical
value of a 60-subject sample (the geometric mean of its 60 true individual parameters) already moves away
from the design value: for foldx (omega^2 = 2.4) its standard deviation on the log scale is
sqrt(2.4/60) = 0.20, so even an estimator that knew every individual parameter exactly (the "oracle")
is within 20 % of the design value for all six parameters in only about half of the replicates (46 % over
2,000 simulated samples). A per-replicate 20 % criterion against the design values therefore tests the
random number generator, not the estimator. SSE studies (e.g. PsN ``sse``) judge an estimator by its
**relative bias** over replicates, ``mean(estimate / design) - 1``, its relative RMSE and the coverage of its
confidence intervals; :func:`stein_sse` reports all of them, together with the oracle's numbers.

Sampling design [D] (the spec fixes 60 subjects x 12 samples, not the days): days 1, 2, 4, 7, 10, 14, 21, 28
(expansion and contraction, daily-to-weekly as in hospital follow-up) and months 3, 6, 9, 12 (persistence).
Against the first design we tried (days 1, 4, 7, 9, 11, 14, 21, 28, 56, 90, 180, 365), on the same 30 seeds,
it cuts the log-scale RMSE of foldx against the realised value from 0.20 to 0.12 (the early samples pin the
expansion); FB and beta stay about where they were (0.13 -> 0.15 and 0.15 -> 0.16, within the Monte-Carlo
noise of 30 replicates): the 220-day terminal phase rests on the late samples whatever the design.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .models import stein2019
from .saem import saem

#: The 12 sampling days of the simulation-re-estimation check [D].
DESIGN_TIMES: tuple[float, ...] = (1.0, 2.0, 4.0, 7.0, 10.0, 14.0, 21.0, 28.0, 90.0, 180.0, 270.0, 365.0)
#: Start of the estimation, away from the truth (estimation scale: log; logit for FB): cmax x1.65, tmax x0.74,
#: foldx x0.37, alpha x1.65, FB x1.65, beta x0.61.
START_OFFSET = np.array([0.5, -0.3, -1.0, 0.5, 0.5, -0.5])

#: ``fit(data) -> (estimates on the estimation scale (6,), standard errors (6,) or None)``
FitFn = Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray | None]]


def saem_fit(n_burn: int = 150, n_smooth: int = 100, n_chains: int = 1) -> FitFn:
    """cd7kit SAEM (M3 for BLQ) started at :data:`START_OFFSET` from the design values."""
    mu0 = stein2019.to_phi(stein2019.TYPICAL.as_array()) + START_OFFSET

    def fit(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        r = saem(data, "stein2019", n_burn=n_burn, n_smooth=n_smooth, n_chains=n_chains, mu0=mu0, seed=int(fit.calls) + 1)  # type: ignore[attr-defined]
        fit.calls += 1  # type: ignore[attr-defined]
        return r.mu, r.se_mu

    fit.calls = 0  # type: ignore[attr-defined]
    return fit


@dataclass
class SSEResult:
    """Per-replicate estimates and their summary (see the module docstring)."""

    table: pd.DataFrame  # one row per replicate and parameter
    seconds: list[float]
    n_subjects: int
    times: tuple[float, ...]
    lloq: float
    summary: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        g = self.table.groupby("parameter", sort=False)
        self.summary = pd.DataFrame(
            {
                "design": g["design"].first(),
                "relative_bias": g["rel_err"].mean(),
                "relative_rmse": g["rel_err"].apply(lambda x: float(np.sqrt((x**2).mean()))),
                "within_20pct": g["rel_err"].apply(lambda x: float((x.abs() < 0.2).mean())),
                "oracle_relative_bias": g["oracle_rel_err"].mean(),
                "oracle_within_20pct": g["oracle_rel_err"].apply(lambda x: float((x.abs() < 0.2).mean())),
                "ci95_coverage": g["covered"].mean(),
                "rmse_log_vs_realised": g.apply(lambda d: float(np.sqrt(((d["log_est"] - d["log_realised"]) ** 2).mean())), include_groups=False),
            }
        )

    @property
    def replicates(self) -> int:
        return int(self.table["replicate"].nunique())

    def all_within(self, tol: float = 0.2, oracle: bool = False) -> float:
        """Fraction of replicates in which all six fixed effects are within ``tol`` of the design values."""
        col = "oracle_rel_err" if oracle else "rel_err"
        return float(self.table.assign(ok=self.table[col].abs() < tol).groupby("replicate")["ok"].all().mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "sse:stein2019",
            "value": {k: {c: (None if pd.isna(v) else float(v)) for c, v in row.items()} for k, row in self.summary.iterrows()},
            "details": {
                "replicates": self.replicates,
                "n_subjects": self.n_subjects,
                "times": list(self.times),
                "lloq": self.lloq,
                "all_six_within_20pct": self.all_within(),
                "oracle_all_six_within_20pct": self.all_within(oracle=True),
                "seconds_per_fit": float(np.mean(self.seconds)),
            },
            "rule": {"system": "stochastic simulation and estimation", "version": "1", "options": {"start_offset": START_OFFSET.tolist()}, "source": stein2019.SOURCE},
            "evidence": [],
            "missing": [],
        }


def stein_sse(
    n_rep: int = 20,
    n_subjects: int = 60,
    times: Sequence[float] = DESIGN_TIMES,
    lloq: float = 10.0,
    seed0: int = 1,
    fit: FitFn | None = None,
    datasets: Sequence[tuple[pd.DataFrame, np.ndarray]] | None = None,
) -> SSEResult:
    """Simulate ``n_rep`` Stein 2019 populations (seeds ``seed0``...) and re-estimate each with ``fit``.

    ``datasets``: reuse already simulated (data, true individual parameters) pairs, e.g. to run two
    estimators on the same data. Errors are relative to the design values (Stein 2019 Table 1); the
    "oracle" is the realised geometric mean of the true individual parameters of each replicate.
    """
    fit = fit or saem_fit()
    design = stein2019.TYPICAL.as_array()
    if datasets is None:
        datasets = [stein2019.simulate_population(n_subjects, np.asarray(times, float), seed=seed0 + r, lloq=lloq) for r in range(n_rep)]
    rows, secs = [], []
    for r, (df, truth) in enumerate(datasets):
        realised_phi = stein2019.to_phi(truth).mean(axis=0)
        t0 = time.perf_counter()
        est, se = fit(df)
        secs.append(time.perf_counter() - t0)
        est_nat = stein2019.from_phi(np.asarray(est, float)[None, :])[0]
        realised = stein2019.from_phi(realised_phi[None, :])[0]
        des_phi = stein2019.to_phi(design)
        for j, name in enumerate(stein2019.PARAMS):
            covered = np.nan if se is None or not np.isfinite(se[j]) else float(abs(est[j] - des_phi[j]) < 1.96 * se[j])
            rows.append(
                {
                    "replicate": r,
                    "parameter": name,
                    "design": design[j],
                    "estimate": est_nat[j],
                    "realised": realised[j],
                    "rel_err": est_nat[j] / design[j] - 1,
                    "oracle_rel_err": realised[j] / design[j] - 1,
                    "log_est": est[j],
                    "log_realised": realised_phi[j],
                    "covered": covered,
                }
            )
    return SSEResult(pd.DataFrame(rows), secs, int(len(datasets[0][1])) if datasets else n_subjects, tuple(float(x) for x in times), float(lloq))


__all__ = ["DESIGN_TIMES", "START_OFFSET", "SSEResult", "saem_fit", "stein_sse"]
