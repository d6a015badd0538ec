"""Compiled likelihood, predictions and SAEM E-step for the kinetic models (numba).

Each model module provides ``logpred_one(ph, t, aux, out)``: the ln prediction of one subject from its
estimation-scale parameters ``ph``, its sample times ``t`` and a row ``aux`` of fixed, subject-specific
inputs (doses, fixed parameters; empty for Stein 2019). The functions here dispatch on a model number
(:data:`MODEL_IDS`) rather than taking the function as an argument, which keeps them cacheable by numba.

Likelihood (specs/kinetics.md section 4): residual error additive on the ln scale; a BLQ sample contributes
``P(y < LLOQ) = Phi((ln LLOQ - ln f)/sigma)`` (Beal's M3; Monolix censored data).

E-step (:func:`mh_estep`): the three Metropolis-Hastings kernels of Kuhn & Lavielle (ESAIM P&S 2004), as
in Monolix: (a) independent proposals from the population distribution N(mu, Omega), (b) a joint random
walk scaled by sqrt(Omega), (c) component-wise random walks. The random numbers are drawn beforehand by
numpy (one generator, fixed seed), so results do not depend on the number of threads. Parameters marked
not ``free`` (fixed at a value, no random effect) are never moved.

The loops are sequential on purpose: a numba parallel region per SAEM iteration cost milliseconds of thread
wake-up on the shared 2-core machine (measured: 10x slower than sequential under load).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .models import ck7, kimmel2021, stein2019

MODEL_IDS = {"stein2019": 0, "kimmel2021": 1, "ck7": 2}
_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}  # fast math without assuming finite values


@njit(cache=True, fastmath=_FM)
def _logpred(mid, ph, t, aux, out):  # pragma: no cover - compiled
    if mid == 0:
        stein2019.logpred_one(ph, t, aux, out)
    elif mid == 1:
        kimmel2021.logpred_one(ph, t, aux, out)
    else:
        ck7.logpred_one(ph, t, aux, out)


@njit(cache=True, fastmath=_FM)
def _log_ndtr(z: float) -> float:  # pragma: no cover - compiled
    if z > -20.0:
        return math.log(0.5 * math.erfc(-z / math.sqrt(2.0)))
    z2 = z * z  # asymptotic expansion of the normal lower tail
    return -0.5 * z2 - math.log(-z) - 0.5 * math.log(2 * math.pi) + math.log(1 - 1 / z2 + 3 / (z2 * z2))


@njit(cache=True, fastmath=_FM)
def _loglik(mid, ph, t, log_y, blq, log_lloq, mask, sigma, aux, buf):  # pragma: no cover - compiled
    """ln-likelihood of one subject (without the 2*pi constant): normal on ln scale, M3 for BLQ."""
    _logpred(mid, ph, t, aux, buf)
    ls = math.log(sigma)
    acc = 0.0
    for j in range(t.shape[0]):
        if not mask[j]:
            continue
        lp = buf[j]
        if blq[j]:
            v = _log_ndtr((log_lloq[j] - lp) / sigma)
        else:
            z = (log_y[j] - lp) / sigma
            v = -ls - 0.5 * z * z
        if not math.isfinite(v):
            v = -1e10
        acc += v
    return acc


@njit(cache=True)
def log_pred(mid, phi, t, aux):  # pragma: no cover - compiled
    """ln predictions (n, m) for parameters ``phi`` (n, p), times ``t`` (n, m) and inputs ``aux`` (n, k)."""
    n, m = t.shape
    out = np.empty((n, m))
    for i in range(n):
        _logpred(mid, phi[i], t[i], aux[i], out[i])
    return out


@njit(cache=True)
def cond_loglik(mid, phi, t, log_y, blq, log_lloq, mask, sigma, aux):  # pragma: no cover - compiled
    """Per-subject ln-likelihood (n,) given individual parameters (normal on ln scale, M3 for BLQ)."""
    n, m = t.shape
    out = np.empty(n)
    for i in range(n):
        buf = np.empty(m)
        out[i] = _loglik(mid, phi[i], t[i], log_y[i], blq[i], log_lloq[i], mask[i], sigma, aux[i], buf)
    return out


@njit(cache=True, fastmath=_FM)
def mh_estep(mid, phi, ll, mu, om, free, sigma, t, log_y, blq, log_lloq, mask, aux, n_steps, step_joint, step_comp, Z, U):  # pragma: no cover - compiled
    """One E-step for every subject: kernels (a) x n_steps[0], (b) x n_steps[1], (c) x n_steps[2].

    Updates ``phi`` (n, p) and ``ll`` (n,) in place. ``Z`` (n, (n_a + n_b + n_c) * p) standard normals and
    ``U`` (n, n_a + n_b + n_c * p) ln-uniforms, drawn by the caller. Returns the acceptance counts of
    kernel (b) per subject (n,) and of kernel (c) per subject and component (n, p).
    """
    n, p = phi.shape
    m = t.shape[1]
    sd = np.sqrt(om)
    acc_b = np.zeros(n)
    acc_c = np.zeros((n, p))
    for i in range(n):
        buf = np.empty(m)
        prop = np.empty(p)
        cur = phi[i]
        llc = ll[i]
        prc = 0.0
        for k in range(p):
            if free[k]:
                prc += -0.5 * (cur[k] - mu[k]) ** 2 / om[k]
        zi = 0
        ui = 0
        for _ in range(n_steps[0]):
            prp = 0.0
            for k in range(p):
                if free[k]:
                    prop[k] = mu[k] + sd[k] * Z[i, zi + k]
                    prp += -0.5 * (prop[k] - mu[k]) ** 2 / om[k]
                else:
                    prop[k] = cur[k]
            zi += p
            llp = _loglik(mid, prop, t[i], log_y[i], blq[i], log_lloq[i], mask[i], sigma, aux[i], buf)
            if U[i, ui] < llp - llc:
                for k in range(p):
                    cur[k] = prop[k]
                llc = llp
                prc = prp
            ui += 1
        for _ in range(n_steps[1]):
            prp = 0.0
            for k in range(p):
                if free[k]:
                    prop[k] = cur[k] + sd[k] * step_joint * Z[i, zi + k]
                    prp += -0.5 * (prop[k] - mu[k]) ** 2 / om[k]
                else:
                    prop[k] = cur[k]
            zi += p
            llp = _loglik(mid, prop, t[i], log_y[i], blq[i], log_lloq[i], mask[i], sigma, aux[i], buf)
            if U[i, ui] < llp + prp - llc - prc:
                for k in range(p):
                    cur[k] = prop[k]
                llc = llp
                prc = prp
                acc_b[i] += 1.0
            ui += 1
        for _ in range(n_steps[2]):
            for j in range(p):
                if not free[j]:
                    continue
                for k in range(p):
                    prop[k] = cur[k]
                prop[j] = cur[j] + sd[j] * step_comp[j] * Z[i, zi + j]
                prp = prc + (-0.5 * (prop[j] - mu[j]) ** 2 + 0.5 * (cur[j] - mu[j]) ** 2) / om[j]
                llp = _loglik(mid, prop, t[i], log_y[i], blq[i], log_lloq[i], mask[i], sigma, aux[i], buf)
                if U[i, ui + j] < llp + prp - llc - prc:
                    cur[j] = prop[j]
                    llc = llp
                    prc = prp
                    acc_c[i, j] += 1.0
            zi += p
            ui += p
        ll[i] = llc
    return acc_b, acc_c


def _refresh_cache() -> None:
    """Drop this module's numba cache when a model module changed.

    numba keys a cached function on its own file only, but the functions here inline the models'
    ``logpred_one``: after an edit of a model file they would run the old model. A stamp of the model
    sources next to the cache decides (it costs one compilation after such an edit).
    """
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (stein2019, kimmel2021, ck7) if m.__file__)).hexdigest()
    try:
        stamp = Path(getattr(mh_estep, "_cache").cache_path) / "mcmc.models.sha256"  # noqa: B009
        if stamp.exists() and stamp.read_text() == digest:
            return
        for f in (_logpred, _log_ndtr, _loglik, log_pred, cond_loglik, mh_estep):
            getattr(f, "_cache").flush()  # noqa: B009
        stamp.write_text(digest)
    except OSError:  # read-only cache location: numba then recompiles or uses its own fallback
        pass


_refresh_cache()

__all__ = ["MODEL_IDS", "log_pred", "cond_loglik", "mh_estep"]
