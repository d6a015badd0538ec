"""The planted-truth simulator: sparse float32 counts, truth columns, CD7 dropout, partial CAR detection."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cd7kit.singlecell.sim import BASE_COMPOSITION, simulate


def test_sparse_float32_and_truth():
    a = simulate(1400, 7, seed=2, n_genes=400)
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    assert a.n_obs == 1400 and a.n_vars == 400
    assert np.all(a.X.data > 0) and np.allclose(a.X.data % 1, 0)
    assert set(a.obs["true_cell_type"].cat.categories) == set(BASE_COMPOSITION)
    assert a.obs["patient"].nunique() == 7 and a.obs["timepoint"].nunique() == 2
    # same seed -> same counts; another seed -> different
    b = simulate(1400, 7, seed=2, n_genes=400)
    assert (a.X != b.X).nnz == 0
    c = simulate(1400, 7, seed=3, n_genes=400)
    assert (a.X != c.X).nnz > 0


def test_cd7_dropout_and_car_detection():
    a = simulate(4000, 7, seed=5, n_genes=400, car_detection=0.5)
    cd7 = np.asarray(a[:, "CD7"].X.todense()).ravel() > 0
    ct = a.obs["true_cell_type"].astype(str).to_numpy()
    tpos = np.isin(ct, ["CD4 naive T", "CD4 memory T", "CD8 T"])
    # CD7+ T cells drop out often (detected in well under 90 %) but far more than CD7- T cells
    assert 0.3 < cd7[tpos].mean() < 0.9
    assert cd7[ct == "CD7- T"].mean() < 0.05
    car = np.asarray(a[:, "CAR"].X.todense()).ravel() > 0
    truth = a.obs["true_car"].to_numpy()
    assert truth.sum() > 50
    assert not car[~truth].any()
    assert abs(car[truth].mean() - 0.5) < 0.1


def test_planted_shifts_in_truth():
    a = simulate(3000, 7, seed=7, n_genes=400)
    comp = a.obs.groupby(["timepoint", "true_cell_type"], observed=False).size().unstack()
    frac = comp.div(comp.sum(axis=1), axis=0)
    assert frac.loc["d14", "CD7- T"] > 3 * frac.loc["pre", "CD7- T"]
    assert frac.loc["d14", "CD8 T"] < 0.3 * frac.loc["pre", "CD8 T"]
    null = simulate(3000, 7, seed=7, n_genes=400, planted=False)
    comp = null.obs.groupby(["timepoint", "true_cell_type"], observed=False).size().unstack()
    frac = comp.div(comp.sum(axis=1), axis=0)
    assert abs(frac.loc["d14", "CD8 T"] - frac.loc["pre", "CD8 T"]) < 0.05
