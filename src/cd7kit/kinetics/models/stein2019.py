"""Stein 2019 tisagenlecleucel cellular-kinetic model (piecewise exponential expansion, biexponential decline).

Source: Stein AM et al., CPT Pharmacometrics Syst Pharmacol 2019;8:285 (doi 10.1002/psp4.12388), Table 1,
as encoded in nlmixr2lib ``inst/modeldb/specificDrugs/Stein_2019_Tisagenlecleucel.R`` and its vignette
(cd7kit specs/kinetics.md section 3.1). Population: 90 paediatric / young-adult r/r B-ALL (ELIANA, ENSIGN),
fitted in Monolix (SAEM). Transgene in copies/ug genomic DNA, time in days since infusion::

    rho = ln(foldx) / Tmax ;  R0 = Cmax / foldx
    t <  Tmax : dE/dt = Ftoci*Fster*rho*E                       -> C = R0 exp(Ftoci*Fster*rho*t)
    t >= Tmax : dE/dt = -alpha*E ; dM/dt = k*E - beta*M,  k = FB (alpha - beta), M(Tmax) = 0
                C = Cpk [(1-FB) exp(-alpha (t-Tmax)) + FB exp(-beta (t-Tmax))],  Cpk = C(Tmax)

Typical values: Cmax 24,000 copies/ug, Tmax 9.3 d, foldx 3,900, alpha 0.16/d, FB 0.0079, beta 0.0032/d,
Ftoci 1.2 (tocilizumab given), Fster 1.0. Between-subject variances (as nlmixr2lib enters them, diagonal):
Cmax 0.65, Tmax 0.38, foldx 2.4, alpha 0.91, FB 0.8, beta 0.86. Residual: additive on ln scale, SD 0.56.
Caveat (spec 3.1): Monolix usually prints omega as SD; nlmixr2lib reads them as variances. We follow
nlmixr2lib. FB is carried on the logit scale in cd7kit's estimation (for FB << 1 this is the log scale).

Everything is computed on the log scale (exp(rho t) overflows for extreme random effects).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numba import njit

SOURCE = "Stein AM et al. CPT Pharmacometrics Syst Pharmacol 2019;8:285, Table 1 (via nlmixr2lib Stein_2019_Tisagenlecleucel)"

PARAMS = ("cmax", "tmax", "foldx", "alpha", "fb", "beta")


@dataclass(frozen=True)
class Stein2019Params:
    """Typical parameters (Stein 2019 Table 1)."""

    cmax: float = 24000.0
    tmax: float = 9.3
    foldx: float = 3900.0
    alpha: float = 0.16
    fb: float = 0.0079
    beta: float = 0.0032
    ftoci: float = 1.0
    fster: float = 1.0

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, p) for p in PARAMS], dtype=float)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


TYPICAL = Stein2019Params()
#: Between-subject variances on the transformed scale (log; logit for FB), as entered by nlmixr2lib.
OMEGA_DIAG: dict[str, float] = {"cmax": 0.65, "tmax": 0.38, "foldx": 2.4, "alpha": 0.91, "fb": 0.8, "beta": 0.86}
#: Residual SD on the ln scale.
SIGMA_LOG = 0.56
UNIT = "copies/ug"


def log_conc(t: np.ndarray, cmax, tmax, foldx, alpha, fb, beta, ftoci=1.0, fster=1.0) -> np.ndarray:
    """ln C(t); all arguments broadcast (e.g. parameters of shape (n, 1) against times of shape (n, m))."""
    t = np.asarray(t, dtype=float)
    lc, ltm = np.log(cmax), np.asarray(tmax, dtype=float)
    lfx = np.log(foldx)
    rho = lfx / ltm * ftoci * fster
    lr0 = lc - lfx
    growth = lr0 + rho * t
    lpk = lr0 + rho * ltm
    dt = np.maximum(t - ltm, 0.0)
    decline = lpk + np.logaddexp(np.log1p(-fb) - alpha * dt, np.log(fb) - beta * dt)
    return np.where(t < ltm, growth, decline)


def conc(t: np.ndarray, params: Stein2019Params = TYPICAL) -> np.ndarray:
    """Typical-value transgene (copies/ug) at times ``t`` (days)."""
    p = params
    return np.exp(log_conc(t, p.cmax, p.tmax, p.foldx, p.alpha, p.fb, p.beta, p.ftoci, p.fster))


def to_phi(theta: np.ndarray) -> np.ndarray:
    """Natural parameters (..., 6) -> estimation scale: log, and logit for FB."""
    theta = np.asarray(theta, dtype=float)
    phi = np.log(theta)
    fb = theta[..., 4]
    phi[..., 4] = np.log(fb) - np.log1p(-fb)
    return phi


def from_phi(phi: np.ndarray) -> np.ndarray:
    phi = np.asarray(phi, dtype=float)
    theta = np.exp(np.clip(phi, -700, 700))
    theta[..., 4] = 1.0 / (1.0 + np.exp(-phi[..., 4]))
    return theta


def log_pred_phi(phi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """ln prediction from estimation-scale parameters: ``phi`` (..., 6), ``t`` broadcastable to (..., m)."""
    th = from_phi(phi)
    fb = np.clip(th[..., 4:5], 1e-12, 1 - 1e-12)
    return log_conc(t, th[..., 0:1], th[..., 1:2], th[..., 2:3], th[..., 3:4], fb, th[..., 5:6])


_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}  # fast math without assuming finite values (used in ..mcmc too)


@njit(cache=True, fastmath=_FM)
def logpred_one(ph, t, aux, out):  # pragma: no cover - compiled
    """ln C(t) of one subject from estimation-scale parameters ``ph`` (6,) into ``out`` (compiled; ``aux`` unused).

    Same values as :func:`log_pred_phi`; used by the compiled likelihood and SAEM E-step (:mod:`..mcmc`).
    """
    tmax = math.exp(ph[1])
    lfx = ph[2]
    alpha = math.exp(ph[3])
    fb = 1.0 / (1.0 + math.exp(-ph[4]))
    fb = min(max(fb, 1e-12), 1 - 1e-12)
    beta = math.exp(ph[5])
    rho = lfx / tmax
    lr0 = ph[0] - lfx
    lpk = lr0 + rho * tmax
    for j in range(t.shape[0]):
        tt = t[j]
        if tt < tmax:
            out[j] = lr0 + rho * tt
        else:
            dt = tt - tmax
            # ln[(1-FB) e^(-alpha dt) + FB e^(-beta dt)] = -beta dt + ln[(1-FB) e^(-(alpha-beta) dt) + FB]
            # (FB > 0, so the logarithm is finite whatever alpha - beta)
            x = -(alpha - beta) * dt
            out[j] = lpk - beta * dt + math.log((1.0 - fb) * math.exp(x if x < 700.0 else 700.0) + fb)


def simulate_population(
    n: int,
    times: np.ndarray,
    seed: int = 0,
    typical: Stein2019Params = TYPICAL,
    omega_diag: dict[str, float] | None = None,
    sigma_log: float = SIGMA_LOG,
    lloq: float | None = 10.0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Virtual patients from the Stein model with ln-scale residual error and BLQ censoring at ``lloq``.

    Returns a long table (subject_id, time, value, blq, lloq, code, unit; BLQ rows keep value NaN) and the
    true individual parameters (n, 6) on the natural scale.
    """
    rng = np.random.default_rng(seed)
    om = np.array([(omega_diag or OMEGA_DIAG)[p] for p in PARAMS])
    mu = to_phi(typical.as_array())
    phi = mu + rng.normal(size=(n, 6)) * np.sqrt(om)
    times = np.asarray(times, dtype=float)
    lp = log_pred_phi(phi, times[None, :])
    y = np.exp(lp + rng.normal(size=lp.shape) * sigma_log)
    blq = np.zeros_like(y, dtype=bool) if lloq is None else y < lloq
    vals = np.where(blq, np.nan, y)
    df = pd.DataFrame(
        {
            "subject_id": np.repeat([f"V{i + 1:04d}" for i in range(n)], len(times)),
            "time": np.tile(times, n),
            "value": vals.ravel(),
            "blq": blq.ravel(),
            "lloq": np.nan if lloq is None else float(lloq),
            "code": "CAR_COPIES",
            "unit": UNIT,
        }
    )
    return df, from_phi(phi)


__all__ = [
    "Stein2019Params",
    "TYPICAL",
    "OMEGA_DIAG",
    "SIGMA_LOG",
    "PARAMS",
    "SOURCE",
    "UNIT",
    "log_conc",
    "conc",
    "to_phi",
    "from_phi",
    "log_pred_phi",
    "simulate_population",
    "logpred_one",
]
