"""Individual fits by maximum likelihood, with below-LLOQ values handled by the M3 likelihood.

Residual error is additive on the ln scale (proportional on the linear scale), as in Stein 2019.
For a quantified value ``y`` and a prediction ``f``: ``-ln L = ln(sigma) + (ln y - ln f)^2 / (2 sigma^2)``
(+ const). For a BLQ value (Beal's M3; Monolix censored data): ``L = Phi((ln LLOQ - ln f)/sigma)``.
Sources: Beal SL, J Pharmacokinet Pharmacodyn 2001;28:481 (M1-M7 methods); Monolix documentation
"Censored data" (monolix.lixoft.com); cd7kit specs/kinetics.md section 4.

Models are in :data:`MODELS` (``stein2019``, ``kimmel2021``, ``ck7``): each gives its parameter names,
starting values on the estimation scale (log; logit for Stein's FB) and a vectorised ln-prediction.
Standard errors come from the inverse of a finite-difference Hessian of -ln L at the optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import log_ndtr

from cd7kit.data import Rule

from .models import ck7, kimmel2021, stein2019

LogPred = Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], np.ndarray]


@dataclass(frozen=True)
class Model:
    """A structural model for fitting: names and start values of the estimation-scale parameters."""

    name: str
    param_names: tuple[str, ...]
    phi0: np.ndarray
    log_pred: LogPred  # (phi (n, p), t (n, m), context) -> ln prediction (n, m)
    to_natural: Callable[[np.ndarray], np.ndarray]
    unit: str
    source: str
    transforms: tuple[str, ...]
    omega0: np.ndarray | None = None  # prior variances for MAP / SAEM start
    #: optional compiled per-subject ln-likelihood (phi, t, log_y, blq, log_lloq, mask, sigma) -> (n,)
    cond_loglik: Callable[..., np.ndarray] | None = None
    #: optional compiled SAEM E-step (see :func:`cd7kit.kinetics.models.stein2019.mh_estep`)
    mh_estep: Callable[..., Any] | None = None

    def natural(self, phi: np.ndarray) -> dict[str, float]:
        th = self.to_natural(np.asarray(phi, dtype=float)[None, :])[0]
        return {n: float(v) for n, v in zip(self.param_names, th, strict=False)}


def _stein_pred(phi: np.ndarray, t: np.ndarray, ctx: Mapping[str, Any]) -> np.ndarray:
    return stein2019.log_pred_phi(phi, t)


STEIN = Model(
    "stein2019",
    stein2019.PARAMS,
    stein2019.to_phi(stein2019.TYPICAL.as_array()),
    _stein_pred,
    stein2019.from_phi,
    "copies/ug",
    stein2019.SOURCE,
    ("log", "log", "log", "log", "logit", "log"),
    np.array([stein2019.OMEGA_DIAG[p] for p in stein2019.PARAMS]),
    stein2019.cond_loglik,
    stein2019.mh_estep,
)

_KIM_FREE = ("K_C", "rho_C", "b", "C0")


def _kimmel_pred(phi: np.ndarray, t: np.ndarray, ctx: Mapping[str, Any]) -> np.ndarray:
    phi = np.atleast_2d(phi)
    t = np.broadcast_to(np.atleast_2d(t), (phi.shape[0], np.atleast_2d(t).shape[-1]))
    out = np.empty(t.shape)
    for i in range(phi.shape[0]):
        th = np.exp(phi[i])
        p = kimmel2021.TYPICAL.with_(K_C=th[0] * kimmel2021.CELLS_PER_UL, rho_C=th[1], b=th[2], C0=th[3] * kimmel2021.CELLS_PER_UL)
        tt = t[i]
        order = np.argsort(tt)
        ts = np.maximum(tt[order], 0.0)
        uniq, inv = np.unique(ts, return_inverse=True)
        sim = kimmel2021.simulate(uniq, p, b_extinct=None, rtol=1e-5)
        c = np.maximum(sim["C_per_uL"].to_numpy(), 1e-300)[inv]
        res = np.empty_like(c)
        res[order] = c
        out[i] = np.log(res)
    return out


KIMMEL = Model(
    "kimmel2021",
    _KIM_FREE,
    np.log(np.array([kimmel2021.TYPICAL.K_C / kimmel2021.CELLS_PER_UL, kimmel2021.TYPICAL.rho_C, kimmel2021.TYPICAL.b, kimmel2021.TYPICAL.C0 / kimmel2021.CELLS_PER_UL])),
    _kimmel_pred,
    lambda phi: np.exp(phi),
    "cells/uL",
    kimmel2021.SOURCE + " (free: K_C and C0 in cells/uL, rho_C, b; others fixed at Table 1)",
    ("log", "log", "log", "log"),
    np.array([0.25, 0.5, 0.25, 0.5]),
)

_CK7_FREE = ("rho_max", "alpha", "A50", "scale")


def _ck7_pred(phi: np.ndarray, t: np.ndarray, ctx: Mapping[str, Any]) -> np.ndarray:
    phi = np.atleast_2d(phi)
    t2 = np.atleast_2d(t)
    th = np.exp(phi)
    base = ctx.get("ck7_params", ck7.CAR_T)
    pd_ = base.to_dict()
    n = phi.shape[0]
    params = {**{k: np.full(n, v) for k, v in pd_.items()}, "rho_max": th[:, 0], "alpha": th[:, 1], "A50": th[:, 2]}
    grid = np.arange(min(0.0, float(np.nanmin(t2))), float(np.nanmax(t2)) + 0.5, 0.25)
    sim = ck7.simulate(params, ctx.get("ck7_initial", ck7.CK7Initial()), ctx.get("dose_days", (0.0,)), ctx.get("doses_per_kg", 1e6), record_times=grid, dt=0.1, n=n)
    c = np.maximum(sim["C"], 1e-300)
    out = np.empty((n, t2.shape[-1]))
    for i in range(n):
        ti = t2[min(i, t2.shape[0] - 1)]
        out[i] = np.interp(ti, grid, np.log(c[i])) + phi[i, 3]
    return out


CK7 = Model(
    "ck7",
    _CK7_FREE,
    np.log(np.array([ck7.CAR_T.rho_max, ck7.CAR_T.alpha, ck7.CAR_T.A50, 1.0])),
    _ck7_pred,
    lambda phi: np.exp(phi),
    "cells/uL (scale converts to the observed unit)",
    ck7.SOURCE + " (free: rho_max, alpha, A50, observation scale; others fixed)",
    ("log", "log", "log", "log"),
    np.array([0.3, 0.3, 1.0, 1.0]),
)

MODELS: dict[str, Model] = {"stein2019": STEIN, "kimmel2021": KIMMEL, "ck7": CK7}


def get_model(name: str) -> Model:
    if name not in MODELS:
        from cd7kit.errors import InputError, Problem

        raise InputError([Problem("unknown model", value=name, expected=" | ".join(MODELS))])
    return MODELS[name]


def m3_loglik(log_pred: np.ndarray, log_y: np.ndarray, blq: np.ndarray, log_lloq: np.ndarray, sigma: float | np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-observation ln-likelihood (without the constant): normal on ln scale, M3 for BLQ rows.

    Arrays broadcast; ``mask`` False entries contribute 0 (padding for unequal sample counts).
    """
    sigma = np.asarray(sigma, dtype=float)
    z_obs = (log_y - log_pred) / sigma
    ll_obs = -np.log(sigma) - 0.5 * z_obs**2
    ll_blq = log_ndtr((log_lloq - log_pred) / sigma)
    ll = np.where(blq, ll_blq, ll_obs)
    ll = np.where(np.isfinite(ll), ll, -1e10)
    if mask is not None:
        ll = np.where(mask, ll, 0.0)
    return ll


@dataclass
class IndividualFit:
    """Maximum-likelihood fit of one subject. ``to_dict`` carries value / rule / evidence / missing."""

    model: str
    subject_id: str | None
    params: dict[str, float]
    phi: np.ndarray
    se_phi: np.ndarray | None
    sigma: float
    nll: float
    n_obs: int
    n_blq: int
    converged: bool
    message: str
    unit: str
    prior: str | None
    missing: list[str] = field(default_factory=list)

    @property
    def aic(self) -> float:
        return 2 * self.nll + 2 * (len(self.phi) + 1)

    def predict(self, t: np.ndarray, context: Mapping[str, Any] | None = None) -> np.ndarray:
        m = get_model(self.model)
        return np.exp(m.log_pred(self.phi[None, :], np.asarray(t, float)[None, :], context or {})[0])

    def to_dict(self) -> dict[str, Any]:
        m = get_model(self.model)
        rse = None
        if self.se_phi is not None:
            rse = {n: (float(s) if np.isfinite(s) else None) for n, s in zip(m.param_names, self.se_phi, strict=False)}
        return {
            "name": f"fit:{self.model}",
            "subject_id": self.subject_id,
            "value": {
                "params": self.params,
                "se_transformed": rse,
                "transforms": dict(zip(m.param_names, m.transforms, strict=False)),
                "sigma_log": self.sigma,
                "neg_loglik": self.nll,
                "aic": self.aic,
                "n_obs": self.n_obs,
                "n_blq": self.n_blq,
                "converged": self.converged,
                "unit": self.unit,
            },
            "rule": Rule("maximum likelihood, M3 for BLQ", "cd7kit 1", {"residual": "additive on ln scale", "prior": self.prior, "optimizer": "scipy L-BFGS-B + Nelder-Mead polish"}, m.source).to_dict(),
            "evidence": [],
            "missing": self.missing,
            "details": {"message": self.message},
        }


def numerical_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Central finite-difference Hessian."""
    n = len(x)
    H = np.empty((n, n))
    f0 = f(x)
    for i in range(n):
        for j in range(i, n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = h
            ej[j] = h
            if i == j:
                H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h**2
            else:
                H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h * h)
    return H


def fit_individual(
    time: Sequence[float] | np.ndarray,
    value: Sequence[float] | np.ndarray,
    blq: Sequence[bool] | np.ndarray | None = None,
    lloq: Sequence[float] | np.ndarray | float | None = None,
    model: str = "stein2019",
    fixed: Mapping[str, float] | None = None,
    prior: Mapping[str, Any] | None = None,
    sigma: float | None = None,
    context: Mapping[str, Any] | None = None,
    subject_id: str | None = None,
    start: Mapping[str, float] | None = None,
) -> IndividualFit:
    """Fit one subject by maximum likelihood (M3 for BLQ rows).

    ``fixed``: natural-scale values of parameters held fixed. ``prior``: ``{"mu": phi, "omega": variances}``
    turns the fit into a MAP (empirical Bayes) estimate, useful for sparse data. ``sigma``: fix the ln-scale
    residual SD (estimated otherwise). BLQ rows: ``blq`` True or value < ``lloq``; they need an LLOQ.
    """
    m = get_model(model)
    ctx = dict(context or {})
    t = np.asarray(time, dtype=float)
    y = np.asarray(value, dtype=float)
    n = len(t)
    b = np.zeros(n, dtype=bool) if blq is None else np.asarray(blq, dtype=bool).copy()
    lq = np.full(n, np.nan) if lloq is None else np.broadcast_to(np.asarray(lloq, dtype=float), (n,)).astype(float)
    with np.errstate(invalid="ignore"):
        b |= np.isfinite(lq) & np.isfinite(y) & (y < lq)
    missing: list[str] = []
    use = (b & np.isfinite(lq)) | (~b & np.isfinite(y) & (y > 0))
    if (b & ~np.isfinite(lq)).any():
        missing.append(f"{int((b & ~np.isfinite(lq)).sum())} BLQ rows without an LLOQ were left out")
    t, y, b, lq = t[use], y[use], b[use], lq[use]
    log_y = np.log(np.where(b, 1.0, y))
    log_lq = np.log(np.where(np.isfinite(lq), lq, 1.0))
    phi0 = m.phi0.copy()
    if start:
        for k, v in start.items():
            i = m.param_names.index(k)
            phi0[i] = _to_est(m, i, v)
    fixed = dict(fixed or {})
    free = [i for i, nme in enumerate(m.param_names) if nme not in fixed]
    for k, v in fixed.items():
        i = m.param_names.index(k)
        phi0[i] = _to_est(m, i, v)
    est_sigma = sigma is None
    if len(t) < 2 or (~b).sum() < 1:
        missing.append("fewer than 2 usable observations (or none quantified)")
        return IndividualFit(model, subject_id, m.natural(phi0), phi0, None, float(sigma or np.nan), float("nan"), int(len(t)), int(b.sum()), False, "not fitted", m.unit, None, missing)

    def unpack(x: np.ndarray) -> tuple[np.ndarray, float]:
        phi = phi0.copy()
        phi[free] = x[: len(free)]
        s = math.exp(x[-1]) if est_sigma else float(sigma)  # type: ignore[arg-type]
        return phi, s

    def nll(x: np.ndarray) -> float:
        phi, s = unpack(x)
        lp = m.log_pred(phi[None, :], t[None, :], ctx)[0]
        val = -float(m3_loglik(lp, log_y, b, log_lq, s).sum())
        if prior is not None:
            mu = np.asarray(prior["mu"], float)
            om = np.asarray(prior["omega"], float)
            val += float(0.5 * (((phi - mu) ** 2) / om)[free].sum())
        return val if np.isfinite(val) else 1e12

    x0 = np.concatenate([phi0[free], [math.log(0.5)] if est_sigma else []])
    r = optimize.minimize(nll, x0, method="L-BFGS-B")
    r2 = optimize.minimize(nll, r.x, method="Nelder-Mead", options={"maxiter": 300 * len(x0), "xatol": 1e-5, "fatol": 1e-7})
    best = r2 if r2.fun <= r.fun else r
    phi, s = unpack(best.x)
    se = np.full(len(phi), np.nan)
    try:
        H = numerical_hessian(nll, best.x)
        cov = np.linalg.inv(H)
        d = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
        se[free] = d[: len(free)]
    except np.linalg.LinAlgError:
        missing.append("Hessian not invertible: no standard errors")
    return IndividualFit(
        model,
        subject_id,
        m.natural(phi),
        phi,
        se,
        s,
        float(best.fun),
        int(len(t)),
        int(b.sum()),
        bool(best.success or r.success),
        str(best.message),
        m.unit,
        None if prior is None else "MAP with population prior",
        missing,
    )


def _to_est(m: Model, i: int, v: float) -> float:
    if m.transforms[i] == "logit":
        return math.log(v) - math.log1p(-v)
    return math.log(v)


__all__ = ["Model", "MODELS", "STEIN", "KIMMEL", "CK7", "get_model", "m3_loglik", "IndividualFit", "fit_individual", "numerical_hessian"]
