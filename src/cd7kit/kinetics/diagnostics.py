"""Goodness-of-fit data and a visual predictive check (VPC) built on NCA metrics.

GOF: observed vs population (PRED, eta = 0) and individual (IPRED, posterior-mean parameters)
predictions and individual weighted residuals on the ln scale (IWRES = (ln DV - ln IPRED)/sigma);
BLQ rows are kept and flagged (plot them at the LLOQ). VPC: the fitted population is re-simulated
on the observed design (same times, same LLOQ, same BLQ rule), the same NCA (:mod:`.nca`) is run on
every simulated subject, and the observed NCA metrics (Cmax, Tmax, AUC0-28d) are set against the
simulated 5th/50th/95th percentiles with their replicate-to-replicate 90 % intervals. A time-binned
VPC of the concentrations is returned too. Functions return tables; :mod:`.pl` draws them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .nca import nca_profile
from .saem import SAEMResult, pop_data


def gof(result: SAEMResult, data: pd.DataFrame) -> pd.DataFrame:
    """Observed, PRED, IPRED, IWRES for every usable observation of ``data``."""
    pdat = pop_data(data)
    idx = {s: i for i, s in enumerate(result.ids)}
    rows = []
    lp_pop = result.log_pred(np.repeat(result.mu[None, :], pdat.n, axis=0), pdat.t, pdat.ids)
    phi_i = np.stack([result.phi_i[idx[s]] for s in pdat.ids])
    lp_ind = result.log_pred(phi_i, pdat.t, pdat.ids)
    for i, s in enumerate(pdat.ids):
        k = pdat.mask[i]
        for j in np.flatnonzero(k):
            blq = bool(pdat.blq[i, j])
            dv = float(np.exp(pdat.log_lloq[i, j] if blq else pdat.log_y[i, j]))
            rows.append(
                {
                    "subject_id": s,
                    "time": float(pdat.t[i, j]),
                    "dv": dv,
                    "blq": blq,
                    "pred": float(np.exp(lp_pop[i, j])),
                    "ipred": float(np.exp(lp_ind[i, j])),
                    "iwres": None if blq else float((pdat.log_y[i, j] - lp_ind[i, j]) / result.sigma),
                }
            )
    return pd.DataFrame(rows)


def _nca_table(long: pd.DataFrame) -> pd.DataFrame:
    out = []
    for sid, g in long.groupby("subject_id", sort=False):
        r = nca_profile(g["time"].to_numpy(float), g["value"].to_numpy(float), g["blq"].to_numpy(bool))
        out.append({"subject_id": sid, "cmax": r["cmax"], "tmax": r["tmax"], "auc0_28": r["auc0_28"]})
    return pd.DataFrame(out)


def vpc_nca(result: SAEMResult, data: pd.DataFrame, n_rep: int = 100, seed: int = 7, quantiles: tuple[float, ...] = (0.05, 0.5, 0.95)) -> dict[str, Any]:
    """VPC on NCA metrics: observed quantiles vs simulated quantiles (median and 90 % band over replicates)."""
    pdat = pop_data(data)
    rng = np.random.default_rng(seed)
    obs_long = data.rename(columns={"day": "time"}).copy()
    if "blq" not in obs_long.columns:
        obs_long["blq"] = False
    obs_nca = _nca_table(obs_long)
    metrics = ("cmax", "tmax", "auc0_28")
    sim_q = {k: np.empty((n_rep, len(quantiles))) for k in metrics}
    lloq = np.exp(pdat.log_lloq)
    has_lloq = pdat.blq.any() or np.isfinite(obs_long.get("lloq", pd.Series(dtype=float))).any()
    for r in range(n_rep):
        phi = result.mu + rng.normal(size=(pdat.n, len(result.mu))) * np.sqrt(result.omega2)
        lp = result.log_pred(phi, pdat.t, pdat.ids)
        y = np.exp(lp + rng.normal(size=lp.shape) * result.sigma)
        blq = (y < lloq) if has_lloq else np.zeros_like(y, dtype=bool)
        tab = []
        for i in range(pdat.n):
            k = pdat.mask[i]
            prof = nca_profile(pdat.t[i, k], np.where(blq[i, k], np.nan, y[i, k]), blq[i, k])
            tab.append([prof["cmax"], prof["tmax"], prof["auc0_28"]])
        arr = np.array(tab, dtype=float)
        for j, k_ in enumerate(metrics):
            sim_q[k_][r] = np.nanquantile(arr[:, j], quantiles)
    out: dict[str, Any] = {"quantiles": list(quantiles), "n_rep": n_rep, "metrics": {}}
    for k_ in metrics:
        ob = obs_nca[k_].to_numpy(float)
        out["metrics"][k_] = {
            "observed": [float(v) for v in np.nanquantile(ob, quantiles)],
            "simulated_median": [float(v) for v in np.median(sim_q[k_], axis=0)],
            "simulated_lo": [float(v) for v in np.quantile(sim_q[k_], 0.05, axis=0)],
            "simulated_hi": [float(v) for v in np.quantile(sim_q[k_], 0.95, axis=0)],
        }
    out["observed_nca"] = obs_nca
    return out


def vpc_time(result: SAEMResult, data: pd.DataFrame, n_rep: int = 100, seed: int = 7) -> pd.DataFrame:
    """Classic VPC by nominal time: observed and simulated 5/50/95th percentiles (BLQ counted at 0)."""
    pdat = pop_data(data)
    rng = np.random.default_rng(seed)
    lloq = np.exp(pdat.log_lloq)
    obs = np.where(pdat.blq, 0.0, np.exp(pdat.log_y))
    times = np.unique(pdat.t[pdat.mask])
    sims = []
    for _ in range(n_rep):
        phi = result.mu + rng.normal(size=(pdat.n, len(result.mu))) * np.sqrt(result.omega2)
        y = np.exp(result.log_pred(phi, pdat.t, pdat.ids) + rng.normal(size=pdat.t.shape) * result.sigma)
        sims.append(np.where(y < lloq, 0.0, y))
    S = np.stack(sims)
    rows = []
    for tt in times:
        sel = pdat.mask & (pdat.t == tt)
        o = obs[sel]
        s = S[:, sel]
        qo = np.quantile(o, [0.05, 0.5, 0.95])
        qs = np.quantile(s, [0.05, 0.5, 0.95], axis=1)  # (3, n_rep)
        rows.append(
            {
                "time": float(tt),
                "n": int(sel.sum()),
                "obs_p05": qo[0],
                "obs_p50": qo[1],
                "obs_p95": qo[2],
                "sim_p05_med": float(np.median(qs[0])),
                "sim_p50_med": float(np.median(qs[1])),
                "sim_p95_med": float(np.median(qs[2])),
                "sim_p50_lo": float(np.quantile(qs[1], 0.05)),
                "sim_p50_hi": float(np.quantile(qs[1], 0.95)),
                "frac_blq_obs": float(pdat.blq[sel].mean()),
            }
        )
    return pd.DataFrame(rows)


__all__ = ["gof", "vpc_nca", "vpc_time"]
