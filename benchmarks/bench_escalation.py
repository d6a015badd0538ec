"""Dose-escalation simulation speed: cd7kit.trial vs its own plain-Python reference paths (same process)
and the published R timings (spec escalation.md: R BOIN 2.7.2 get.oc 7.7 s / 10,000 trials on a 2-core CI
machine; TITEgBOIN 115 s / 2,000 trials; dfcrm crmsim 60-75 s / 10,000 trials).

Run:  python benchmarks/bench_escalation.py [--repeat 7]
Numba kernels are compiled (and cached) in a warm-up call before any timing. Each row gives the median
wall-clock time and the median CPU time of the process (less sensitive to other jobs on a shared machine;
the kernels are single-threaded, so CPU <= wall); ratios use CPU times. Reference paths are timed on
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
from cd7kit.trial.boin12 import Boin12
from cd7kit.trial.crm import Crm, getprior
from cd7kit.trial.rng import NumpyStream, RStream
from cd7kit.trial.threeplusthree import ThreePlusThree
from cd7kit.trial.tite import TiteBoin

P5 = [0.05, 0.15, 0.30, 0.45, 0.60]
R_BOIN, R_TITE, R_CRM = 7.7, 115.0, 60.0  # seconds, spec escalation.md (R on a 2-core CI machine)


def timeit(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    r = args.repeat

    crm = Crm(target=0.2, ndose=6, skeleton=(0.05, 0.10, 0.20, 0.35, 0.50, 0.70), ncohort=8, cohortsize=3, startdose=3)
    crm5 = Crm(target=0.3, ndose=5, skeleton=tuple(getprior(0.05, 0.3, 3, 5)), ncohort=10, cohortsize=3)
    tite = TiteBoin(target=0.3, ncohort=10, cohortsize=3, window=28, accrual=10)
    boin12 = Boin12(target=0.35, phi_e=0.25, ncohort=10, cohortsize=3)
    pi6 = [0.10, 0.20, 0.40, 0.50, 0.60, 0.65]
    pt12, pe12 = [0.05, 0.10, 0.20, 0.35, 0.50], [0.10, 0.20, 0.45, 0.50, 0.50]

    # warm-up (numba compilation / cache load) outside the timings
    B.simulate(0.3, P5, 10, 3, ntrial=10, rng="r")
    B.simulate(0.3, P5, 10, 3, ntrial=10, rng="numpy")
    crm.simulate(pi6, ntrial=10)
    crm5.simulate(P5, ntrial=10)
    tite.simulate(P5, ntrial=10)
    boin12.simulate(pt12, pe12, ntrial=10)

    rows: list[tuple[str, str, tuple[float, float], str]] = []

    def row(what: str, size: str, t: tuple[float, float], note: str = "") -> None:
        rows.append((what, size, t, note))

    t_r = timeit(lambda: B.simulate(0.3, P5, 10, 3, ntrial=10_000, seed=6, rng="r"), r)
    t_fast = timeit(lambda: B.simulate(0.3, P5, 10, 3, ntrial=10_000, seed=6, rng="numpy"), r)
    t_rs = timeit(lambda: RStream(6).runif(10_000 * 30), r)
    t_ns = timeit(lambda: NumpyStream(6).runif(10_000 * 10), r)
    t_ref = timeit(lambda: B.simulate(0.3, P5, 10, 3, ntrial=1_000, seed=6, rng="r", engine="reference"), 1)
    t_ref = (t_ref[0] * 10, t_ref[1] * 10)
    row("BOIN, R-compatible (rng='r')", "10,000 x 5 doses x 10x3", t_r, f"R BOIN {R_BOIN} s -> {R_BOIN / t_r[1]:.0f}x; reference {t_ref[1] / t_r[1]:.0f}x")
    row("  of which R Mersenne-Twister stream", "300,000 uniforms (1/patient)", t_rs)
    row("BOIN, fast mode (rng='numpy')", "10,000 x 5 doses x 10x3", t_fast, f"{t_r[1] / t_fast[1]:.2f}x the R-compatible mode; R BOIN -> {R_BOIN / t_fast[1]:.0f}x")
    row("  of which PCG64 stream", "100,000 uniforms (1/cohort)", t_ns)
    row("BOIN, plain-Python reference", "10,000 (scaled from 1,000)", t_ref, "same uniforms, same results")

    t_tite = timeit(lambda: tite.simulate(P5, ntrial=2_000, seed=6), r)
    row("TITE-BOIN (window 28, accrual 10)", "2,000 x 5 doses x 10x3", t_tite, f"TITEgBOIN {R_TITE:.0f} s -> {R_TITE / t_tite[1]:.0f}x")

    t_crm = timeit(lambda: crm.simulate(pi6, ntrial=10_000, seed=1), r)
    t_crm_ref = timeit(lambda: crm.simulate(pi6, ntrial=5, seed=1, engine="reference"), 1)
    t_crm_ref = (t_crm_ref[0] * 2_000, t_crm_ref[1] * 2_000)
    row("CRM empiric (dfcrm semantics)", "10,000 x 6 doses x 8x3", t_crm, f"dfcrm 60-75 s -> {R_CRM / t_crm[1]:.0f}x; quad reference {t_crm_ref[1] / t_crm[1]:.0f}x")
    row("CRM, quadrature reference", "10,000 (scaled from 5)", t_crm_ref, "scipy.integrate.quad per update")
    t_crm5 = timeit(lambda: crm5.simulate(P5, ntrial=10_000, seed=1), r)
    row("CRM empiric", "10,000 x 5 doses x 10x3", t_crm5)

    t_b12 = timeit(lambda: boin12.simulate(pt12, pe12, ntrial=10_000, seed=1), r)
    t_b12_ref = timeit(lambda: boin12.simulate(pt12, pe12, ntrial=100, seed=1, engine="reference"), 1)
    t_b12_ref = (t_b12_ref[0] * 100, t_b12_ref[1] * 100)
    row("BOIN12 (compiled)", "10,000 x 5 doses x 10x3", t_b12, f"reference {t_b12_ref[1] / t_b12[1]:.0f}x")
    row("BOIN12, plain-Python reference", "10,000 (scaled from 100)", t_b12_ref, "next_dose per cohort; same results")

    t_33 = timeit(lambda: ThreePlusThree().exact(P5), r)
    row("3+3 exact enumeration", "5 doses (all outcome paths)", t_33, "no Monte-Carlo error")

    print(f"cd7kit.trial benchmark  ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, median of {r})")
    w = max(len(a) for a, *_ in rows)
    print(f"{'what':<{w}}  {'size':<28}  {'wall s':>9}  {'CPU s':>9}  vs (CPU)")
    print("-" * (w + 80))
    for what, size, (wall, cpu), note in rows:
        print(f"{what:<{w}}  {size:<28}  {wall:9.4f}  {cpu:9.4f}  {note}")


if __name__ == "__main__":
    main()
