"""Dose-escalation simulation speed: cd7kit.trial vs its own plain-Python reference path (same process)
and the published R timings (spec escalation.md: R BOIN 2.7.2 get.oc 7.7 s / 10,000 trials on a 2-core CI
machine; TITEgBOIN 115 s / 2,000 trials; dfcrm crmsim 60-75 s / 10,000 trials).

Run:  python benchmarks/bench_escalation.py [--repeat 5]
Numba kernels are compiled (and cached) in a warm-up call before any timing. Reference paths are timed on
fewer trials and scaled linearly to the same trial count.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

from cd7kit.trial import boin as B
from cd7kit.trial.crm import Crm, getprior
from cd7kit.trial.rng import RStream
from cd7kit.trial.threeplusthree import ThreePlusThree
from cd7kit.trial.tite import TiteBoin

P5 = [0.05, 0.15, 0.30, 0.45, 0.60]


def timeit(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    r = args.repeat

    # warm-up (numba compilation / cache load) outside the timings
    B.simulate(0.3, P5, 10, 3, ntrial=10, rng="r")
    B.simulate(0.3, P5, 10, 3, ntrial=10, rng="numpy")
    crm = Crm(target=0.2, ndose=6, skeleton=(0.05, 0.10, 0.20, 0.35, 0.50, 0.70), ncohort=8, cohortsize=3, startdose=3)
    crm.simulate([0.10, 0.20, 0.40, 0.50, 0.60, 0.65], ntrial=10)
    tite = TiteBoin(target=0.3, ncohort=10, cohortsize=3, window=28, accrual=10)
    tite.simulate(P5, ntrial=10)

    rows: list[tuple[str, str, float, str]] = []
    t_r = timeit(lambda: B.simulate(0.3, P5, 10, 3, ntrial=10_000, seed=6, rng="r"), r)
    t_np = timeit(lambda: B.simulate(0.3, P5, 10, 3, ntrial=10_000, seed=6, rng="numpy"), r)
    t_stream = timeit(lambda: RStream(6).runif(10_000 * 30), r)
    t_ref = timeit(lambda: B.simulate(0.3, P5, 10, 3, ntrial=1_000, seed=6, rng="r", engine="reference"), 1) * 10
    rows.append(("BOIN, R-compatible (rng='r')", "10,000 x 5 doses x 10x3", t_r, f"R BOIN 7.7 s -> {7.7 / t_r:.0f}x; reference {t_ref / t_r:.0f}x"))
    rows.append(("  of which R Mersenne-Twister stream", "300,000 uniforms", t_stream, ""))
    rows.append(("BOIN, fast (rng='numpy')", "10,000 x 5 doses x 10x3", t_np, f"R BOIN 7.7 s -> {7.7 / t_np:.0f}x"))
    rows.append(("BOIN, plain-Python reference", "10,000 (scaled from 1,000)", t_ref, "same uniforms, same results"))

    t_tite = timeit(lambda: tite.simulate(P5, ntrial=2_000, seed=6), r)
    rows.append(("TITE-BOIN (window 28, accrual 10)", "2,000 x 5 doses x 10x3", t_tite, f"TITEgBOIN 115 s -> {115 / t_tite:.0f}x"))

    pi = [0.10, 0.20, 0.40, 0.50, 0.60, 0.65]
    t_crm = timeit(lambda: crm.simulate(pi, ntrial=10_000, seed=1), r)
    t_crm_ref = timeit(lambda: crm.simulate(pi, ntrial=5, seed=1, engine="reference"), 1) * 2_000
    rows.append(("CRM empiric (dfcrm semantics)", "10,000 x 6 doses x 8x3", t_crm, f"dfcrm 60-75 s -> {60 / t_crm:.0f}x; quad reference {t_crm_ref / t_crm:.0f}x"))
    rows.append(("CRM, quadrature reference", "10,000 (scaled from 5)", t_crm_ref, "scipy.integrate.quad per update"))

    crm5 = Crm(target=0.3, ndose=5, skeleton=tuple(getprior(0.05, 0.3, 3, 5)), ncohort=10, cohortsize=3)
    crm5.simulate(P5, ntrial=10)
    t_crm5 = timeit(lambda: crm5.simulate(P5, ntrial=10_000, seed=1), r)
    rows.append(("CRM empiric", "10,000 x 5 doses x 10x3", t_crm5, ""))

    t_33 = timeit(lambda: ThreePlusThree().exact(P5), r)
    rows.append(("3+3 exact enumeration", "5 doses (all outcome paths)", t_33, "no Monte-Carlo error"))

    print(f"cd7kit.trial benchmark  ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, median of {r})")
    w = max(len(a) for a, *_ in rows)
    print(f"{'what':<{w}}  {'size':<28}  {'seconds':>9}  vs")
    print("-" * (w + 60))
    for what, size, sec, note in rows:
        print(f"{what:<{w}}  {size:<28}  {sec:9.4f}  {note}")


if __name__ == "__main__":
    main()
