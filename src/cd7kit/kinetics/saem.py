"""Population fits by SAEM (stochastic approximation EM), written for cd7kit.

Model: ``ln y_ij = ln f(phi_i, t_ij) + sigma * e_ij``, ``phi_i = mu + eta_i``, ``eta_i ~ N(0, Omega)`` with
``Omega`` diagonal, on the estimation scale (log; logit for Stein's FB). BLQ rows are left-censored
(M3 likelihood in the E-step; their latent values are imputed from the truncated normal for the
residual-variance statistic, as in Samson, Lavielle & Mentre, Comput Stat Data Anal 2006;51:1562).

Algorithm (Delyon, Lavielle & Moulines, Ann Stat 1999; Kuhn & Lavielle, ESAIM P&S 2004; the Monolix
defaults of 3 MH kernels):

1. E-step by Metropolis-Hastings, compiled and parallel over subjects (:mod:`.mcmc`): (a) independent
   proposals from N(mu, Omega), (b) joint random walk, (c) component-wise random walk, with adaptive step
   sizes (target 40 %). The random numbers come from one numpy generator, so a seed gives one result
   whatever the number of threads.
2. Stochastic approximation of the sufficient statistics S1 = mean(phi), S2 = mean(phi^2), S3 = mean
   squared residual, step 1 during ``n_burn`` exploratory iterations and 1/k afterwards.
3. M-step: mu = S1, Omega = S2 - mu^2 (with simulated annealing: Omega may shrink by at most 5 % per
   exploratory iteration), sigma^2 = S3.

Standard errors of mu and omega^2 come from Louis' missing-information principle using the posterior
samples of the final iterations (the mu/Omega block; cross-information with sigma is neglected).
Individual parameters are the posterior means. Everything is seeded and deterministic.

Parameters can be held fixed (no random effect) at given values: SAEM then runs over the identifiable
subset. The ODE models do so by default (:attr:`.fit.Model.saem_fixed`: Kimmel 2021's C(0), CK7's A50).
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from cd7kit.data import Rule, Study

from . import mcmc
from .fit import Model, get_model
from .models import ck7


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
    fixed: dict[str, float] = field(default_factory=dict)
    aux: np.ndarray | None = None  # per subject (n, k): the fixed inputs of the model (doses, preset)
    n_chains: int = 1
    code: str | None = None  # the CAR code fitted, when fitted from a Study

    def typical(self) -> dict[str, float]:
        return get_model(self.model).natural(self.mu)

    def individual(self) -> pd.DataFrame:
        m = get_model(self.model)
        th = m.to_natural(self.phi_i)
        return pd.DataFrame(th, columns=list(self.param_names)).assign(subject_id=self.ids)[["subject_id", *self.param_names]]

    def log_pred(self, phi: np.ndarray, t: np.ndarray, ids: Sequence[str] | None = None) -> np.ndarray:
        """ln predictions for rows of ``phi``/``t`` belonging to subjects ``ids`` (default: the fitted ones, in order)."""
        m = get_model(self.model)
        aux = None
        if self.aux is not None:
            pos = {s: i for i, s in enumerate(self.ids)}
            aux = self.aux[[pos[s] for s in (ids if ids is not None else self.ids)]]
        return m.log_pred(phi, t, aux=aux if aux is not None else m.aux({}))

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
                "fixed": n in self.fixed,
            }
        return {
            "name": f"saem:{self.model}",
            "value": {
                "parameters": rse,
                "sigma_log": self.sigma,
                "n_subjects": len(self.ids),
                "n_obs": self.n_obs,
                "n_blq": self.n_blq,
                "subjects": list(self.ids),
                "code": self.code,
                "unit": m.unit,
            },
            "rule": Rule(
                "SAEM (cd7kit)",
                "2",
                {
                    "iterations": list(self.n_iter),
                    "chains": self.n_chains,
                    "seed": self.seed,
                    "blq": "M3 censored likelihood",
                    "omega": "diagonal",
                    "residual": "additive on ln scale",
                    "fixed": dict(self.fixed),
                    "note": m.saem_note,
                },
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
    mh_steps: Sequence[int] = (2, 2, 1),
    fixed: Mapping[str, float] | None = None,
    subject_context: Mapping[str, Mapping[str, Any]] | None = None,
) -> SAEMResult:
    """Fit a population model by SAEM. ``data``: long table (subject_id, time, value, blq, lloq).

    ``fixed``: natural-scale values of parameters held fixed, without random effect (default: the model's
    ``saem_fixed``; pass ``{}`` to estimate all). ``context`` applies to every subject; ``subject_context``
    (by subject_id) overrides it per subject (doses, product preset). ``mu0`` defaults to the model's start
    values (published / prior typical values), ``omega0`` to 1 on the estimation scale. ``mh_steps``: passes of
    the kernels (a), (b), (c) per iteration; one component-wise pass (Monolix uses two) gave the same bias,
    RMSE and coverage over 30 simulated Stein data sets at 35 % less cost (docs/kinetics.md).
    """
    t0 = _time.perf_counter()
    m = get_model(model) if isinstance(model, str) else model
    pdat = data if isinstance(data, PopData) else pop_data(data)
    rng = np.random.default_rng(seed)
    p = len(m.param_names)
    n = pdat.n
    fixed = dict(m.saem_fixed if fixed is None else fixed)
    unknown = [k for k in fixed if k not in m.param_names]
    if unknown:
        from cd7kit.errors import InputError, Problem

        raise InputError([Problem("unknown parameter to fix", column="fixed", value=k, expected=" | ".join(m.param_names)) for k in unknown])
    free = np.array([nm not in fixed for nm in m.param_names])
    mu = (m.phi0 if mu0 is None else np.asarray(mu0, float)).copy()
    for name, v in fixed.items():
        mu[m.param_names.index(name)] = m.to_est(name, v)
    om = (np.ones(p) if omega0 is None else np.asarray(omega0, float)).copy()
    om[~free] = 1.0  # never used: fixed components are not sampled
    sig2 = sigma0**2
    ctx = dict(context or {})
    sctx = subject_context or {}
    aux1 = np.stack([np.asarray(m.aux({**ctx, **sctx.get(s, {})}), dtype=float) for s in pdat.ids]) if n else np.zeros((0, 0))
    reps = n_chains
    T = np.ascontiguousarray(np.tile(pdat.t, (reps, 1)))
    LY = np.ascontiguousarray(np.tile(pdat.log_y, (reps, 1)))
    BL = np.ascontiguousarray(np.tile(pdat.blq, (reps, 1)))
    LL = np.ascontiguousarray(np.tile(pdat.log_lloq, (reps, 1)))
    MK = np.ascontiguousarray(np.tile(pdat.mask, (reps, 1)))
    AUX = np.ascontiguousarray(np.tile(aux1, (reps, 1)))
    N = n * reps
    mid = m.model_id
    phi = mu + rng.normal(size=(N, p)) * np.sqrt(om) * 0.5 * free
    n_obs = int(pdat.mask.sum())
    steps = np.asarray(mh_steps, dtype=np.int64)
    nz = int(steps.sum()) * p
    nu = int(steps[0] + steps[1] + steps[2] * p)

    def cond_ll(ph: np.ndarray, s2: float) -> np.ndarray:
        return mcmc.cond_loglik(mid, ph, T, LY, BL, LL, MK, math.sqrt(s2), AUX)

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
    collect_from = n_burn  # posterior samples of the whole smoothing phase: individual means and SEs
    samples: list[np.ndarray] = []
    for k in range(K):
        Z = rng.standard_normal((N, nz))
        U = np.log(rng.random((N, nu)))
        acc_b, acc_c = mcmc.mh_estep(mid, phi, ll, mu, om, free, math.sqrt(sig2), T, LY, BL, LL, MK, AUX, steps, step_joint, step_comp, Z, U)
        if steps[1]:
            step_joint *= 1 + 0.4 * (acc_b.sum() / (N * steps[1]) - 0.4)
        if steps[2]:
            step_comp = step_comp * (1 + 0.4 * (acc_c.sum(axis=0) / (N * steps[2]) - 0.4) * free)
        # impute censored values (truncated normal below the LLOQ) for the residual statistic
        lp = mcmc.log_pred(mid, phi, T, AUX)
        sd = math.sqrt(sig2)
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
        # M-step; simulated annealing in the exploratory phase: a variance shrinks by at most 5 % per iteration
        mu = np.where(free, S1, mu)
        new_om = np.maximum(S2 - S1**2, 1e-6)
        om = np.where(free, np.maximum(new_om, 0.95 * om) if k < n_burn else new_om, 1.0)
        sig2 = max(S3, 1e-8)
        ll = cond_ll(phi, sig2)
        trace[k] = np.concatenate([mu, np.where(free, om, 0.0), [math.sqrt(sig2)]])
        if k >= collect_from:
            post_sum += phi
            post_n += 1
            samples.append(phi.copy())
    phi_mean = (post_sum / max(post_n, 1)).reshape(reps, n, p).mean(axis=0)
    se_mu = np.full(p, np.nan)
    se_om = np.full(p, np.nan)
    om_out = np.where(free, om, 0.0)
    if free.any() and samples:
        sm, so = _louis_se(np.stack(samples)[:, :, free], mu[free], om[free], reps, n)
        se_mu[free], se_om[free] = sm, so
    missing = []
    if not np.all(np.isfinite(se_mu[free])):
        missing.append("some standard errors not estimable (information matrix not positive)")
    return SAEMResult(
        m.name,
        m.param_names,
        m.transforms,
        mu,
        om_out,
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
        fixed,
        aux1,
        reps,
    )


def saem_study(
    study: Study,
    model: str = "stein2019",
    code: str | None = None,
    n_burn: int = 150,
    n_smooth: int = 100,
    seed: int = 1,
    n_chains: int = 1,
) -> SAEMResult:
    """Population fit of a Study's CAR time courses (blood samples of ``code``; BLQ by M3).

    Each subject's samples and inputs come from :func:`.fit.subject_samples` and :func:`.fit.study_context`.
    CK7 needs one product preset per population: subjects of the largest preset group are fitted, the others
    are listed in ``missing``. Subjects without usable samples are left out and listed too. Starting values:
    the model's published / prior typical values (for CK7 those of the group's preset).
    """
    from cd7kit.errors import InputError, Problem

    from .fit import default_code, study_context, subject_samples

    m = get_model(model)
    code = code or default_code(study, m.name)
    rows, ctxs, missing = [], {}, []
    for sid in study.subjects["subject_id"]:
        d = subject_samples(study, str(sid), m.name, code)
        if d.empty or not ((~d["blq"]) & d["value"].notna()).any():
            continue
        rows.append(d)
        ctxs[str(sid)] = study_context(study, str(sid), m.name)
    mu0 = None
    if m.name == "ck7" and ctxs:
        groups: dict[str, list[str]] = {}
        for sid, c in ctxs.items():
            groups.setdefault(c["preset"], []).append(sid)
        keep = max(groups, key=lambda g: len(groups[g]))
        for g, sids in groups.items():
            if g != keep:
                missing.append(f"{len(sids)} subject(s) with the {g} preset left out (one preset per population): {', '.join(sids)}")
        rows = [r for r in rows if r["subject_id"].iloc[0] in groups[keep]]
        pr = ck7.PRESETS[keep]
        mu0 = np.log([pr.rho_max, pr.alpha, pr.A50, 1.0])
    if len(rows) < 3:
        raise InputError([Problem("a population fit needs quantified CAR data from at least 3 subjects", column="--code", value=code, expected=f"{code} samples in 3 or more subjects")])
    data = pd.concat(rows, ignore_index=True)
    res = saem(data, m, n_burn=n_burn, n_smooth=n_smooth, seed=seed, n_chains=n_chains, mu0=mu0, subject_context=ctxs)
    left_out = sorted(set(map(str, study.subjects["subject_id"])) - set(res.ids))
    if left_out and m.name != "ck7":
        missing.append(f"{len(left_out)} subject(s) without quantified {code} samples left out")
    res.missing = missing + res.missing
    res.code = code
    return res


def _louis_se(samples: np.ndarray, mu: np.ndarray, om: np.ndarray, reps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Louis' formula for the observed Fisher information of (mu, omega^2); standard errors per block.

    I = E[-d2 l_c] - Var[d l_c] with the complete-data log-likelihood of the random effects; the
    expectation and variance are over the posterior samples of each subject (subjects independent).
    The mu and omega^2 blocks are inverted separately: for normal random effects the expected
    cross-information of a mean and a variance is zero, and the separate inversion does not let Monte-Carlo
    noise in the cross terms make the whole matrix indefinite (seen with 9 subjects and one chain).
    """
    S, N, p = samples.shape
    samp = samples.reshape(S, reps, n, p)
    d = samp - mu  # (S, reps, n, p)
    g_mu = d / om
    g_om = -0.5 / om + 0.5 * d**2 / om**2
    out = []
    for g, h in ((g_mu, np.broadcast_to(1.0 / om, d.shape)), (g_om, -0.5 / om**2 + d**2 / om**3)):
        Hm = np.diag(h.mean(axis=(0, 1)).sum(axis=0))
        gc = g - g.mean(axis=0, keepdims=True)
        V = np.einsum("srni,srnj->ij", gc, gc) / (S * reps)
        try:
            cov = np.linalg.inv(Hm - V)
            dg = np.diag(cov)
            out.append(np.sqrt(np.where(dg > 0, dg, np.nan)))
        except np.linalg.LinAlgError:
            out.append(np.full(p, np.nan))
    return out[0], out[1]


__all__ = ["PopData", "pop_data", "SAEMResult", "saem", "saem_study"]
