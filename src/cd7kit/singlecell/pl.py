"""Plots (scanpy-style ``pl``): UMAP by label, composition over time, S100A8/A9 within cell types.

Static PNG figures with matplotlib (Agg backend, no display needed); each function writes a file
and returns its path. Interactive dashboards belong to ``cd7kit.report``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _palette(n: int) -> list:
    plt = _plt()
    cmap = plt.get_cmap("tab20")
    return [cmap(i % 20) for i in range(n)]


def embedding(adata, color: str = "cell_type", path: str | Path = "umap.png", basis: str | None = None,
              max_points: int = 200_000, seed: int = 0) -> Path:
    """Scatter of the UMAP (or PCA when there is no UMAP) coloured by an ``obs`` column."""
    plt = _plt()
    basis = basis or ("X_umap" if "X_umap" in adata.obsm else "X_pca")
    xy = np.asarray(adata.obsm[basis])[:, :2]
    lab = adata.obs[color].astype(str).to_numpy()
    idx = np.arange(adata.n_obs)
    if adata.n_obs > max_points:
        idx = np.random.default_rng(seed).choice(adata.n_obs, max_points, replace=False)
    cats = sorted(pd.unique(lab))
    fig, ax = plt.subplots(figsize=(8, 6.5))
    for c, col in zip(cats, _palette(len(cats)), strict=True):
        m = idx[lab[idx] == c]
        ax.scatter(xy[m, 0], xy[m, 1], s=3 if adata.n_obs > 5000 else 6, color=col, label=f"{c} ({(lab == c).sum()})",
                   linewidths=0, rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{basis[2:].upper()} 1")
    ax.set_ylabel(f"{basis[2:].upper()} 2")
    ax.set_title(f"{color} ({adata.n_obs:,} cells)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=3, frameon=False)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def composition_over_time(comp: pd.DataFrame, path: str | Path = "composition.png",
                          cell_types: list[str] | None = None) -> Path:
    """Per patient: fraction of each cell type at each timepoint, with bootstrap intervals."""
    plt = _plt()
    types = cell_types or list(comp.groupby("cell_type")["fraction"].mean().sort_values(ascending=False).index[:8])
    pats = sorted(comp["patient"].unique())
    tps = list(comp["timepoint"].cat.categories) if isinstance(comp["timepoint"].dtype, pd.CategoricalDtype) else list(pd.unique(comp["timepoint"]))
    ncol = 4
    nrow = int(np.ceil(len(types) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.7 * nrow), squeeze=False, sharex=True)
    cols = _palette(len(pats))
    for k, ct in enumerate(types):
        ax = axes[k // ncol][k % ncol]
        sub = comp[comp["cell_type"] == ct]
        for p, col in zip(pats, cols, strict=True):
            s = sub[sub["patient"] == p].set_index("timepoint").reindex(tps)
            x = np.arange(len(tps)) + (pats.index(p) - len(pats) / 2) * 0.03
            ax.errorbar(x, 100 * s["fraction"], yerr=[100 * (s["fraction"] - s["ci_low"]), 100 * (s["ci_high"] - s["fraction"])],
                        color=col, marker="o", ms=3, lw=1, capsize=2, label=p)
        ax.set_title(ct, fontsize=9)
        ax.set_xticks(range(len(tps)))
        ax.set_xticklabels(tps, fontsize=8)
        ax.set_ylabel("% of cells", fontsize=8)
    for k in range(len(types), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    axes[0][0].legend(fontsize=6, ncol=2, frameon=False)
    fig.suptitle("Composition per patient over time (95% bootstrap intervals over cells)", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def s100_within_types(table: pd.DataFrame, path: str | Path = "s100.png", relapse_patients: list[str] | None = None,
                      cell_types: list[str] | None = None) -> Path:
    """S100A8/A9 score per patient and timepoint, one panel per cell type; relapsing patients in red."""
    plt = _plt()
    rel = set(relapse_patients or [])
    types = cell_types or [c for c in ("Classical monocyte", "Non-classical monocyte", "CD7- T", "B")
                           if c in set(table["cell_type"])]
    tps = list(table["timepoint"].cat.categories) if isinstance(table["timepoint"].dtype, pd.CategoricalDtype) else list(pd.unique(table["timepoint"]))
    fig, axes = plt.subplots(1, max(len(types), 1), figsize=(3.4 * max(len(types), 1), 3.0), squeeze=False)
    for k, ct in enumerate(types):
        ax = axes[0][k]
        sub = table[table["cell_type"] == ct]
        for p, s in sub.groupby("patient"):
            s = s.set_index("timepoint").reindex(tps)
            ax.plot(range(len(tps)), s["score"], marker="o", color="tab:red" if p in rel else "0.5", lw=1.2,
                    label=("relapse" if p in rel else "no relapse"))
        ax.set_xticks(range(len(tps)))
        ax.set_xticklabels(tps, fontsize=8)
        ax.set_title(ct, fontsize=9)
        ax.set_ylabel("S100A8/A9 score (log-norm)", fontsize=8)
    h, lab = axes[0][0].get_legend_handles_labels()
    uniq = dict(zip(lab, h, strict=False))
    axes[0][0].legend(uniq.values(), uniq.keys(), fontsize=7, frameon=False)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


__all__ = ["embedding", "composition_over_time", "s100_within_types"]
