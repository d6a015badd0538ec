"""Preprocessing (scanpy-style ``pp``): QC, doublets, shifted-log normalisation, HVGs, PCA, graph.

Memory-lean by design (docs/singlecell.md, "Scale"): ``adata.X`` holds the raw counts as one
float32 CSR matrix and is never copied or densified. Normalisation stores per-cell size factors
(``obs['size_factor']``); log-normalised values are computed on the fly, only for the genes a step
needs (:func:`lognorm`), chunk by chunk. HVGs use Seurat-flavour dispersions computed from sparse
sums per batch; PCA runs on the HVG columns with implicit centring (scanpy's sparse PCA).

Defaults follow sc-best-practices (Heumos L et al., Nat Rev Genet 2023;24:550, QC chapter:
outliers at 5 MADs of log1p total counts, log1p detected genes and % counts in the top 20 genes;
3 MADs of % mitochondrial counts or > 8 %), doublets by Scrublet (Wolock SL et al., Cell Syst
2019;8:281; scanpy's ``sc.pp.scrublet``), shifted-log normalisation (Ahlmann-Eltze C, Huber W, Nat
Methods 2023;20:665), Seurat-flavour HVGs (Satija R et al., Nat Biotechnol 2015;33:495), kNN 15,
Leiden (Traag VA et al., Sci Rep 2019;9:5233; igraph flavour, 2 iterations), UMAP (McInnes L et
al., 2018). Seeds and thread counts are fixed and package versions written to
``uns['cd7kit_singlecell']`` because neighbour graphs and Leiden/UMAP are not reproducible across
thread counts or versions (scanpy issues #2014, #2956).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cd7kit.errors import InputError, Problem

UNS_KEY = "cd7kit_singlecell"
Progress = Callable[[str], None]

#: sc-best-practices QC defaults (see module docstring).
QC_DEFAULTS: dict[str, float] = {"nmads_counts": 5, "nmads_genes": 5, "nmads_top20": 5, "nmads_mt": 3, "mt_max_pct": 8.0}


def _noop(_: str) -> None:
    return None


def _uns(adata) -> dict:
    if UNS_KEY not in adata.uns:
        adata.uns[UNS_KEY] = {}
    return adata.uns[UNS_KEY]


def versions() -> dict[str, str]:
    """Versions of the packages whose results the pipeline depends on."""
    import importlib.metadata as md

    out: dict[str, str] = {}
    for pkg in ("cd7kit", "scanpy", "anndata", "numpy", "scipy", "scikit-learn", "igraph", "leidenalg",
                "umap-learn", "pynndescent", "pydeseq2", "decoupler", "numba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def set_threads(n_threads: int = 1) -> None:
    """Fix thread counts (BLAS/OpenMP via threadpoolctl, numba) so graphs are reproducible."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n_threads)
    numba.set_num_threads(max(1, min(n_threads, int(numba.config.NUMBA_NUM_THREADS))))  # type: ignore[attr-defined]
    os.environ["OMP_NUM_THREADS"] = str(n_threads)


def check_counts(adata) -> sp.csr_matrix:
    """Make ``adata.X`` a float32 CSR of non-negative counts (converted in place, no second copy kept)."""
    X = adata.X
    if not sp.issparse(X):
        X = sp.csr_matrix(np.asarray(X, dtype=np.float32))
    elif X.format != "csr" or not isinstance(X, sp.csr_matrix):
        X = sp.csr_matrix(X)
    if X.dtype != np.float32:
        X = X.astype(np.float32)
    if X.nnz and (X.data.min() < 0 or not np.allclose(X.data[: min(X.nnz, 100_000)] % 1, 0)):
        raise InputError([Problem("adata.X must hold raw UMI counts (non-negative integers)", "X", None, None,
                                  f"min={X.data.min():.3g}", "raw counts")])
    adata.X = X
    return X


@numba.njit(cache=True)
def _top_k_sum(indptr: np.ndarray, data: np.ndarray, k: int) -> np.ndarray:  # pragma: no cover - compiled
    n = indptr.shape[0] - 1
    out = np.zeros(n, np.float64)
    for i in range(n):
        row = data[indptr[i]:indptr[i + 1]]
        if row.shape[0] <= k:
            out[i] = row.sum()
        else:
            out[i] = -np.partition(-row, k - 1)[:k].sum()
    return out


def _mad_outlier(x: np.ndarray, nmads: float) -> np.ndarray:
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad == 0:
        return np.zeros(x.shape, bool)
    return (x < med - nmads * mad) | (x > med + nmads * mad)


def qc(
    adata,
    sample_key: str | None = None,
    *,
    nmads_counts: float = 5,
    nmads_genes: float = 5,
    nmads_top20: float = 5,
    nmads_mt: float = 3,
    mt_max_pct: float = 8.0,
    mt_prefix: str = "MT-",
    filter_cells: bool = True,
) -> pd.DataFrame:
    """Per-sample MAD-based QC (sc-best-practices defaults); returns the per-sample QC table.

    Adds ``obs``: ``total_counts``, ``n_genes``, ``pct_top20``, ``pct_mt``, ``qc_outlier``,
    ``qc_reason``; removes the outliers in place when ``filter_cells``.
    """
    X = check_counts(adata)
    total = np.asarray(X.sum(axis=1)).ravel()
    n_genes = np.diff(X.indptr)
    top20 = _top_k_sum(X.indptr, X.data, 20)
    mt = np.asarray([str(g).upper().startswith(mt_prefix) for g in adata.var_names])
    mt_counts = np.asarray(X[:, np.flatnonzero(mt)].sum(axis=1)).ravel() if mt.any() else np.zeros(adata.n_obs)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct_top = np.where(total > 0, 100 * top20 / total, 0.0)
        pct_mt = np.where(total > 0, 100 * mt_counts / total, 0.0)
    groups = adata.obs[sample_key].astype(str).to_numpy() if sample_key else np.zeros(adata.n_obs, dtype=object)
    reason = np.full(adata.n_obs, "", dtype=object)
    out = np.zeros(adata.n_obs, bool)
    rows = []
    for g in pd.unique(groups):
        m = groups == g
        rc = _mad_outlier(np.log1p(total[m]), nmads_counts)
        rg = _mad_outlier(np.log1p(n_genes[m]), nmads_genes)
        rt = _mad_outlier(pct_top[m], nmads_top20)
        rm = _mad_outlier(pct_mt[m], nmads_mt) | (pct_mt[m] > mt_max_pct)
        rz = total[m] == 0
        r = np.full(m.sum(), "", dtype=object)
        for flag, name in ((rc, "counts"), (rg, "genes"), (rt, "top20"), (rm, "mt"), (rz, "empty")):
            r = np.where(flag, np.where(r == "", name, r + "," + name), r)
        reason[m] = r
        out[m] = r != ""
        rows.append({"sample": g, "n_cells": int(m.sum()), "n_outliers": int((r != "").sum()),
                     "median_counts": float(np.median(total[m])), "median_genes": float(np.median(n_genes[m])),
                     "median_pct_mt": float(np.median(pct_mt[m]))})
    adata.obs["total_counts"] = total.astype(np.float32)
    adata.obs["n_genes"] = n_genes.astype(np.int32)
    adata.obs["pct_top20"] = pct_top.astype(np.float32)
    adata.obs["pct_mt"] = pct_mt.astype(np.float32)
    adata.obs["qc_outlier"] = out
    adata.obs["qc_reason"] = pd.Categorical(reason)
    _uns(adata)["qc"] = {"nmads_counts": nmads_counts, "nmads_genes": nmads_genes, "nmads_top20": nmads_top20,
                         "nmads_mt": nmads_mt, "mt_max_pct": mt_max_pct, "n_removed": int(out.sum()),
                         "per_sample": sample_key or ""}
    if filter_cells and out.any():
        adata._inplace_subset_obs(~out)
    return pd.DataFrame(rows)


def threshold_minimum(values: np.ndarray, nbins: int = 256, max_iter: int = 10_000) -> float:
    """Minimum-method threshold (Prewitt JMS, Mendelsohn ML, Ann NY Acad Sci 1966;128:1035).

    The histogram is smoothed (3-bin mean) until it has exactly two maxima; the threshold is the
    lowest bin between them. Same rule as ``skimage.filters.threshold_minimum``, which Scrublet uses;
    re-implemented so scikit-image is not needed. Falls back to the 95th percentile when the
    histogram never becomes bimodal.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 10 or np.ptp(v) == 0:
        return float("inf")
    hist, edges = np.histogram(v, bins=nbins)
    centers = (edges[:-1] + edges[1:]) / 2
    h = hist.astype(float)
    for _ in range(max_iter):
        d = np.diff(h)
        maxima = np.flatnonzero((np.r_[d, -1] < 0) & (np.r_[1, d] > 0))
        if maxima.size == 2:
            lo, hi = maxima
            return float(centers[lo + int(np.argmin(h[lo:hi + 1]))])
        if maxima.size < 2:
            break
        h = np.convolve(np.pad(h, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    return float(np.quantile(v, 0.95))


def doublets(adata, sample_key: str | None = None, *, random_state: int = 0, filter_cells: bool = False,
             expected_doublet_rate: float = 0.05) -> pd.DataFrame:
    """Scrublet doublet scores per sample (scanpy's ``sc.pp.scrublet``; needs raw counts in ``X``).

    Adds ``obs['doublet_score']`` and ``obs['predicted_doublet']``; removes predicted doublets when
    ``filter_cells``. Returns the per-sample doublet rate.
    """
    import scanpy as sc

    check_counts(adata)
    scores = np.zeros(adata.n_obs, np.float32)
    pred = np.zeros(adata.n_obs, bool)
    groups = adata.obs[sample_key].astype(str).to_numpy() if sample_key else np.zeros(adata.n_obs, dtype=object)
    rows = []
    for g in pd.unique(groups):
        idx = np.flatnonzero(groups == g)
        import anndata as ad

        sub = ad.AnnData(X=adata.X[idx], var=pd.DataFrame(index=adata.var_names))
        n_pc = int(min(30, max(2, idx.size - 1), sub.n_vars - 1))
        if idx.size < 50:
            rows.append({"sample": g, "n_cells": int(idx.size), "doublet_rate": float("nan"), "note": "too few cells"})
            continue
        # threshold=1.0 only avoids scanpy's skimage requirement; the call is made below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sc.pp.scrublet(sub, random_state=random_state, n_prin_comps=n_pc, verbose=False, threshold=1.0,
                           expected_doublet_rate=expected_doublet_rate)
        scores[idx] = sub.obs["doublet_score"].to_numpy()
        thr = threshold_minimum(np.asarray(sub.uns["scrublet"]["doublet_scores_sim"]))
        # cap: never call more doublets than the expected rate (the minimum rule is unstable when
        # the simulated-doublet histogram is not bimodal, e.g. in doublet-free samples)
        thr = max(thr, float(np.quantile(scores[idx], 1 - expected_doublet_rate)))
        pred[idx] = scores[idx] > thr
        rows.append({"sample": g, "n_cells": int(idx.size), "doublet_rate": float(pred[idx].mean()), "note": ""})
        del sub
    adata.obs["doublet_score"] = scores
    adata.obs["predicted_doublet"] = pred
    _uns(adata)["doublets"] = {"method": "scrublet (scanpy)", "random_state": random_state,
                               "expected_doublet_rate": expected_doublet_rate, "n_predicted": int(pred.sum())}
    if filter_cells and pred.any():
        adata._inplace_subset_obs(~pred)
    return pd.DataFrame(rows)


def normalize(adata, target_sum: float | None = None) -> None:
    """Shifted-log normalisation parameters: ``obs['size_factor'] = total / target`` (target: median total).

    The log-normalised value of gene g in cell i is ``log1p(x_ig / size_factor_i)``; see :func:`lognorm`.
    """
    X = check_counts(adata)
    total = np.asarray(X.sum(axis=1)).ravel().astype(np.float64)
    target = float(np.median(total[total > 0])) if target_sum is None else float(target_sum)
    sf = np.where(total > 0, total / target, 1.0)
    adata.obs["size_factor"] = sf.astype(np.float32)
    _uns(adata)["normalize"] = {"method": "shifted log: log1p(x / (total / target))", "target_sum": target}


def _size_factors(adata) -> np.ndarray:
    if "size_factor" not in adata.obs:
        normalize(adata)
    return adata.obs["size_factor"].to_numpy(dtype=np.float32)


def lognorm(adata, genes: Sequence[str] | np.ndarray | None = None, rows: np.ndarray | slice | None = None) -> sp.csr_matrix:
    """Log-normalised values (float32 CSR) for the given genes (all when None) and rows.

    Only the selected columns' counts are copied; with ``genes=None`` the result shares no memory
    with ``X`` but has the same sparsity.
    """
    X = check_counts(adata)
    sf = _size_factors(adata)
    if rows is not None:
        X = X[rows]
        sf = sf[rows]
    if genes is not None:
        idx = adata.var_names.get_indexer(list(genes)) if not isinstance(genes, np.ndarray) or genes.dtype.kind not in "iub" else genes
        if isinstance(idx, np.ndarray) and idx.dtype.kind == "b":
            idx = np.flatnonzero(idx)
        if (np.asarray(idx) < 0).any():
            raise KeyError("genes not in var_names")
        X = X[:, idx]
    else:
        X = X.copy()
    X = sp.csr_matrix(X, dtype=np.float32)
    rep = np.repeat(sf, np.diff(X.indptr))
    np.log1p(X.data / rep, out=X.data)
    return X


def highly_variable(adata, n_top_genes: int = 2000, batch_key: str | None = None, *, n_bins: int = 20,
                    exclude: Sequence[str] = (), chunk: int = 100_000) -> pd.DataFrame:
    """Batch-aware Seurat-flavour HVGs from sparse sums (no log matrix is built).

    Per batch: mean and variance of normalised counts (x / size_factor), log dispersion
    standardised within 20 mean bins (Satija 2015, scanpy ``flavor='seurat'``); genes ranked by the
    number of batches in which they are among the top ``n_top_genes``, then by mean normalised
    dispersion (scanpy's batch rule). Adds ``var['highly_variable']`` and friends.
    """
    X = check_counts(adata)
    sf = _size_factors(adata)
    groups = adata.obs[batch_key].astype(str).to_numpy() if batch_key else np.zeros(adata.n_obs, dtype=object)
    ng = adata.n_vars
    excl = np.isin(np.asarray(adata.var_names), list(exclude))
    disp_norm_all = []
    ranks_in = np.zeros(ng, np.int32)
    means_all = np.zeros(ng)
    for g in pd.unique(groups):
        idx = np.flatnonzero(groups == g)
        s1 = np.zeros(ng)
        s2 = np.zeros(ng)
        for start in range(0, idx.size, chunk):
            rows = idx[start:start + chunk]
            sub = X[rows]
            vals = sub.data / np.repeat(sf[rows], np.diff(sub.indptr))
            s1 += np.bincount(sub.indices, weights=vals, minlength=ng)
            s2 += np.bincount(sub.indices, weights=vals * vals, minlength=ng)
        n = idx.size
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0) * n / max(n - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            disp = np.where(mean > 0, var / mean, np.nan)
            logd = np.log(np.where(disp > 0, disp, np.nan))
        logm = np.log1p(mean)
        df = pd.DataFrame({"m": logm, "d": logd})
        df["bin"] = pd.cut(df["m"], bins=n_bins)
        grp = df.groupby("bin", observed=True)["d"]
        mu = grp.transform("mean")
        sd = grp.transform("std")
        dn = ((df["d"] - mu) / sd.replace(0, np.nan)).to_numpy()
        dn[excl | (mean == 0)] = np.nan
        disp_norm_all.append(dn)
        order = np.argsort(-np.nan_to_num(dn, nan=-np.inf))
        top = order[: min(n_top_genes, np.isfinite(dn).sum())]
        ranks_in[top] += 1
        means_all += mean * n
    means_all /= adata.n_obs
    stack = np.vstack(disp_norm_all)
    with np.errstate(all="ignore"):
        cnt = np.isfinite(stack).sum(axis=0)
        dn_mean = np.where(cnt > 0, np.nansum(stack, axis=0) / np.maximum(cnt, 1), np.nan)
    key = pd.DataFrame({"nb": ranks_in, "dn": np.nan_to_num(dn_mean, nan=-np.inf)})
    order = key.sort_values(["nb", "dn"], ascending=[False, False], kind="stable").index.to_numpy()
    hv = np.zeros(ng, bool)
    hv[order[:n_top_genes]] = True
    hv &= (ranks_in > 0) | (np.isfinite(dn_mean) & ~excl)
    adata.var["highly_variable"] = hv
    adata.var["means"] = means_all.astype(np.float32)
    adata.var["dispersions_norm"] = dn_mean.astype(np.float32)
    adata.var["highly_variable_nbatches"] = ranks_in
    _uns(adata)["hvg"] = {"flavor": "seurat (cd7kit sparse implementation)", "n_top_genes": n_top_genes,
                          "batch_key": batch_key or "", "n_bins": n_bins, "n_selected": int(hv.sum())}
    return adata.var.loc[hv, ["means", "dispersions_norm", "highly_variable_nbatches"]]


def pca(adata, n_comps: int = 50, *, svd_solver: str = "arpack", random_state: int = 0) -> None:
    """PCA of the log-normalised HVG columns with implicit centring (no dense matrix is formed)."""
    import scanpy as sc

    if "highly_variable" not in adata.var:
        highly_variable(adata)
    hv = np.flatnonzero(adata.var["highly_variable"].to_numpy())
    M = lognorm(adata, hv)
    n_comps = int(min(n_comps, M.shape[0] - 1, M.shape[1] - 1))
    res = sc.pp.pca(M, n_comps=n_comps, zero_center=True, svd_solver=svd_solver, random_state=random_state,
                    return_info=True)
    comps, loadings, var_ratio, var = res
    adata.obsm["X_pca"] = np.asarray(comps, dtype=np.float32)
    pcs = np.zeros((adata.n_vars, n_comps), np.float32)
    pcs[hv] = np.asarray(loadings).T
    adata.varm["PCs"] = pcs
    adata.uns["pca"] = {"variance_ratio": np.asarray(var_ratio), "variance": np.asarray(var),
                        "params": {"zero_center": True, "use_highly_variable": True, "mask_var": "highly_variable"}}
    _uns(adata)["pca"] = {"n_comps": n_comps, "svd_solver": svd_solver, "implicit_centering": True,
                          "random_state": random_state}


class _NNDescentCSR:
    """pynndescent's kNN transformer, returning ``scipy.sparse.csr_matrix``.

    pynndescent 0.7 returns ``csr_array``, which scanpy 1.11 cannot read (``getnnz``; spec
    singlecell.md 2.2). Same parameters as scanpy's own pynndescent call.
    """

    def __init__(self, n_neighbors: int, n_obs: int, random_state: int = 0, metric: str = "euclidean"):
        from pynndescent import PyNNDescentTransformer

        self._t = PyNNDescentTransformer(
            n_neighbors=n_neighbors, metric=metric, random_state=random_state, n_jobs=None,
            n_trees=min(64, 5 + int(round((n_obs**0.5) / 20.0))), n_iters=max(5, int(round(np.log2(n_obs)))),
        )

    def fit(self, X, y=None):
        self._t.fit(X)
        return self

    def transform(self, X):
        return sp.csr_matrix(self._t.transform(X))

    def fit_transform(self, X, y=None):
        return sp.csr_matrix(self._t.fit_transform(X))

    def get_params(self, deep: bool = True) -> dict:
        return self._t.get_params(deep)

    def set_params(self, **params):
        self._t.set_params(**params)
        return self


def neighbors(adata, n_neighbors: int = 15, n_pcs: int | None = None, random_state: int = 0,
              method: str = "umap") -> None:
    """kNN graph on ``X_pca`` (scanpy ``pp.neighbors``, fixed seed; ``method='gauss'`` avoids umap's JIT)."""
    import scanpy as sc

    transformer: Any = None
    if adata.n_obs >= 8192:  # scanpy would pick pynndescent here; use the csr_matrix-safe wrapper
        transformer = _NNDescentCSR(n_neighbors, adata.n_obs, random_state=random_state)
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, n_pcs=n_pcs, use_rep="X_pca", random_state=random_state,
                    method=method, transformer=transformer)  # type: ignore[arg-type]
    _uns(adata)["neighbors"] = {"n_neighbors": n_neighbors, "random_state": random_state, "method": method}


def leiden(adata, resolution: float = 1.0, key_added: str = "leiden", random_state: int = 0) -> None:
    """Leiden clusters (igraph flavour, 2 iterations, undirected, fixed seed)."""
    import scanpy as sc

    sc.tl.leiden(adata, resolution=resolution, key_added=key_added, flavor="igraph", n_iterations=2,
                 directed=False, random_state=random_state)
    _uns(adata)["leiden"] = {"resolution": resolution, "flavor": "igraph", "n_iterations": 2, "random_state": random_state}


def umap(adata, random_state: int = 0) -> None:
    """UMAP embedding (scanpy ``tl.umap``, fixed seed)."""
    import scanpy as sc

    sc.tl.umap(adata, random_state=random_state)
    _uns(adata)["umap"] = {"random_state": random_state}


def gpu_available() -> bool:
    """True when the optional rapids-singlecell GPU path can be used (never installed by cd7kit)."""
    try:
        import rapids_singlecell  # noqa: F401
    except Exception:
        return False
    return True


def _gpu_graph(adata, n_neighbors: int, resolution: float, random_state: int, do_umap: bool) -> None:  # pragma: no cover
    """The GPU path (rapids-singlecell mirrors scanpy's API); only taken when it is importable."""
    import rapids_singlecell as rsc

    rsc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="X_pca", random_state=random_state)
    rsc.tl.leiden(adata, resolution=resolution, random_state=random_state)
    if do_umap:
        rsc.tl.umap(adata, random_state=random_state)


def run(
    adata,
    sample_key: str,
    *,
    batch_key: str | None = None,
    n_top_genes: int = 2000,
    n_comps: int = 50,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    do_qc: bool = True,
    do_doublets: bool = True,
    do_umap: bool = True,
    exclude_from_hvg: Sequence[str] = (),
    n_threads: int = 1,
    random_state: int = 0,
    use_gpu: bool = False,
    graph_method: str = "umap",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The whole preprocessing: QC -> doublets -> normalise -> HVG -> PCA -> kNN -> Leiden -> UMAP.

    Returns the QC and doublet tables. ``batch_key`` defaults to ``sample_key``.
    """
    step = progress or _noop
    set_threads(n_threads)
    u = _uns(adata)
    u["versions"] = versions()
    u["n_threads"] = n_threads
    u["random_state"] = random_state
    out: dict[str, Any] = {}
    if sample_key not in adata.obs:
        raise InputError([Problem(f"obs has no column {sample_key!r}", "obs", None, sample_key)])
    check_counts(adata)
    if do_qc:
        step("QC (per-sample MAD thresholds)")
        out["qc"] = qc(adata, sample_key)
    if do_doublets:
        step("doublet scores (scrublet)")
        out["doublets"] = doublets(adata, sample_key, random_state=random_state)
    step("normalisation (shifted log)")
    normalize(adata)
    step("highly variable genes")
    highly_variable(adata, n_top_genes=n_top_genes, batch_key=batch_key or sample_key, exclude=exclude_from_hvg)
    step("PCA (implicit centring)")
    pca(adata, n_comps=n_comps, random_state=random_state)
    gpu = use_gpu and gpu_available()
    u["gpu"] = bool(gpu)
    if gpu:  # pragma: no cover - needs a GPU
        step("graph, Leiden, UMAP on GPU (rapids-singlecell)")
        _gpu_graph(adata, n_neighbors, resolution, random_state, do_umap)
        return out
    step("neighbours")
    neighbors(adata, n_neighbors=n_neighbors, random_state=random_state, method=graph_method)
    step("Leiden")
    leiden(adata, resolution=resolution, random_state=random_state)
    if do_umap:
        step("UMAP")
        umap(adata, random_state=random_state)
    return out


__all__ = ["qc", "doublets", "normalize", "lognorm", "highly_variable", "pca", "neighbors", "leiden", "umap",
           "run", "set_threads", "versions", "check_counts", "gpu_available", "QC_DEFAULTS", "UNS_KEY"]
