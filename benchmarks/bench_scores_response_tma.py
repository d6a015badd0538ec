"""Benchmark: scores (CAR-HEMATOTOX, EASIX family), ALL response, TA-TMA and IEC-HS flags at scale.

Builds a synthetic Study of N subjects x D days (daily LDH, creatinine, platelets, CRP, ANC, Hb, ferritin,
ALT, AST, fibrinogen; marrow assessments on days 28, 90 and 180; an allo-HSCT on day 60 for a third of the
subjects with weekly sC5b-9, UPCR and smears after it) and times each engine. The baseline, measured in the
same process, is one pandas groupby-mean over all observations: the table reports each engine's time as a
multiple of it (machine-independent) as well as in seconds.

    python benchmarks/bench_scores_response_tma.py [--subjects 1000] [--days 180]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from cd7kit.clinical.response import assess_response
from cd7kit.clinical.scores import compute_scores
from cd7kit.clinical.tma import assess_tma, iec_hs_flags
from cd7kit.data import Study

DAILY = {
    "LDH": ("U/L", 150, 900),
    "CREAT": ("mg/dL", 0.5, 2.5),
    "PLT": ("10^9/L", 5, 300),
    "CRP": ("mg/L", 1, 250),
    "ANC": ("10^9/L", 0.05, 6),
    "HGB": ("g/L", 65, 140),
    "FERRITIN": ("ng/mL", 100, 8000),
    "ALT": ("U/L", 10, 400),
    "AST": ("U/L", 10, 400),
    "FIBRINOGEN": ("g/L", 0.8, 5),
}


def synthetic_study(n: int, days: int, seed: int = 0) -> Study:
    rng = np.random.default_rng(seed)
    ids = np.array([f"P{i:05d}" for i in range(n)])
    day_grid = np.arange(-7, days - 7, dtype=float)
    parts = []
    for code, (unit, lo, hi) in DAILY.items():
        sid = np.repeat(ids, len(day_grid))
        d = np.tile(day_grid, n)
        parts.append(pd.DataFrame({"subject_id": sid, "day": d, "code": code, "value": rng.uniform(lo, hi, len(sid)), "unit": unit, "uln": {"LDH": 250.0, "ALT": 40.0, "AST": 40.0, "FERRITIN": 300.0}.get(code, np.nan)}))
    for code, unit, dd, lo, hi in (("BM_BLASTS", "%", [-7, 28, 90, 170], 0, 40), ("PB_BLASTS", "%", [-7, 28, 90, 170], 0, 2), ("MRD_FLOW", "%", [28, 90, 170], 0, 0.05)):
        sid = np.repeat(ids, len(dd))
        parts.append(pd.DataFrame({"subject_id": sid, "day": np.tile(np.asarray(dd, float), n), "code": code, "value": rng.uniform(lo, hi, len(sid)), "unit": unit}))
    tx_ids = ids[: n // 3]
    weekly = np.arange(60, days - 7, 7, dtype=float)
    for code, unit, lo, hi, uln in (("SC5B9", "ng/mL", 50, 600, 244.0), ("UPCR", "mg/mg", 0, 3, np.nan), ("SCHISTO_HPF", "1/HPF", 0, 5, np.nan)):
        sid = np.repeat(tx_ids, len(weekly))
        parts.append(pd.DataFrame({"subject_id": sid, "day": np.tile(weekly, len(tx_ids)), "code": code, "value": rng.uniform(lo, hi, len(sid)), "unit": unit, "uln": uln}))
    obs = pd.concat(parts, ignore_index=True)
    iv = pd.concat(
        [
            pd.DataFrame({"subject_id": ids, "start_day": -5.0, "end_day": -3.0, "kind": "lymphodepletion"}),
            pd.DataFrame({"subject_id": ids, "start_day": 0.0, "kind": "car_infusion"}),
            pd.DataFrame({"subject_id": tx_ids, "start_day": 60.0, "kind": "hsct"}),
        ],
        ignore_index=True,
    )
    subj = pd.DataFrame({"subject_id": ids, "age_years": rng.uniform(5, 70, n)})
    return Study.from_tables(subj, obs, iv)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--days", type=int, default=180)
    a = ap.parse_args()
    t = time.perf_counter()
    study = synthetic_study(a.subjects, a.days)
    build = time.perf_counter() - t
    obs = study.observations
    # CPU time of this process (robust on a shared machine); the baseline is measured in the same process
    t = time.process_time()
    obs.groupby(["subject_id", "code"])["value"].mean()
    base = time.process_time() - t
    rows = [("baseline: groupby-mean over observations", base, 0)]
    for name, fn in (
        ("scores (HEMATOTOX + EASIX family)", compute_scores),
        ("ALL response", assess_response),
        ("TA-TMA only", lambda s: assess_tma(s, options={"include_iec_hs_flags": False})),
        ("IEC-HS flags", iec_hs_flags),
    ):
        t = time.process_time()
        res = fn(study)
        rows.append((name, time.process_time() - t, len(res)))
    print(f"{a.subjects} subjects x {a.days} days, {len(obs):,} observations (Study built and validated in {build:.1f} s)")
    print(f"{'engine':45s} {'CPU s':>9s} {'x baseline':>11s} {'results':>9s}")
    for name, sec, n in rows:
        print(f"{name:45s} {sec:9.2f} {sec / base:11.1f} {n:9d}")


if __name__ == "__main__":
    main()
