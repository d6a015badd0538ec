"""Kimmel 2021: normal T cells and CAR-T cells competing in the homeostatic niche, plus tumour (ODE).

Source: Kimmel GJ, Locke FL, Altrock PM. Proc R Soc B 2021;288:20210229 (CC-BY 4.0), equations (2.1)-(2.3),
Table 1 and Fig. 2 (cd7kit specs/kinetics.md section 3.4)::

    dN/dt = -r_N N ln[(N + C)/K_N]
    dC/dt = -r_C(T) C ln[(N + C)/K_C],   T = N + C,
            r_C(T) = rho_C + b (T - K_N)^2 / (a T^2 + (T - K_N)^2)        (form printed in Fig. 2b)
    dB/dt = r_B B - gamma_B B C/(k_B + C)

Table 1 (cells, total body): K_N 2.50e11, K_C 6.96e10, r_N 0.170/d, rho_C 2.51e-2/d, a 0.423, b 0.525/d,
r_B 0.01-0.5/d, gamma_B 1.15/d, k_B 2.024e9, N(0) 3.0e9, C(0) 1.8e8, B(0) 9.486e10 (94.86 mL of tumour).
The paper's figures are in cells/uL of blood: Fig. 2b gives C(0) = 0.36 cells/uL for C(0) = 1.8e8 cells,
i.e. 5e8 body cells per cell/uL; K_N then corresponds to the ~500 normal T cells/uL plateau of Fig. 2a.
``CELLS_PER_UL = 5e8`` is that ratio (derived by us from Table 1 and Fig. 2b, not printed as such).

Check (tests): the ZUMA-1 (Moffitt) median CAR+ counts 27.5 (IQR 16.5-57.5), 9.1 (3.8-31.1), 2.1 (0.6-6.1)
and 0.1 (0.01-0.4) cells/uL at days 7, 14, 28 and 90. Tumour extinction in the paper is stochastic (hybrid
simulation); here the tumour is deterministic with an optional extinction threshold (``b_extinct``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from numba import njit
from scipy.integrate import solve_ivp

SOURCE = "Kimmel GJ, Locke FL, Altrock PM. Proc R Soc B 2021;288:20210229, eqs 2.1-2.3, Table 1, Fig. 2"
CELLS_PER_UL = 5e8
ZUMA1_MEDIANS = {7: (27.5, 16.5, 57.5), 14: (9.1, 3.8, 31.1), 28: (2.1, 0.6, 6.1), 90: (0.1, 0.01, 0.4)}


@dataclass(frozen=True)
class Kimmel2021Params:
    K_N: float = 2.50e11
    K_C: float = 6.96e10
    r_N: float = 0.170
    rho_C: float = 2.51e-2
    a: float = 0.423
    b: float = 0.525
    r_B: float = 0.05
    gamma_B: float = 1.15
    k_B: float = 2.024e9
    N0: float = 3.0e9
    C0: float = 1.8e8
    B0: float = 9.486e10

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def with_(self, **kw: float) -> Kimmel2021Params:
        return replace(self, **kw)


TYPICAL = Kimmel2021Params()


def rhs(t: float, y: np.ndarray, p: Kimmel2021Params) -> np.ndarray:
    N, C, B = np.maximum(y, 1e-30)
    T = N + C
    r_c = p.rho_C + p.b * (T - p.K_N) ** 2 / (p.a * T**2 + (T - p.K_N) ** 2)
    return np.array([-p.r_N * N * np.log(T / p.K_N), -r_c * C * np.log(T / p.K_C), p.r_B * B - p.gamma_B * B * C / (p.k_B + C)])


def simulate(times: np.ndarray, params: Kimmel2021Params = TYPICAL, b_extinct: float | None = 1.0, rtol: float = 1e-8) -> pd.DataFrame:
    """Deterministic trajectories at ``times`` (days): N, C, B in cells, and N, C in cells/uL of blood.

    ``b_extinct``: the tumour is set to 0 once it falls below this many cells (None: never).
    """
    times = np.asarray(times, dtype=float)
    p = params
    events = None
    if b_extinct is not None:

        def _ext(t: float, y: np.ndarray, *_: object) -> float:
            return float(y[2] - b_extinct)

        _ext.terminal = True  # type: ignore[attr-defined]
        _ext.direction = -1  # type: ignore[attr-defined]
        events = [_ext]
    y0 = np.array([p.N0, p.C0, p.B0])
    t0 = 0.0
    out = np.empty((len(times), 3))
    remaining = np.ones(len(times), dtype=bool)
    extinct = False
    while remaining.any():
        tt = times[remaining]
        sol = solve_ivp(rhs, (t0, float(tt.max()) + 1e-9), y0, method="LSODA", t_eval=tt, args=(p,), rtol=rtol, atol=1e-6, events=None if extinct else events)
        n = sol.y.shape[1]
        idx = np.flatnonzero(remaining)[:n]
        out[idx] = sol.y.T
        remaining[idx] = False
        if sol.status == 1 and remaining.any():  # tumour extinct: continue with B = 0
            t0 = float(sol.t_events[0][0])
            y0 = sol.y_events[0][0].copy()
            y0[2] = 0.0
            extinct = True
        elif sol.status != 1:
            break
    df = pd.DataFrame({"time": times, "N": out[:, 0], "C": out[:, 1], "B": np.maximum(out[:, 2], 0.0)})
    df["N_per_uL"] = df["N"] / CELLS_PER_UL
    df["C_per_uL"] = df["C"] / CELLS_PER_UL
    return df


#: Free parameters of the fits (estimation scale: log): K_C and C0 in cells/uL, rho_C and b per day.
#: The CAR-T data (CAR+ cells/uL) say nothing about the normal-T compartment, so K_N, N(0), r_N and a stay
#: at Table 1 (passed in ``aux``); the tumour does not feed back on C and is not needed for CAR kinetics.
FIT_PARAMS = ("K_C", "rho_C", "b", "C0")
#: Tolerance of the compiled CAR predictor (adaptive Dormand-Prince 5(4) on ln N and ln C).
FIT_TOL = 1e-6
#: Step budget of one call of :func:`logpred_one`.
MAX_STEPS = 5000


def fit_aux(params: Kimmel2021Params = TYPICAL, tol: float = FIT_TOL) -> np.ndarray:
    """The fixed part of the model for :func:`logpred_one`: K_N and N(0) in cells/uL, r_N, a, tolerance."""
    return np.array([params.K_N / CELLS_PER_UL, params.N0 / CELLS_PER_UL, params.r_N, params.a, tol])


@njit(cache=True)
def _kim_rhs(u: float, v: float, K_C: float, rho_C: float, b: float, K_N: float, r_N: float, a: float) -> tuple[float, float]:  # pragma: no cover - compiled
    T = math.exp(u) + math.exp(v)
    d = (T - K_N) ** 2
    r_c = rho_C + b * d / (a * T * T + d)
    return -r_N * math.log(T / K_N), -r_c * math.log(T / K_C)


@njit(cache=True)
def logpred_one(ph, t, aux, out):  # pragma: no cover - compiled
    """ln C(t) (CAR+ cells/uL) of one subject (eqs 2.1-2.2 on ln N, ln C), compiled.

    Adaptive Dormand-Prince 5(4) (Hairer, Norsett & Wanner, Solving ODEs I, table 5.2) with error control on
    the log states; every sample time is hit exactly. ``ph`` = ln(K_C, rho_C, b, C0) (cells/uL, /d);
    ``aux`` = :func:`fit_aux`. Times before 0 give C(0). Agrees with :func:`simulate` (LSODA) to 1e-6 (tests).
    At most ``MAX_STEPS`` steps per call: beyond that (a stiff, biologically absurd parameter set, e.g. b in
    the hundreds per day) the remaining predictions are NaN, which the likelihood treats as impossible.
    """
    K_C = math.exp(ph[0])
    rho_C = math.exp(ph[1])
    b = math.exp(ph[2])
    K_N, N0, r_N, a, tol = aux[0], aux[1], aux[2], aux[3], aux[4]
    u = math.log(N0)
    v = ph[3]
    tc = 0.0
    h = 0.05
    order = np.argsort(t)
    n_steps = 0
    for k in range(order.shape[0]):
        j = order[k]
        target = t[j]
        while tc < target - 1e-12 and n_steps < MAX_STEPS:
            n_steps += 1
            hh = min(h, target - tc)
            k1u, k1v = _kim_rhs(u, v, K_C, rho_C, b, K_N, r_N, a)
            k2u, k2v = _kim_rhs(u + hh * (k1u / 5), v + hh * (k1v / 5), K_C, rho_C, b, K_N, r_N, a)
            k3u, k3v = _kim_rhs(u + hh * (3 * k1u / 40 + 9 * k2u / 40), v + hh * (3 * k1v / 40 + 9 * k2v / 40), K_C, rho_C, b, K_N, r_N, a)
            k4u, k4v = _kim_rhs(
                u + hh * (44 * k1u / 45 - 56 * k2u / 15 + 32 * k3u / 9), v + hh * (44 * k1v / 45 - 56 * k2v / 15 + 32 * k3v / 9), K_C, rho_C, b, K_N, r_N, a
            )
            k5u, k5v = _kim_rhs(
                u + hh * (19372 * k1u / 6561 - 25360 * k2u / 2187 + 64448 * k3u / 6561 - 212 * k4u / 729),
                v + hh * (19372 * k1v / 6561 - 25360 * k2v / 2187 + 64448 * k3v / 6561 - 212 * k4v / 729),
                K_C, rho_C, b, K_N, r_N, a,
            )
            k6u, k6v = _kim_rhs(
                u + hh * (9017 * k1u / 3168 - 355 * k2u / 33 + 46732 * k3u / 5247 + 49 * k4u / 176 - 5103 * k5u / 18656),
                v + hh * (9017 * k1v / 3168 - 355 * k2v / 33 + 46732 * k3v / 5247 + 49 * k4v / 176 - 5103 * k5v / 18656),
                K_C, rho_C, b, K_N, r_N, a,
            )
            un = u + hh * (35 * k1u / 384 + 500 * k3u / 1113 + 125 * k4u / 192 - 2187 * k5u / 6784 + 11 * k6u / 84)
            vn = v + hh * (35 * k1v / 384 + 500 * k3v / 1113 + 125 * k4v / 192 - 2187 * k5v / 6784 + 11 * k6v / 84)
            k7u, k7v = _kim_rhs(un, vn, K_C, rho_C, b, K_N, r_N, a)
            eu = hh * (71 * k1u / 57600 - 71 * k3u / 16695 + 71 * k4u / 1920 - 17253 * k5u / 339200 + 22 * k6u / 525 - k7u / 40)
            ev = hh * (71 * k1v / 57600 - 71 * k3v / 16695 + 71 * k4v / 1920 - 17253 * k5v / 339200 + 22 * k6v / 525 - k7v / 40)
            err = max(abs(eu) / (tol * (1.0 + abs(un))), abs(ev) / (tol * (1.0 + abs(vn))))
            if err <= 1.0 or hh < 1e-6:
                u, v = un, vn
                tc += hh
            fac = 0.9 * err ** -0.2 if err > 0.0 else 5.0
            h = hh * min(5.0, max(0.2, fac))
        out[j] = v if tc >= target - 1e-12 else np.nan


__all__ = ["Kimmel2021Params", "TYPICAL", "SOURCE", "CELLS_PER_UL", "ZUMA1_MEDIANS", "FIT_PARAMS", "FIT_TOL", "rhs", "simulate", "fit_aux", "logpred_one"]
