"""Virtual patients for CD7 CAR-T / CAR-NK therapy: CK7 kinetics -> a complete, validated Study.

The kinetics are the CK7 model (:mod:`cd7kit.kinetics.models.ck7`, our design) with log-normal
between-patient variability. Clinical read-outs are linked to the model by **documented, phenomenological
links of our own design [D]** (not fitted to patient data; shapes chosen so that a CRS grader sees
realistic courses):

* Activation ``act = rho_max*A/(A+A50)*E`` (proliferating CAR cells per uL per day) and tumour kill flux
  ``kf = gamma_L*kill*L`` (marrow-equivalent cells per uL per day) drive IL-6:
  ``IL6 = 3 + s_i*(15*act + 0.01*kf)`` pg/mL, smoothed with a 1-day lag, ``s_i`` ~ LN(1, 0.8), capped at
  ``IL6_MAX_PG_ML`` (50,000 pg/mL) [D].
  (CRS scales with expansion and tumour burden: Lee et al., Blood 2014; Teachey et al., Cancer Discov 2016.)
* Fever ``TEMP = 36.8 + 2.6*h(IL6; 60, 2)``; hypotension ``SBP = SBP0 - 45*h(IL6; 600, 2)``;
  hypoxia ``SPO2 = 98.5 - 12*h(IL6; 1500, 2)``; ``HR = HR0 + 30*h(IL6; 100, 2)``, with Hill
  ``h(x; k, n) = x^n/(x^n + k^n)`` and small measurement noise. Vasopressor when SBP < 80 mmHg, oxygen
  when SpO2 < 92 % (nasal cannula 2 L/min; simple face mask 10 L/min below 88 %), a fluid bolus at the first
  SBP < 90 mmHg, tocilizumab at the first hypotension or oxygen need, dexamethasone with a vasopressor or a
  face mask. CRP, ferritin, ALT/AST, creatinine, bilirubin, IL-10 rise with IL-6; DBP = 0.62 SBP.
* Cytopenias: lymphodepletion suppression ``s(t)`` rises over days -5..0 and recovers with time constant
  ``tau = 10 + 15*h(IL6peak; 500) + 10*marrow blast fraction`` days (CAR-HEMATOTOX: inflammation and marrow
  reserve drive prolonged cytopenia; Rejeski et al., Blood 2021). ANC, PLT, HGB fall with ``s`` and with
  marrow infiltration; RBC / platelet transfusions below 70 g/L / 10e9/L.
* Neurotoxicity (ICANS) [D]: encephalopathy severity ``e = s_n*h(IL6 two days earlier; 3000, 3)``, ``s_n`` ~
  LN(1, 0.5); ICE score ``10 - round(9e)`` from age 12, CAPD ``round(12e)`` below (days 0-14).
* CAR_COPIES = C*VCN/(WBC/uL * 6.6e-6 ug per cell) (specs/kinetics.md 0), LLOQ 50 copies/ug;
  CAR_CELLS = C cells/uL, LLOQ 0.1 cells/uL; MRD_FLOW LLOQ 0.01 %. BLQ rows carry blq=True, value NaN.
* Response at day 28 (CR if BM blasts < 5 %; CRi if the ANC is < 1.0 x 10^9/L or platelets < 100 x 10^9/L
  then), relapse when BM blasts reach 5 % after CR (CD7-negative when escape blasts dominate; a marrow with
  BM_BLASTS and CD7_BLASTS is recorded that day), death 30-120 days after relapse or non-response.
* Investigator-reported CRS grades and DLTs (events ``crs`` and ``dlt``, grade >= 3 CRS in days 0-28) follow
  the simulated vitals and support; ``investigator_crs=False`` leaves the ``crs`` events out, so that only
  the grading engine grades (the demo study).

Designs: ``NCT06849401`` (allogeneic hESC-derived CD7 CAR-NK VGO-Cs01p; 4e7, 1.2e8, 3.6e8 cells/kg, six
doses; the registration gives no schedule, so doses are twice weekly on days 0, 3, 7, 10, 14, 17 [D], the
schedule of the demo study; ages 2-18) and
``CD7-CAR-T`` (a single autologous / donor-derived CD7 CAR-T dose of 1e6 cells/kg, as in seed 004).
Everything is vectorised over patients; :func:`simulate_arrays` is the fast core (given covariates and a dose
schedule can replace the drawn ones), :func:`cohort_tables` turns it into Study tables for given subject ids
(the demo study's synthetic children, :mod:`cd7kit.datasets.synthetic`), :func:`simulate_cohort` builds a
validated Study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Study
from cd7kit.kinetics.models import ck7


@dataclass(frozen=True)
class Design:
    name: str
    product: str  # car_t | car_nk
    agent: str
    donor_type: str
    dose_levels: tuple[float, ...]  # cells/kg
    dose_days: tuple[float, ...]
    age_range: tuple[float, float]
    description: str
    params: ck7.CK7Params = field(default=ck7.CAR_T)


DESIGNS: dict[str, Design] = {
    "NCT06849401": Design(
        "NCT06849401",
        "car_nk",
        "VGO-Cs01p (CD7 CAR-NK)",
        "allogeneic",
        (4e7, 1.2e8, 3.6e8),
        (0.0, 3.0, 7.0, 10.0, 14.0, 17.0),
        (2.0, 18.0),
        "Early phase 1, CD7 CAR-NK from hESC, 3 dose levels x 6 doses (twice-weekly schedule assumed), r/r T-ALL age 2-18",
        ck7.CAR_NK,
    ),
    "CD7-CAR-T": Design(
        "CD7-CAR-T",
        "car_t",
        "CD7 CAR-T",
        "autologous",
        (5e5, 1e6, 2e6),
        (0.0,),
        (8.0, 60.0),
        "Single CD7 CAR-T infusion (seed 004 doses 5e5-2e6 cells/kg)",
        ck7.CAR_T,
    ),
}


#: Upper bound of simulated IL-6 (a design choice [D]; keeps IL-6 and the ferritin derived from it plausible).
IL6_MAX_PG_ML = 50_000.0

def _h(x: np.ndarray, k: float, n: float = 2.0) -> np.ndarray:
    x = np.maximum(x, 0.0)
    return x**n / (x**n + k**n)


def _lag(x: np.ndarray, dt: float, tau: float = 1.0) -> np.ndarray:
    """First-order lag along the last axis."""
    out = np.empty_like(x)
    out[..., 0] = np.minimum(x[..., 0], x[..., :1].min() if x.size else 0.0)
    a = dt / (tau + dt)
    for j in range(1, x.shape[-1]):
        out[..., j] = out[..., j - 1] + a * (x[..., j] - out[..., j - 1])
    return out


def _design(design: str | Design) -> Design:
    if isinstance(design, Design):
        return design
    if design not in DESIGNS:
        from cd7kit.errors import InputError, Problem

        raise InputError([Problem("unknown design", value=design, expected=" | ".join(DESIGNS))])
    return DESIGNS[design]


def simulate_arrays(
    n: int,
    design: str | Design = "NCT06849401",
    seed: int = 1,
    days: int = 180,
    dose_level: np.ndarray | int | None = None,
    covariates: Mapping[str, Any] | None = None,
    dose_days: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Vectorised virtual patients: covariates, CK7 trajectories and derived clinical series on a daily grid.

    ``dose_level`` (1-based): per patient, one level for all, or None (levels assigned in equal blocks).
    ``covariates``: per-patient arrays that replace the drawn ones (``age``, ``weight``, ``sex``, ``bm0`` =
    marrow blasts % before lymphodepletion, ``cd7_pct``); they are drawn all the same, so the random stream
    (and everything else about the patients) does not change. ``dose_days``: replaces the design's schedule.
    """
    d = _design(design)
    rng = np.random.default_rng(seed)
    nl = len(d.dose_levels)
    if dose_level is None:
        lvl = np.minimum(np.arange(n) * nl // max(n, 1), nl - 1) + 1
    else:
        lvl = np.broadcast_to(np.asarray(dose_level, dtype=int), (n,)).copy()
    dose = np.asarray(d.dose_levels, dtype=float)[lvl - 1]
    age = rng.uniform(*d.age_range, size=n)
    weight = np.clip(np.where(age < 18, 2.2 * age + 9, 70) * np.exp(rng.normal(0, 0.15, n)), 8, 150)
    sex = rng.choice(np.array(["M", "F"]), size=n, p=[0.7, 0.3])
    bm0 = rng.uniform(20, 90, size=n)
    cd7_pct = rng.uniform(80, 100, size=n)
    escape = rng.uniform(size=n) < 0.35
    neg_frac = np.where(escape, 10 ** rng.uniform(-5, -3, size=n), 0.0)
    cov = dict(covariates or {})

    def given(key: str, drawn: np.ndarray) -> np.ndarray:  # a given value where there is one, else the drawn one
        if key not in cov:
            return drawn
        v = np.asarray(cov[key], dtype=float)
        return np.where(np.isfinite(v), v, drawn)

    age, weight, cd7_pct = given("age", age), given("weight", weight), given("cd7_pct", cd7_pct)
    bm0 = np.clip(given("bm0", bm0), 0.0, 99.0)
    if "sex" in cov:
        sx = np.asarray(cov["sex"], dtype=object)
        sex = np.where(pd.isna(sx), sex, sx)
    schedule = tuple(float(x) for x in (d.dose_days if dose_days is None else dose_days))
    base = d.params.to_dict()
    par = {k: np.full(n, v) for k, v in base.items()}
    par["rho_max"] = base["rho_max"] * np.exp(rng.normal(0, 0.25, n))
    par["alpha"] = base["alpha"] * np.exp(rng.normal(0, 0.25, n))
    par["gamma_L"] = base["gamma_L"] * np.exp(rng.normal(0, 0.3, n))
    par["r_L"] = base["r_L"] * np.exp(rng.normal(0, 0.4, n))
    if base["k_rej_max"] > 0:
        par["k_rej_max"] = base["k_rej_max"] * np.exp(rng.normal(0, 0.3, n))
    init = {
        "E": np.zeros(n),
        "M": np.zeros(n),
        "Np": 20 * np.exp(rng.normal(0, 0.5, n)),
        "Nn": 2 * np.exp(rng.normal(0, 0.5, n)),
        "K": 20 * np.exp(rng.normal(0, 0.5, n)),
    }
    tot = base["H_marrow"] * bm0 / (100 - bm0)
    init["L"] = tot * (1 - neg_frac)
    init["Ln"] = tot * neg_frac
    t = np.arange(0.0, days + 1e-9, 1.0)
    dd = np.broadcast_to(np.asarray(schedule, dtype=float), (n, len(schedule)))
    sim = ck7.simulate(par, init, dd, dose[:, None] * np.ones_like(dd), t_end=float(days), record_times=t, dt=0.1, n=n)
    E, L = sim["E"], sim["L"]
    A = par["eps_L"][:, None] * L + par["eps_N"][:, None] * sim["Np"] + par["eps_K"][:, None] * sim["K"]
    act = par["rho_max"][:, None] * A / (A + par["A50"][:, None]) * E
    kf = par["gamma_L"][:, None] * sim["kill"] * L
    s_il6 = np.exp(rng.normal(0, 0.8, n))[:, None]
    # Capped: the model's tail (high tumour kill with a large s_il6) otherwise reaches 10^5-10^6 pg/mL, beyond
    # what assays report after CAR therapy and beyond the vocabulary's plausible ranges of IL-6 and ferritin.
    il6 = np.minimum(_lag(3.0 + s_il6 * (15 * act + 0.01 * kf), 1.0), IL6_MAX_PG_ML)
    il6[:, 0] = 3.0
    il6_peak = il6[:, : min(29, il6.shape[1])].max(axis=1)
    bm_frac = sim["bm_blast_pct"] / 100.0
    tau = 10 + 15 * _h(il6_peak, 500.0) + 10 * bm0 / 100
    supp = np.exp(-t[None, :] / tau[:, None])  # 1 at day 0 (after LD), recovering
    anc_norm = 3.0 * np.exp(rng.normal(0, 0.25, n))[:, None]
    plt_norm = 250 * np.exp(rng.normal(0, 0.2, n))[:, None]
    anc = anc_norm * (1 - 0.98 * supp) * (1 - 0.9 * bm_frac)
    plt = plt_norm * (1 - 0.97 * _lag(supp, 1.0, 3.0)) * (1 - 0.9 * bm_frac)
    hgb = 120 - 45 * _lag(supp, 1.0, 5.0) - 30 * bm_frac
    s_neuro = np.exp(rng.normal(0, 0.5, n))[:, None]
    il6_lag2 = np.concatenate([np.full((n, 2), 3.0), il6[:, :-2]], axis=1) if il6.shape[1] > 2 else il6
    neuro = np.minimum(s_neuro * _h(il6_lag2, 3000.0, 3.0), 1.0)
    out = {
        "design": d,
        "n": n,
        "t": t,
        "level": lvl,
        "dose": dose,
        "age": age,
        "weight": weight,
        "sex": sex,
        "bm0": bm0,
        "cd7_pct": cd7_pct,
        "neg_frac": neg_frac,
        "sim": sim,
        "act": act,
        "il6": il6,
        "il6_peak": il6_peak,
        "anc": anc,
        "plt": plt,
        "hgb": hgb,
        "supp": supp,
        "neuro": neuro,
        "dose_days": schedule,
        "rng": rng,
    }
    return out


def _vitals(a: Mapping[str, Any]) -> dict[str, np.ndarray]:
    rng = a["rng"]
    n, il6 = a["n"], a["il6"]
    age = a["age"][:, None]
    sbp0 = np.where(age < 12, 100, 112) + rng.normal(0, 5, (n, 1))
    hr0 = np.where(age < 12, 100, 80) + rng.normal(0, 5, (n, 1))
    temp = 36.8 + 2.6 * _h(il6, 60.0) + rng.normal(0, 0.15, il6.shape)
    sbp = sbp0 - 45 * _h(il6, 600.0) + rng.normal(0, 3, il6.shape)
    spo2 = np.minimum(98.5 - 12 * _h(il6, 1500.0) + rng.normal(0, 0.6, il6.shape), 100)
    hr = hr0 + 30 * _h(il6, 100.0) + rng.normal(0, 3, il6.shape)
    # rounded as recorded, so that the events derived below agree with the observations exactly
    return {"TEMP": np.round(temp, 1), "SBP": np.round(np.clip(sbp, 40, 200)), "SPO2": np.round(np.clip(spo2, 60, 100)), "HR": np.round(np.clip(hr, 40, 220))}


#: Support rules of the virtual investigators [D]: vasopressor below this SBP (mmHg), face mask below this SpO2 (%).
VASOPRESSOR_SBP = 80.0
FACEMASK_SPO2 = 88.0

VITAL_DAYS = list(range(0, 29)) + [35, 42, 60, 90, 120, 150, 180]
LAB_DAYS = [0, 1, 2, 3, 4, 5, 6, 7, 10, 14, 17, 21, 28, 35, 42, 60, 90, 120, 150, 180]
CAR_DAYS = [0, 1, 4, 7, 10, 14, 21, 28, 35, 42, 60, 90, 120, 180]
BM_DAYS = [14, 28, 90, 180]


ICANS_DAYS = list(range(0, 15))


def cohort_tables(
    a: Mapping[str, Any],
    ids: Sequence[str],
    source: str = "simulated",
    investigator_crs: bool = True,
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    screening: bool = True,
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """Study tables (observations, interventions, events) of the virtual patients in ``a`` (:func:`simulate_arrays`).

    ``ids``: their subject ids; ``source``: the provenance label of every row; ``investigator_crs``: emit
    the investigator's CRS grade events (DLTs are always emitted); ``ranges``: lln/uln per code;
    ``screening``: add day -7 marrow blasts, CD7+ blasts and ANC. Also returns, per subject, what was
    simulated (investigator CRS grade, ICANS, response, relapse and death days) for checks and tests.
    """
    d: Design = a["design"]
    rng = a["rng"]
    t = a["t"]
    sim = a["sim"]
    n = a["n"]
    ids = [str(x) for x in ids]
    rg = dict(ranges or {})
    # observation columns are collected as numpy arrays and framed once (no per-code DataFrames)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("subject_id", "day", "code", "value", "unit", "specimen", "blq", "lloq", "lln", "uln", "source")}
    id_arr = np.asarray(ids, dtype=object)

    def put(sid: np.ndarray, day: np.ndarray, code: Any, value: np.ndarray, unit: Any, specimen: Any, blq: np.ndarray, lloq: float | None) -> None:
        k = len(sid)
        for key, v in (("code", code), ("unit", unit), ("specimen", specimen)):
            cols[key].append(v if isinstance(v, np.ndarray) else np.full(k, v, dtype=object))
        cols["subject_id"].append(sid)
        cols["day"].append(np.asarray(day, dtype=float))
        cols["value"].append(np.asarray(value, dtype=float))
        cols["blq"].append(np.asarray(blq, dtype=bool))
        cols["lloq"].append(np.full(k, np.nan if lloq is None else lloq))
        lo, hi = rg.get(code, (None, None)) if isinstance(code, str) else (None, None)
        cols["lln"].append(np.full(k, np.nan if lo is None else lo))
        cols["uln"].append(np.full(k, np.nan if hi is None else hi))
        cols["source"].append(np.full(k, source, dtype=object))

    def add(code: str, unit: str, values: np.ndarray, day_list: list[int], specimen: str | None, lloq: float | None = None, digits: int = 2, who: np.ndarray | None = None) -> None:
        dl = [x for x in day_list if x <= t[-1]]
        idx = np.searchsorted(t, dl)
        v = values[:, idx]
        blq = np.zeros_like(v, dtype=bool) if lloq is None else v < lloq
        keep = np.ones(v.shape, dtype=bool) if who is None else np.broadcast_to(np.asarray(who, dtype=bool)[:, None], v.shape)
        put(np.repeat(id_arr, len(dl))[keep.ravel()], np.tile(np.asarray(dl, dtype=float), n)[keep.ravel()], code, np.where(blq, np.nan, np.round(v, digits))[keep], unit, specimen, blq[keep], lloq)

    vit = _vitals(a)
    add("TEMP", "degC", vit["TEMP"], VITAL_DAYS, None, digits=1)
    add("SBP", "mmHg", vit["SBP"], VITAL_DAYS, None, digits=0)
    add("DBP", "mmHg", np.round(0.62 * vit["SBP"]), VITAL_DAYS, None, digits=0)
    add("HR", "1/min", vit["HR"], VITAL_DAYS, None, digits=0)
    add("SPO2", "%", vit["SPO2"], VITAL_DAYS, None, digits=0)
    neuro = a["neuro"]
    adult = a["age"] >= 12
    add("ICE", "score", np.clip(10 - np.round(9 * neuro), 0, 10), ICANS_DAYS, None, digits=0, who=adult)
    add("CAPD", "score", np.clip(np.round(12 * neuro), 0, 32), ICANS_DAYS, None, digits=0, who=~adult)
    il6 = a["il6"]
    C = sim["C"]
    lymph = sim["Np"] + sim["Nn"] + sim["K"] + C
    wbc = np.maximum(a["anc"] + lymph / 1000 + 0.4 * (1 - a["supp"]) + 2.0 * (sim["bm_blast_pct"] / 100) ** 2, 0.01)
    add("ANC", "10^9/L", a["anc"], LAB_DAYS, "PB", digits=2)
    add("ALC", "10^9/L", np.maximum(lymph / 1000, 0.01), LAB_DAYS, "PB", digits=2)
    add("PLT", "10^9/L", a["plt"], LAB_DAYS, "PB", digits=0)
    add("HGB", "g/L", a["hgb"], LAB_DAYS, "PB", digits=0)
    add("WBC", "10^9/L", wbc, LAB_DAYS, "PB", digits=2)
    add("CRP", "mg/L", np.minimum(1 + 0.4 * _lag(il6, 1.0, 1.0), 400), LAB_DAYS, "serum", digits=1)
    add("FERRITIN", "ng/mL", 300 + 8 * il6 + 500 * sim["bm_blast_pct"] / 100, LAB_DAYS, "serum", digits=0)
    add("LDH", "U/L", 200 + 800 * sim["bm_blast_pct"] / 100 + 0.2 * il6, LAB_DAYS, "serum", digits=0)
    add("CREAT", "mg/dL", 0.4 + 0.5 * _h(il6, 1500.0), LAB_DAYS, "serum", digits=2)
    add("ALT", "U/L", 20 + 150 * _h(il6, 1000.0), LAB_DAYS, "serum", digits=0)
    add("AST", "U/L", 25 + 180 * _h(il6, 1000.0), LAB_DAYS, "serum", digits=0)
    add("BILI", "mg/dL", 0.5 + 1.0 * _h(il6, 2000.0), LAB_DAYS, "serum", digits=2)
    add("IL6", "pg/mL", il6, LAB_DAYS, "serum", digits=1)
    add("IL10", "pg/mL", 2 + 0.1 * il6, LAB_DAYS, "serum", digits=1)
    add("IFNG", "pg/mL", 5 + 3 * a["act"], LAB_DAYS, "serum", digits=1)
    # CAR samples on a dosing day are drawn before that day's dose (C minus the dose just added, exactly)
    C = C.copy()
    for dday in a["dose_days"]:
        j = int(np.searchsorted(t, dday))
        if j < len(t) and t[j] == dday:
            C[:, j] = np.maximum(C[:, j] - a["dose"] / ck7.UL_PER_KG, 0.0)
    noise = np.exp(rng.normal(0, 0.25, C.shape))
    car_days = sorted({*CAR_DAYS, *[int(x) + k for x in a["dose_days"] for k in (1, 3)]})
    add("CAR_CELLS", "cells/uL", C * noise, car_days, "PB", lloq=0.1, digits=2)
    copies = C * 2.0 / (wbc * 1000 * 6.6e-6) * np.exp(rng.normal(0, 0.25, C.shape))
    add("CAR_COPIES", "copies/ug", np.minimum(copies, 9e6), car_days, "PB", lloq=50.0, digits=0)
    add("CD7POS_T", "cells/uL", sim["Np"], CAR_DAYS, "PB", lloq=0.5, digits=1)
    cd7neg = sim["Nn"] + (C if d.product == "car_t" else 0.0)
    add("CD7NEG_T", "cells/uL", cd7neg, CAR_DAYS, "PB", lloq=0.5, digits=1)
    add("NK", "cells/uL", sim["K"], CAR_DAYS, "PB", lloq=0.5, digits=1)
    bm = sim["bm_blast_pct"]
    bm_obs = np.clip(bm * np.exp(rng.normal(0, 0.1, bm.shape)), 0, 99)
    add("BM_BLASTS", "%", bm_obs, BM_DAYS, "BM", digits=1)
    add("MRD_FLOW", "%", np.clip(bm * np.exp(rng.normal(0, 0.1, bm.shape)), 0, 99), BM_DAYS, "BM", lloq=0.01, digits=3)
    add("PB_BLASTS", "%", np.clip(0.5 * (bm_obs - 5.0), 0, 99), BM_DAYS, "PB", digits=1)  # circulating only with >5 % in the marrow [D]
    if screening:
        put(
            np.repeat(id_arr, 3),
            np.full(3 * n, -7.0),
            np.tile(np.array(["BM_BLASTS", "CD7_BLASTS", "ANC"], dtype=object), n),
            np.column_stack([np.round(a["bm0"], 1), np.round(a["cd7_pct"], 1), np.round(a["anc"][:, 0] * 0 + 1.5, 2)]).ravel(),
            np.tile(np.array(["%", "%", "10^9/L"], dtype=object), n),
            np.tile(np.array(["BM", "BM", "PB"], dtype=object), n),
            np.zeros(3 * n, dtype=bool),
            None,
        )
    # interventions and events
    iv: list[dict[str, Any]] = []
    ev: list[dict[str, Any]] = []
    planted: dict[str, dict[str, Any]] = {}
    d28 = int(np.searchsorted(t, min(28, t[-1])))
    for i, sid in enumerate(ids):
        iv.append({"subject_id": sid, "start_day": -5.0, "end_day": -3.0, "kind": "lymphodepletion", "agent": "fludarabine", "dose": 30.0, "dose_unit": "mg/m2", "route": "IV"})
        iv.append({"subject_id": sid, "start_day": -5.0, "end_day": -3.0, "kind": "lymphodepletion", "agent": "cyclophosphamide", "dose": 300.0, "dose_unit": "mg/m2", "route": "IV"})
        for k, dd in enumerate(a["dose_days"]):
            if dd <= t[-1]:
                iv.append({"subject_id": sid, "start_day": dd, "kind": "car_infusion", "agent": d.agent, "dose": float(a["dose"][i]), "dose_unit": "cells/kg", "route": "IV", "details": f"dose {k + 1} of {len(a['dose_days'])}"})
        sbp, spo2, temp = vit["SBP"][i], vit["SPO2"][i], vit["TEMP"][i]
        hypo = np.flatnonzero((sbp < VASOPRESSOR_SBP) & (t <= 28))
        low_bp = np.flatnonzero((sbp < 90) & (t <= 28))
        hypox = np.flatnonzero((spo2 < 92) & (t <= 28))
        fever = np.flatnonzero((temp >= 38.0) & (t <= 28))
        if len(low_bp):
            iv.append({"subject_id": sid, "start_day": float(t[low_bp[0]]), "kind": "fluid_bolus", "agent": "normal saline 20 mL/kg", "indication": "CRS"})
        if len(hypo):
            iv.append({"subject_id": sid, "start_day": float(t[hypo[0]]), "end_day": float(t[hypo[-1]]), "kind": "vasopressor", "agent": "norepinephrine", "indication": "CRS"})
        severe_hypox = len(hypox) > 0 and spo2[hypox].min() < FACEMASK_SPO2
        if len(hypox):
            dev, flow = ("simple_facemask", 10.0) if severe_hypox else ("nasal_cannula", 2.0)
            iv.append({"subject_id": sid, "start_day": float(t[hypox[0]]), "end_day": float(t[hypox[-1]]), "kind": "oxygen", "device": dev, "flow_l_min": flow, "indication": "CRS"})
        first_support = min([float(t[x[0]]) for x in (hypo, hypox) if len(x)], default=None)
        if first_support is not None:
            iv.append({"subject_id": sid, "start_day": first_support, "kind": "tocilizumab", "agent": "tocilizumab", "dose": 8.0 if a["weight"][i] >= 30 else 12.0, "dose_unit": "mg/kg"})
        grade = 0
        if len(fever):
            grade = 1
        if len(hypox) or len(low_bp):
            grade = max(grade, 2)
        if len(hypo) or severe_hypox:
            grade = 3
        if grade >= 3:
            start3 = min(float(t[x[0]]) for x in (hypo, hypox) if len(x))
            iv.append({"subject_id": sid, "start_day": start3, "end_day": start3 + 2, "kind": "corticosteroid", "agent": "dexamethasone", "dose": 10.0, "dose_unit": "mg/m2/day"})
        if grade:
            onset = float(t[fever[0]]) if len(fever) else float(t[min(list(low_bp[:1]) + list(hypox[:1]))])
            if investigator_crs:
                ev.append({"subject_id": sid, "day": onset, "kind": "crs", "term": "cytokine release syndrome", "grade": grade, "details": "simulated; grade from the simulated vitals and support (ASTCT-like)"})
            if grade >= 3:
                ev.append({"subject_id": sid, "day": onset, "kind": "dlt", "term": "grade >= 3 CRS (hypotension needing a vasopressor, or hypoxia needing a face mask)", "grade": grade, "attribution": "IEC"})
        for kind, series, thr, agent in (("transfusion", a["hgb"][i], 70.0, "RBC"), ("transfusion", a["plt"][i], 10.0, "platelets")):
            low = np.flatnonzero(series < thr)
            for day in t[low][:: max(1, len(low) // 4 or 1)][:4]:
                iv.append({"subject_id": sid, "start_day": float(day), "kind": kind, "agent": agent})
        # response / relapse / death
        bmi = bm[i]
        cr = bool(bmi[d28] < 5)
        mrd_neg = bool(bmi[d28] < 0.01)
        cri = cr and (a["anc"][i, d28] < 1.0 or a["plt"][i, d28] < 100)
        term = ("CRi" if cri else "CR") if cr else "NR"
        ev.append({"subject_id": sid, "day": float(t[d28]), "kind": "response", "term": term, "details": ("MRD-negative" if mrd_neg else "MRD-positive") if cr else "BM blasts >= 5 %"})
        p: dict[str, Any] = {
            "crs_grade": grade,
            "dlt": grade >= 3,
            "icans": bool((neuro[i, : len(ICANS_DAYS)] >= 1 / 18).any()),
            "response": term,
            "il6_peak": float(a["il6_peak"][i]),
            "bm0": float(a["bm0"][i]),
        }
        death_from = None
        if cr:
            rel = np.flatnonzero((t > 28) & (bmi >= 5))
            if len(rel):
                j = rel[0]
                day = float(t[j])
                neg = sim["Ln"][i, j] > sim["L"][i, j]
                ev.append({"subject_id": sid, "day": day, "kind": "relapse", "term": "CD7-negative relapse" if neg else "CD7-positive relapse", "details": "BM blasts >= 5 %"})
                if day not in BM_DAYS:
                    tot = sim["L"][i, j] + sim["Ln"][i, j]
                    put(np.array([sid, sid], dtype=object), np.array([day, day]), np.array(["BM_BLASTS", "CD7_BLASTS"], dtype=object), np.array([round(float(bmi[j]), 1), round(100 * float(sim["L"][i, j] / tot), 1)]), np.array(["%", "%"], dtype=object), np.array(["BM", "BM"], dtype=object), np.zeros(2, dtype=bool), None)
                death_from = day
                p["relapse_day"] = day
                p["cd7_negative_relapse"] = bool(neg)
        else:
            death_from = float(t[d28])
        if death_from is not None:
            dday = death_from + float(rng.uniform(30, 120))
            if dday <= t[-1]:
                ev.append({"subject_id": sid, "day": round(dday), "kind": "death", "term": "death", "grade": 5, "details": "disease progression"})
                p["death_day"] = round(dday)
        planted[sid] = p
    observations = pd.DataFrame({k: np.concatenate(v) for k, v in cols.items()})
    interventions = pd.DataFrame(iv).assign(source=source)
    events = pd.DataFrame(ev).assign(source=source)
    return {"observations": observations, "interventions": interventions, "events": events}, planted


def simulate_cohort(design: str | Design = "NCT06849401", n: int = 9, seed: int = 1, days: int = 180, dose_level: np.ndarray | int | None = None) -> Study:
    """A complete synthetic Study of ``n`` virtual patients (validated against the vocabulary)."""
    a = simulate_arrays(n, design, seed, days, dose_level)
    d: Design = a["design"]
    ids = [f"VP{seed:03d}-{i + 1:03d}" for i in range(n)]
    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "status": "enrolled",
            "age_years": np.round(a["age"], 1),
            "sex": a["sex"],
            "weight_kg": np.round(a["weight"], 1),
            "diagnosis": "T-ALL",
            "cd7_blast_pct": np.round(a["cd7_pct"], 1),
            "dose_level": a["level"],
            "dose_cells_per_kg": a["dose"],
            "product": d.agent,
            "donor_type": d.donor_type,
            "source": f"cd7kit.sim {d.name} seed={seed}",
        }
    )
    tables, _ = cohort_tables(a, ids)
    meta = {
        "study_id": f"SIM-{d.name}-{seed}",
        "title": f"Virtual cohort ({d.description})",
        "synthetic": True,
        "provenance": {"generator": "cd7kit.sim.simulate_cohort", "design": d.name, "n": n, "seed": seed, "days": days, "model": ck7.SOURCE},
    }
    return Study.from_tables(subjects, **tables, meta=meta)


__all__ = ["Design", "DESIGNS", "simulate_arrays", "cohort_tables", "simulate_cohort", "VITAL_DAYS", "LAB_DAYS", "CAR_DAYS", "BM_DAYS", "ICANS_DAYS", "VASOPRESSOR_SBP", "FACEMASK_SPO2"]
