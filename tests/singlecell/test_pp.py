"""Preprocessing pieces against scanpy and against planted outliers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cd7kit.singlecell import pp
from cd7kit.singlecell.sim import simulate


def test_lognorm_equals_scanpy_shifted_log():
    import scanpy as sc

    a = simulate(600, 3, seed=4, n_genes=300)
    pp.normalize(a)
    mine = pp.lognorm(a).toarray()
    b = a.copy()
    sc.pp.normalize_total(b, target_sum=a.uns["cd7kit_singlecell"]["normalize"]["target_sum"])
    sc.pp.log1p(b)
    assert np.allclose(mine, b.X.toarray(), atol=1e-5)
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32  # counts untouched


def test_qc_flags_planted_bad_cells():
    a = simulate(1400, 2, seed=8, n_genes=300)
    X = a.X.tolil()
    mt = [i for i, g in enumerate(a.var_names) if g.startswith("MT-")]
    bad = np.arange(0, 1400, 100)
    for i in bad:
        X[i, mt[0]] = 2000  # > 8 % mitochondrial
    a.X = sp.csr_matrix(X, dtype=np.float32)
    tab = pp.qc(a, "sample", filter_cells=False)
    assert a.obs["qc_outlier"].iloc[bad].all()
    assert a.obs["qc_outlier"].mean() < 0.1
    assert tab["n_cells"].sum() == 1400


def test_threshold_minimum_on_bimodal():
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(0.1, 0.03, 2000), rng.normal(0.6, 0.05, 500)]
    t = pp.threshold_minimum(v)
    assert 0.2 < t < 0.5


def test_hvg_batch_aware_finds_markers():
    a = simulate(1500, 3, seed=9, n_genes=600)
    pp.normalize(a)
    pp.highly_variable(a, n_top_genes=150, batch_key="sample")
    hv = set(a.var_names[a.var["highly_variable"]])
    assert {"CD3E", "MS4A1", "LYZ", "PPBP"} <= hv
    assert a.var["highly_variable"].sum() == 150
