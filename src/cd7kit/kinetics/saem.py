"""Population fits by SAEM (stochastic approximation EM), written for cd7kit.

Model: ``ln y_ij = ln f(phi_i, t_ij) + sigma * e_ij``, ``phi_i = mu + eta_i``, ``eta_i ~ N(0, Omega)`` with
``Omega`` diagonal, on the estimation scale (log; logit for Stein's FB). BLQ rows are left-censored
(M3 likelihood in the E-step; their latent values are imputed from the truncated normal for the
residual-variance statistic, as in Samson, Lavielle & Mentre, Comput Stat Data Anal 2006;51:1562).

Algorithm (Delyon, Lavielle & Moulines, Ann Stat 1999; Kuhn & Lavielle, ESAIM P&S 2004; the Monolix
defaults of 3 MH kernels):

1. E-step by Metropolis-Hastings, vectorised over subjects: (a) independent proposals from N(mu, Omega),
   (b) joint random walk, (c) component-wise random walk, with adaptive step sizes (target 40 %).
   Models that provide a compiled E-step (Stein 2019: ``stein2019.mh_estep``, numba) use it; others run
   the numpy version.
2. Stochastic approximation of the sufficient statistics S1 = mean(phi), S2 = mean(phi^2), S3 = mean
   squared residual, step 1 during ``n_burn`` exploratory iterations and 1/k afterwards.
3. M-step: mu = S1, Omega = S2 - mu^2 (with simulated annealing: Omega may shrink by at most 5 % per
   exploratory iteration), sigma^2 = S3.

Standard errors of mu and omega^2 come from Louis' missing-information principle using the posterior
samples of the final iterations (the mu/Omega block; cross-information with sigma is neglected).
Individual parameters are the posterior means. Everything is seeded and deterministic.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from cd7kit.data import Rule

from .fit import Model, get_model, m3_loglik


@dataclass
class PopData:
    """Padded (n_subjects, max_obs) arrays of one analyte."""

    ids: list[str]
    t: np.ndarray
    log_y: np.ndarray
    blq: np.ndarray
    log_lloq: np.ndarray
    mask: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ids)


def pop_data(df: pd.DataFrame) -> PopData:
    """From a long table (subject_id, time|day, value, blq, lloq) to padded arrays."""
    df = df.rename(columns={"day": "time"}).copy()
    if "blq" not in df.columns:
        df["blq"] = False
    if "lloq" not in df.columns:
        df["lloq"] = np.nan
    b = df["blq"].fillna(False).astype(bool) | (df["lloq"].notna() & df["value"].notna() & (df["value"] < df["lloq"]))
    ok = (b & df["lloq"].notna()) | (~b & df["value"].notna() & (df["value"] > 0))
    df = df[ok].assign(blq=b[ok])
    groups = list(df.groupby("subject_id", sort=True))
    m = max((len(g) for _, g in groups), default=0)
    n = len(groups)
    t = np.zeros((n, m))
    ly = np.zeros((n, m))
    bl = np.zeros((n, m), dtype=bool)
    ll = np.zeros((n, m))
    mask = np.zeros((n, m), dtype=bool)
    for i, (_, g) in enumerate(groups):
        g = g.sort_values("time")
        k = len(g)
        t[i, :k] = g["time"].to_numpy(float)
        t[i, k:] = t[i, k - 1] if k else 0.0
        bb = g["blq"].to_numpy(bool)
        v = g["value"].to_numpy(float)
        ly[i, :k] = np.log(np.where(bb, 1.0, v))
        bl[i, :k] = bb
        ll[i, :k] = np.log(np.where(g["lloq"].notna(), g["lloq"].to_numpy(float), 1.0))
        mask[i, :k] = True
    return PopData([str(s) for s, _ in groups], t, ly, bl, ll, mask)


@dataclass
class SAEMResult:
    """Population estimates with standard errors, individual parameters and the iteration trace."""

    model: str
    param_names: tuple[str, ...]
    transforms: tuple[str, ...]
    mu: np.ndarray
    omega2: np.ndarray
    sigma: float
    se_mu: np.ndarray
    se_omega2: np.ndarray
    phi_i: np.ndarray
    ids: list[str]
    trace: np.ndarray
    n_iter: tuple[int, int]
    seconds: float
    n_obs: int
    n_blq: int
    seed: int
    missing: list[str] = field(default_factory=list)

    def typical(self) -> dict[str, float]:
        return get_model(self.model).natural(self.mu)

    def individual(self) -> pd.DataFrame:
        m = get_model(self.model)
        th = m.to_natural(self.phi_i)
        return pd.DataFrame(th, columns=list(self.param_names)).assign(subject_id=self.ids)[["subject_id", *self.param_names]]

    def to_dict(self) -> dict[str, Any]:
        m = get_model(self.model)
        rse = {}
        for i, n in enumerate(self.param_names):
            rse[n] = {
                "typical": float(m.to_natural(self.mu[None, :])[0, i]),
                "mu_transformed": float(self.mu[i]),
                "se_mu_transformed": _f(self.se_mu[i]),
                "omega2": float(self.omega2[i]),
                "se_omega2": _f(self.se_omega2[i]),
                "transform": self.transforms[i],
            }
        return {
            "name": f"saem:{self.model}",
            "value": {"parameters": rse, "sigma_log": self.sigma, "n_subjects": len(self.ids), "n_obs": self.n_obs, "n_blq": self.n_blq},
            "rule": Rule(
                "SAEM (cd7kit)",
                "1",
                {"iterations": list(self.n_iter), "seed": self.seed, "blq": "M3 censored likelihood", "omega": "diagonal", "residual": "additive on ln scale"},
                m.source,
            ).to_dict(),
            "evidence": [],
            "missing": self.missing,
            "details": {"seconds": self.seconds},
        }


def _f(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def saem(
    data: pd.DataFrame | PopData,
    model: str | Model = "stein2019",
    n_burn: int = 150,
    n_smooth: int = 100,
    seed: int = 1,
    mu0: np.ndarray | None = None,
    omega0: np.ndarray | None = None,
    sigma0: float = 1.0,
    context: Mapping[str, Any] | None = None,
    n_chains: int = 1,
    mh_steps: Sequence[int] = (2, 2, 2),
) -> SAEMResult:
    """Fit a population model by SAEM. ``data``: long table (subject_id, time, value, blq, lloq)."""
    t0 = _time.perf_counter()
    m = get_model(model) if isinstance(model, str) else model
    pdat = data if isinstance(data, PopData) else pop_data(data)
    ctx = dict(context or {})
    rng = np.random.default_rng(seed)
    p = len(m.param_names)
    n = pdat.n
    mu = (m.phi0 if mu0 is None else np.asarray(mu0, float)).copy()
    om = (np.ones(p) if omega0 is None else np.asarray(omega0, float)).copy()
    sig2 = sigma0**2
    # replicate data over chains
    reps = n_chains
    T = np.tile(pdat.t, (reps, 1))
    LY = np.tile(pdat.log_y, (reps, 1))
    BL = np.tile(pdat.blq, (reps, 1))
    LL = np.tile(pdat.log_lloq, (reps, 1))
    MK = np.tile(pdat.mask, (reps, 1))
    N = n * reps
    phi = mu + rng.normal(size=(N, p)) * np.sqrt(om) * 0.5
    n_obs = int(pdat.mask.sum())

    fast = m.cond_loglik

    def cond_ll(ph: np.ndarray, s2: float) -> np.ndarray:
        if fast is not None:
            return fast(np.ascontiguousarray(ph), T, LY, BL, LL, MK, math.sqrt(s2))
        lp = m.log_pred(ph, T, ctx)
        return m3_loglik(lp, LY, BL, LL, math.sqrt(s2), MK).sum(axis=1)

    def prior_ll(ph: np.ndarray) -> np.ndarray:
        return -0.5 * (((ph - mu) ** 2) / om).sum(axis=1)

    ll = cond_ll(phi, sig2)
    step_joint = 0.4
    step_comp = np.full(p, 0.4)
    S1 = mu.copy()
    S2 = om + mu**2
    S3 = sig2
    K = n_burn + n_smooth
    trace = np.empty((K, 2 * p + 1))
    post_sum = np.zeros((N, p))
    post_n = 0
    collect_from = n_burn + max(n_smooth // 2, 1)
    samples: list[np.ndarray] = []
    for k in range(K):
        if m.mh_estep is not None:
            rate_b, rate_c = m.mh_estep(phi, ll, mu, om, math.sqrt(sig2), T, LY, BL, LL, MK, np.asarray(mh_steps, dtype=np.int64), step_joint, step_comp, int(rng.integers(2**31 - 1)))
            step_joint *= 1 + 0.4 * (rate_b - 0.4)
            step_comp = step_comp * (1 + 0.4 * (np.asarray(rate_c) - 0.4))
        else:
            # (a) independent proposals from the prior
            for _ in range(mh_steps[0]):
                prop = mu + rng.normal(size=(N, p)) * np.sqrt(om)
                llp = cond_ll(prop, sig2)
                acc = np.log(rng.uniform(size=N)) < llp - ll
                phi[acc], ll[acc] = prop[acc], llp[acc]
            # (b) joint random walk
            for _ in range(mh_steps[1]):
                prop = phi + rng.normal(size=(N, p)) * np.sqrt(om) * step_joint
                llp = cond_ll(prop, sig2)
                a = llp + prior_ll(prop) - ll - prior_ll(phi)
                acc = np.log(rng.uniform(size=N)) < a
                phi[acc], ll[acc] = prop[acc], llp[acc]
                step_joint *= 1 + 0.4 * (acc.mean() - 0.4)
            # (c) component-wise random walk
            for _ in range(mh_steps[2]):
                for j in range(p):
                    prop = phi.copy()
                    prop[:, j] += rng.normal(size=N) * math.sqrt(om[j]) * step_comp[j]
                    llp = cond_ll(prop, sig2)
                    a = llp + prior_ll(prop) - ll - prior_ll(phi)
                    acc = np.log(rng.uniform(size=N)) < a
                    phi[acc], ll[acc] = prop[acc], llp[acc]
                    step_comp[j] *= 1 + 0.4 * (acc.mean() - 0.4)
        # impute censored values for the residual statistic
        lp = m.log_pred(phi, T, ctx)
        sd = math.sqrt(sig2)
        from scipy.special import ndtr

        upper = ndtr((LL - lp) / sd)
        u = rng.uniform(size=lp.shape) * np.clip(upper, 1e-300, 1.0)
        z = ndtri(np.clip(u, 1e-300, 1 - 1e-16))
        y_imp = np.where(BL, lp + sd * z, LY)
        res2 = np.where(MK, (y_imp - lp) ** 2, 0.0).sum() / (MK.sum())
        # stochastic approximation
        gamma = 1.0 if k < n_burn else 1.0 / (k - n_burn + 1)
        S1 = S1 + gamma * (phi.mean(axis=0) - S1)
        S2 = S2 + gamma * ((phi**2).mean(axis=0) - S2)
        S3 = S3 + gamma * (res2 - S3)
        mu = S1.copy()
        new_om = np.maximum(S2 - mu**2, 1e-6)
        om = np.maximum(new_om, 0.95 * om) if k < n_burn else new_om
        sig2 = max(S3, 1e-8)
        ll = cond_ll(phi, sig2)
        trace[k] = np.concatenate([mu, om, [math.sqrt(sig2)]])
        if k >= collect_from:
            post_sum += phi
            post_n += 1
            samples.append(phi.copy())
    phi_mean = (post_sum / max(post_n, 1)).reshape(reps, n, p).mean(axis=0)
    se_mu, se_om = _louis_se(np.stack(samples), mu, om, reps, n)
    missing = []
    if not np.all(np.isfinite(se_mu)):
        missing.append("some standard errors not estimable (information matrix not positive)")
    return SAEMResult(
        m.name,
        m.param_names,
        m.transforms,
        mu,
        om,
        math.sqrt(sig2),
        se_mu,
        se_om,
        phi_mean,
        pdat.ids,
        trace,
        (n_burn, n_smooth),
        _time.perf_counter() - t0,
        n_obs,
        int(pdat.blq[pdat.mask].sum()),
        seed,
        missing,
    )


def _louis_se(samples: np.ndarray, mu: np.ndarray, om: np.ndarray, reps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Louis' formula for the (mu, omega^2) block of the observed Fisher information.

    I = E[-d2 l_c] - Var[d l_c] with the complete-data log-likelihood of the random effects; the
    expectation and variance are over the posterior samples of each subject (subjects independent).
    """
    S, N, p = samples.shape
    samp = samples.reshape(S, reps, n, p)
    d = samp - mu  # (S, reps, n, p)
    # scores per subject and sample
    g_mu = d / om  # (S, reps, n, p)
    g_om = -0.5 / om + 0.5 * d**2 / om**2
    G = np.concatenate([g_mu, g_om], axis=-1)  # (S, reps, n, 2p)
    # expected negative Hessian per subject
    h_mu = np.broadcast_to(1.0 / om, d.shape)
    h_om = -0.5 / om**2 + d**2 / om**3
    h_cross = d / om**2
    Hm = np.zeros((2 * p, 2 * p))
    Hm[:p, :p] = np.diag(h_mu.mean(axis=(0, 1)).sum(axis=0))
    Hm[p:, p:] = np.diag(h_om.mean(axis=(0, 1)).sum(axis=0))
    cross = np.diag(h_cross.mean(axis=(0, 1)).sum(axis=0))
    Hm[:p, p:] = cross
    Hm[p:, :p] = cross
    # posterior covariance of the score, summed over subjects
    Gc = G - G.mean(axis=0, keepdims=True)
    V = np.einsum("srni,srnj->ij", Gc, Gc) / (S * reps)
    info = Hm - V
    try:
        cov = np.linalg.inv(info)
        se = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        se = np.full(2 * p, np.nan)
    return se[:p], se[p:]


__all__ = ["PopData", "pop_data", "SAEMResult", "saem"]
