"""Kinetics benchmarks: population SAEM vs pynlme 0.5.1, and the virtual-cohort simulator.

Run: ``python benchmarks/bench_kinetics.py [--replicates 10] [--skip-pynlme] [--skip-cohort]``. Prints tables.

1. Simulation and re-estimation (:mod:`cd7kit.kinetics.sse`): Stein 2019 model, 60 subjects x 12 samples
   (days 1, 2, 4, 7, 10, 14, 21, 28, 90, 180, 270, 365), BLQ below 10 copies/ug, ``--replicates`` data sets.
   The same data sets go to cd7kit SAEM (M3 likelihood for BLQ, standard errors included) and to
   ``pynlme.nlmefitsa`` 0.5.1 (no censoring support: BLQ rows dropped, M1; ``vectorization="full"``,
   ``n_chains=1``, its default iterations [150, 150, 100], no standard errors). Both start from the same
   values away from the truth. Reported per fixed effect: relative bias against the design value (mean of
   estimate/design - 1), relative RMSE, the fraction of replicates within 20 %, and the same for the "oracle"
   (the realised geometric mean of each replicate's 60 true individual parameters); wall time per fit and the
   ratio pynlme / cd7kit, measured alternately in this process.
2. Virtual cohort of 1,000 patients x 180 days: the simulation (arrays) and the validated Study, against the
   Study build with pandera's own per-value ``str`` checks (the baseline of the validation speed-up).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from cd7kit.kinetics.models import stein2019
from cd7kit.kinetics.sse import DESIGN_TIMES, START_OFFSET, SSEResult, saem_fit, stein_sse


def _pynlme_fit(seed: int = 1):  # type: ignore[no-untyped-def]
    from pynlme import nlmefitsa

    beta0 = stein2019.to_phi(stein2019.TYPICAL.as_array()) + START_OFFSET

    def mf(PHI: np.ndarray, Xf: np.ndarray, V: object = None) -> np.ndarray:
        PHI = np.atleast_2d(PHI)
        if PHI.shape[0] != Xf.shape[0]:
            PHI = np.repeat(PHI, Xf.shape[0], axis=0)
        return stein2019.log_pred_phi(PHI, Xf[:, 0][:, None])[:, 0]

    def fit(df: pd.DataFrame) -> tuple[np.ndarray, None]:
        d = df[~df["blq"]]
        X = d["time"].to_numpy()[:, None]
        y = np.log(d["value"].to_numpy())
        g = d["subject_id"].astype("category").cat.codes.to_numpy()
        beta, _psi, _stats, _b = nlmefitsa(X, y, g, None, mf, beta0, random_state=seed, vectorization="full", n_chains=1)
        return np.asarray(beta, float), None

    return fit


def _print_sse(name: str, r: SSEResult) -> None:
    s = r.summary
    print(f"\n{name}: {r.replicates} replicates, {np.mean(r.seconds):.2f} s per fit (mean), all six within 20 %: {r.all_within():.2f} (oracle {r.all_within(oracle=True):.2f})")
    print(f"{'parameter':<10}{'rel. bias':>10}{'rel. RMSE':>10}{'within 20%':>11}{'CI95 cover':>11}{'oracle bias':>12}{'oracle w/in 20%':>16}")
    for p, row in s.iterrows():
        cov = "n/a" if pd.isna(row["ci95_coverage"]) else f"{row['ci95_coverage']:.2f}"
        print(f"{p:<10}{row['relative_bias']:>+10.3f}{row['relative_rmse']:>10.3f}{row['within_20pct']:>11.2f}{cov:>11}{row['oracle_relative_bias']:>+12.3f}{row['oracle_within_20pct']:>16.2f}")


def sse_bench(replicates: int, skip_pynlme: bool) -> None:
    data = [stein2019.simulate_population(60, np.asarray(DESIGN_TIMES), seed=1 + r, lloq=10.0) for r in range(replicates)]
    stein_sse(datasets=data[:1], fit=saem_fit(2, 2))  # compile / warm-up
    ours_fit = saem_fit()
    if skip_pynlme:
        _print_sse("cd7kit SAEM (M3 BLQ)", stein_sse(datasets=data, fit=ours_fit))
        return
    py_fit = _pynlme_fit()
    ours: list[SSEResult] = []
    theirs: list[SSEResult] = []
    for d in data:  # alternate, so that both see the same machine load
        ours.append(stein_sse(datasets=[d], fit=ours_fit))
        theirs.append(stein_sse(datasets=[d], fit=py_fit))

    def merge(parts: list[SSEResult]) -> SSEResult:
        tab = pd.concat([p.table.assign(replicate=i) for i, p in enumerate(parts)], ignore_index=True)
        return SSEResult(tab, [s for p in parts for s in p.seconds], 60, DESIGN_TIMES, 10.0)

    a, b = merge(ours), merge(theirs)
    _print_sse("cd7kit SAEM (M3 for BLQ, with standard errors)", a)
    _print_sse("pynlme 0.5.1 nlmefitsa (BLQ dropped)", b)
    print(f"\nwall time per fit: cd7kit {np.mean(a.seconds):.2f} s, pynlme {np.mean(b.seconds):.2f} s; ratio pynlme / cd7kit = {np.sum(b.seconds) / np.sum(a.seconds):.1f}")


def cohort_bench() -> None:
    from cd7kit.data import Study
    from cd7kit.data import schema as S
    from cd7kit.sim import simulate_arrays, simulate_cohort

    simulate_cohort("NCT06849401", n=20, seed=1, days=60)  # compile / warm-up
    t_arr, t_study = [], []
    st = None
    for _ in range(3):
        t0 = time.perf_counter()
        simulate_arrays(1000, "NCT06849401", seed=1, days=180)
        t_arr.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        st = simulate_cohort("NCT06849401", n=1000, seed=1, days=180)
        t_study.append(time.perf_counter() - t0)
    assert st is not None
    tabs = {t: getattr(st, t) for t in ("subjects", "observations", "interventions", "events")}
    fast = S.Str._all_str
    t_new, t_old = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        Study.from_tables(**tabs)
        t_new.append(time.perf_counter() - t0)
        S.Str._all_str = staticmethod(lambda d: False)  # type: ignore[assignment,method-assign]  # pandera's own per-value path
        try:
            t0 = time.perf_counter()
            Study.from_tables(**tabs)
            t_old.append(time.perf_counter() - t0)
        finally:
            S.Str._all_str = staticmethod(fast)  # type: ignore[assignment,method-assign]
    print(f"\nvirtual cohort, 1,000 patients x 180 days ({len(st.observations):,} observations), best of 3:")
    print(f"  simulation (CK7 + clinical links, arrays)        {min(t_arr):6.2f} s")
    print(f"  complete validated Study (simulation included)   {min(t_study):6.2f} s")
    print(f"  validation only: vectorised str path {min(t_new):.2f} s vs pandera's per-value path {min(t_old):.2f} s (ratio {min(t_old) / min(t_new):.1f})")
    print("  (the validation path before this change also copied and consolidated every table twice; see docs/kinetics.md)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--skip-pynlme", action="store_true")
    ap.add_argument("--skip-cohort", action="store_true")
    ap.add_argument("--skip-sse", action="store_true")
    args = ap.parse_args()
    if not args.skip_sse:
        sse_bench(args.replicates, args.skip_pynlme)
    if not args.skip_cohort:
        cohort_bench()


if __name__ == "__main__":
    main()
