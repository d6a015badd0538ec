"""Read/write time of the SDTM (CSV, XPT) formats against the cd7kit CSV template, on the demo study.

Run: ``python benchmarks/bench_io.py [repeats]``. Prints seconds (best of ``repeats``) and the ratio to
the CSV-template time measured in the same process (the baseline every reader shares: Study validation).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cd7kit.datasets import load_demo_study
from cd7kit.io import read_cd7kit, read_sdtm, write_cd7kit, write_sdtm


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(repeats: int = 3) -> None:
    study = load_demo_study()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rows = {
            "write cd7kit CSV": best(lambda: write_cd7kit(study, d / "t"), repeats),
            "write SDTM CSV": best(lambda: write_sdtm(study, d / "c", "csv"), repeats),
            "write SDTM XPT": best(lambda: write_sdtm(study, d / "x", "xpt"), repeats),
            "read cd7kit CSV": best(lambda: read_cd7kit(d / "t"), repeats),
            "read SDTM CSV": best(lambda: read_sdtm(d / "c"), repeats),
            "read SDTM XPT": best(lambda: read_sdtm(d / "x"), repeats),
        }
    n = len(study.observations) + len(study.interventions) + len(study.events)
    print(f"demo study: {len(study.subjects)} subjects, {n} rows; best of {repeats}")
    print(f"{'operation':<20} {'seconds':>8} {'x cd7kit CSV':>13}")
    for name, sec in rows.items():
        base = rows["write cd7kit CSV"] if name.startswith("write") else rows["read cd7kit CSV"]
        print(f"{name:<20} {sec:8.3f} {sec / base:13.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
