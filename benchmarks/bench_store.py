"""Store throughput: save and load a 1,000-subject study with ~1e6 observations.

Baseline in the same process: writing and reading the same tables as CSV with pandas (``to_csv`` /
``read_csv``), and, for scale, inserting a sample of observations one ORM object per row (what the store
avoids). Prints a table of seconds and ratios. Usage::

    python benchmarks/bench_store.py [--subjects 1000] [--obs-per-subject 1000] [--postgres URL]

``--postgres`` benchmarks PostgreSQL too (a temporary database is created on that server and dropped).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cd7kit.data import Study
from cd7kit.store import open_store
from cd7kit.vocab import load_vocabulary


def build(n_subjects: int, per_subject: int, seed: int = 0) -> Study:
    rng = np.random.default_rng(seed)
    ids = [f"BENCH-{i:04d}" for i in range(n_subjects)]
    n = n_subjects * per_subject
    codes = np.array(["TEMP", "ANC", "IL6", "CRP", "HR"])[rng.integers(0, 5, n)]
    vocab = load_vocabulary()
    units = {c: vocab[c].canonical_unit for c in ("TEMP", "ANC", "IL6", "CRP", "HR")}
    value = np.where(codes == "TEMP", rng.uniform(36, 40, n), np.where(codes == "HR", rng.uniform(60, 160, n), rng.uniform(0.1, 9, n)))
    obs = pd.DataFrame(
        {
            "subject_id": np.repeat(ids, per_subject),
            "day": np.tile(np.linspace(-7, 180, per_subject), n_subjects),
            "code": codes,
            "value": value,
            "unit": pd.Series(codes).map(units).to_numpy(),
            "specimen": "PB",
            "source": "synthetic benchmark",
        }
    )
    subjects = pd.DataFrame({"subject_id": ids, "age_years": rng.uniform(2, 18, n_subjects), "sex": "F", "dose_level": 1})
    return Study.from_tables(subjects, obs, meta={"study_id": "BENCH", "synthetic": True})


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def orm_per_row_rate(url: str, study: Study, n: int = 5000) -> float:
    """Seconds per row when inserting observations as one ORM object each (the approach avoided)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from cd7kit.store.models import Base, Dataset, ObservationRow

    eng = create_engine(url)
    Base.metadata.create_all(eng)
    sample = study.observations.head(n)
    t = time.perf_counter()
    with Session(eng) as s:
        s.add(Dataset(id=1, table_name="observations", content_hash="x", n_rows=n, columns_json="[]", created_at="now"))
        s.flush()
        for i, r in enumerate(sample.itertuples(index=False)):
            s.add(ObservationRow(dataset_id=1, pos=i, row_id=int(r.row_id), subject_id=r.subject_id, day=float(r.day), code=r.code, value=float(r.value), unit=r.unit, specimen=r.specimen, blq=bool(r.blq), source=r.source))
        s.commit()
    eng.dispose()
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--obs-per-subject", type=int, default=1000)
    ap.add_argument("--postgres", default=None)
    a = ap.parse_args()
    t_build, study = timed(lambda: build(a.subjects, a.obs_per_subject))
    n = len(study.observations)
    print(f"study: {a.subjects} subjects, {n:,} observations (built and validated in {t_build:.1f} s)")
    with tempfile.TemporaryDirectory() as d:
        csv = Path(d) / "obs.csv"
        t_csv_w, _ = timed(lambda: study.observations.to_csv(csv, index=False))
        t_csv_r, _ = timed(lambda: pd.read_csv(csv))
        per_row = orm_per_row_rate(f"sqlite:///{d}/orm.sqlite", study)
        rows = []
        targets = [("sqlite", str(Path(d) / "bench.sqlite"))]
        ctx = None
        if a.postgres:
            from cd7kit.store.testing import temporary_postgres_database

            ctx = temporary_postgres_database(a.postgres, prefix="cd7kit_bench")
            targets.append(("postgresql", ctx.__enter__()))
        try:
            for name, url in targets:
                with open_store(url) as s:
                    t_save, _ = timed(lambda s=s: s.save_study(study, "bench", "system"))
                    t_load, back = timed(lambda s=s: s.load_study("BENCH"))
                    assert back.observations.equals(study.observations)
                rows.append((name, t_save, t_load))
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
    print(f"baseline pandas CSV: write {t_csv_w:.2f} s, read {t_csv_r:.2f} s; ORM one-object-per-row insert: "
          f"{per_row * 1e6:.0f} µs/row -> {per_row * n:.0f} s projected for {n:,} rows")
    print(f"{'backend':<12}{'save s':>9}{'load s':>9}{'save/CSV write':>16}{'load/CSV read':>15}{'ORM-per-row/save':>18}")
    for name, ts, tl in rows:
        print(f"{name:<12}{ts:>9.2f}{tl:>9.2f}{ts / t_csv_w:>16.2f}{tl / t_csv_r:>15.2f}{per_row * n / ts:>18.1f}")


if __name__ == "__main__":
    main()
