"""Eligibility engine throughput on the demo study: reports per second for the whole screening log.

Compares, in the same process, the screening log (one prepared-records cache per Study) with the
baseline of calling ``screen`` once per subject and checkpoint without a shared cache. Prints a table;
no assertion. Run: ``python benchmarks/bench_eligibility.py``.
"""

from __future__ import annotations

import time

from cd7kit.clinical.eligibility import checkpoint_day, load_criteria, screen, screening_log
from cd7kit.datasets import load_demo_study
from cd7kit.datasets.screening import screening_attestations


def main(repeats: int = 3) -> None:
    study = load_demo_study()
    cs = load_criteria("NCT06849401")
    att = screening_attestations()
    pairs = [(s, cp) for s in study.subject_ids for cp in ("screening", "pre-lymphodepletion", "pre-infusion") if checkpoint_day(study, s, cp) is not None]

    def baseline() -> int:
        return len([screen(study, s, cs, cp, attestations=att) for s, cp in pairs])

    def log() -> int:
        return len(screening_log(study, cs, attestations=att))

    rows = []
    for name, fn in (("screen() per pair, no shared cache", baseline), ("screening_log (shared cache)", log)):
        best = float("inf")
        n = 0
        for _ in range(repeats):
            t = time.perf_counter()
            n = fn()
            best = min(best, time.perf_counter() - t)
        rows.append((name, n, best))
    base = rows[0][2]
    print(f"{'method':<40}{'reports':>8}{'best s':>10}{'reports/s':>12}{'speed-up':>10}")
    for name, n, t in rows:
        print(f"{name:<40}{n:>8}{t:>10.3f}{n / t:>12.1f}{base / t:>10.2f}")


if __name__ == "__main__":
    main()
