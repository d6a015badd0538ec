"""CK7: a cellular-kinetic model of CD7-directed CAR-T / CAR-NK therapy. **Our design** [D], not published.

It follows cd7kit specs/kinetics.md section 3.8 and borrows its pieces from published models: the shared
homeostatic niche of normal and CAR T cells (Kimmel et al., Proc R Soc B 2021;288:20210229), antigen-driven
expansion with saturable kill (Singh et al., CPT:PSP 2021;10:362; Martinez-Rubio 2021), and the Stein 2019
effector -> memory split for persistence (CPT:PSP 2019;8:285). The CD7 twist: the antigen is on the blasts
**and** on normal T and NK cells, so the CAR kills normal CD7+ T cells, CD7- T cells fill the niche, and
CD7- blasts escape (Pan et al., JCO 2021;39:3340: "CD7-positive normal T cells were depleted, CD7-negative
T cells expanded"; Tan et al., JHO 2023: 4 of 6 relapses had lost CD7; seed 002: CD7+ T cells eliminated,
CD7- T cells expanding). The product is CD7-negative (knockout / naturally selected), so CAR cells are not
antigen themselves.

States (cells/uL of peripheral blood, except blasts, which are cells/uL of marrow-equivalent):
``E`` effector CAR cells, ``M`` memory CAR cells (C = E + M), ``Np`` normal CD7+ T, ``Nn`` normal CD7- T,
``K`` NK cells (CD7+), ``L`` CD7+ blasts, ``Ln`` CD7- (escape) blasts::

    A      = eps_L*L + eps_N*Np + eps_K*K                         antigen load seen by the CAR
    kill   = E/(k_C + E)                                           saturable effector engagement
    k_rej  = k_rej_max / (1 + exp(-(t - t_rej)/w_rej))             host-vs-graft rejection (allogeneic NK)
    dE/dt  = [rho_max*A/(A + A50) - alpha - k_em - k_rej]*E + sum_k dose_k*delta(t - t_k)/V
    dM/dt  = k_em*E - (beta + k_rej)*M
    dNp/dt = -r_N*Np*ln(T_all/K_N) - gamma_N*kill*Np               T_all = Np + Nn (+ C for CAR-T)
    dNn/dt = -r_N*Nn*ln(T_all/K_N)                                 Gompertz niche (Kimmel 2021)
    dK/dt  = r_K*K*(1 - K/K_K) - gamma_K*kill*K
    dL/dt  = (r_L - gamma_L*kill - mu)*L                           mu: antigen-loss escape rate
    dLn/dt = r_L*Ln + mu*L
    BM blasts (%) = 100*(L + Ln)/(L + Ln + H_marrow);  blasts below ``L_extinct`` are set to 0.

Doses in cells/kg become cells/uL of blood with ``V = 7.1e6`` (uL per kg; CAR cells distribute to tissue:
Kimmel's 1.8e8 infused cells <-> 0.36 cells/uL is 5e8 uL-equivalents per 70 kg). Starting values are
priors, NOT CD7-validated: rho_max 0.9/d (Stein rho 0.889/d; Ogasawara 0.918/d), alpha 0.16/d (Stein),
beta 0.0032/d and k_em = FB*(alpha - beta) with FB 0.0079 (Stein), r_N 0.17/d (Kimmel), gamma 0.3-2/d
(Singh Kkill_max 0.343/d; Kimmel gamma_B 1.15/d); the rest are our choices. CAR-NK preset: weaker
expansion, faster elimination, rejection rising from about day 10 as host lymphocytes recover (no
published population CK model of CAR-NK exists; Liu E et al., NEJM 2020;382:545).

The integrator is fixed-step RK4 in linear space, vectorised over patients (numpy arrays of shape (n,)),
so 1,000 virtual patients x 180 days take a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from numba import njit, prange

SOURCE = "cd7kit CK7 model (design of cd7kit, specs/kinetics.md 3.8), built on Kimmel 2021, Singh 2021, Stein 2019"
STATES = ("E", "M", "Np", "Nn", "K", "L", "Ln")
UL_PER_KG = 7.1e6


@dataclass(frozen=True)
class CK7Params:
    """CK7 parameters (rates per day; cells/uL). Defaults: an autologous / donor-derived CD7 CAR-T."""

    rho_max: float = 0.9
    A50: float = 10.0
    alpha: float = 0.16
    k_em: float = 0.0079 * (0.16 - 0.0032)
    beta: float = 0.0032
    eps_L: float = 0.01
    eps_N: float = 1.0
    eps_K: float = 1.0
    k_C: float = 3.0
    k_rej_max: float = 0.0
    t_rej: float = 10.0
    w_rej: float = 3.0
    r_N: float = 0.17
    K_N: float = 1000.0
    gamma_N: float = 2.0
    r_K: float = 0.1
    K_K: float = 250.0
    gamma_K: float = 1.0
    r_L: float = 0.05
    gamma_L: float = 1.5
    mu: float = 0.0
    H_marrow: float = 2.0e4
    L_extinct: float = 0.01  # ~5e5 blasts in the body: below this, extinction (stands in for Kimmel's stochastic cure)
    car_in_t_niche: float = 1.0  # 1 for CAR-T (T cells share the niche), 0 for CAR-NK

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def with_(self, **kw: float) -> CK7Params:
        return replace(self, **kw)


CAR_T = CK7Params()
#: CAR-NK: weaker expansion, faster elimination, rejection from about day 10, and a weaker blast kill
#: (gamma_L 0.3/d, the low end of the spec's 0.3-1.2/d): with it the NCT06849401 virtual cohort has day-28 CR
#: rates of about 55/80/85 % at the three dose levels instead of ~100 % at all of them [D].
CAR_NK = CK7Params(rho_max=0.35, alpha=0.3, k_em=0.002, beta=0.03, k_rej_max=0.3, t_rej=10.0, car_in_t_niche=0.0, gamma_L=0.3)
PRESETS: dict[str, CK7Params] = {"car_t": CAR_T, "car_nk": CAR_NK}


@dataclass(frozen=True)
class CK7Initial:
    """Initial state at day 0 (after lymphodepletion); blasts from the marrow blast % and CD7- fraction."""

    Np: float = 20.0
    Nn: float = 2.0
    K: float = 20.0
    bm_blast_pct: float = 50.0
    cd7neg_blast_fraction: float = 0.0

    def state(self, p: CK7Params | Mapping[str, Any]) -> dict[str, np.ndarray]:
        h = p.H_marrow if isinstance(p, CK7Params) else p["H_marrow"]
        pct = np.asarray(self.bm_blast_pct, dtype=float)
        tot = np.asarray(h) * pct / np.maximum(100.0 - pct, 1e-9)
        f = np.asarray(self.cd7neg_blast_fraction, dtype=float)
        return {"E": np.zeros_like(tot), "M": np.zeros_like(tot), "Np": np.asarray(self.Np, float) + 0 * tot, "Nn": np.asarray(self.Nn, float) + 0 * tot, "K": np.asarray(self.K, float) + 0 * tot, "L": tot * (1 - f), "Ln": tot * f}


def _as_arrays(p: CK7Params | Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    d = p.to_dict() if isinstance(p, CK7Params) else dict(p)
    base = CAR_T.to_dict()
    base.update(d)
    return {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy() for k, v in base.items()}


def _rhs(t: float, y: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    E, M, Np, Nn, K, L, Ln = y
    A = p["eps_L"] * L + p["eps_N"] * Np + p["eps_K"] * K
    kill = E / (p["k_C"] + E)
    krej = p["k_rej_max"] / (1.0 + np.exp(-(t - p["t_rej"]) / p["w_rej"]))
    Tall = np.maximum(Np + Nn + p["car_in_t_niche"] * (E + M), 1e-9)
    gomp = -p["r_N"] * np.log(Tall / p["K_N"])
    dE = (p["rho_max"] * A / (A + p["A50"]) - p["alpha"] - p["k_em"] - krej) * E
    dM = p["k_em"] * E - (p["beta"] + krej) * M
    dNp = gomp * Np - p["gamma_N"] * kill * Np
    dNn = gomp * Nn
    dK = p["r_K"] * K * (1.0 - K / p["K_K"]) - p["gamma_K"] * kill * K
    dL = (p["r_L"] - p["gamma_L"] * kill - p["mu"]) * L
    dLn = p["r_L"] * Ln + p["mu"] * L
    return np.stack([dE, dM, dNp, dNn, dK, dL, dLn])


_PIDX = {name: i for i, name in enumerate(f.name for f in fields(CK7Params))}


@njit(cache=True)
def _rhs_one(t, y, q, out):  # pragma: no cover - compiled
    E, M, Np, Nn, K, L, Ln = y[0], y[1], y[2], y[3], y[4], y[5], y[6]
    rho_max, A50, alpha, k_em, beta, eps_L, eps_N, eps_K, k_C = q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8]
    k_rej_max, t_rej, w_rej, r_N, K_N, gamma_N, r_K, K_K, gamma_K = q[9], q[10], q[11], q[12], q[13], q[14], q[15], q[16], q[17]
    r_L, gamma_L, mu, niche = q[18], q[19], q[20], q[23]
    A = eps_L * L + eps_N * Np + eps_K * K
    kill = E / (k_C + E)
    krej = k_rej_max / (1.0 + np.exp(-(t - t_rej) / w_rej))
    Tall = max(Np + Nn + niche * (E + M), 1e-9)
    gomp = -r_N * np.log(Tall / K_N)
    out[0] = (rho_max * A / (A + A50) - alpha - k_em - krej) * E
    out[1] = k_em * E - (beta + krej) * M
    out[2] = gomp * Np - gamma_N * kill * Np
    out[3] = gomp * Nn
    out[4] = r_K * K * (1.0 - K / K_K) - gamma_K * kill * K
    out[5] = (r_L - gamma_L * kill - mu) * L
    out[6] = r_L * Ln + mu * L


@njit(cache=True)
def _rk4_step(t, h, y, q, ext, k1, k2, k3, k4, tmp):  # pragma: no cover - compiled
    """One classical Runge-Kutta step of the CK7 system in place; states stay non-negative and the two blast
    compartments (5, 6) are set to 0 below the extinction level ``ext`` (``L_extinct``)."""
    _rhs_one(t, y, q, k1)
    for s in range(7):
        tmp[s] = y[s] + h / 2 * k1[s]
    _rhs_one(t + h / 2, tmp, q, k2)
    for s in range(7):
        tmp[s] = y[s] + h / 2 * k2[s]
    _rhs_one(t + h / 2, tmp, q, k3)
    for s in range(7):
        tmp[s] = y[s] + h * k3[s]
    _rhs_one(t + h, tmp, q, k4)
    for s in range(7):
        v = y[s] + h / 6 * (k1[s] + 2 * k2[s] + 2 * k3[s] + k4[s])
        y[s] = v if v > 0.0 else 0.0
    if y[5] < ext:
        y[5] = 0.0
    if y[6] < ext:
        y[6] = 0.0


@njit(cache=True, parallel=True)
def _integrate(Q, Y0, dose_step, dose_amt, rec_step, n_steps, dt, t_start):  # pragma: no cover - compiled
    n = Q.shape[0]
    R = rec_step.shape[0]
    out = np.empty((7, n, R))
    for i in prange(n):
        k1 = np.empty(7)
        k2 = np.empty(7)
        k3 = np.empty(7)
        k4 = np.empty(7)
        tmp = np.empty(7)
        y = Y0[i].copy()
        q = Q[i]
        ext = q[22]
        ri = 0
        for k in range(n_steps + 1):
            for j in range(dose_step.shape[1]):
                if dose_step[i, j] == k:
                    y[0] += dose_amt[i, j]
            while ri < R and rec_step[ri] == k:
                for s in range(7):
                    out[s, i, ri] = y[s]
                ri += 1
            if k == n_steps:
                break
            _rk4_step(t_start + k * dt, dt, y, q, ext, k1, k2, k3, k4, tmp)
    return out


def simulate(
    params: CK7Params | Mapping[str, Any] = CAR_T,
    initial: CK7Initial | Mapping[str, Any] | None = None,
    dose_days: Sequence[float] | np.ndarray = (0.0,),
    doses_per_kg: Sequence[float] | np.ndarray | float = 1e6,
    t_end: float = 180.0,
    record_times: Sequence[float] | np.ndarray | None = None,
    dt: float = 0.05,
    n: int | None = None,
    engine: str = "numba",
) -> dict[str, np.ndarray]:
    """Simulate n virtual patients (vectorised). Returns arrays of shape (n, len(record_times)) per state
    plus ``C`` (= E + M), ``bm_blast_pct``, ``kill`` and ``time``.

    ``params``: a :class:`CK7Params` or a mapping of per-patient arrays (shape (n,)); ``initial`` likewise.
    ``dose_days``: shape (n_doses,) or (n, n_doses); ``doses_per_kg``: cells/kg, scalar or same shape.
    ``engine``: ``"numba"`` (compiled loop, default) or ``"numpy"`` (vectorised reference); same results.
    """
    dd = np.atleast_1d(np.asarray(dose_days, dtype=float))
    if n is None:
        n = 1
        if not isinstance(params, CK7Params):
            n = max([np.size(v) for v in params.values()] + [1])
        if dd.ndim == 2:
            n = max(n, dd.shape[0])
        if isinstance(initial, Mapping):
            n = max([n] + [np.size(v) for v in initial.values()])
    p = _as_arrays(params, n)
    if initial is None:
        initial = CK7Initial()
    y0 = initial.state(p) if isinstance(initial, CK7Initial) else {k: np.asarray(v, float) for k, v in initial.items()}
    y = np.stack([np.broadcast_to(np.asarray(y0.get(s, 0.0), dtype=float), (n,)).copy() for s in STATES])
    dd = np.broadcast_to(dd if dd.ndim == 2 else dd[None, :], (n, dd.shape[-1]))
    dk = np.broadcast_to(np.asarray(doses_per_kg, dtype=float), dd.shape) / UL_PER_KG
    if record_times is None:
        record_times = np.arange(0.0, t_end + 1e-9, 1.0)
    rec = np.asarray(record_times, dtype=float)
    t_start = min(0.0, float(np.nanmin(dd)), float(rec.min()))
    n_steps = int(np.ceil((max(t_end, float(rec.max())) - t_start) / dt))
    dose_step = np.round((dd - t_start) / dt).astype(int)
    rec_step = np.round((rec - t_start) / dt).astype(int)
    order = np.argsort(rec_step, kind="stable")
    rec_sorted = rec_step[order]
    if engine == "numba":
        Q = np.stack([p[name] for name in _PIDX], axis=1)
        raw = _integrate(Q, np.ascontiguousarray(y.T), np.ascontiguousarray(dose_step), np.ascontiguousarray(dk), rec_sorted.astype(np.int64), n_steps, float(dt), float(t_start))
        out = np.empty_like(raw)
        out[:, :, order] = raw
        return _finish(out, p, rec)
    out = np.empty((len(STATES), n, len(rec)))
    ext = p["L_extinct"]
    ri = 0
    for k in range(n_steps + 1):
        hit = dose_step == k
        if hit.any():
            y[0] += np.where(hit, dk, 0.0).sum(axis=1)
        while ri < len(rec_sorted) and rec_sorted[ri] == k:
            out[:, :, order[ri]] = y
            ri += 1
        if k == n_steps:
            break
        t = t_start + k * dt
        k1 = _rhs(t, y, p)
        k2 = _rhs(t + dt / 2, y + dt / 2 * k1, p)
        k3 = _rhs(t + dt / 2, y + dt / 2 * k2, p)
        k4 = _rhs(t + dt, y + dt * k3, p)
        y = np.maximum(y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), 0.0)
        y[5] = np.where(y[5] < ext, 0.0, y[5])
        y[6] = np.where(y[6] < ext, 0.0, y[6])
    return _finish(out, p, rec)


def _finish(out: np.ndarray, p: dict[str, np.ndarray], rec: np.ndarray) -> dict[str, np.ndarray]:
    res = {s: out[i] for i, s in enumerate(STATES)}
    res["C"] = res["E"] + res["M"]
    blasts = res["L"] + res["Ln"]
    res["bm_blast_pct"] = 100.0 * blasts / (blasts + p["H_marrow"][:, None])
    res["kill"] = res["E"] / (p["k_C"][:, None] + res["E"])
    res["time"] = rec
    return res


#: Free parameters of the fits (estimation scale: log). ``scale`` converts C (cells/uL) to the observed unit.
FIT_PARAMS = ("rho_max", "alpha", "A50", "scale")
#: Dose slots in :func:`fit_aux` (the NCT06849401 design has six doses).
MAX_DOSES = 16
#: RK4 step (days) of the compiled predictor (the simulator uses 0.1; the difference in ln C is < 1e-4).
FIT_STEP = 0.25


def fit_aux(
    params: CK7Params | Mapping[str, Any] = CAR_T,
    initial: CK7Initial | None = None,
    dose_days: Sequence[float] | np.ndarray = (0.0,),
    doses_per_kg: Sequence[float] | np.ndarray | float = 1e6,
    step: float = FIT_STEP,
) -> np.ndarray:
    """One subject's fixed part of the model for :func:`logpred_one`: the 24 parameters, the initial state (7),
    the RK4 step, the number of doses, then ``MAX_DOSES`` dose days and ``MAX_DOSES`` doses (cells/uL)."""
    p = _as_arrays(params, 1)
    q = np.array([p[name][0] for name in _PIDX])
    y0d = (initial or CK7Initial()).state(p)
    y0 = np.array([float(np.asarray(y0d[s_]).ravel()[0]) for s_ in STATES])
    dd = np.atleast_1d(np.asarray(dose_days, dtype=float))
    amt = np.broadcast_to(np.asarray(doses_per_kg, dtype=float), dd.shape) / UL_PER_KG
    if len(dd) > MAX_DOSES:
        from cd7kit.errors import InputError, Problem

        raise InputError([Problem("too many CAR doses for the CK7 fit", column="dose", value=len(dd), expected=f"at most {MAX_DOSES}")])
    days = np.full(MAX_DOSES, np.inf)
    amts = np.zeros(MAX_DOSES)
    order = np.argsort(dd, kind="stable")
    days[: len(dd)] = dd[order]
    amts[: len(dd)] = amt[order]
    return np.concatenate([q, y0, [step, float(len(dd))], days, amts])


@njit(cache=True)
def logpred_one(ph, t, aux, out):  # pragma: no cover - compiled
    """ln(scale * C(t)) of one subject, compiled: the same RK4 and dose handling as :func:`simulate`, but
    stepping exactly onto every dose and sample time. ``ph`` = ln(rho_max, alpha, A50, scale); ``aux`` =
    :func:`fit_aux`. A sample taken on a dosing day is a pre-dose sample (clinical practice; :func:`simulate`
    records after the dose, and the virtual-patient tables subtract it)."""
    q = aux[:24].copy()
    q[0] = math.exp(ph[0])
    q[2] = math.exp(ph[1])
    q[1] = math.exp(ph[2])
    y = aux[24:31].copy()
    h = aux[31]
    nd = int(aux[32])
    days = aux[33 : 33 + MAX_DOSES]
    amts = aux[33 + MAX_DOSES : 33 + 2 * MAX_DOSES]
    ext = q[22]
    k1 = np.empty(7)
    k2 = np.empty(7)
    k3 = np.empty(7)
    k4 = np.empty(7)
    tmp = np.empty(7)
    order = np.argsort(t)
    tc = min(0.0, days[0] if nd > 0 else 0.0, t[order[0]])
    di = 0
    for kk in range(order.shape[0]):
        j = order[kk]
        target = t[j]
        while True:
            if tc >= target - 1e-9:
                break
            while di < nd and days[di] <= tc + 1e-9:
                y[0] += amts[di]
                di += 1
            stop = target
            if di < nd and days[di] < stop:
                stop = days[di]
            hh = min(h, stop - tc)
            _rk4_step(tc, hh, y, q, ext, k1, k2, k3, k4, tmp)
            tc += hh
        c = y[0] + y[1]
        out[j] = math.log(c if c > 1e-300 else 1e-300) + ph[3]


def param_names() -> list[str]:
    return [f.name for f in fields(CK7Params)]


__all__ = ["CK7Params", "CK7Initial", "CAR_T", "CAR_NK", "PRESETS", "STATES", "SOURCE", "UL_PER_KG", "FIT_PARAMS", "MAX_DOSES", "FIT_STEP", "simulate", "param_names", "fit_aux", "logpred_one"]
