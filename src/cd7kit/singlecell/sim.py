"""Planted-truth simulator of blood scRNA-seq before and after CD7 CAR-T therapy.

A Splat-style model (Zappia L, Phipson B, Oshlack A, "Splatter: simulation of single-cell RNA
sequencing data", Genome Biol 2017;18:174): gene base means ~ Gamma(shape 0.6, rate 0.3) (the
SplatParams defaults), library sizes ~ LogNormal, cell-type up-regulation of the shipped marker
genes (LogNormal factors), per-patient and per-sample gene factors (LogNormal, scale 0.1 like
``batch.facScale``), and UMIs drawn per cell as a multinomial over genes. Counts are generated
sparse (CSR, float32) cell by cell in a compiled kernel, never as a dense matrix.

Planted structure (each switchable, ``planted=False`` turns all of them off):

* post-infusion: CD7+ T cells (CD4 naive/memory, Treg, CD8) and NK cells depleted, CD7- T cells
  expanded (the seed paper: CD7+ T cells eliminated by day 11, CD7- T cells expanded);
* CD7- T cells: CD7 transcript off and a T-cell activation / inflammatory programme up;
* monocytes lost post-infusion in ``mono_loss_patients`` (the patients who died of infection);
* S100A8/S100A9 up in leukocytes of ``relapse_patients`` post-infusion;
* a CAR transgene feature expressed only in CAR-T cells (a share of the post-infusion CD7- T
  cells), detected in a fraction ``car_detection`` of them.

``obs`` carries the truth: ``true_cell_type``, ``true_cd7_negative``, ``true_car``; ``uns['sim']`` the
parameters and the planted patients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .markers import load_gene_sets, load_markers

#: Pre-infusion blood composition (fractions of cells). Rough adult PBMC proportions with residual
#: T-lymphoblasts of relapsed/refractory T-ALL; CD7- T ~5 % of T cells (Freiwan A et al., Blood
#: 2022;140:2684: CD3+CD7- 4.4 +/- 3.6 % of T cells in T-ALL patients).
BASE_COMPOSITION: dict[str, float] = {
    "CD4 naive T": 0.14,
    "CD4 memory T": 0.12,
    "Treg": 0.03,
    "CD8 T": 0.11,
    "CD7- T": 0.02,
    "NK CD56dim": 0.08,
    "NK CD56bright": 0.015,
    "B": 0.08,
    "Plasma": 0.008,
    "Classical monocyte": 0.2,
    "Non-classical monocyte": 0.04,
    "cDC": 0.02,
    "pDC": 0.01,
    "Platelet": 0.02,
    "Erythroid": 0.012,
    "Progenitor": 0.01,
    "T-lymphoblast": 0.04,
}

CD7_POS_T = ("CD4 naive T", "CD4 memory T", "Treg", "CD8 T")
NK_TYPES = ("NK CD56bright", "NK CD56dim")
MONO_TYPES = ("Classical monocyte", "Non-classical monocyte")
#: Which marker-file node(s) define each simulated type's up-regulated genes.
_TYPE_NODES: dict[str, tuple[str, ...]] = {
    "CD4 naive T": ("T", "CD4 naive T"),
    "CD4 memory T": ("T", "CD4 memory T"),
    "Treg": ("T", "Treg"),
    "CD8 T": ("T", "CD8 T"),
    "CD7- T": ("T", "CD4 memory T"),
    "NK CD56dim": ("NK", "NK CD56dim"),
    "NK CD56bright": ("NK", "NK CD56bright"),
    "T-lymphoblast": ("T", "T-lymphoblast"),
}
_CD7_EXPRESSING = (*CD7_POS_T, *NK_TYPES, "T-lymphoblast")
_MITO = ["MT-ND1", "MT-ND2", "MT-CO1", "MT-CO2", "MT-ATP8", "MT-ATP6", "MT-CO3", "MT-ND3", "MT-ND4L",
         "MT-ND4", "MT-ND5", "MT-ND6", "MT-CYB"]
_RIBO = [f"RPL{i}" for i in range(3, 16)] + [f"RPS{i}" for i in range(2, 15)]
#: Largest int32 index; above it the stored CSR index arrays are int64 (patched in a test).
_INT32_MAX = int(np.iinfo(np.int32).max)
_ACTIVATION_SETS = ("CD7KIT_T_CELL_ACTIVATION", "CD7KIT_AUTOIMMUNE_INFLAMMATORY_T")


@dataclass
class SimParams:
    """Parameters of :func:`simulate` (recorded in ``uns['sim']``)."""

    n_cells: int = 3000
    n_patients: int = 7
    n_genes: int = 2000
    timepoints: dict[str, float] = field(default_factory=lambda: {"pre": -5.0, "d14": 14.0})
    seed: int = 1
    planted: bool = True
    mono_loss_patients: tuple[str, ...] = ("P2", "P5")
    relapse_patients: tuple[str, ...] = ("P3", "P6")
    cd7pos_depletion: float = 0.05  # post/pre multiplier of CD7+ T cells
    nk_depletion: float = 0.15
    cd7neg_expansion: float = 8.0
    blast_clearance: float = 0.02
    mono_loss: float = 0.05
    s100_fold: float = 4.0
    activation_fold: float = 4.0
    car_share: float = 0.4  # share of post-infusion CD7- T cells that are CAR-T
    car_detection: float = 0.5
    car_feature: str = "CAR"
    library_mean: float = 3000.0
    library_sdlog: float = 0.35
    marker_share: float = 1.5e-3  # share of UMIs on each marker gene where it marks (~4.5 UMI/cell)
    marker_fold: float = 15.0  # marker share where it marks / baseline share elsewhere
    cd7_fraction: float = 3e-4  # share of a CD7+ cell's UMIs on CD7 (~0.9 UMI/cell: heavy dropout)
    mito_share: float = 0.03
    ribo_share: float = 0.12
    patient_sdlog: float = 0.1
    sample_sdlog: float = 0.05
    composition_concentration: float = 300.0


@numba.njit(cache=True)
def _alias_tables(probs: np.ndarray):  # pragma: no cover - compiled
    """Vose's alias tables, one row per group: O(1) categorical draws."""
    n_groups, g = probs.shape
    prob = np.empty((n_groups, g), np.float64)
    alias = np.zeros((n_groups, g), np.int32)
    small = np.empty(g, np.int64)
    large = np.empty(g, np.int64)
    for k in range(n_groups):
        scaled = probs[k] * g / probs[k].sum()
        ns = 0
        nl = 0
        for j in range(g):
            if scaled[j] < 1.0:
                small[ns] = j
                ns += 1
            else:
                large[nl] = j
                nl += 1
        while ns > 0 and nl > 0:
            ns -= 1
            s = small[ns]
            nl -= 1
            lg = large[nl]
            prob[k, s] = scaled[s]
            alias[k, s] = lg
            scaled[lg] = scaled[lg] + scaled[s] - 1.0
            if scaled[lg] < 1.0:
                small[ns] = lg
                ns += 1
            else:
                large[nl] = lg
                nl += 1
        for i in range(nl):
            prob[k, large[i]] = 1.0
        for i in range(ns):
            prob[k, small[i]] = 1.0
    return prob, alias


@numba.njit(cache=True)
def _draw_counts(prob: np.ndarray, alias: np.ndarray, group: np.ndarray, lib: np.ndarray, seed: int):  # pragma: no cover
    np.random.seed(seed)  # noqa: NPY002 - numba's own RNG state inside the compiled kernel
    n = group.shape[0]
    g = prob.shape[1]
    total = 0
    for i in range(n):
        total += lib[i]
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(total, np.int32)
    data = np.empty(total, np.float32)
    counter = np.zeros(g, np.int32)
    touched = np.empty(g, np.int32)
    pos = 0
    for i in range(n):
        pr = prob[group[i]]
        al = alias[group[i]]
        nt = 0
        for _ in range(lib[i]):
            u = np.random.random() * g  # noqa: NPY002 - numba RNG
            j = int(u)
            if j >= g:
                j = g - 1
            if u - j >= pr[j]:
                j = al[j]
            if counter[j] == 0:
                touched[nt] = j
                nt += 1
            counter[j] += 1
        ts = np.sort(touched[:nt])
        for k in range(nt):
            indices[pos] = ts[k]
            data[pos] = counter[ts[k]]
            counter[ts[k]] = 0
            pos += 1
        indptr[i + 1] = pos
    return indptr, indices[:pos].copy(), data[:pos].copy()


def _gene_names(n_genes: int, car_feature: str) -> list[str]:
    hier = load_markers()
    genes: list[str] = []
    for g in [*hier.all_genes(), "CD7", *(x for s in load_gene_sets().values() for x in s), *_MITO, *_RIBO]:
        if g not in genes:
            genes.append(g)
    n_fill = max(n_genes - 1 - len(genes), 0)
    genes += [f"GENE{i:05d}" for i in range(n_fill)]
    genes.append(car_feature)
    return genes


@dataclass
class _Plan:
    """Everything of a simulation except the counts, which are drawn chunk by chunk from it."""

    params: SimParams
    genes: list[str]
    obs: pd.DataFrame
    uns: dict
    prob_tab: np.ndarray
    alias_tab: np.ndarray
    group: np.ndarray
    lib: np.ndarray
    bounds: list[tuple[int, int]]
    chunk_seeds: list[int]
    car_col: int
    car_counts: np.ndarray


def _plan(n_cells: int, n_patients: int, seed: int, n_genes: int, planted: bool,
          timepoints: dict[str, float] | None, chunk_cells: int, overrides: dict[str, object]) -> _Plan:
    if chunk_cells < 1:
        raise ValueError("chunk_cells must be positive")
    params = SimParams(n_cells=n_cells, n_patients=n_patients, n_genes=n_genes, seed=seed, planted=planted)
    if timepoints is not None:
        params.timepoints = dict(timepoints)
    for k, v in overrides.items():
        if not hasattr(params, k):
            raise TypeError(f"unknown simulation parameter {k!r}")
        setattr(params, k, v)
    rng = np.random.default_rng(seed)
    genes = _gene_names(n_genes, params.car_feature)
    gidx = {g: i for i, g in enumerate(genes)}
    ng = len(genes)
    hier = load_markers()
    types = list(BASE_COMPOSITION)
    patients = [f"P{i + 1}" for i in range(n_patients)]
    tps = list(params.timepoints)
    post = tps[1:]

    # --- gene expression programmes (shares of a cell's UMIs, independent of n_genes) ------------
    # sorted: iterating a set of strings would depend on PYTHONHASHSEED and break reproducibility
    special = sorted(set(hier.all_genes()) | {"CD7"} | {x for s in load_gene_sets().values() for x in s})
    is_bg = np.ones(ng, bool)
    for g in (*special, *_MITO, *_RIBO, params.car_feature):
        if g in gidx:
            is_bg[gidx[g]] = False
    bg = rng.gamma(0.6, 1 / 0.3, size=ng) * is_bg
    bg = bg / bg.sum()
    # marker / programme genes: low baseline share, a high share where they mark
    low = np.zeros(ng)
    for g in special:
        if g in gidx:
            low[gidx[g]] = params.marker_share / params.marker_fold * np.exp(rng.normal(0, 0.3))
    type_prof = np.empty((len(types), ng))
    for t_i, t in enumerate(types):
        f = np.exp(rng.normal(0.0, 0.4, size=ng) * (rng.random(ng) < 0.05))  # Splat-like background DE
        prof = bg * f
        prof = prof / prof.sum() * (1 - params.mito_share - params.ribo_share)
        prof = prof + low
        for nd in _TYPE_NODES.get(t, (t,)):
            for g in hier.nodes[nd].markers:
                prof[gidx[g]] = params.marker_share * np.exp(rng.normal(0, 0.4))
        prof[gidx["CD7"]] = params.cd7_fraction if t in _CD7_EXPRESSING else params.cd7_fraction / 200
        for g in _MITO:
            prof[gidx[g]] = params.mito_share / len(_MITO)
        for g in _RIBO:
            prof[gidx[g]] = params.ribo_share / len(_RIBO)
        prof[gidx[params.car_feature]] = 0.0
        type_prof[t_i] = prof
    act_genes = sorted({g for s in _ACTIVATION_SETS for g in load_gene_sets()[s]})
    cd7neg_i = types.index("CD7- T")
    if planted:
        for g in act_genes:
            type_prof[cd7neg_i, gidx[g]] *= params.activation_fold
    s100 = [gidx["S100A8"], gidx["S100A9"]]

    patient_f = np.exp(rng.normal(0.0, params.patient_sdlog, size=(n_patients, ng)))

    # --- samples and their compositions ----------------------------------------------------------
    base_p = np.array([BASE_COMPOSITION[t] for t in types])
    base_p = base_p / base_p.sum()
    samples: list[tuple[str, str]] = [(p, t) for p in patients for t in tps]
    comp = np.empty((len(samples), len(types)))
    for s_i, (p, t) in enumerate(samples):
        mult = np.ones(len(types))
        if planted and t in post:
            for t_i, ct in enumerate(types):
                if ct in CD7_POS_T:
                    mult[t_i] = params.cd7pos_depletion
                elif ct in NK_TYPES:
                    mult[t_i] = params.nk_depletion
                elif ct == "CD7- T":
                    mult[t_i] = params.cd7neg_expansion
                elif ct == "T-lymphoblast":
                    mult[t_i] = params.blast_clearance
                elif ct in MONO_TYPES and p in params.mono_loss_patients:
                    mult[t_i] = params.mono_loss
        q = base_p * mult
        q = q / q.sum()
        comp[s_i] = rng.dirichlet(q * params.composition_concentration)
    per_sample = np.full(len(samples), n_cells // len(samples))
    per_sample[: n_cells - per_sample.sum()] += 1
    cell_type_idx = np.concatenate([rng.choice(len(types), size=m, p=comp[s_i]) for s_i, m in enumerate(per_sample)])
    sample_idx = np.repeat(np.arange(len(samples)), per_sample)

    # groups = sample x type; cumulative gene probabilities per group
    group = sample_idx * len(types) + cell_type_idx
    used, group_compact = np.unique(group, return_inverse=True)
    probs = np.empty((len(used), ng))
    for gk, gid in enumerate(used):
        s_i, t_i = divmod(int(gid), len(types))
        pat_id, tp_id = samples[s_i]
        prof = type_prof[t_i] * patient_f[patients.index(pat_id)] * np.exp(rng.normal(0, params.sample_sdlog, size=ng))
        if planted and tp_id in post and pat_id in params.relapse_patients:
            prof[s100] *= params.s100_fold
        probs[gk] = prof / prof.sum()
    prob_tab, alias_tab = _alias_tables(probs)
    del probs
    lib = np.maximum(rng.lognormal(np.log(params.library_mean), params.library_sdlog, size=n_cells), 200).astype(np.int64)

    # one seed per chunk, drawn before the CAR draws (the stream does not depend on how chunks are used)
    bounds = [(a, min(a + chunk_cells, n_cells)) for a in range(0, n_cells, chunk_cells)]
    chunk_seeds = [int(rng.integers(2**31 - 1)) for _ in bounds]

    # --- the CAR transgene: CAR-T = a share of post-infusion CD7- T cells, partially detected ---
    ctype = np.asarray(types, dtype=object)[cell_type_idx]
    tp_of = np.asarray([t for _, t in samples], dtype=object)[sample_idx]
    true_car = (ctype == "CD7- T") & np.isin(tp_of, post) & (rng.random(n_cells) < params.car_share)
    detected = true_car & (rng.random(n_cells) < params.car_detection)
    car_counts = np.where(detected, 1 + rng.poisson(1.5, size=n_cells), 0).astype(np.float32)

    pat = np.asarray([p for p, _ in samples], dtype=object)[sample_idx]
    sample_names = np.asarray([f"{a}_{b}" for a, b in samples], dtype=object)
    obs = pd.DataFrame(
        {
            "patient": pd.Categorical(pat, categories=patients),
            "timepoint": pd.Categorical(tp_of, categories=tps),
            "day": np.asarray([params.timepoints[t] for t in tps], dtype=float)[
                pd.Categorical(tp_of, categories=tps).codes],
            "sample": pd.Categorical(sample_names[sample_idx]),
            "true_cell_type": pd.Categorical(ctype, categories=types),
            "true_cd7_negative": ctype == "CD7- T",
            "true_car": true_car,
        },
        index=pd.Index(np.char.add("cell", np.char.zfill(np.arange(n_cells).astype(str), 7)).astype(object)),
    )
    info = asdict(params)
    info["mono_loss_patients"] = list(params.mono_loss_patients) if planted else []
    info["relapse_patients"] = list(params.relapse_patients)
    info["relapse_effect_planted"] = planted
    info["activation_genes"] = act_genes
    info["true_composition"] = pd.DataFrame(comp, index=list(sample_names), columns=types)
    return _Plan(params=params, genes=genes, obs=obs, uns=_uns_safe(info), prob_tab=prob_tab, alias_tab=alias_tab,
                 group=group_compact.astype(np.int64), lib=lib, bounds=bounds, chunk_seeds=chunk_seeds,
                 car_col=gidx[params.car_feature], car_counts=car_counts)


def _chunk(plan: _Plan, k: int) -> sp.csr_matrix:
    """Counts of chunk ``k`` (float32 CSR, sorted indices, CAR column set)."""
    a, b = plan.bounds[k]
    indptr, indices, data = _draw_counts(plan.prob_tab, plan.alias_tab, plan.group[a:b], plan.lib[a:b],
                                         plan.chunk_seeds[k])
    X = sp.csr_matrix((data, indices, indptr), shape=(b - a, len(plan.genes)))
    X.eliminate_zeros()
    return _set_column(X, plan.car_col, plan.car_counts[a:b])


def simulate(
    n_cells: int = 3000,
    n_patients: int = 7,
    *,
    seed: int = 1,
    n_genes: int = 2000,
    planted: bool = True,
    timepoints: dict[str, float] | None = None,
    chunk_cells: int = 50_000,
    **overrides: object,
):
    """Simulate an AnnData of raw counts (float32 CSR) with planted truth; see the module docstring.

    ``obs``: ``patient``, ``timepoint``, ``day``, ``sample``, ``true_cell_type``, ``true_cd7_negative``,
    ``true_car``. ``uns['sim']``: parameters, planted patients, and the per-sample true composition.
    :func:`write_h5ad` writes the same data to disk chunk by chunk.
    """
    import anndata as ad

    plan = _plan(n_cells, n_patients, seed, n_genes, planted, timepoints, chunk_cells, overrides)
    parts = [_chunk(plan, k) for k in range(len(plan.bounds))]
    X = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
    X = sp.csr_matrix(X.astype(np.float32, copy=False))
    adata = ad.AnnData(X=X, obs=plan.obs, var=pd.DataFrame(index=pd.Index(plan.genes, name="gene")))
    adata.uns["sim"] = plan.uns
    return adata


def write_h5ad(
    path: str | Path,
    n_cells: int = 3000,
    n_patients: int = 7,
    *,
    seed: int = 1,
    n_genes: int = 2000,
    planted: bool = True,
    timepoints: dict[str, float] | None = None,
    chunk_cells: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
    **overrides: object,
) -> Path:
    """:func:`simulate` straight to an .h5ad file, one chunk of cells in memory at a time.

    Same data as ``simulate(...)`` with the same arguments. ``X`` is stored as CSR with float32
    values in resizable HDF5 datasets of 1 Mi elements per chunk, uncompressed (fast block reads).
    Index arrays are int32, or int64 (both, as scipy requires) when the non-zeros could pass
    2^31 - 1 (e.g. a million cells x 20,000 genes).
    ``progress(cells_done, n_cells)`` is called after each chunk.
    """
    import anndata as ad
    import h5py

    out = Path(path)
    plan = _plan(n_cells, n_patients, seed, n_genes, planted, timepoints, chunk_cells, overrides)
    meta = ad.AnnData(obs=plan.obs, var=pd.DataFrame(index=pd.Index(plan.genes, name="gene")))
    meta.uns["sim"] = plan.uns
    meta.write_h5ad(out)
    del meta
    ng = len(plan.genes)
    with h5py.File(out, "a") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = np.array([n_cells, ng], dtype=np.int64)
        block = 1 << 20
        idx_dtype = np.int64 if int(plan.lib.sum()) > _INT32_MAX else np.int32  # nnz <= UMIs
        data = g.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(block,))
        indices = g.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=idx_dtype, chunks=(block,))
        indptr = g.create_dataset("indptr", shape=(n_cells + 1,), dtype=idx_dtype)
        indptr[0] = 0
        nnz = 0
        for k, (a, b) in enumerate(plan.bounds):
            C = _chunk(plan, k)
            m = C.nnz
            data.resize((nnz + m,))
            indices.resize((nnz + m,))
            data[nnz:] = C.data
            indices[nnz:] = C.indices.astype(idx_dtype, copy=False)
            indptr[a + 1:b + 1] = (nnz + C.indptr[1:].astype(np.int64)).astype(idx_dtype)
            nnz += m
            del C
            if progress is not None:
                progress(b, n_cells)
    return out


def _set_column(X: sp.csr_matrix, col: int, values: np.ndarray) -> sp.csr_matrix:
    """CSR with column ``col`` replaced by ``values`` (the column is empty before)."""
    nz = np.flatnonzero(values)
    extra = sp.csr_matrix((values[nz], (nz, np.full(nz.size, col))), shape=X.shape, dtype=np.float32)
    out = (X + extra).tocsr()
    out.sort_indices()
    return out.astype(np.float32, copy=False)


def _uns_safe(info: dict) -> dict:
    out: dict = {}
    for k, v in info.items():
        if isinstance(v, pd.DataFrame):
            out[k] = {"index": list(v.index), "columns": list(v.columns), "values": v.to_numpy()}
        elif isinstance(v, dict):
            out[k] = {str(a): float(b) for a, b in v.items()}
        elif isinstance(v, tuple):
            out[k] = list(v)
        else:
            out[k] = v
    return out


__all__ = ["SimParams", "simulate", "write_h5ad", "BASE_COMPOSITION", "CD7_POS_T", "NK_TYPES", "MONO_TYPES"]
