"""Non-compartmental analysis (NCA) of CAR transgene (qPCR) and CAR+ cell (flow) time courses.

The numerical conventions are those of the R package PKNCA (humanpred/pknca, 0.12.x defaults; files
``R/PKNCA.options.R``, ``R/cleaners.R``, ``R/auc_integrate.R``, ``R/half.life.R``), re-implemented here:

* BLQ cleaning (``clean.conc.blq``): BLQ values are coded as 0; default rule ``first = keep``,
  ``middle = drop``, ``last = keep`` (also ``before.tmax`` / ``after.tmax`` naming); each rule is
  ``"keep"``, ``"drop"`` or a number. ``conc.na = "drop"``.
* Interval integration (``choose_interval_method``), default ``"lin up/log down"``: log trapezoid when the
  concentration falls and the later value is not 0, linear otherwise; both ends 0 -> zero; every interval
  at or after Tlast -> zero (AUClast). ``"linear"`` and ``"lin-log"`` are also offered.
* Partial AUC over ``[a, b]`` (``pk.calc.aucint``): the concentrations at ``a`` and ``b`` are interpolated
  with the method of the interval that contains them; beyond Tlast the concentration is 0 (``aucint.last``),
  or ``Clast*exp(-lambda_z (t - tlast))`` (``aucint.inf.obs``). No extrapolation before the first point; the
  concentration at the dose time is ``conc_origin`` (0).
* lambda_z (``pk.calc.half.life``, log-linear): candidates are the points with conc > 0 strictly after
  Tmax; for n = 3 .. N the last n points are fitted by OLS on log(conc); the fits with lambda_z > 0 and
  ``adj.r2 > max(adj.r2) - 1e-4`` are kept and the one with most points wins. Quality flags:
  ``r2 < 0.9``, ``span_ratio < 2`` (and ``%AUC extrapolated > 20``) mark it not valid without changing it.

CAR-specific metrics follow the toolkit rules of ``specs/kinetics.md`` section 2.2 (our design, [D]):
AUC0-28d and AUC0-84d as ``aucint.last`` per infusion, Cmax/Tmax (first), Clast/Tlast, contraction
half-life over ``[Tmax, Tmax + 28]`` (at least 3 post-Tmax points), expansion doubling time, time to
loss of detection (censored while still detectable), detectability at days 28/90/180/365, Cmax/dose,
AUC/dose and a fold-expansion proxy. Intervals are per infusion: dose k owns the samples in
``[t_k, t_{k+1})``; an AUC window that runs into the next dose is truncated there and flagged.

Acceptance (spec section 1.5): on the Stein 2019 typical curve (grid 0..28 d, step 0.1) PKNCA gives
AUClast 172,000 copies/ug*day, Cmax 24,000, Tmax 9.3 d, half-life 4.75 d; ``tests/kinetics/test_nca.py``
checks that this module reproduces them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study
from cd7kit.errors import InputError, Problem

PKNCA_SOURCE = (
    "PKNCA (humanpred/pknca 0.12.1) defaults: R/PKNCA.options.R, R/cleaners.R, R/auc_integrate.R, "
    "R/half.life.R; vignette 'Options for Controlling PKNCA' (v0.12.0); cd7kit specs/kinetics.md sections 1-2"
)
RULE_SYSTEM = "PKNCA conventions (re-implemented)"
RULE_VERSION = "PKNCA 0.12.1 semantics"

#: Analytes by vocabulary code: the unit of the value and of the AUC.
CAR_CODES: dict[str, dict[str, str]] = {
    "CAR_COPIES": {"unit": "copies/ug", "auc_unit": "copies/ug*day", "assay": "qPCR transgene, copies per ug genomic DNA"},
    "CAR_CELLS": {"unit": "cells/uL", "auc_unit": "cells/uL*day", "assay": "flow cytometry, CAR+ cells per uL blood"},
    "CAR_PCT_CD3": {"unit": "%", "auc_unit": "%*day", "assay": "flow, % CAR+ of CD3+ (Cmax/Tmax only)"},
    "CAR_PCT_NK": {"unit": "%", "auc_unit": "%*day", "assay": "flow, % CAR+ of NK (Cmax/Tmax only)"},
}

#: Visit windows (+- days) for ``detectable_at_dX`` [D].
DETECT_WINDOWS: dict[int, float] = {28: 7.0, 90: 14.0, 180: 30.0, 365: 45.0}


@dataclass(frozen=True)
class NCAOptions:
    """NCA options; defaults are PKNCA's (``PKNCA.options()``) plus the CAR intervals of spec 2.2."""

    auc_method: str = "lin up/log down"
    conc_blq: Mapping[str, Any] = field(default_factory=lambda: {"first": "keep", "middle": "drop", "last": "keep"})
    conc_na: str | float = "drop"
    first_tmax: bool = True
    allow_tmax_in_half_life: bool = False
    min_hl_points: int = 3
    adj_r_squared_factor: float = 1e-4
    min_hl_r_squared: float = 0.9
    min_span_ratio: float = 2.0
    max_aucinf_pext: float = 20.0
    conc_origin: float = 0.0
    auc_windows: tuple[float, ...] = (28.0, 84.0)
    contraction_window: float = 28.0
    min_contraction_points: int = 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "auc.method": self.auc_method,
            "conc.blq": dict(self.conc_blq),
            "conc.na": self.conc_na,
            "first.tmax": self.first_tmax,
            "allow.tmax.in.half.life": self.allow_tmax_in_half_life,
            "min.hl.points": self.min_hl_points,
            "adj.r.squared.factor": self.adj_r_squared_factor,
            "min.hl.r.squared": self.min_hl_r_squared,
            "min.span.ratio": self.min_span_ratio,
            "max.aucinf.pext": self.max_aucinf_pext,
            "conc.origin": self.conc_origin,
            "auc_windows_days": list(self.auc_windows),
            "contraction_window_days": self.contraction_window,
            "blq_coding": "BLQ (flag or value < LLOQ) coded as 0 before cleaning",
        }


AUC_METHODS = ("lin up/log down", "linear", "lin-log")


# ------------------------------------------------------------------------------------------------
# PKNCA building blocks on arrays
# ------------------------------------------------------------------------------------------------
def _check_method(method: str) -> None:
    if method not in AUC_METHODS:
        raise InputError([Problem("unknown AUC method", value=method, expected=" | ".join(AUC_METHODS))])


def clean_conc_na(time: np.ndarray, conc: np.ndarray, conc_na: str | float = "drop") -> tuple[np.ndarray, np.ndarray]:
    """PKNCA ``clean.conc.na``: drop rows with a missing concentration, or set them to a number."""
    time = np.asarray(time, dtype=float)
    conc = np.asarray(conc, dtype=float)
    na = np.isnan(conc)
    if conc_na == "drop":
        return time[~na], conc[~na]
    conc = conc.copy()
    conc[na] = float(conc_na)
    return time, conc


def clean_conc_blq(
    time: np.ndarray,
    conc: np.ndarray,
    conc_blq: Mapping[str, Any] | None = None,
    conc_na: str | float = "drop",
) -> tuple[np.ndarray, np.ndarray]:
    """PKNCA ``clean.conc.blq``: apply the first/middle/last (or before/after Tmax) rules to zeros.

    ``conc`` must already code BLQ as 0. Returns the kept times and concentrations, sorted by time.
    """
    rules = dict(conc_blq or {"first": "keep", "middle": "drop", "last": "keep"})
    time, conc = clean_conc_na(time, conc, conc_na)
    order = np.argsort(time, kind="stable")
    time, conc = time[order], conc[order]
    if len(conc) == 0:
        return time, conc
    pos = conc > 0
    if pos.any():
        tfirst = float(time[pos][0])
        tlast = float(time[pos][-1])
    else:  # all BLQ: the "first" rule applies to everything
        tfirst = float(time.max())
        tlast = tfirst + 1.0
    zero = conc == 0
    if set(rules) >= {"before.tmax", "after.tmax"}:
        tmax = float(time[np.argmax(conc)]) if pos.any() else tfirst
        masks = {"before.tmax": (time < tmax) & zero, "after.tmax": (time >= tmax) & zero}
    else:
        masks = {
            "first": (time <= tfirst) & zero,
            "middle": (time > tfirst) & (time < tlast) & zero,
            "last": (time >= tlast) & zero,
        }
    keep = np.ones(len(conc), dtype=bool)
    conc = conc.copy()
    for name, mask in masks.items():
        rule = rules.get(name, "keep")
        if rule == "keep":
            continue
        if rule == "drop":
            keep &= ~mask
        else:
            conc[mask] = float(rule)
    return time[keep], conc[keep]


def tmax_index(conc: np.ndarray, first: bool = True) -> int | None:
    """Index of Cmax (the first occurrence by default, PKNCA ``first.tmax``); None if no conc > 0."""
    if len(conc) == 0 or not np.any(conc > 0):
        return None
    cmax = np.max(conc)
    idx = np.flatnonzero(conc == cmax)
    return int(idx[0] if first else idx[-1])


def tlast_index(conc: np.ndarray) -> int | None:
    pos = np.flatnonzero(conc > 0)
    return None if len(pos) == 0 else int(pos[-1])


def interval_methods(
    time: np.ndarray, conc: np.ndarray, method: str = "lin up/log down", auc_type: str = "AUClast", tmax: float | None = None
) -> list[str]:
    """PKNCA ``choose_interval_method`` for each pair of neighbouring points: zero | linear | log."""
    _check_method(method)
    n = len(conc)
    il = tlast_index(conc)
    tlast = -np.inf if il is None else time[il]
    if tmax is None:
        it = tmax_index(conc)
        tmax = -np.inf if it is None else float(time[it])
    out: list[str] = []
    for i in range(n - 1):
        c1, c2 = conc[i], conc[i + 1]
        if time[i] >= tlast:
            out.append("linear" if (auc_type == "AUCall" and time[i] == tlast) else "zero")
        elif c1 == 0 and c2 == 0:
            out.append("zero")
        elif method == "linear":
            out.append("linear")
        elif method == "lin up/log down":
            out.append("log" if (c2 < c1 and c2 != 0) else "linear")
        else:  # lin-log
            out.append("linear" if (time[i + 1] <= tmax or c1 == 0 or c2 == 0) else "log")
    return out


def _seg_auc(t1: float, t2: float, c1: float, c2: float, how: str) -> float:
    dt = t2 - t1
    if how == "zero":
        return 0.0
    if how == "log" and c1 > 0 and c2 > 0 and c1 != c2:
        return dt * (c2 - c1) / math.log(c2 / c1)
    return dt * (c1 + c2) / 2.0


def _seg_aumc(t1: float, t2: float, c1: float, c2: float, how: str) -> float:
    dt = t2 - t1
    if how == "zero":
        return 0.0
    if how == "log" and c1 > 0 and c2 > 0 and c1 != c2:
        k = math.log(c2 / c1)
        return dt * (c2 * t2 - c1 * t1) / k - dt**2 * (c2 - c1) / k**2
    return dt * (c2 * t2 + c1 * t1) / 2.0


def auc_segments(time: np.ndarray, conc: np.ndarray, method: str = "lin up/log down", auc_type: str = "AUClast") -> float:
    """AUC over the given (cleaned, sorted) points with PKNCA's interval methods."""
    if len(time) < 2:
        return 0.0
    ms = interval_methods(time, conc, method, auc_type)
    return float(sum(_seg_auc(time[i], time[i + 1], conc[i], conc[i + 1], m) for i, m in enumerate(ms)))


def aumc_segments(time: np.ndarray, conc: np.ndarray, method: str = "lin up/log down", auc_type: str = "AUClast") -> float:
    if len(time) < 2:
        return 0.0
    ms = interval_methods(time, conc, method, auc_type)
    return float(sum(_seg_aumc(time[i], time[i + 1], conc[i], conc[i + 1], m) for i, m in enumerate(ms)))


def interpolate_conc(
    time: np.ndarray,
    conc: np.ndarray,
    t: float,
    method: str = "lin up/log down",
    extrapolation: str = "AUClast",
    lambda_z: float | None = None,
    conc_origin: float = 0.0,
) -> float:
    """PKNCA ``interp.extrap.conc``: concentration at ``t`` from cleaned, sorted points.

    Before the first point: ``conc_origin`` (the dose time has no CAR cells). After Tlast: 0 for
    ``AUClast``; ``Clast*exp(-lambda_z (t-tlast))`` for ``AUCinf``; linear to the first trailing zero for
    ``AUCall``. Inside: the interval's method (log when falling to a value > 0 under lin-up/log-down).
    """
    if len(time) == 0:
        return float("nan")
    hit = np.flatnonzero(time == t)
    if len(hit):
        return float(conc[hit[0]])
    if t < time[0]:
        return float(conc_origin)
    il = tlast_index(conc)
    tlast = time[il] if il is not None else -np.inf
    if t > tlast:
        if extrapolation == "AUClast" or il is None:
            return 0.0
        if extrapolation == "AUCinf":
            if lambda_z is None or not np.isfinite(lambda_z):
                return float("nan")
            return float(conc[il] * math.exp(-lambda_z * (t - tlast)))
        # AUCall: linear from Clast to the next (zero) point, then 0
        nxt = np.flatnonzero(time > tlast)
        if len(nxt) == 0:
            return 0.0
        j = nxt[0]
        if t >= time[j]:
            return 0.0
        return float(conc[il] + (conc[j] - conc[il]) * (t - tlast) / (time[j] - tlast))
    j = int(np.searchsorted(time, t))  # time[j-1] < t < time[j]
    t1, t2, c1, c2 = time[j - 1], time[j], conc[j - 1], conc[j]
    it = tmax_index(conc)
    tmax = time[it] if it is not None else -np.inf
    use_log = False
    if method == "lin up/log down":
        use_log = c2 < c1 and c2 > 0 and c1 > 0
    elif method == "lin-log":
        use_log = t2 > tmax and c1 > 0 and c2 > 0
    if use_log:
        return float(math.exp(math.log(c1) + (t - t1) / (t2 - t1) * (math.log(c2) - math.log(c1))))
    return float(c1 + (c2 - c1) * (t - t1) / (t2 - t1))


def auc_interval(
    time: np.ndarray,
    conc: np.ndarray,
    start: float,
    end: float,
    method: str = "lin up/log down",
    auc_type: str = "AUClast",
    lambda_z: float | None = None,
    conc_origin: float = 0.0,
) -> float:
    """PKNCA ``pk.calc.aucint`` on cleaned, sorted points: AUC over ``[start, end]`` with interpolation.

    ``auc_type``: ``AUClast`` (= ``aucint.last``; 0 beyond Tlast), ``AUCinf`` (= ``aucint.inf.obs``;
    log-extrapolated beyond Tlast with ``lambda_z``) or ``AUCall``.
    """
    _check_method(method)
    if end <= start:
        return 0.0
    time = np.asarray(time, dtype=float)
    conc = np.asarray(conc, dtype=float)
    if len(time) == 0:
        return float("nan")
    il = tlast_index(conc)
    c_start = interpolate_conc(time, conc, start, method, auc_type, lambda_z, conc_origin)
    c_end = interpolate_conc(time, conc, end, method, auc_type, lambda_z, conc_origin)
    inside = (time > start) & (time < end)
    tt = np.concatenate([[start], time[inside], [end]])
    cc = np.concatenate([[c_start], conc[inside], [c_end]])
    if auc_type == "AUCinf" and il is not None and end > time[il]:
        # integrate observed part up to tlast, then the log tail from tlast to end
        tlast = float(time[il])
        m = tt <= tlast
        t_obs, c_obs = tt[m], cc[m]
        if t_obs[-1] < tlast:
            t_obs = np.append(t_obs, tlast)
            c_obs = np.append(c_obs, conc[il])
        part = _auc_plain(t_obs, c_obs, method)
        if lambda_z is None or not np.isfinite(lambda_z):
            return float("nan")
        lo = max(start, tlast)
        tail = conc[il] / lambda_z * (math.exp(-lambda_z * (lo - tlast)) - math.exp(-lambda_z * (end - tlast)))
        return float(part + tail)
    if auc_type == "AUClast" and il is not None:
        tlast = float(time[il])
        m = tt <= tlast
        if m.sum() < 2:
            return 0.0
        return _auc_plain(tt[m], cc[m], method)
    if il is None:
        return 0.0
    return auc_segments(tt, cc, method, auc_type)


def _auc_plain(t: np.ndarray, c: np.ndarray, method: str) -> float:
    """AUC of points that all lie at or before Tlast (no zero-tail handling needed)."""
    total = 0.0
    it = tmax_index(c)
    tmax = t[it] if it is not None else -np.inf
    for i in range(len(t) - 1):
        c1, c2 = c[i], c[i + 1]
        if c1 == 0 and c2 == 0:
            how = "zero"
        elif method == "linear":
            how = "linear"
        elif method == "lin up/log down":
            how = "log" if (c2 < c1 and c2 != 0) else "linear"
        else:
            how = "linear" if (t[i + 1] <= tmax or c1 == 0 or c2 == 0) else "log"
        total += _seg_auc(t[i], t[i + 1], c1, c2, how)
    return float(total)


@dataclass(frozen=True)
class HalfLife:
    """A log-linear terminal-slope fit (PKNCA ``pk.calc.half.life`` fields)."""

    lambda_z: float | None
    half_life: float | None
    r_squared: float | None
    adj_r_squared: float | None
    n_points: int
    time_first: float | None
    time_last: float | None
    clast_pred: float | None
    span_ratio: float | None
    valid: bool
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambda_z": self.lambda_z,
            "half_life": self.half_life,
            "r_squared": self.r_squared,
            "adj_r_squared": self.adj_r_squared,
            "lambda_z_n_points": self.n_points,
            "lambda_z_time_first": self.time_first,
            "lambda_z_time_last": self.time_last,
            "clast_pred": self.clast_pred,
            "span_ratio": self.span_ratio,
            "valid": self.valid,
            "flags": list(self.flags),
        }


def _ols_log(t: np.ndarray, c: np.ndarray) -> tuple[float, float, float]:
    """OLS of log(c) on t: (slope, intercept, r^2)."""
    y = np.log(c)
    tm, ym = t.mean(), y.mean()
    sxx = float(((t - tm) ** 2).sum())
    if sxx == 0:
        return float("nan"), float("nan"), float("nan")
    slope = float(((t - tm) * (y - ym)).sum() / sxx)
    icpt = float(ym - slope * tm)
    ss_tot = float(((y - ym) ** 2).sum())
    ss_res = float(((y - (icpt + slope * t)) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return slope, icpt, r2


def _fit_half_life(t: np.ndarray, c: np.ndarray, tlast: float, opts: NCAOptions) -> HalfLife:
    n = len(t)
    slope, icpt, r2 = _ols_log(t, c)
    lz = -slope
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - 2) if n > 2 else float("nan")
    hl = math.log(2) / lz if lz > 0 else float("nan")
    span = (t[-1] - t[0]) / hl if lz > 0 else float("nan")
    return _make_hl(lz, hl, r2, adj, n, float(t[0]), float(t[-1]), float(math.exp(icpt + slope * tlast)), span, opts)


def _make_hl(lz, hl, r2, adj, n, t1, t2, cpred, span, opts: NCAOptions, extra_flags: Sequence[str] = ()) -> HalfLife:
    flags = list(extra_flags)
    if not (lz is not None and np.isfinite(lz) and lz > 0):
        flags.append("lambda_z not positive")
    if r2 is not None and np.isfinite(r2) and r2 < opts.min_hl_r_squared:
        flags.append(f"r_squared < {opts.min_hl_r_squared}")
    if span is not None and np.isfinite(span) and span < opts.min_span_ratio:
        flags.append(f"span_ratio < {opts.min_span_ratio}")

    def f(x: Any) -> float | None:
        return None if x is None or not np.isfinite(x) else float(x)

    return HalfLife(f(lz), f(hl), f(r2), f(adj), int(n), t1, t2, f(cpred), f(span), valid=not flags, flags=tuple(flags))


def _no_half_life(reason: str) -> HalfLife:
    return HalfLife(None, None, None, None, 0, None, None, None, None, valid=False, flags=(reason,))


def half_life(time: np.ndarray, conc: np.ndarray, opts: NCAOptions | None = None) -> HalfLife:
    """PKNCA automatic lambda_z selection on cleaned, sorted points (best adjusted r^2, then most points)."""
    opts = opts or NCAOptions()
    time = np.asarray(time, dtype=float)
    conc = np.asarray(conc, dtype=float)
    it = tmax_index(conc, opts.first_tmax)
    il = tlast_index(conc)
    if it is None or il is None:
        return _no_half_life("no concentration above LLOQ")
    tmax, tlast = time[it], time[il]
    m = (conc > 0) & ((time >= tmax) if opts.allow_tmax_in_half_life else (time > tmax))
    t, c = time[m], conc[m]
    if len(t) < opts.min_hl_points:
        return _no_half_life(f"too few points after Tmax for half-life (min.hl.points={opts.min_hl_points}, have {len(t)})")
    fits = [_fit_half_life(t[-n:], c[-n:], tlast, opts) for n in range(opts.min_hl_points, len(t) + 1)]
    adjs = np.array([np.nan if f.adj_r_squared is None else f.adj_r_squared for f in fits])
    lzs = np.array([np.nan if f.lambda_z is None else f.lambda_z for f in fits])
    best_adj = np.nanmax(adjs) if np.any(np.isfinite(adjs)) else np.nan
    mask = (lzs > 0) & (adjs > best_adj - opts.adj_r_squared_factor)
    mask[~np.isfinite(adjs) | ~np.isfinite(lzs)] = False
    if not mask.any():
        return _no_half_life("no candidate fit with lambda_z > 0")
    ns = np.array([f.n_points for f in fits])
    best = int(np.flatnonzero(mask & (ns == ns[mask].max()))[0])
    return fits[best]


def window_half_life(time: np.ndarray, conc: np.ndarray, start: float, end: float, min_points: int = 3, strictly_after: bool = True) -> HalfLife:
    """Log-linear half-life on all quantifiable points in a given window (no automatic selection)."""
    opts = NCAOptions()
    time = np.asarray(time, dtype=float)
    conc = np.asarray(conc, dtype=float)
    lo = (time > start) if strictly_after else (time >= start)
    m = lo & (time <= end) & (conc > 0)
    t, c = time[m], conc[m]
    if len(t) < min_points:
        return _no_half_life(f"fewer than {min_points} quantifiable points in [{start:g}, {end:g}] (have {len(t)})")
    il = tlast_index(conc)
    tlast = float(time[il]) if il is not None else float(t[-1])
    return _fit_half_life(t, c, tlast, opts)


# ------------------------------------------------------------------------------------------------
# One profile (one subject, one dose interval)
# ------------------------------------------------------------------------------------------------
def nca_profile(
    time: Sequence[float] | np.ndarray,
    conc: Sequence[float] | np.ndarray,
    blq: Sequence[bool] | np.ndarray | None = None,
    lloq: Sequence[float] | np.ndarray | float | None = None,
    dose: float | None = None,
    end: float | None = None,
    options: NCAOptions | None = None,
    c_at_dose: float | None = None,
) -> dict[str, Any]:
    """NCA of one profile; ``time`` is days since this dose (the dose is at t = 0).

    ``blq`` flags (or ``conc < lloq``) code a value as BLQ (0) before PKNCA cleaning. ``end`` is where the
    dose interval stops (the next dose), if any: AUC windows are cut there and flagged. Returns a flat
    dict of metrics (None where not computable) with ``flags`` and ``missing`` lists. ``c_at_dose`` is
    the concentration at the dose time when it is not sampled (a re-infusion on top of circulating cells);
    default ``conc_origin`` (0).
    """
    opts = options or NCAOptions()
    _check_method(opts.auc_method)
    t_raw = np.asarray(time, dtype=float)
    c_raw = np.asarray(conc, dtype=float).copy()
    n = len(t_raw)
    is_blq = np.zeros(n, dtype=bool) if blq is None else np.asarray(blq, dtype=bool).copy()
    if lloq is not None:
        lq = np.broadcast_to(np.asarray(lloq, dtype=float), (n,))
        with np.errstate(invalid="ignore"):
            is_blq |= np.isfinite(lq) & np.isfinite(c_raw) & (c_raw < lq)
    c_raw[is_blq] = 0.0
    if c_at_dose is not None and not np.any(t_raw == 0):
        t_raw = np.concatenate([[0.0], t_raw])
        c_raw = np.concatenate([[max(float(c_at_dose), 0.0)], c_raw])
    flags: list[str] = []
    missing: list[str] = []
    if end is not None:
        keep = t_raw < end
        t_raw, c_raw = t_raw[keep], c_raw[keep]
    t, c = clean_conc_blq(t_raw, c_raw, opts.conc_blq, opts.conc_na)
    out: dict[str, Any] = {
        "n_samples": int(len(t_raw)),
        "n_quantifiable": int((c > 0).sum()),
        "interval_end": end,
    }
    it = tmax_index(c, opts.first_tmax)
    il = tlast_index(c)
    if it is None or il is None:
        missing.append("no value above the LLOQ in this interval")
        out.update(cmax=None, tmax=None, clast=None, tlast=None, tfirst=None)
        for w in opts.auc_windows:
            out[f"auc0_{int(w)}"] = 0.0 if len(t) else None
        out.update(
            contraction=_no_half_life("no quantifiable value").to_dict(),
            lambda_z=_no_half_life("no quantifiable value").to_dict(),
            doubling_time=None,
            time_to_loss_of_detection=None,
            loss_of_detection_observed=None,
            flags=flags,
            missing=missing,
        )
        return out
    cmax, tmax = float(c[it]), float(t[it])
    clast, tlast = float(c[il]), float(t[il])
    tfirst = float(t[np.flatnonzero(c > 0)[0]])
    out.update(cmax=cmax, tmax=tmax, clast=clast, tlast=tlast, tfirst=tfirst)
    # conc at the dose time: conc.origin unless observed
    few = len(t) < 2 and not (len(t) == 1 and t[0] > 0)
    if few:
        missing.append("a single sample at the dose time in this interval: no AUC")
    for w in opts.auc_windows:
        stop = w if end is None else min(w, end)
        auc = None if few else auc_interval(t, c, 0.0, stop, opts.auc_method, "AUClast", conc_origin=opts.conc_origin)
        key = f"auc0_{int(w)}"
        out[key] = auc
        win_flags = []
        if end is not None and end < w:
            win_flags.append(f"truncated at next dose (day {end:g})")
        if tlast < w:
            win_flags.append("partial: Tlast before window end")
        if t[-1] < w and (end is None or end >= w):
            win_flags.append(f"last sample (day {t[-1]:g}) before window end")
        out[f"{key}_flags"] = win_flags
        out[f"{key}_n_points_in_window"] = int(((t >= 0) & (t <= stop)).sum())
        out[f"{key}_t_last_in_window"] = float(t[(t <= stop) & (c > 0)].max()) if np.any((t <= stop) & (c > 0)) else None
    out["auclast"] = auc_interval(t, c, min(0.0, float(t[0])), tlast, opts.auc_method, "AUClast", conc_origin=opts.conc_origin)
    # half-lives
    contraction = window_half_life(t, c, tmax, tmax + opts.contraction_window, opts.min_contraction_points)
    out["contraction"] = contraction.to_dict()
    lz = half_life(t, c, opts)
    lzd = lz.to_dict()
    if lz.time_first is not None and lz.time_first > tmax + opts.contraction_window:
        lzd["phase"] = "terminal/persistence"
    elif lz.time_first is not None:
        lzd["phase"] = "mixed or contraction"
    if lz.lambda_z:
        aucinf = out["auclast"] + clast / lz.lambda_z
        pext = 100.0 * (clast / lz.lambda_z) / aucinf if aucinf > 0 else None
        lzd["aucinf_obs"] = aucinf
        lzd["aucpext_obs"] = pext
        if pext is not None and pext > opts.max_aucinf_pext:
            lzd["flags"] = list(lzd["flags"]) + [f"AUC extrapolated > {opts.max_aucinf_pext}%"]
            lzd["valid"] = False
    out["lambda_z"] = lzd
    # expansion doubling time: first quantifiable .. Tmax
    m = (c > 0) & (t <= tmax)
    if m.sum() >= 2 and t[m][-1] > t[m][0]:
        slope, _, _ = _ols_log(t[m], c[m])
        out["doubling_time"] = math.log(2) / slope if slope > 0 else None
    else:
        out["doubling_time"] = None
        missing.append("doubling time needs >= 2 quantifiable points up to Tmax")
    # persistence
    later = t > tlast
    if later.any():
        out["time_to_loss_of_detection"] = float(t[later][0])
        out["loss_of_detection_observed"] = True
    else:
        out["time_to_loss_of_detection"] = tlast
        out["loss_of_detection_observed"] = False  # censored: still detectable at the last sample
    for x, win in DETECT_WINDOWS.items():
        near = np.flatnonzero(np.abs(t_raw - x) <= win)
        if len(near) == 0 or (end is not None and end < x - win):
            out[f"detectable_at_d{x}"] = None
        else:
            j = near[np.argmin(np.abs(t_raw[near] - x))]
            out[f"detectable_at_d{x}"] = bool(c_raw[j] > 0)
    # ratios
    first_pos = c[(t > 0) & (c > 0)]
    out["fold_expansion_proxy"] = cmax / float(first_pos[0]) if len(first_pos) else None
    if dose is not None and dose > 0:
        out["cmax_per_dose"] = cmax / dose
        out["auc0_28_per_dose"] = out["auc0_28"] / dose if out.get("auc0_28") is not None else None
    out["flags"] = flags
    out["missing"] = missing
    return out


# ------------------------------------------------------------------------------------------------
# Study-level NCA
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NCAResults:
    """NCA results of a study: one :class:`~cd7kit.data.Result` per subject x infusion x code."""

    results: tuple[Result, ...]
    options: NCAOptions

    def to_frame(self) -> pd.DataFrame:
        """A flat table: one row per subject x dose interval, main metrics as columns."""
        rows = []
        for r in self.results:
            v = r.value or {}
            d = r.details
            rows.append(
                {
                    "subject_id": r.subject_id,
                    "code": d.get("code"),
                    "unit": d.get("unit"),
                    "auc_unit": d.get("auc_unit"),
                    "dose_index": d.get("dose_index"),
                    "dose_day": r.day,
                    "dose": d.get("dose"),
                    "dose_unit": d.get("dose_unit"),
                    "cmax": v.get("cmax"),
                    "tmax": v.get("tmax"),
                    "auc0_28": v.get("auc0_28"),
                    "auc0_84": v.get("auc0_84"),
                    "clast": v.get("clast"),
                    "tlast": v.get("tlast"),
                    "contraction_half_life": (v.get("contraction") or {}).get("half_life"),
                    "lambda_z_half_life": (v.get("lambda_z") or {}).get("half_life"),
                    "time_to_loss_of_detection": v.get("time_to_loss_of_detection"),
                    "loss_of_detection_observed": v.get("loss_of_detection_observed"),
                    "n_samples": v.get("n_samples"),
                }
            )
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        return nca_summary(self.to_frame())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "nca",
            "value": [r.to_dict() for r in self.results],
            "summary": self.summary(),
            "rule": _rule(self.options).to_dict(),
            "evidence": [],
            "missing": sorted({m for r in self.results for m in r.missing}),
        }


def _rule(opts: NCAOptions) -> Rule:
    return Rule(RULE_SYSTEM, RULE_VERSION, opts.to_dict(), PKNCA_SOURCE)


def geo_summary(x: Sequence[float]) -> dict[str, Any]:
    """Geometric mean and geometric CV% ``100*sqrt(exp(s^2_log) - 1)`` of the positive values."""
    a = np.asarray([v for v in x if v is not None and np.isfinite(v) and v > 0], dtype=float)
    if len(a) == 0:
        return {"n": 0, "geomean": None, "geocv_pct": None}
    lg = np.log(a)
    s2 = float(lg.var(ddof=1)) if len(a) > 1 else float("nan")
    return {"n": int(len(a)), "geomean": float(np.exp(lg.mean())), "geocv_pct": None if not np.isfinite(s2) else float(100 * math.sqrt(math.exp(s2) - 1))}


def median_range(x: Sequence[float]) -> dict[str, Any]:
    a = np.asarray([v for v in x if v is not None and np.isfinite(v)], dtype=float)
    if len(a) == 0:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": int(len(a)), "median": float(np.median(a)), "min": float(a.min()), "max": float(a.max())}


def nca_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Label-style summaries by code and dose index: geometric mean (CV%) of Cmax and AUCs, median (range) of Tmax/Tlast."""
    out: dict[str, Any] = {}
    if table.empty:
        return out
    for (code, k), g in table.groupby(["code", "dose_index"], dropna=False):
        out[f"{code}/dose{k}"] = {
            "unit": g["unit"].iloc[0],
            "cmax": geo_summary(g["cmax"].tolist()),
            "auc0_28": geo_summary(g["auc0_28"].tolist()),
            "auc0_84": geo_summary(g["auc0_84"].tolist()),
            "tmax": median_range(g["tmax"].tolist()),
            "tlast": median_range(g["tlast"].tolist()),
        }
    return out


def _profiles_from_long(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a plain long table (subject_id, time|day, value, [blq], [lloq], [code|analyte], [unit])."""
    problems: list[Problem] = []
    df = df.copy()
    if "time" not in df.columns and "day" in df.columns:
        df = df.rename(columns={"day": "time"})
    if "code" not in df.columns:
        df["code"] = df["analyte"].map({"car_qpcr": "CAR_COPIES", "car_flow_abs": "CAR_CELLS"}) if "analyte" in df.columns else "CAR_COPIES"
    for col in ("subject_id", "time", "value"):
        if col not in df.columns:
            problems.append(Problem("required column is missing", "table", 1, col, None, col))
    if problems:
        raise InputError(problems)
    if "blq" not in df.columns:
        df["blq"] = False
    if "lloq" not in df.columns:
        df["lloq"] = np.nan
    if "row_id" not in df.columns:
        df["row_id"] = np.arange(1, len(df) + 1)
    bad = df.index[pd.to_numeric(df["time"], errors="coerce").isna()]
    for i in bad:
        problems.append(Problem("time is not a number", "table", int(i) + 2, "time", df.at[i, "time"], "days since first infusion"))
    if problems:
        raise InputError(problems)
    df["time"] = df["time"].astype(float)
    df["blq"] = df["blq"].fillna(False).astype(bool)
    return df


def nca(
    data: Study | pd.DataFrame,
    code: str | None = None,
    doses: pd.DataFrame | None = None,
    options: NCAOptions | None = None,
    specimen: str | None = "PB",
) -> NCAResults:
    """NCA of every subject in a Study (or a long table), per infusion interval.

    ``code``: ``CAR_COPIES`` (qPCR, copies/ug) or ``CAR_CELLS`` (flow, cells/uL); default: CAR_COPIES if
    present, else CAR_CELLS. Infusions come from ``Study.infusions()`` (day of each ``car_infusion``);
    for a plain table give ``doses`` (subject_id, time|day, [dose], [dose_unit]) or every subject is taken
    as dosed once at day 0.
    """
    opts = options or NCAOptions()
    if isinstance(data, Study):
        obs = data.observations
        if code is None:
            code = "CAR_COPIES" if (obs["code"] == "CAR_COPIES").any() else "CAR_CELLS"
        s = data.series(None, code)
        if specimen is not None:
            s = s[s["specimen"].isna() | (s["specimen"] == specimen)]
        long = s.rename(columns={"day": "time"})[["row_id", "subject_id", "time", "value", "blq", "lloq", "code", "unit"]]
        inf = data.infusions()
        dose_tab = inf.rename(columns={"start_day": "time"})[["subject_id", "time", "dose", "dose_unit", "row_id"]]
    else:
        long = _profiles_from_long(data)
        if code is None:
            code = "CAR_COPIES" if (long["code"] == "CAR_COPIES").any() else str(long["code"].iloc[0])
        long = long[long["code"] == code]
        if doses is None:
            dose_tab = pd.DataFrame({"subject_id": long["subject_id"].unique(), "time": 0.0, "dose": np.nan, "dose_unit": None, "row_id": None})
        else:
            dose_tab = doses.rename(columns={"day": "time", "start_day": "time"}).copy()
            for col in ("dose", "dose_unit", "row_id"):
                if col not in dose_tab.columns:
                    dose_tab[col] = None
    meta = CAR_CODES.get(code, {"unit": str(long["unit"].iloc[0]) if "unit" in long.columns and len(long) else "", "auc_unit": ""})
    results: list[Result] = []
    for sid, g in long.groupby("subject_id", sort=True):
        g = g.sort_values("time", kind="stable")
        d = dose_tab[dose_tab["subject_id"] == sid].sort_values("time")
        dose_days = d["time"].astype(float).tolist() or [0.0]
        for k, t0 in enumerate(dose_days):
            t_next = dose_days[k + 1] if k + 1 < len(dose_days) else None
            sel = (g["time"] >= t0) & ((g["time"] < t_next) if t_next is not None else True)
            if k == 0:
                sel |= g["time"] < t0  # pre-infusion samples belong to the first interval (as time < 0)
            gg = g[sel]
            rel = gg["time"].to_numpy(float) - t0
            vals = gg["value"].to_numpy(float)
            blqs = gg["blq"].to_numpy(bool)
            lloqs = gg["lloq"].to_numpy(float)
            # pre-dose samples of the first dose are kept only at t<=0 as the origin: PKNCA conc.origin = 0
            pre = rel < 0
            c0 = None
            if k > 0 and not np.any(rel == 0):
                prev = g[(g["time"] < t0) & (g["time"] >= t0 - 1.0)]
                if len(prev):
                    lastp = prev.iloc[-1]
                    is_b = bool(lastp["blq"]) or (pd.notna(lastp["lloq"]) and pd.notna(lastp["value"]) and lastp["value"] < lastp["lloq"])
                    c0 = 0.0 if (is_b or pd.isna(lastp["value"])) else float(lastp["value"])
            dose_val = None
            drow = d.iloc[k] if k < len(d) else None
            if drow is not None and drow.get("dose") is not None and pd.notna(drow.get("dose")):
                dose_val = float(drow["dose"])
            prof = nca_profile(rel[~pre], vals[~pre], blqs[~pre], lloqs[~pre], dose=dose_val, end=None if t_next is None else t_next - t0, options=opts, c_at_dose=c0)
            ev = [
                Evidence("observations", int(r.row_id) if pd.notna(r.row_id) else None, str(sid), float(r.time), code, None if pd.isna(r.value) else float(r.value), meta["unit"], "BLQ" if r.blq else "")
                for r in gg[~pre].itertuples()
            ]
            if drow is not None and drow.get("row_id") is not None and pd.notna(drow.get("row_id")):
                ev.insert(0, Evidence("interventions", int(drow["row_id"]), str(sid), float(t0), "car_infusion", dose_val, None if drow.get("dose_unit") is None else str(drow.get("dose_unit")), f"dose {k + 1}"))
            missing = list(prof.pop("missing"))
            if k > 0 and c0 is None and not np.any(rel == 0):
                missing.append("no sample within 1 day before this re-infusion: concentration at the dose taken as 0")
            if not len(d):
                missing.append("no car_infusion recorded: day 0 taken as the dose time")
            results.append(
                Result(
                    name="nca",
                    value=prof,
                    rule=_rule(opts),
                    evidence=ev,
                    missing=missing,
                    subject_id=str(sid),
                    day=float(t0),
                    details={
                        "code": code,
                        "unit": meta["unit"],
                        "auc_unit": meta["auc_unit"],
                        "dose_index": k + 1,
                        "n_doses": len(dose_days),
                        "dose": dose_val,
                        "dose_unit": None if drow is None else drow.get("dose_unit"),
                        "time_origin": f"day {t0:g} (dose {k + 1})",
                    },
                )
            )
    return NCAResults(tuple(results), opts)


def nca_overview(study: Study, code: str | None = None) -> list[dict[str, Any]]:
    """Per subject: Cmax, Tmax and AUC0-28d after the first infusion (for ``cd7kit demo``).

    Subjects without CAR kinetics data are listed with None values. Units are explicit.
    """
    obs = study.observations
    if code is None:
        code = "CAR_COPIES" if (obs["code"] == "CAR_COPIES").any() else ("CAR_CELLS" if (obs["code"] == "CAR_CELLS").any() else None)
    out: list[dict[str, Any]] = []
    res = nca(study, code) if code else None
    first: dict[str, Result] = {}
    n_inf: dict[str, int] = {}
    if res is not None:
        for rk in res.results:
            n_inf[str(rk.subject_id)] = int(rk.details.get("n_doses", 1))
            if rk.details.get("dose_index") == 1:
                first[str(rk.subject_id)] = rk
    for sid in study.subjects["subject_id"]:
        r = first.get(str(sid))
        v = r.value if r is not None else {}
        out.append(
            {
                "subject_id": str(sid),
                "code": code if r is not None else None,
                "unit": CAR_CODES[code]["unit"] if (r is not None and code in CAR_CODES) else None,
                "cmax": v.get("cmax"),
                "tmax_day": v.get("tmax"),
                "auc0_28d": v.get("auc0_28"),
                "auc_unit": CAR_CODES[code]["auc_unit"] if (r is not None and code in CAR_CODES) else None,
                "n_infusions": n_inf.get(str(sid), 0),
                "note": None if r is not None else "no CAR kinetics data",
            }
        )
    return out


def with_options(opts: NCAOptions, **changes: Any) -> NCAOptions:
    """A copy of the options with some fields changed."""
    return replace(opts, **changes)


__all__ = [
    "NCAOptions",
    "NCAResults",
    "HalfLife",
    "AUC_METHODS",
    "CAR_CODES",
    "clean_conc_blq",
    "clean_conc_na",
    "interval_methods",
    "interpolate_conc",
    "auc_interval",
    "auc_segments",
    "aumc_segments",
    "half_life",
    "window_half_life",
    "nca_profile",
    "nca",
    "nca_overview",
    "nca_summary",
    "geo_summary",
    "median_range",
    "with_options",
]
