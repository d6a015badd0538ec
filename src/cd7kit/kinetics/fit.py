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
import pandas as pd
from scipy import optimize
from scipy.special import log_ndtr

from cd7kit.data import Rule, Study

from . import mcmc
from .mcmc import MODEL_IDS
from .models import ck7, kimmel2021, stein2019

AuxFn = Callable[[Mapping[str, Any]], np.ndarray]


def _no_aux(ctx: Mapping[str, Any]) -> np.ndarray:
    return np.zeros(0)


@dataclass(frozen=True)
class Model:
    """A structural model for fitting: names and start values of the estimation-scale parameters.

    Predictions come from the model module's compiled ``logpred_one`` (dispatched by ``model_id`` in
    :mod:`.mcmc`); ``aux`` turns a subject's context (doses, product preset, fixed parameters) into the
    row of fixed inputs that function reads. ``saem_fixed``: parameters held fixed (natural scale, no random
    effect) by default in population fits, because the usual data do not identify them.
    """

    name: str
    param_names: tuple[str, ...]
    phi0: np.ndarray
    to_natural: Callable[[np.ndarray], np.ndarray]
    unit: str
    source: str
    transforms: tuple[str, ...]
    omega0: np.ndarray
    aux: AuxFn = _no_aux
    saem_fixed: Mapping[str, float] = field(default_factory=dict)
    saem_note: str = ""

    @property
    def model_id(self) -> int:
        return MODEL_IDS[self.name]

    def natural(self, phi: np.ndarray) -> dict[str, float]:
        th = self.to_natural(np.asarray(phi, dtype=float)[None, :])[0]
        return {n: float(v) for n, v in zip(self.param_names, th, strict=False)}

    def log_pred(self, phi: np.ndarray, t: np.ndarray, context: Mapping[str, Any] | None = None, aux: np.ndarray | None = None) -> np.ndarray:
        """ln predictions: ``phi`` (n, p) or (p,), ``t`` (n, m) or (m,); one ``context`` for all rows, or per-row ``aux``."""
        phi = np.atleast_2d(np.asarray(phi, dtype=float))
        t = np.atleast_2d(np.asarray(t, dtype=float))
        n = max(phi.shape[0], t.shape[0])
        phi = np.ascontiguousarray(np.broadcast_to(phi, (n, phi.shape[1])))
        t = np.ascontiguousarray(np.broadcast_to(t, (n, t.shape[1])))
        if aux is None:
            aux = self.aux(context or {})
        aux = np.ascontiguousarray(np.broadcast_to(np.asarray(aux, dtype=float), (n, np.shape(aux)[-1])))
        return mcmc.log_pred(self.model_id, phi, t, aux)

    def to_est(self, name: str, value: float) -> float:
        """Natural value -> estimation scale (log; logit for a fraction)."""
        return _to_est(self, self.param_names.index(name), value)


STEIN = Model(
    "stein2019",
    stein2019.PARAMS,
    stein2019.to_phi(stein2019.TYPICAL.as_array()),
    stein2019.from_phi,
    "copies/ug",
    stein2019.SOURCE,
    ("log", "log", "log", "log", "logit", "log"),
    np.array([stein2019.OMEGA_DIAG[p] for p in stein2019.PARAMS]),
    saem_note="all six parameters with random effects (analytic model)",
)


def _kimmel_aux(ctx: Mapping[str, Any]) -> np.ndarray:
    return kimmel2021.fit_aux(ctx.get("kimmel_params", kimmel2021.TYPICAL))


_KT = kimmel2021.TYPICAL
KIMMEL = Model(
    "kimmel2021",
    kimmel2021.FIT_PARAMS,
    np.log(np.array([_KT.K_C / kimmel2021.CELLS_PER_UL, _KT.rho_C, _KT.b, _KT.C0 / kimmel2021.CELLS_PER_UL])),
    lambda phi: np.exp(phi),
    "cells/uL",
    kimmel2021.SOURCE + " (free: K_C and C0 in cells/uL, rho_C, b; others fixed at Table 1)",
    ("log", "log", "log", "log"),
    np.array([0.25, 0.5, 0.25, 0.5]),
    _kimmel_aux,
    {"C0": _KT.C0 / kimmel2021.CELLS_PER_UL},
    "population: K_C, rho_C, b with random effects; C0 fixed at 0.36 cells/uL (Fig. 2b: a dose is not a "
    "blood count), K_N, N(0), r_N, a at Table 1 (no normal-T data)",
)


def _ck7_aux(ctx: Mapping[str, Any]) -> np.ndarray:
    return ck7.fit_aux(ctx.get("ck7_params", ck7.CAR_T), ctx.get("ck7_initial"), ctx.get("dose_days", (0.0,)), ctx.get("doses_per_kg", 1e6))


CK7 = Model(
    "ck7",
    ck7.FIT_PARAMS,
    np.log(np.array([ck7.CAR_T.rho_max, ck7.CAR_T.alpha, ck7.CAR_T.A50, 1.0])),
    lambda phi: np.exp(phi),
    "cells/uL (scale converts to the observed unit)",
    ck7.SOURCE + " (free: rho_max, alpha, A50, observation scale; others fixed)",
    ("log", "log", "log", "log"),
    np.array([0.3, 0.3, 1.0, 1.0]),
    _ck7_aux,
    {"A50": ck7.CAR_T.A50},
    "population: rho_max, alpha, scale with random effects; A50 fixed at its prior (10 cells/uL; confounded "
    "with rho_max when only CAR cells are measured); the other 20 parameters at the product preset",
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
    aux = m.aux(ctx)
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
        lp = m.log_pred(phi[None, :], t[None, :], aux=aux)[0]
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


#: Default CAR code per model: Stein 2019 is a transgene (qPCR) model, Kimmel 2021 and CK7 count CAR+ cells.
DEFAULT_CODES: dict[str, tuple[str, ...]] = {"stein2019": ("CAR_COPIES", "CAR_CELLS"), "kimmel2021": ("CAR_CELLS",), "ck7": ("CAR_CELLS", "CAR_COPIES")}


def default_code(study: Study, model: str) -> str:
    """The CAR code a model is fitted to by default: its first preferred code present in the study."""
    prefer = DEFAULT_CODES[get_model(model).name]
    present = set(study.observations["code"])
    return next((c for c in prefer if c in present), prefer[0])


def study_context(study: Study, subject_id: str, model: str) -> dict[str, Any]:
    """A subject's model inputs from the Study: for CK7 the product preset (CAR-NK if the product names NK,
    else CAR-T), every infusion (day, cells/kg) and the marrow blast percentage before the first infusion
    (the starting tumour burden; the preset's 50 % without one); nothing for the single-dose models."""
    if get_model(model).name != "ck7":
        return {}
    inf = study.infusions(subject_id)
    prod = str(study.subject_row(subject_id).get("product") or "")
    units = inf["dose_unit"].fillna("").tolist()
    if any(u not in ("cells/kg", "") for u in units):
        from cd7kit.errors import InputError, Problem

        raise InputError([Problem("CK7 needs infusion doses in cells/kg", "interventions", column="dose_unit", value=",".join(map(str, units)), expected="cells/kg")])
    params = ck7.CAR_NK if "NK" in prod.upper() else ck7.CAR_T
    t0 = float(inf["start_day"].min()) if len(inf) else 0.0
    bm = study.series(subject_id, "BM_BLASTS")
    bm = bm[(bm["day"] < t0) & bm["value"].notna()]
    initial = ck7.CK7Initial(bm_blast_pct=float(bm["value"].iloc[-1])) if len(bm) else ck7.CK7Initial()
    ctx: dict[str, Any] = {"ck7_params": params, "ck7_initial": initial, "preset": "car_nk" if params is ck7.CAR_NK else "car_t"}
    if not len(inf):
        return {**ctx, "dose_days": np.array([0.0]), "doses_per_kg": 1e6}
    return {**ctx, "dose_days": inf["start_day"].to_numpy(float), "doses_per_kg": inf["dose"].fillna(0.0).to_numpy(float)}


def subject_samples(study: Study, subject_id: str, model: str, code: str) -> pd.DataFrame:
    """A subject's blood samples of ``code`` prepared for a fit: columns subject_id, time, value, blq, lloq.

    Single-dose models (Stein 2019, Kimmel 2021) take the first infusion's interval, with time since that
    infusion; CK7 takes every sample from the first infusion on, on the study's day scale (its doses are events).
    """
    s = study.series(subject_id, code)
    s = s[s["specimen"].isna() | (s["specimen"] == "PB")]
    inf = study.infusions(subject_id)
    t0 = float(inf["start_day"].min()) if len(inf) else 0.0
    if get_model(model).name == "ck7":
        s = s[s["day"] >= t0]
        time = s["day"]
    else:
        t1 = float(inf["start_day"].iloc[1]) if len(inf) > 1 else np.inf
        s = s[(s["day"] > t0) & (s["day"] < t1)]
        time = s["day"] - t0
    return pd.DataFrame({"subject_id": str(subject_id), "time": time.to_numpy(float), "value": s["value"].to_numpy(float), "blq": s["blq"].to_numpy(bool), "lloq": s["lloq"].to_numpy(float)})


def _to_est(m: Model, i: int, v: float) -> float:
    if m.transforms[i] == "logit":
        return math.log(v) - math.log1p(-v)
    return math.log(v)


__all__ = ["Model", "MODELS", "STEIN", "KIMMEL", "CK7", "DEFAULT_CODES", "get_model", "default_code", "study_context", "subject_samples", "m3_loglik", "IndividualFit", "fit_individual", "numerical_hessian"]
