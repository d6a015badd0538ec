"""Dask runner: a LocalCluster gives the same virtual population as the sequential computation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cd7kit.sim.distributed import _chunk_summary, simulate_population
from cd7kit.sim.trial import dlt_outcomes, dlt_probabilities


def test_population_on_local_cluster_matches_sequential() -> None:
    calls: list[tuple[int, int]] = []
    df = simulate_population(120, "CD7-CAR-T", seed=3, days=40, chunk=60, n_workers=1, on_done=lambda k, n: calls.append((k, n)))
    assert len(df) == 120 and calls[-1] == (2, 2)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(3).spawn(2)]
    seq = pd.concat([_chunk_summary("CD7-CAR-T", 60, s, 40, None) for s in seeds], ignore_index=True)
    pd.testing.assert_frame_equal(df, seq)
    assert df["cr_d28"].mean() > 0.5


def test_dlt_probabilities_rise_with_dose_for_car_nk() -> None:
    p = dlt_probabilities("NCT06849401", n_per_dose=300, seed=1)
    assert p.p[0] < p.p[2] and all(0 <= x <= 1 for x in p.p)
    o = dlt_outcomes("NCT06849401", 3, 50, seed=2)
    assert o["dlt"].dtype == bool and len(o["dlt"]) == 50 and np.array_equal(o["dlt"], o["crs3"] | o["neutropenia"])
