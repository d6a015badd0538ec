"""Small compiled (numba) helpers shared by the simulation kernels of BOIN, BOIN12 and CRM.

* :func:`count_below` -- the DLT count of m patients from one uniform each (``u < p``, in order: R's
  ``runif(cohortsize) < p``, the R-compatible stream);
* :func:`binomial_inverse` -- the DLT count of a cohort from one uniform, by inverting the Binomial(m, p)
  CDF (the fast mode: a third of the draws for cohorts of 3, the same distribution), reading the table
  of :func:`binomial_cdf_table` (built once per simulation, in Python).
* :func:`state_key` -- one integer for the counts (n, y) per dose, to memoise per-state results (a
  recommendation or an MTD) within a run; states repeat across simulated trials, so this is exact.
* :data:`betainc` -- scipy's regularised incomplete beta function, callable from compiled code (the
  same C routine as :func:`scipy.special.betainc`, so compiled and reference paths agree bit for bit).
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np
from numba import njit
from numba.extending import get_cython_function_address
from scipy import special, stats


@njit(cache=True)
def count_below(u, pos, m, p):  # pragma: no cover - compiled
    """How many of the ``m`` uniforms ``u[pos:pos + m]`` are below ``p`` (DLTs of m patients, one uniform each)."""
    k = 0
    for j in range(m):
        k += u[pos + j] < p  # branch-free: the outcomes are unpredictable
    return k


@njit(cache=True)
def binomial_inverse(v, cdf, d, m):  # pragma: no cover - compiled
    """The smallest k with v < P(X <= k), X ~ Binomial(m, p_d), read from ``cdf[d, m, k]``.

    The CDF is non-decreasing in k, so that k is the number of values cdf[d, m, 0..m-1] that v reaches.
    """
    k = 0
    for j in range(m):
        k += v >= cdf[d, m, j]
    return k


def binomial_cdf_table(p: np.ndarray, m_max: int) -> np.ndarray:
    """``cdf[d, m, k]`` = P(Binomial(m, p[d]) <= k) for m, k = 0..m_max (cumulated pmf: non-decreasing in k)."""
    p = np.asarray(p, dtype=float)
    m = np.arange(m_max + 1)
    k = np.arange(m_max + 1)
    pmf = stats.binom.pmf(k[None, None, :], m[None, :, None], p[:, None, None])
    return np.minimum(np.cumsum(pmf, axis=2), 1.0)


@njit(cache=True)
def state_key(n, y, base):  # pragma: no cover - compiled
    """A unique integer for the counts (n_i, y_i), all below ``base`` (see :func:`memo_fits`)."""
    key = 0
    for i in range(n.shape[0]):
        key = key * base * base + n[i] * base + y[i]
    return key


def memo_fits(ndose: int, base: int, per_dose: int = 2) -> bool:
    """Whether ``per_dose`` counts per dose below ``base`` fit one int64 key (else run without a memo)."""
    return ndose * per_dose * math.log(base) < 62 * math.log(2.0)


def _scipy_betainc() -> Any:
    """scipy's double-precision ``betainc`` from ``scipy.special.cython_special``, checked against the ufunc.

    Cython exports fused functions under generated names; the one that equals the ufunc is taken.
    """
    proto = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double)
    probe = (2.5, 3.25, 0.3)
    want = float(special.betainc(*probe))
    for name in ("betainc", "__pyx_fuse_0betainc", "__pyx_fuse_1betainc"):
        try:
            fn = proto(get_cython_function_address("scipy.special.cython_special", name))
        except ValueError:
            continue
        if fn(*probe) == want:
            return fn
    raise ImportError("scipy.special.cython_special exports no double-precision betainc")  # pragma: no cover


#: I_x(a, b), the regularised incomplete beta function, callable from numba (scipy's implementation)
betainc = _scipy_betainc()

__all__ = ["count_below", "binomial_inverse", "binomial_cdf_table", "state_key", "memo_fits", "betainc"]
