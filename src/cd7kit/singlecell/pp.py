"""Preprocessing (scanpy-style ``pp``): QC, doublets, shifted-log normalisation, HVGs, PCA, graph.

Memory-lean by design (docs/singlecell.md, "Scale"): ``adata.X`` holds the raw counts as one
float32 CSR matrix and is never copied or densified. Normalisation stores per-cell size factors
(``obs['size_factor']``); log-normalised values are computed on the fly, only for the genes a step
needs (:func:`lognorm`), chunk by chunk. HVGs use Seurat-flavour dispersions computed from sparse
sums per batch; PCA is the exact eigendecomposition of the HVG covariance, accumulated block by
block (no dense or centred copy of the matrix).

Two backends, one pipeline. Every step reads the counts through :func:`iter_blocks` (row blocks of
``X``): with ``X`` an in-memory CSR the blocks are row slices; with ``X`` a dask array (``read(path,
backend="dask")``: anndata's ``read_elem_lazy`` over the .h5ad/.zarr on disk) the blocks are read
from disk as they are needed, a few at a time, so the count matrix is never in memory as a whole
(out-of-core; docs/singlecell.md, "Scale"). The backend is chosen by how the data are opened, not by
a second copy of the pipeline.

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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cd7kit.errors import Cd7kitError, InputError, Problem

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
                "umap-learn", "pynndescent", "pydeseq2", "decoupler", "numba", "dask", "h5py"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def set_threads(n_threads: int = 1) -> None:
    """Fix thread counts (BLAS/OpenMP via threadpoolctl, numba, dask's threaded scheduler)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n_threads)
    numba.set_num_threads(max(1, min(n_threads, int(numba.config.NUMBA_NUM_THREADS))))  # type: ignore[attr-defined]
    os.environ["OMP_NUM_THREADS"] = str(n_threads)
    try:
        import dask
    except ImportError:
        return
    dask.config.set(scheduler="threads", num_workers=max(1, n_threads))


# --- backends: in-memory CSR or a dask array read from disk block by block -----------------------

BACKENDS = ("memory", "dask")
#: Rows per block of the in-memory backend (views, no copy; the dask backend uses the array's own chunks).
BLOCK_ROWS = 20_000
#: Default cells per block read from disk by the dask backend: 5,000 cells x ~2,300 genes ~ 90 MB;
#: measured at 100,000 cells, 5,000-cell blocks need half the memory of 20,000-cell blocks at equal time.
DASK_BLOCK_ROWS = 5_000


def is_lazy(X: Any) -> bool:
    """True when ``X`` is a dask array (the out-of-core backend)."""
    return type(X).__module__.split(".")[0] == "dask"


def backend(adata) -> str:
    """``'dask'`` when ``adata.X`` is a dask array, else ``'memory'``."""
    return "dask" if is_lazy(adata.X) else "memory"


def read(path: str | os.PathLike, *, backend: str = "memory", chunk_size: int = DASK_BLOCK_ROWS):
    """Open an .h5ad file or .zarr store with raw counts in ``X``.

    ``backend='memory'`` reads everything (``anndata.read_h5ad`` / ``read_zarr``). ``backend='dask'``
    reads ``obs``, ``var``, ``uns`` and ``obsm`` but leaves ``X`` on disk as a dask array of CSR
    row blocks of ``chunk_size`` cells (anndata's ``read_elem_lazy``; the file is opened per block,
    so blocks can be read by several threads). ``X`` must be stored as CSR (or dense) for row blocks.
    """
    import anndata as ad

    p = Path(path)
    if backend not in BACKENDS:
        raise InputError([Problem("unknown backend", None, None, "backend", backend, " or ".join(BACKENDS))])
    if not p.exists():
        raise InputError([Problem("file not found", str(p))])
    is_zarr = p.suffix == ".zarr" or p.is_dir()
    if not is_zarr and p.suffix != ".h5ad":
        raise InputError([Problem("not an AnnData file", str(p), None, None, p.suffix, ".h5ad file or .zarr store")])
    if backend == "memory":
        return ad.read_zarr(p) if is_zarr else ad.read_h5ad(p)
    try:
        import dask  # noqa: F401
    except ImportError as exc:  # pragma: no cover - dask is in the [scale] extra
        raise ImportError("backend='dask' needs dask: pip install 'cd7kit[scale]'") from exc
    if chunk_size < 1:
        raise InputError([Problem("chunk size must be positive", None, None, "chunk_size", chunk_size, ">= 1")])
    read_lazy = getattr(ad.experimental, "read_elem_lazy", None) or ad.experimental.read_elem_as_dask  # anndata < 0.11
    if is_zarr:
        import zarr

        g: Any = zarr.open(str(p), mode="r")
        handle = None
    else:
        import h5py

        handle = h5py.File(p, "r")
        g = handle
    try:
        if "X" not in g:
            raise InputError([Problem("no X in the file", str(p), None, "X")])
        enc = str(g["X"].attrs.get("encoding-type", "array"))
        if enc == "csc_matrix":
            raise InputError([Problem("X is stored as CSC; row blocks need CSR (rewrite with X as CSR)", str(p), None,
                                      "X", enc, "csr_matrix or dense")])
        obs = ad.io.read_elem(g["obs"])
        var = ad.io.read_elem(g["var"])
        uns = ad.io.read_elem(g["uns"]) if "uns" in g else {}
        obsm = ad.io.read_elem(g["obsm"]) if "obsm" in g else {}
        X = read_lazy(g["X"], chunks=(int(chunk_size), len(var)))
    finally:
        if handle is not None:
            handle.close()  # h5 blocks re-open the file by path
    return ad.AnnData(X=X, obs=obs, var=var, uns=uns, obsm=obsm)


def _n_workers() -> int:
    try:
        import dask
    except ImportError:  # pragma: no cover
        return 1
    return max(1, int(dask.config.get("num_workers", None) or 1))


def _csr32(B: Any) -> sp.csr_matrix:
    if not sp.issparse(B):
        B = sp.csr_matrix(np.asarray(B, dtype=np.float32))
    elif B.format != "csr" or not isinstance(B, sp.csr_matrix):
        B = sp.csr_matrix(B)
    if B.dtype != np.float32:
        B = B.astype(np.float32)
    return B


def _row_block(X: sp.csr_matrix, s: int, e: int) -> sp.csr_matrix:
    """Rows ``s:e`` of a CSR as a CSR whose data and indices are views (no copy, unlike ``X[s:e]``)."""
    a, b = int(X.indptr[s]), int(X.indptr[e])
    B = sp.csr_matrix((X.data[a:b], X.indices[a:b], X.indptr[s:e + 1] - a), shape=(e - s, X.shape[1]), copy=False)
    B.has_sorted_indices = X.has_sorted_indices
    return B


def _apply(fn: Callable, B: Any, start: int, stop: int) -> Any:
    return fn(_csr32(B), start, stop)


def iter_blocks(adata, fn: Callable[[sp.csr_matrix, int, int], Any], *, block_rows: int = BLOCK_ROWS,
                rows: tuple[int, int] | None = None) -> Iterator[tuple[int, int, Any]]:
    """Apply ``fn(block, start, stop)`` to consecutive row blocks of the counts; yields ``(start, stop, result)``.

    ``block`` is a float32 CSR of rows ``start:stop``. In memory the blocks are slices of ``X``; for a
    dask ``X`` they are its chunks, computed ``num_workers`` at a time with dask's threaded
    scheduler (only those blocks are in memory at once). ``rows=(lo, hi)`` skips blocks outside it.
    """
    X = adata.X
    n = adata.n_obs
    lo, hi = rows if rows is not None else (0, n)
    if not is_lazy(X):
        X = check_counts(adata)
        for s in range(0, n, block_rows):
            e = min(s + block_rows, n)
            if e <= lo or s >= hi:
                continue
            yield s, e, fn(_row_block(X, s, e), s, e)
        return
    import dask

    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    bounds = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
    blocks = X.to_delayed().ravel()
    todo = [j for j in range(len(blocks)) if bounds[j + 1] > lo and bounds[j] < hi and bounds[j + 1] > bounds[j]]
    nw = _n_workers()
    from threadpoolctl import threadpool_limits

    for i in range(0, len(todo), nw):
        batch = todo[i:i + nw]
        tasks = [dask.delayed(_apply)(fn, blocks[j], int(bounds[j]), int(bounds[j + 1])) for j in batch]
        # nw blocks run at once: one BLAS thread each (no oversubscription); restored before yielding
        with threadpool_limits(1 if nw > 1 else None):
            results = dask.compute(*tasks, scheduler="threads", num_workers=nw)
        for j, r in zip(batch, results, strict=True):
            yield int(bounds[j]), int(bounds[j + 1]), r


def _gene_index(adata, genes: Sequence[str] | np.ndarray | None) -> np.ndarray | None:
    if genes is None:
        return None
    g = np.asarray(genes)
    if g.dtype.kind == "b":
        return np.flatnonzero(g)
    if g.dtype.kind in "iu":
        return g.astype(np.int64)
    idx = adata.var_names.get_indexer(list(genes))
    if (idx < 0).any():
        raise KeyError(f"genes not in var_names: {list(np.asarray(list(genes))[idx < 0])[:5]}")
    return idx


def _row_index(n: int, rows: np.ndarray | slice | None) -> np.ndarray | None:
    if rows is None:
        return None
    if isinstance(rows, slice):
        return np.arange(n)[rows]
    r = np.asarray(rows)
    return np.flatnonzero(r) if r.dtype.kind == "b" else r.astype(np.int64)


def counts(adata, genes: Sequence[str] | np.ndarray | None = None,
           rows: np.ndarray | slice | None = None) -> sp.csr_matrix:
    """Raw counts of the selected genes (names, indices or mask; all when None) and rows, as a new
    in-memory float32 CSR (never a view of ``X``). With the dask backend only these columns and rows
    are gathered, block by block."""
    cols = _gene_index(adata, genes)
    X = adata.X
    if not is_lazy(X):
        X = check_counts(adata)
        M = X[rows] if rows is not None else X
        M = M[:, cols] if cols is not None else M
        if M is X:
            M = X.copy()
        return _csr32(M)
    ridx = _row_index(adata.n_obs, rows)
    order = None
    if ridx is not None and ridx.size and np.any(np.diff(ridx) < 0):
        order = np.argsort(ridx, kind="stable")
        ridx = ridx[order]

    def take(B: sp.csr_matrix, s: int, e: int) -> sp.csr_matrix:
        if ridx is not None:
            a, b = np.searchsorted(ridx, [s, e])
            B = B[ridx[a:b] - s]
        return B[:, cols] if cols is not None else B

    span = None if ridx is None or not ridx.size else (int(ridx[0]), int(ridx[-1]) + 1)
    ncol = adata.n_vars if cols is None else len(cols)
    parts = [r for _, _, r in iter_blocks(adata, take, rows=span)] if ridx is None or ridx.size else []
    M = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, ncol), dtype=np.float32)
    if order is not None:
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        M = M[inv]
    return _csr32(M)


def row_sums(adata) -> np.ndarray:
    """Total counts per cell (float64), block by block."""
    # float32 sums of integer counts are exact below 2^24 per cell; no float64 copy of the block
    parts = [r for _, _, r in iter_blocks(adata, lambda B, s, e: np.asarray(B.sum(axis=1)).ravel().astype(np.float64))]
    return np.concatenate(parts) if parts else np.zeros(0)


_CHECKED_LAZY: set[str] = set()


def check_counts(adata) -> Any:
    """Make an in-memory ``adata.X`` a float32 CSR of non-negative counts (converted in place, no second
    copy kept). A dask ``X`` is checked on its first block only (blocks are converted as they are read)."""
    X = adata.X
    if is_lazy(X):
        if X.name in _CHECKED_LAZY:
            return X
        if X.ndim != 2 or X.dtype.kind not in "iuf":
            raise InputError([Problem("adata.X must be a 2-d numeric matrix of raw counts", "X", None, None, str(X.dtype))])
        if X.shape[0] and X.chunks[0][0]:
            _validate_counts(_csr32(X.blocks[0, 0].compute() if len(X.chunks[1]) == 1 else X[: X.chunks[0][0]].compute()))
        _CHECKED_LAZY.add(X.name)  # a dask name identifies its graph: checked once, not once per step
        return X
    X = _csr32(X)
    _validate_counts(X)
    adata.X = X
    return X


def _validate_counts(X: sp.csr_matrix) -> None:
    if X.nnz and (X.data.min() < 0 or not np.allclose(X.data[: min(X.nnz, 100_000)] % 1, 0)):
        raise InputError([Problem("adata.X must hold raw UMI counts (non-negative integers)", "X", None, None,
                                  f"min={X.data.min():.3g}", "raw counts")])


@numba.njit(cache=True)
def _row_qc(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, is_mt: np.ndarray, k: int):  # pragma: no cover
    """Per row: total counts, detected genes, sum of the top ``k`` counts, mitochondrial counts."""
    n = indptr.shape[0] - 1
    out = np.zeros((n, 4))
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        tot = 0.0
        mt = 0.0
        for j in range(a, b):
            tot += data[j]
            if is_mt[indices[j]]:
                mt += data[j]
        out[i, 0] = tot
        out[i, 1] = b - a
        if b - a <= k:
            out[i, 2] = tot
        else:
            out[i, 2] = -np.partition(-data[a:b], k - 1)[:k].sum()
        out[i, 3] = mt
    return out


@numba.njit(cache=True)
def _compact_rows(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, keep: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Move the kept rows' entries forward in place; returns the new row pointer."""
    new_ptr = np.zeros(keep.sum() + 1, indptr.dtype)
    p = 0
    r = 0
    for i in range(indptr.shape[0] - 1):
        if keep[i]:
            a = indptr[i]
            m = indptr[i + 1] - a
            if a != p:
                for j in range(m):
                    indices[p + j] = indices[a + j]
                    data[p + j] = data[a + j]
            p += m
            r += 1
            new_ptr[r] = p
    return new_ptr


def subset_cells(adata, keep: np.ndarray) -> None:
    """Keep the cells where ``keep`` is True, in place, without a second copy of the counts.

    An in-memory CSR ``X`` is compacted in its own buffers (the matrix object is updated, so other
    references to it see the subset); anndata's own subsetting would copy ``X`` (twice the memory at
    the peak). A dask ``X`` is subset lazily.
    """
    keep = np.asarray(keep, bool)
    X = adata.X
    if keep.all():
        return
    if is_lazy(X) or not isinstance(X, sp.csr_matrix) or adata.is_view or adata.raw is not None or len(adata.layers):
        adata._inplace_subset_obs(keep)
        if is_lazy(X) and X.name in _CHECKED_LAZY:
            _CHECKED_LAZY.add(adata.X.name)  # rows of checked counts are checked counts
        return
    new_ptr = _compact_rows(X.indptr, X.indices, X.data, keep)
    nnz = int(new_ptr[-1])
    adata.X = None
    adata._inplace_subset_obs(keep)
    X.indptr, X.indices, X.data = new_ptr, X.indices[:nnz], X.data[:nnz]
    X._shape = (int(keep.sum()), X.shape[1])
    adata.X = X


@numba.njit(cache=True)
def _group_moments(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, sf: np.ndarray, group: np.ndarray,
                   n_groups: int, n_genes: int):  # pragma: no cover - compiled
    """Per group and gene: sum and sum of squares of x / size_factor (no temporaries)."""
    s1 = np.zeros((n_groups, n_genes))
    s2 = np.zeros((n_groups, n_genes))
    for i in range(indptr.shape[0] - 1):
        g = group[i]
        f = 1.0 / sf[i]
        for k in range(indptr[i], indptr[i + 1]):
            v = data[k] * f
            s1[g, indices[k]] += v
            s2[g, indices[k]] += v * v
    return s1, s2


def _mad_outlier(x: np.ndarray, nmads: float) -> np.ndarray:
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad == 0:
        return np.zeros(x.shape, bool)
    return (x < med - nmads * mad) | (x > med + nmads * mad)


def qc_metrics(adata, mt_prefix: str = "MT-") -> pd.DataFrame:
    """Per-cell QC metrics in one pass over the counts: total counts, detected genes, % counts in the
    top 20 genes, % mitochondrial counts."""
    check_counts(adata)
    mt = np.asarray([str(g).upper().startswith(mt_prefix) for g in adata.var_names], dtype=np.bool_)
    parts = [r for _, _, r in iter_blocks(adata, lambda B, s, e: _row_qc(B.indptr, B.indices, B.data, mt, 20))]
    m = np.vstack(parts) if parts else np.zeros((0, 4))
    total = m[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        pct_top = np.where(total > 0, 100 * m[:, 2] / total, 0.0)
        pct_mt = np.where(total > 0, 100 * m[:, 3] / total, 0.0)
    return pd.DataFrame({"total_counts": total, "n_genes": m[:, 1].astype(np.int64), "pct_top20": pct_top,
                         "pct_mt": pct_mt}, index=adata.obs_names)


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
    ``qc_reason``; removes the outliers in place when ``filter_cells`` (lazily for a dask ``X``).
    """
    met = qc_metrics(adata, mt_prefix)
    total = met["total_counts"].to_numpy()
    n_genes = met["n_genes"].to_numpy()
    pct_top = met["pct_top20"].to_numpy()
    pct_mt = met["pct_mt"].to_numpy()
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
                         "per_sample": sample_key or "", "n_vars": int(adata.n_vars)}
    if filter_cells and out.any():
        subset_cells(adata, ~out)
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

    One sample's counts are in memory at a time (gathered block by block for a dask ``X``). Adds
    ``obs['doublet_score']`` and ``obs['predicted_doublet']``; removes predicted doublets when
    ``filter_cells``. Returns the per-sample doublet rate.
    """
    import anndata as ad
    import scanpy as sc

    check_counts(adata)
    scores = np.zeros(adata.n_obs, np.float32)
    pred = np.zeros(adata.n_obs, bool)
    groups = adata.obs[sample_key].astype(str).to_numpy() if sample_key else np.zeros(adata.n_obs, dtype=object)
    rows = []
    for g in pd.unique(groups):
        idx = np.flatnonzero(groups == g)
        if idx.size < 50:
            rows.append({"sample": g, "n_cells": int(idx.size), "doublet_rate": float("nan"), "note": "too few cells"})
            continue
        sub = ad.AnnData(X=counts(adata, rows=idx), var=pd.DataFrame(index=adata.var_names))
        n_pc = int(min(30, max(2, idx.size - 1), sub.n_vars - 1))
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
        subset_cells(adata, ~pred)
    return pd.DataFrame(rows)


def normalize(adata, target_sum: float | None = None) -> None:
    """Shifted-log normalisation parameters: ``obs['size_factor'] = total / target`` (target: median total).

    The log-normalised value of gene g in cell i is ``log1p(x_ig / size_factor_i)``; see :func:`lognorm`.
    Totals come from :func:`qc` when it ran on the same genes (saves a pass over the counts).
    """
    check_counts(adata)
    q = _uns(adata).get("qc", {})
    if "total_counts" in adata.obs and q.get("n_vars") == adata.n_vars:
        total = adata.obs["total_counts"].to_numpy(dtype=np.float64)
    else:
        total = row_sums(adata)
    target = float(np.median(total[total > 0])) if target_sum is None else float(target_sum)
    sf = np.where(total > 0, total / target, 1.0)
    adata.obs["size_factor"] = sf.astype(np.float32)
    _uns(adata)["normalize"] = {"method": "shifted log: log1p(x / (total / target))", "target_sum": target}


def _size_factors(adata) -> np.ndarray:
    if "size_factor" not in adata.obs:
        normalize(adata)
    return adata.obs["size_factor"].to_numpy(dtype=np.float32)


def _log_inplace(M: sp.csr_matrix, sf: np.ndarray) -> sp.csr_matrix:
    rep = np.repeat(sf.astype(np.float32), np.diff(M.indptr))
    np.log1p(M.data / rep, out=M.data)
    return M


def lognorm(adata, genes: Sequence[str] | np.ndarray | None = None, rows: np.ndarray | slice | None = None) -> sp.csr_matrix:
    """Log-normalised values (float32 CSR) for the given genes (all when None) and rows.

    Only the selected columns' counts are copied (:func:`counts`); the result never shares memory with ``X``.
    """
    sf = _size_factors(adata)
    M = counts(adata, genes, rows)
    return _log_inplace(M, sf[rows] if rows is not None else sf)


def highly_variable(adata, n_top_genes: int = 2000, batch_key: str | None = None, *, n_bins: int = 20,
                    exclude: Sequence[str] = ()) -> pd.DataFrame:
    """Batch-aware Seurat-flavour HVGs from sparse sums (no log matrix is built; one pass over the counts).

    Per batch: mean and variance of normalised counts (x / size_factor), log dispersion
    standardised within 20 mean bins (Satija 2015, scanpy ``flavor='seurat'``); genes ranked by the
    number of batches in which they are among the top ``n_top_genes``, then by mean normalised
    dispersion (scanpy's batch rule). Adds ``var['highly_variable']`` and friends.
    """
    check_counts(adata)
    sf = _size_factors(adata).astype(np.float64)
    groups = adata.obs[batch_key].astype(str).to_numpy() if batch_key else np.zeros(adata.n_obs, dtype=object)
    codes, uniq = pd.factorize(groups)
    ng = adata.n_vars
    n_groups = len(uniq)
    S1 = np.zeros((n_groups, ng))
    S2 = np.zeros((n_groups, ng))
    for _, _, (a, b) in iter_blocks(
        adata, lambda B, s, e: _group_moments(B.indptr, B.indices, B.data, sf[s:e], codes[s:e], n_groups, ng)
    ):
        S1 += a
        S2 += b
    excl = np.isin(np.asarray(adata.var_names), list(exclude))
    disp_norm_all = []
    ranks_in = np.zeros(ng, np.int32)
    means_all = np.zeros(ng)
    for k in range(n_groups):
        n = int((codes == k).sum())
        mean = S1[k] / n
        var = np.maximum(S2[k] / n - mean**2, 0) * n / max(n - 1, 1)
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
    means_all /= max(adata.n_obs, 1)
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


#: Rows densified at a time when the PCA accumulates the HVG covariance (10,000 x 2,000 float32 = 80 MB).
PCA_SUBBLOCK = 10_000


def _moments_dense(M: sp.csr_matrix) -> tuple[int, np.ndarray, np.ndarray]:
    """(n, mean, centred cross-product) of the rows of ``M``, merged over dense sub-blocks (Chan et al.)."""
    n_acc = 0
    mean_acc = np.zeros(M.shape[1])
    m2_acc = np.zeros((M.shape[1], M.shape[1]))
    for s in range(0, M.shape[0], PCA_SUBBLOCK):
        D = M[s:s + PCA_SUBBLOCK].toarray()
        nb = D.shape[0]
        mb = D.mean(axis=0, dtype=np.float64)
        D -= mb.astype(np.float32)
        m2b = (D.T @ D).astype(np.float64)
        n_acc, mean_acc, m2_acc = _merge_moments(n_acc, mean_acc, m2_acc, nb, mb, m2b)
    return n_acc, mean_acc, m2_acc


def _merge_moments(na: int, ma: np.ndarray, m2a: np.ndarray, nb: int, mb: np.ndarray, m2b: np.ndarray):
    if na == 0:
        return nb, mb, m2b
    n = na + nb
    d = mb - ma
    m2a += m2b
    m2a += np.outer(d, d) * (na * nb / n)
    return n, ma + d * (nb / n), m2a


def pca(adata, n_comps: int = 50, *, random_state: int = 0) -> None:
    """PCA of the log-normalised HVG columns: exact eigendecomposition of their covariance.

    Two passes over the counts, block by block: (1) mean and centred cross-products of the
    log-normalised HVG values, accumulated in float64 over dense sub-blocks and merged with the
    pairwise update of Chan, Golub and LeVeque (Am Stat 1983;37:242); (2) scores ``(x - mean) @ V``.
    No dense or centred copy of the matrix exists (the same covariance route as scanpy's
    ``svd_solver='covariance_eigh'``). Signs: the largest loading of each component is positive.
    ``random_state`` is recorded only (the method is deterministic).
    """
    from scipy.linalg import eigh

    if "highly_variable" not in adata.var:
        highly_variable(adata)
    hv = np.flatnonzero(adata.var["highly_variable"].to_numpy())
    sf = _size_factors(adata)
    n_comps = int(min(n_comps, adata.n_obs - 1, hv.size - 1))
    if n_comps < 1:
        raise InputError([Problem("too few cells or genes for PCA", "X", None, None, f"{adata.n_obs} x {hv.size}")])

    def hv_log(B: sp.csr_matrix, s: int, e: int) -> sp.csr_matrix:
        return _log_inplace(_csr32(B[:, hv]), sf[s:e])

    n, mean, m2 = 0, np.zeros(hv.size), np.zeros((hv.size, hv.size))
    for _, _, (nb, mb, m2b) in iter_blocks(adata, lambda B, s, e: _moments_dense(hv_log(B, s, e))):
        n, mean, m2 = _merge_moments(n, mean, m2, nb, mb, m2b)
    cov = m2 / max(n - 1, 1)
    del m2
    total_var = float(np.trace(cov))  # = the sum of all eigenvalues
    # only the top n_comps eigenpairs (MRRR): 10x faster than the full decomposition of 2,000 genes
    w, V = eigh(cov, overwrite_a=True, subset_by_index=[hv.size - n_comps, hv.size - 1], driver="evr")
    w, V = np.clip(w[::-1], 0, None), V[:, ::-1]
    V *= np.where(V[np.abs(V).argmax(axis=0), np.arange(n_comps)] < 0, -1.0, 1.0)
    V32 = V.astype(np.float32)
    shift = (mean @ V).astype(np.float32)
    parts = [r for _, _, r in iter_blocks(adata, lambda B, s, e: np.asarray(hv_log(B, s, e) @ V32) - shift)]
    adata.obsm["X_pca"] = np.vstack(parts).astype(np.float32) if parts else np.zeros((0, n_comps), np.float32)
    pcs = np.zeros((adata.n_vars, n_comps), np.float32)
    pcs[hv] = V
    adata.varm["PCs"] = pcs
    adata.uns["pca"] = {"variance_ratio": w / total_var if total_var > 0 else w, "variance": w,
                        "params": {"zero_center": True, "use_highly_variable": True, "mask_var": "highly_variable"}}
    _uns(adata)["pca"] = {"n_comps": n_comps, "svd_solver": "covariance_eigh (blockwise, float64)",
                          "implicit_centering": True, "random_state": random_state}


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


class GPUUnavailableError(Cd7kitError, ImportError):
    """``use_gpu=True`` / ``--gpu`` was asked for but rapids-singlecell cannot be imported here."""


GPU_HELP = ("the GPU path needs rapids-singlecell and an NVIDIA GPU with CUDA: pip install "
            "'cd7kit[gpu-cu12]' (or gpu-cu13, matching the CUDA driver) on the GPU machine; without it, "
            "run the CPU path (drop --gpu / use_gpu)")


def require_gpu() -> Any:
    """The ``rapids_singlecell`` module, or :class:`GPUUnavailableError` saying what to install."""
    try:
        import rapids_singlecell as rsc
    except Exception as exc:  # ImportError, or a CUDA error raised while importing cupy
        raise GPUUnavailableError(f"rapids_singlecell is not importable ({type(exc).__name__}: {exc}); {GPU_HELP}") from exc
    return rsc


def gpu_available() -> bool:
    """True when the optional rapids-singlecell GPU path can be used (extras ``gpu-cu12`` / ``gpu-cu13``)."""
    try:
        require_gpu()
    except GPUUnavailableError:
        return False
    return True


def _gpu_graph(adata, n_neighbors: int, resolution: float, random_state: int, do_umap: bool) -> None:  # pragma: no cover
    """The GPU path (rapids-singlecell mirrors scanpy's API): kNN, Leiden and UMAP on ``X_pca``.

    Not run in this project's CI (no GPU): untested here.
    """
    rsc = require_gpu()
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

    Returns the QC and doublet tables. ``batch_key`` defaults to ``sample_key``. The same steps run
    on an in-memory ``X`` and on a dask ``X`` (out-of-core, see :func:`read`); kNN, Leiden and UMAP
    work on ``X_pca`` only. ``use_gpu`` moves kNN, Leiden and UMAP to rapids-singlecell and raises
    :class:`GPUUnavailableError` (before any work) when it cannot be imported.
    """
    step = progress or _noop
    if use_gpu:
        require_gpu()
    set_threads(n_threads)
    u = _uns(adata)
    u["versions"] = versions()
    u["n_threads"] = n_threads
    u["random_state"] = random_state
    u["backend"] = backend(adata)
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
    step("PCA (covariance, implicit centring)")
    pca(adata, n_comps=n_comps, random_state=random_state)
    u["gpu"] = bool(use_gpu)
    if use_gpu:  # pragma: no cover - needs a GPU
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


__all__ = ["qc", "qc_metrics", "doublets", "normalize", "lognorm", "counts", "row_sums", "highly_variable", "pca",
           "neighbors", "leiden", "umap", "run", "read", "iter_blocks", "is_lazy", "backend", "BACKENDS", "set_threads",
           "versions", "check_counts", "subset_cells", "gpu_available", "require_gpu", "GPUUnavailableError", "QC_DEFAULTS", "UNS_KEY"]
