"""Many virtual trials / a large virtual population on dask.distributed.

A ``LocalCluster`` is started by default (processes, one thread each); pass ``scheduler="tcp://host:8786"``
to use a real cluster. Work is split into chunks of virtual patients (or one virtual trial per task),
each with its own seed derived from the master seed (``numpy.random.SeedSequence.spawn``), so results do
not depend on the number of workers. Progress: ``dask.distributed.progress`` (a text bar) when
``progress=True``; interfaces can pass ``on_done`` to drive their own (e.g. rich) bar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .cohort import simulate_arrays
from .trial import dlt_outcomes


def _chunk_summary(design: str, n: int, seed: int, days: int, dose_level: int | None) -> pd.DataFrame:
    """Per-patient summary of one chunk: Cmax/Tmax of CAR cells, IL-6 peak, BM blasts at day 28, relapse."""
    a = simulate_arrays(n, design, seed=seed, days=days, dose_level=dose_level)
    C = a["sim"]["C"]
    t = a["t"]
    bm = a["sim"]["bm_blast_pct"]
    d28 = int(np.searchsorted(t, min(28, t[-1])))
    cr = bm[:, d28] < 5
    relapse = cr & ((bm[:, d28:] >= 5).any(axis=1))
    return pd.DataFrame(
        {
            "seed": seed,
            "dose_level": a["level"],
            "car_cmax_cells_per_uL": C.max(axis=1),
            "car_tmax_day": t[np.argmax(C, axis=1)],
            "il6_peak_pg_mL": a["il6_peak"],
            "bm_blasts_d28_pct": bm[:, d28],
            "cr_d28": cr,
            "relapse": relapse,
        }
    )


def _one_trial(design: str, dose_level_n: tuple[int, ...], seed: int) -> dict[str, Any]:
    """One virtual trial: DLT counts per dose level for a fixed allocation."""
    out = {}
    for k, nk in enumerate(dose_level_n, start=1):
        if nk:
            o = dlt_outcomes(design, k, nk, seed=seed * 10 + k)
            out[f"dlt_level{k}"] = int(o["dlt"].sum())
            out[f"n_level{k}"] = nk
    return out


def _client(scheduler: str | None, n_workers: int | None) -> Any:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=n_workers or 2, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def simulate_population(
    n: int,
    design: str = "NCT06849401",
    seed: int = 1,
    days: int = 180,
    chunk: int = 1000,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = False,
    on_done: Callable[[int, int], None] | None = None,
    dose_level: int | None = None,
) -> pd.DataFrame:
    """Simulate ``n`` virtual patients in chunks on dask; one summary row per patient."""
    from dask.distributed import as_completed

    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(int(np.ceil(n / chunk)))]
    sizes = [min(chunk, n - i * chunk) for i in range(len(seeds))]
    client, cluster = _client(scheduler, n_workers)
    try:
        futs = [client.submit(_chunk_summary, design, m, s, days, dose_level, pure=False) for m, s in zip(sizes, seeds, strict=False)]
        if progress:
            from dask.distributed import progress as dprogress

            dprogress(futs)
        done = 0
        parts: dict[int, pd.DataFrame] = {}
        index = {f.key: i for i, f in enumerate(futs)}
        for f in as_completed(futs):
            parts[index[f.key]] = f.result()
            done += 1
            if on_done:
                on_done(done, len(futs))
        return pd.concat([parts[i] for i in range(len(futs))], ignore_index=True)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def simulate_trials(
    n_trials: int,
    design: str = "NCT06849401",
    per_level: tuple[int, ...] = (3, 3, 3),
    seed: int = 1,
    scheduler: str | None = None,
    n_workers: int | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Many virtual trials with a fixed allocation per dose level: DLT counts per trial (one task each)."""
    from dask.distributed import as_completed

    seeds = [int(s.generate_state(1)[0]) % (2**31) for s in np.random.SeedSequence(seed).spawn(n_trials)]
    client, cluster = _client(scheduler, n_workers)
    try:
        futs = [client.submit(_one_trial, design, tuple(per_level), s, pure=False) for s in seeds]
        index = {f.key: i for i, f in enumerate(futs)}
        rows: dict[int, dict[str, Any]] = {}
        for k, f in enumerate(as_completed(futs), start=1):
            rows[index[f.key]] = f.result()
            if on_done:
                on_done(k, len(futs))
        return pd.DataFrame([rows[i] for i in range(len(futs))]).assign(trial=np.arange(1, n_trials + 1))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["simulate_population", "simulate_trials"]
