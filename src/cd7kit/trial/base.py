"""Shared shapes of the dose-escalation engine: trial data, decisions, MTD selections, operating characteristics.

Every design in :mod:`cd7kit.trial` answers with these small documented objects. Those that are
recommendations (:class:`Decision`, :class:`MtdSelection`) carry ``value`` / ``evidence`` / ``rule`` /
``missing`` in ``to_dict()``, as every cd7kit engine answer does (DESIGN.md, "Engines: the shape of a
result"); :class:`OperatingCharacteristics` carries ``rule`` and Monte-Carlo standard errors.

Dose levels are 1-based everywhere in the public interface (as in R BOIN and in protocols); ``None``
means "no dose" (R BOIN's 99: early stop, no MTD).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from cd7kit.data.result import Evidence, Rule, jsonable
from cd7kit.errors import InputError, Problem


@dataclass(frozen=True)
class TrialData:
    """What has been observed so far: patients ``n`` and DLTs ``y`` per dose (dose 1 first).

    ``current`` is the dose (1-based) the last cohort received. For time-to-event designs,
    ``pending`` lists per dose the follow-up times (in the same unit as the design's DLT window)
    of patients still inside the window without a DLT; they are counted in ``n``.
    ``evidence`` lists the Study rows (or data cells) behind the counts, passed on to decisions.
    """

    n: tuple[int, ...]
    y: tuple[int, ...]
    current: int | None = None
    pending: tuple[tuple[float, ...], ...] = ()
    evidence: tuple[Evidence, ...] = ()
    efficacy: tuple[int, ...] = ()  # responses per dose (BOIN12)
    both: tuple[int, ...] = ()  # patients with both a DLT and a response, per dose (BOIN12)

    @classmethod
    def of(
        cls,
        n: Sequence[int] | np.ndarray,
        y: Sequence[int] | np.ndarray,
        current: int | None = None,
        pending: Sequence[Sequence[float]] | None = None,
        evidence: Sequence[Evidence] = (),
        efficacy: Sequence[int] | np.ndarray | None = None,
        both: Sequence[int] | np.ndarray | None = None,
    ) -> TrialData:
        """Validate and build; raise one :class:`InputError` naming every problem."""
        problems: list[Problem] = []
        n_t = tuple(int(v) for v in n)
        y_t = tuple(int(v) for v in y)
        if len(n_t) != len(y_t):
            problems.append(Problem("n and y must have one value per dose", column="y", value=len(y_t), expected=f"{len(n_t)} values"))
        if not n_t:
            problems.append(Problem("at least one dose level is needed", column="n"))
        for i, (ni, yi) in enumerate(zip(n_t, y_t, strict=False), start=1):
            if ni < 0:
                problems.append(Problem(f"dose {i}: negative number of patients", column="n", value=ni, expected=">= 0"))
            if yi < 0 or yi > ni:
                problems.append(Problem(f"dose {i}: DLTs must be between 0 and n", column="y", value=yi, expected=f"0..{ni}"))
        if current is not None and not (1 <= int(current) <= len(n_t)):
            problems.append(Problem("current dose is not one of the dose levels", column="current", value=current, expected=f"1..{len(n_t)}"))
        pend: tuple[tuple[float, ...], ...] = ()
        if pending is not None and len(pending):
            pend = tuple(tuple(float(t) for t in p) for p in pending)
            if len(pend) != len(n_t):
                problems.append(Problem("pending must have one list per dose", column="pending", value=len(pend), expected=f"{len(n_t)} lists"))
            else:
                for i, (p, ni, yi) in enumerate(zip(pend, n_t, y_t, strict=True), start=1):
                    if len(p) > ni - yi:
                        problems.append(Problem(f"dose {i}: more pending patients than patients without DLT", column="pending", value=len(p), expected=f"<= {ni - yi}"))
        eff: tuple[int, ...] = ()
        if efficacy is not None and len(efficacy):
            eff = tuple(int(v) for v in efficacy)
            if len(eff) != len(n_t) or any(e < 0 or e > ni for e, ni in zip(eff, n_t, strict=False)):
                problems.append(Problem("efficacy must have one count per dose, between 0 and n", column="efficacy", value=list(eff)))
        bo: tuple[int, ...] = ()
        if both is not None and len(both):
            bo = tuple(int(v) for v in both)
            if len(bo) != len(n_t) or not eff or any(b < 0 or b > min(e, yi) for b, e, yi in zip(bo, eff, y_t, strict=False)):
                problems.append(Problem("both (DLT and response) must be per dose, at most min(DLTs, responses)", column="both", value=list(bo)))
        if problems:
            raise InputError(problems)
        return cls(n_t, y_t, None if current is None else int(current), pend, tuple(evidence), eff, bo)

    @property
    def ndose(self) -> int:
        return len(self.n)

    def data_evidence(self) -> list[Evidence]:
        """Evidence for pure data: one entry per treated dose (or the Study rows when given)."""
        if self.evidence:
            return list(self.evidence)
        return [
            Evidence(table="dose_data", row_id=i, what=f"dose {i}", value={"n": ni, "y": yi}, note=f"{yi}/{ni} DLT")
            for i, (ni, yi) in enumerate(zip(self.n, self.y, strict=True), start=1)
            if ni > 0
        ]


def as_trial_data(data: TrialData | Mapping[str, Any]) -> TrialData:
    """Accept a :class:`TrialData` or a mapping with keys n, y (, current, pending, efficacy)."""
    if isinstance(data, TrialData):
        return data
    return TrialData.of(
        data["n"], data["y"], data.get("current"), data.get("pending"), data.get("evidence", ()), data.get("efficacy"), data.get("both")
    )


@dataclass(frozen=True)
class Decision:
    """A dose recommendation for the next cohort.

    ``value`` is the next dose (1-based) or ``None`` when the trial stops; ``action`` is one of
    ``escalate``, ``stay``, ``de-escalate``, ``stop``, ``suspend`` (TITE: wait for pending patients);
    ``reason`` says which rule fired; ``eliminated`` lists the eliminated doses; when the trial
    stops, ``mtd`` holds the final MTD selection (or ``None`` when no dose is selected).
    """

    value: int | None
    action: str
    current: int | None
    reason: str
    rule: Rule
    evidence: Sequence[Evidence] = ()
    missing: Sequence[str] = ()
    eliminated: Sequence[int] = ()
    mtd: MtdSelection | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stop(self) -> bool:
        return self.action == "stop"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": "next_dose",
                "value": self.value,
                "next_dose": self.value,
                "action": self.action,
                "current": self.current,
                "stop": self.stop,
                "reason": self.reason,
                "eliminated": list(self.eliminated),
                "mtd": None if self.mtd is None else self.mtd.to_dict(),
                "evidence": [e.to_dict() for e in self.evidence],
                "rule": self.rule.to_dict(),
                "missing": list(self.missing),
                "details": dict(self.details),
            }
        )


@dataclass(frozen=True)
class MtdSelection:
    """The selected MTD (``value``/``mtd``, 1-based; ``None`` = no dose selected, R's 99).

    Per dose (``None`` where untreated): isotonic toxicity estimate ``phat``, its 95% interval
    ``ci_lower``/``ci_upper`` and ``p_overdose`` = P(toxicity > target | data).
    """

    mtd: int | None
    target: float
    phat: Sequence[float | None]
    ci_lower: Sequence[float | None]
    ci_upper: Sequence[float | None]
    p_overdose: Sequence[float | None]
    eliminated: Sequence[int]
    reason: str
    rule: Rule
    evidence: Sequence[Evidence] = ()
    missing: Sequence[str] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> int | None:
        return self.mtd

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "name": "mtd",
                "mtd": self.mtd,
                "value": self.mtd,
                "target": self.target,
                "phat": list(self.phat),
                "ci_lower": list(self.ci_lower),
                "ci_upper": list(self.ci_upper),
                "p_overdose": list(self.p_overdose),
                "eliminated": list(self.eliminated),
                "reason": self.reason,
                "evidence": [e.to_dict() for e in self.evidence],
                "rule": self.rule.to_dict(),
                "missing": list(self.missing),
                "details": dict(self.details),
            }
        )


@dataclass(frozen=True)
class OperatingCharacteristics:
    """Simulated operating characteristics of a design under one scenario (``p_true``).

    Percentages are in percent. ``*_se`` are Monte-Carlo standard errors. ``overdose60_pct`` /
    ``overdose80_pct``: % of trials in which more than 60% / 80% of the maximum sample size was
    treated at doses whose true DLT rate exceeds the target (for any scenario; R BOIN reports it
    only when a true rate equals the target, and then the numbers agree). ``stop_pct`` is the %
    of trials selecting no dose (early stop or no admissible dose), as R's ``percentstop``.
    """

    design: str
    p_true: Sequence[float]
    target: float
    ntrial: int
    selection_pct: np.ndarray
    patients_mean: np.ndarray
    dlt_mean: np.ndarray
    stop_pct: float
    n_mean: float
    dlt_total_mean: float
    overdose60_pct: float
    overdose80_pct: float
    se: Mapping[str, Any]
    rule: Rule
    N: np.ndarray  # ntrial x ndose patients
    Y: np.ndarray  # ntrial x ndose DLTs
    mtd: np.ndarray  # ntrial selected dose, 1-based, 0 = none
    duration_mean: float | None = None
    duration: np.ndarray | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    per_trial_requested: bool = False

    def per_trial(self) -> list[dict[str, Any]]:
        """One record per simulated trial: patients ``n`` and DLTs ``y`` per dose, selected ``mtd``."""
        out = []
        for i in range(self.ntrial):
            rec: dict[str, Any] = {
                "n": [int(v) for v in self.N[i]],
                "y": [int(v) for v in self.Y[i]],
                "mtd": None if self.mtd[i] == 0 else int(self.mtd[i]),
            }
            if self.duration is not None:
                rec["duration"] = float(self.duration[i])
            out.append(rec)
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "design": self.design,
            "target": self.target,
            "p_true": list(self.p_true),
            "ntrial": self.ntrial,
            "selection_pct": self.selection_pct,
            "patients_mean": self.patients_mean,
            "dlt_mean": self.dlt_mean,
            "stop_pct": self.stop_pct,
            "n_mean": self.n_mean,
            "dlt_total_mean": self.dlt_total_mean,
            "overdose60_pct": self.overdose60_pct,
            "overdose80_pct": self.overdose80_pct,
            "se": dict(self.se),
        }
        if self.duration_mean is not None:
            d["duration_mean"] = self.duration_mean
        d.update(self.extra)
        d["rule"] = self.rule.to_dict()
        if self.per_trial_requested:
            d["per_trial"] = self.per_trial()
        return jsonable(d)


def summarise(
    design: str,
    p_true: Sequence[float] | np.ndarray,
    target: float,
    N: np.ndarray,
    Y: np.ndarray,
    mtd: np.ndarray,
    max_n: int,
    rule: Rule,
    per_trial: bool = False,
    duration: np.ndarray | None = None,
    extra: Mapping[str, Any] | None = None,
) -> OperatingCharacteristics:
    """Operating characteristics and Monte-Carlo SEs from per-trial patients, DLTs and selections."""
    ntrial, ndose = N.shape
    p = np.asarray(p_true, dtype=float)
    over = p > target
    cnt = np.bincount(np.asarray(mtd, dtype=np.int64), minlength=ndose + 1)
    sel = cnt[1 : ndose + 1] / ntrial
    stop = float(cnt[0] / ntrial)
    mN, sN, mY, sY, tot = _moments(np.ascontiguousarray(N, dtype=np.int64), np.ascontiguousarray(Y, dtype=np.int64), over, float(max_n))
    n_mean, n_sd, y_mean, y_sd, od60m, od80m = tot
    sq = np.sqrt(max(ntrial, 1))
    se = {
        "selection_pct": 100 * np.sqrt(sel * (1 - sel) / ntrial),
        "patients_mean": sN / sq,
        "dlt_mean": sY / sq,
        "stop_pct": 100 * float(np.sqrt(stop * (1 - stop) / ntrial)),
        "n_mean": float(n_sd / sq),
        "dlt_total_mean": float(y_sd / sq),
        "overdose60_pct": 100 * float(np.sqrt(od60m * (1 - od60m) / ntrial)),
        "overdose80_pct": 100 * float(np.sqrt(od80m * (1 - od80m) / ntrial)),
    }
    dur_mean = None
    if duration is not None:
        dur_mean = float(np.mean(duration))
        se["duration_mean"] = float(np.std(duration, ddof=1) / sq) if ntrial > 1 else 0.0
    return OperatingCharacteristics(
        design=design,
        p_true=[float(v) for v in p],
        target=float(target),
        ntrial=int(ntrial),
        selection_pct=100 * sel,
        patients_mean=mN,
        dlt_mean=mY,
        stop_pct=100 * stop,
        n_mean=float(n_mean),
        dlt_total_mean=float(y_mean),
        overdose60_pct=100 * float(od60m),
        overdose80_pct=100 * float(od80m),
        se=se,
        rule=rule,
        N=N,
        Y=Y,
        mtd=mtd,
        duration_mean=dur_mean,
        duration=duration,
        extra=dict(extra or {}),
        per_trial_requested=per_trial,
    )


@njit(cache=True)
def _moments(N, Y, over, max_n):  # pragma: no cover - compiled
    """Column means and SDs (ddof 1) of N and Y, and mean/SD of row totals and overdose indicators, in one pass."""
    nt, nd = N.shape
    sN = np.zeros(nd)
    qN = np.zeros(nd)
    sY = np.zeros(nd)
    qY = np.zeros(nd)
    st = 0.0
    qt = 0.0
    sy = 0.0
    qy = 0.0
    o6 = 0.0
    o8 = 0.0
    for i in range(nt):
        rn = 0.0
        ry = 0.0
        ro = 0.0
        for j in range(nd):
            a = float(N[i, j])
            b = float(Y[i, j])
            sN[j] += a
            qN[j] += a * a
            sY[j] += b
            qY[j] += b * b
            rn += a
            ry += b
            if over[j]:
                ro += a
        st += rn
        qt += rn * rn
        sy += ry
        qy += ry * ry
        if ro > 0.6 * max_n:
            o6 += 1.0
        if ro > 0.8 * max_n:
            o8 += 1.0
    mN = sN / nt
    mY = sY / nt
    d = max(nt - 1, 1)
    vN = np.maximum((qN - nt * mN * mN) / d, 0.0)
    vY = np.maximum((qY - nt * mY * mY) / d, 0.0)
    mt = st / nt
    my = sy / nt
    vt = max((qt - nt * mt * mt) / d, 0.0)
    vy = max((qy - nt * my * my) / d, 0.0)
    if nt < 2:
        vN[:] = 0.0
        vY[:] = 0.0
        vt = 0.0
        vy = 0.0
    return mN, np.sqrt(vN), mY, np.sqrt(vY), (mt, np.sqrt(vt), my, np.sqrt(vy), o6 / nt, o8 / nt)


def check_p_true(p_true: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray([float(v) for v in p_true], dtype=float)
    bad = [Problem("true DLT probability must be in [0, 1]", column="p_true", value=float(v), expected="0..1") for v in p if not 0 <= v <= 1]
    if not len(p):
        bad.append(Problem("p_true needs one probability per dose", column="p_true"))
    if bad:
        raise InputError(bad)
    return p


__all__ = [
    "TrialData",
    "as_trial_data",
    "Decision",
    "MtdSelection",
    "OperatingCharacteristics",
    "summarise",
    "check_p_true",
]
