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

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
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


__all__ = ["Kimmel2021Params", "TYPICAL", "SOURCE", "CELLS_PER_UL", "ZUMA1_MEDIANS", "rhs", "simulate"]
