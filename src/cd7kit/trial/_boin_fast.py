"""Compiled (numba) BOIN trial simulation: the same steps as :func:`cd7kit.trial.boin.simulate_reference`.

Reads the same flat array of uniforms in the same order -- one per patient (R-compatible; ``ndose``
more per trial for titration), so with R's stream it reproduces R BOIN ``get.oc`` trial by trial, or
one per cohort inverted through the binomial CDF (the fast mode). The elimination, extrasafe and
escalation boundaries come as integer tables indexed by the number of patients; the MTD selection
(``select.mtd``) is memoised per final state within a run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels import binomial_inverse, count_below, memo_fits, state_key


@njit(cache=True)
def _pava(x, w, n, lvl):  # pragma: no cover - compiled
    """In-place weighted PAVA on x[:n] (R BOIN's select.mtd: merge the first violation, repeat)."""
    for k in range(n):
        lvl[k] = k
    while True:
        i = -1
        for k in range(n - 1):
            if x[k + 1] - x[k] < 0:
                i = k
                break
        if i < 0:
            return
        a, b = lvl[i], lvl[i + 1]
        num = 0.0
        den = 0.0
        for k in range(n):
            if lvl[k] == a or lvl[k] == b:
                num += x[k] * w[k]
                den += w[k]
        v = num / den
        for k in range(n):
            if lvl[k] == a or lvl[k] == b:
                x[k] = v
                lvl[k] = a


@njit(cache=True)
def select_mtd_kernel(n, y, el, stop, target, extrasafe, boundmtd, lam_d):  # pragma: no cover - compiled
    """select.mtd from tables; returns the 1-based MTD or 0 for none."""
    nd = n.shape[0]
    return _select(n, y, el, stop, target, extrasafe, boundmtd, lam_d, np.empty(nd, dtype=np.int64), np.empty(nd), np.empty(nd), np.empty(nd, dtype=np.int64))


@njit(cache=True)
def _select(n, y, el, stop, target, extrasafe, boundmtd, lam_d, idx, ph, w, lvl):  # pragma: no cover - compiled
    nd = n.shape[0]
    first_elim = nd
    for i in range(nd):
        if n[i] >= 3 and el[n[i]] >= 0 and y[i] >= el[n[i]]:
            first_elim = i
            break
    if extrasafe and n[0] >= 3 and stop[n[0]] >= 0 and y[0] >= stop[n[0]]:
        return 0
    if first_elim == 0:
        return 0
    cnt = 0
    for i in range(first_elim):
        if n[i] > 0:
            a = y[i] + 0.05
            nn = n[i] + 0.1
            idx[cnt] = i
            ph[cnt] = a / nn
            w[cnt] = 1.0 / (a * (n[i] - y[i] + 0.05) / (nn * nn * (nn + 1.0)))
            cnt += 1
    if cnt == 0:
        return 0
    _pava(ph, w, cnt, lvl)
    allover = True
    for k in range(cnt):
        ph[k] += (k + 1) * 1e-10
        if ph[k] <= lam_d:
            allover = False
    if boundmtd and allover:
        return 0
    best = -1
    bestd = np.inf
    for k in range(cnt):
        if boundmtd and ph[k] > lam_d:
            continue
        dist = abs(ph[k] - target)
        if dist < bestd:
            bestd = dist
            best = k
    return idx[best] + 1


@njit(cache=True)
def _simulate(u, p, cdf, per_cohort, use_memo, ntrial, ncohort, cs, n_earlystop, startdose, titration, be, bd, el, stop, extrasafe, boundmtd, target, lam_d):  # pragma: no cover - compiled
    nd = p.shape[0]
    npts = ncohort * cs
    N = np.zeros((ntrial, nd), dtype=np.int64)
    Y = np.zeros((ntrial, nd), dtype=np.int64)
    sel = np.zeros(ntrial, dtype=np.int64)
    pos = 0
    y = np.zeros(nd, dtype=np.int64)
    n = np.zeros(nd, dtype=np.int64)
    elimi = np.zeros(nd, dtype=np.bool_)
    w_idx = np.empty(nd, dtype=np.int64)
    w_ph = np.empty(nd)
    w_w = np.empty(nd)
    w_lvl = np.empty(nd, dtype=np.int64)
    # select.mtd depends only on the final (n, y): memoise it within the run (exact; states repeat)
    base = npts + 1
    memo = dict()
    memo[np.int64(-1)] = np.int64(0)
    for trial in range(ntrial):
        y[:] = 0
        n[:] = 0
        elimi[:] = False
        earlystop = False
        d = startdose
        ntot = 0
        if titration:
            first = -1
            for k in range(nd):
                if u[pos + k] < p[k] and first < 0:
                    first = k
            pos += nd
            if first < 0:
                d = nd - 1
                n[:] = 1
                ntot = nd
            else:
                d = first
                for k in range(d + 1):
                    n[k] = 1
                y[d] = 1
                ntot = d + 1
        for _i in range(ncohort):
            if titration and _i == 0 and n[d] < cs:
                # titration: the first cohort adds cohortsize - 1 patients at the dose reached
                if per_cohort:
                    tox = binomial_inverse(u[pos], cdf, d, cs - 1)
                    pos += 1
                else:
                    tox = count_below(u, pos, cs - 1, p[d])
                    pos += cs - 1
                y[d] += tox
                n[d] += cs - 1
                ntot += cs - 1
            else:
                m = min(cs, npts - ntot)  # the last cohort is truncated at the maximum sample size
                if per_cohort:
                    tox = binomial_inverse(u[pos], cdf, d, m)
                    pos += 1
                else:
                    tox = count_below(u, pos, m, p[d])  # get.oc draws a whole cohort even when m < cs
                    pos += cs
                y[d] += tox
                n[d] += m
                ntot += m
                if ntot >= npts:
                    break  # get.oc adds the last cohort and stops before applying any rule
            nc = n[d]
            if el[nc] >= 0:
                if y[d] >= el[nc]:
                    for k in range(d, nd):
                        elimi[k] = True
                    if d == 0:
                        earlystop = True
                        break
                if extrasafe and d == 0 and n[0] >= 3 and stop[n[0]] >= 0 and y[0] >= stop[n[0]]:
                    earlystop = True
                    break
            if nc >= n_earlystop:
                upper_blocked = d == nd - 1
                if not upper_blocked:
                    upper_blocked = elimi[d + 1]
                if (be[nc] < y[d] and y[d] < bd[nc]) or (d == 0 and y[d] >= bd[nc]) or (upper_blocked and y[d] <= be[nc]):
                    break
            if y[d] <= be[nc] and d != nd - 1:
                if not elimi[d + 1]:
                    d += 1
            elif y[d] >= bd[nc] and d != 0:
                d -= 1
        for k in range(nd):
            N[trial, k] = n[k]
            Y[trial, k] = y[k]
        if earlystop:
            sel[trial] = 0
        elif use_memo:
            key = state_key(n, y, base)
            if key not in memo:
                memo[key] = _select(n, y, el, stop, target, extrasafe, boundmtd, lam_d, w_idx, w_ph, w_w, w_lvl)
            sel[trial] = memo[key]
        else:
            sel[trial] = _select(n, y, el, stop, target, extrasafe, boundmtd, lam_d, w_idx, w_ph, w_w, w_lvl)
    return N, Y, sel, pos


def simulate_boin_fast(
    u: np.ndarray,
    p: np.ndarray,
    cdf: np.ndarray,
    per_cohort: bool,
    ntrial: int,
    ncohort: int,
    cohortsize: int,
    n_earlystop: int,
    startdose0: int,
    titration: bool,
    be: np.ndarray,
    bd: np.ndarray,
    el: np.ndarray,
    stop: np.ndarray,
    extrasafe: bool,
    boundmtd: bool,
    target: float,
    lam_d: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run the compiled get.oc loop; returns (N, Y, mtd (1-based, 0 = none), uniforms used).

    ``cdf[d, m]`` = P(Binomial(m, p[d]) <= k) rows, read only when ``per_cohort``.
    """
    nd = len(p)
    return _simulate(
        np.ascontiguousarray(u, dtype=np.float64),
        np.ascontiguousarray(p, dtype=np.float64),
        np.ascontiguousarray(cdf, dtype=np.float64),
        bool(per_cohort),
        memo_fits(nd, ncohort * cohortsize + 1),
        int(ntrial),
        int(ncohort),
        int(cohortsize),
        int(n_earlystop),
        int(startdose0),
        bool(titration),
        be,
        bd,
        el,
        stop,
        bool(extrasafe),
        bool(boundmtd),
        float(target),
        float(lam_d),
    )


__all__ = ["simulate_boin_fast", "select_mtd_kernel"]
