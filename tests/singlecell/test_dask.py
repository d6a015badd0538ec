"""The out-of-core (dask) backend agrees with the in-memory one, and the data never leave the disk whole.

One simulation is written to an .h5ad chunk by chunk (``sim.write_h5ad``), then opened twice with
``pp.read``: fully in memory and as a dask array of 400-cell CSR blocks. Both go through the same
``pp.run`` + ``tl.annotate``; QC metrics, size factors, HVGs, PCA, clusters and cell-type calls must
agree, and the dask ``X`` must still be a lazy array at the end.
"""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from cd7kit.errors import InputError
from cd7kit.singlecell import pp, tl
from cd7kit.singlecell.sim import simulate, write_h5ad

SIM = {"n_cells": 2800, "n_patients": 7, "seed": 21, "n_genes": 700, "chunk_cells": 900}


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("dask") / "sim.h5ad"
    write_h5ad(path, **SIM)
    return path


@pytest.fixture(scope="module")
def both(h5):
    kw = {"n_top_genes": 400, "n_comps": 30, "do_doublets": False, "do_umap": False, "graph_method": "gauss"}
    mem = pp.read(h5)
    pp.run(mem, "sample", **kw)
    tl.annotate(mem)
    lazy = pp.read(h5, backend="dask", chunk_size=400)
    assert pp.is_lazy(lazy.X) and lazy.X.chunks[0][0] == 400
    pp.run(lazy, "sample", n_threads=2, **kw)
    tl.annotate(lazy)
    return mem, lazy


def test_chunked_writer_equals_in_memory_simulation(h5):
    import anndata as ad

    a = simulate(**SIM)
    b = ad.read_h5ad(h5)
    assert (a.X != b.X).nnz == 0 and a.obs.equals(b.obs)
    with h5py.File(h5) as f:  # one index dtype for both arrays (scipy's rule); int32 below 2^31 non-zeros
        assert f["X/indptr"].dtype == f["X/indices"].dtype == np.int32 and f["X/data"].dtype == np.float32


def test_chunked_writer_switches_to_int64_indices(tmp_path, monkeypatch):
    import anndata as ad

    from cd7kit.singlecell import sim

    monkeypatch.setattr(sim, "_INT32_MAX", 1000)  # as if the matrix had more than 2^31 - 1 non-zeros
    path = write_h5ad(tmp_path / "big.h5ad", 500, 2, seed=3, n_genes=300, chunk_cells=200)
    with h5py.File(path) as f:
        assert f["X/indptr"].dtype == f["X/indices"].dtype == np.int64
    X = simulate(500, 2, seed=3, n_genes=300, chunk_cells=200).X
    assert (ad.read_h5ad(path).X != X).nnz == 0
    lazy = pp.read(path, backend="dask", chunk_size=128)
    np.testing.assert_allclose(pp.row_sums(lazy), np.asarray(X.sum(axis=1)).ravel())


def test_qc_and_normalisation_agree(both):
    mem, lazy = both
    assert lazy.uns["cd7kit_singlecell"]["backend"] == "dask" and mem.uns["cd7kit_singlecell"]["backend"] == "memory"
    assert list(lazy.obs_names) == list(mem.obs_names)  # same cells removed by QC
    assert 0 < lazy.uns["cd7kit_singlecell"]["qc"]["n_removed"] < SIM["n_cells"] * 0.2
    for col in ("total_counts", "n_genes", "pct_top20", "pct_mt", "size_factor"):
        np.testing.assert_allclose(lazy.obs[col].to_numpy(float), mem.obs[col].to_numpy(float), rtol=1e-6, err_msg=col)


def test_hvg_and_pca_agree(both):
    mem, lazy = both
    assert (lazy.var["highly_variable"] == mem.var["highly_variable"]).all()
    np.testing.assert_allclose(lazy.var["dispersions_norm"], mem.var["dispersions_norm"], rtol=1e-4, atol=1e-5)
    P, Q = lazy.obsm["X_pca"], mem.obsm["X_pca"]
    np.testing.assert_allclose(lazy.uns["pca"]["variance_ratio"], mem.uns["pca"]["variance_ratio"], rtol=1e-4)
    for k in range(10):  # well-separated leading components: same up to float32 rounding (signs are fixed)
        assert np.corrcoef(P[:, k], Q[:, k])[0, 1] > 0.9999, k


def test_clusters_and_cell_types_agree(both):
    mem, lazy = both
    assert adjusted_rand_score(mem.obs["leiden"], lazy.obs["leiden"]) > 0.95
    same = (lazy.obs["cell_type"].astype(str).to_numpy() == mem.obs["cell_type"].astype(str).to_numpy()).mean()
    assert same > 0.98, same
    truth = lazy.obs["true_cell_type"].astype(str).to_numpy()
    assert (lazy.obs["cell_type"].astype(str).to_numpy() == truth).mean() >= 0.9
    assert (lazy.obs["cd7_state"].astype(str) == mem.obs["cd7_state"].astype(str)).mean() > 0.98


def test_counts_stay_on_disk_and_block_tools_agree(both):
    mem, lazy = both
    assert pp.is_lazy(lazy.X)  # never replaced by an in-memory matrix
    rows = np.array([5, 900, 17, 2000, 3])  # unsorted, across blocks
    a = pp.counts(lazy, ["CD3E", "CD7", "LYZ"], rows=rows)
    b = pp.counts(mem, ["CD3E", "CD7", "LYZ"], rows=rows)
    assert (a != b).nnz == 0
    pa = tl.pseudobulk(lazy, ["patient", "timepoint"])
    pb = tl.pseudobulk(mem, ["patient", "timepoint"])
    assert list(pa.obs_names) == list(pb.obs_names) and abs(pa.X - pb.X).max() == 0
    ca = tl.car_cells(lazy, ["CAR"])
    cb = tl.car_cells(mem, ["CAR"])
    assert ca.equals(cb) and ca["n_car_detected"].sum() > 0


def test_iter_blocks_covers_rows_in_order_with_bounded_concurrency(h5):
    import threading
    import time

    import dask

    lazy = pp.read(h5, backend="dask", chunk_size=300)
    lock = threading.Lock()
    active = [0, 0]  # now, max

    def fn(B, s, e):
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return B.shape[0]

    starts = []
    with dask.config.set(num_workers=2):
        for s, e, n in pp.iter_blocks(lazy, fn):
            assert e - s == n
            starts.append(s)
    assert starts == list(range(0, SIM["n_cells"], 300))  # every row once, in order
    assert active[1] <= 2  # blocks are read num_workers at a time, never all at once


def test_read_errors_name_the_problem(tmp_path, h5):
    with pytest.raises(InputError, match="file not found"):
        pp.read(tmp_path / "missing.h5ad", backend="dask")
    bad = tmp_path / "x.csv"
    bad.write_text("a\n")
    with pytest.raises(InputError, match="not an AnnData file"):
        pp.read(bad)
    with pytest.raises(InputError, match="unknown backend"):
        pp.read(h5, backend="spark")
    a = simulate(300, 2, seed=1, n_genes=300)
    a.X = sp.csc_matrix(a.X)
    csc = tmp_path / "csc.h5ad"
    a.write_h5ad(csc)
    with pytest.raises(InputError, match="CSC"):
        pp.read(csc, backend="dask")


def test_gpu_path_is_optional_with_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapids_singlecell", None)  # import fails as on a machine without it
    assert not pp.gpu_available()
    a = simulate(300, 2, seed=1, n_genes=300)
    with pytest.raises(pp.GPUUnavailableError, match=r"pip install 'cd7kit\[gpu-cu12\]'"):
        pp.run(a, "sample", use_gpu=True)
    assert "cd7kit_singlecell" not in a.uns  # refused before any work
