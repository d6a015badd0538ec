"""Tools (scanpy-style ``tl``): offline annotation, CD7 state, CAR detection, and the seed's questions.

The seed (Clin Cancer Res 2023;29(8):1484, doi 10.1158/1078-0432.CCR-22-2924; 7 patients) asked:
which cells reconstitute after donor-derived CD7 CAR-T (CD7+ T cells gone, CD7- T expanded), are
monocytes lost in the patients who died of infection, are S100A8/S100A9 up in relapsing patients,
and what pathways do CD7- T cells switch on. The functions here answer these per patient and
time point, with patients (not cells) as the statistical unit:

* :func:`annotate` -- marker scores (z-scored log-normalised expression of the shipped, cited
  hierarchy, ``markers.yaml``) smoothed over the kNN graph, lineage then subtype, with a
  confidence (share of the neighbourhood with the same label) and an ``unknown`` class.
* :func:`cd7_state` -- CD7- vs CD7+ within T cells by a two-component Poisson mixture on CD7 UMIs
  with library-size offsets, pooled over each cell's kNN neighbourhood: never ``CD7 == 0`` per cell
  (CD7 drops out; spec: detected in 72/559 cells of a real PBMC sample).
* :func:`car_cells` -- CAR-positive cells from configurable transgene features, with the detection
  rate per sample (never from CD8A/TNFRSF9/CD247, which CAR constructs share).
* :func:`composition` (multinomial bootstrap intervals over cells) and :func:`composition_test`
  (centred log-ratio, paired across patients, one-sample t-test, Benjamini-Hochberg; propeller /
  CLR style as recommended by the composition benchmark of Simmonds et al., bioRxiv 2022
  10.1101/2022.02.04.479123 and Buttner M et al., Nat Commun 2021;12:6876 on compositionality).
* :func:`monocyte_loss` -- a flag relative to the patient's own baseline (thresholds documented
  there; they are cd7kit conventions, the seed gives none).
* :func:`s100_score` / :func:`s100_relapse` -- S100A8/S100A9 within cell types (a score over all
  cells would be confounded by myeloid composition).
* :func:`pseudobulk` / :func:`de_pseudobulk` -- sums of counts per patient x condition x cell
  type and pyDESeq2 (Muzellec B et al., Bioinformatics 2023;39:btad547; Love MI et al., Genome
  Biol 2014;15:550) with patient as block (Squair JW et al., Nat Commun 2021;12:5692: pseudobulk
  avoids the false discoveries of cell-level tests).
* :func:`pathway_scores` -- decoupler ULM (Badia-i-Mompel P et al., Bioinform Adv 2022;2:vbac016)
  on the DE statistics, with the shipped CC0 gene sets or a user GMT.
* :func:`sample_summaries` -- per-sample observation rows (codes in ``vocab/data/singlecell.csv``)
  to merge into a Study.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from cd7kit.data.result import Rule, jsonable
from cd7kit.errors import InputError, Problem

from .markers import MarkerHierarchy, load_gene_sets, load_markers
from .pp import UNS_KEY, _uns, counts, iter_blocks, lognorm, row_sums

UNKNOWN = "unknown"
CD7NEG_LABEL = "CD7- T"
MONO_TYPES = ("Classical monocyte", "Non-classical monocyte")
T_SUBTYPES_CD7POS = ("CD4 naive T", "CD4 memory T", "Treg", "CD8 T")


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN kept)."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.sum() == 0:
        return q
    pv = p[ok]
    n = pv.size
    order = np.argsort(pv)
    ranked = pv[order] * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def _smoother(adata) -> sp.csr_matrix:
    """Row-normalised (connectivities + identity): averages a value over each cell's neighbourhood."""
    if "connectivities" not in adata.obsp:
        raise InputError([Problem("no neighbour graph; run cd7kit.singlecell.pp.run (or pp.neighbors) first",
                                  "obsp", None, "connectivities")])
    W = sp.csr_matrix(adata.obsp["connectivities"], dtype=np.float32) + sp.identity(adata.n_obs, np.float32, format="csr")
    d = np.asarray(W.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / d) @ W)


def _expr_source(adata, genes: list[str], source: str):
    """Log-normalised expression of ``genes`` (all cells): from counts in X (``source='counts'``, either
    backend; only these columns are read) or ready values in ``X`` / ``raw``."""
    if source == "counts":
        return lognorm(adata, genes)
    M = adata.raw[:, genes].X if source == "raw" else adata[:, genes].X
    return sp.csr_matrix(M) if sp.issparse(M) else np.asarray(M)


def _var_names(adata, source: str) -> pd.Index:
    return adata.raw.var_names if source == "raw" else adata.var_names


def score_markers(adata, hierarchy: MarkerHierarchy | None = None, *, source: str = "counts",
                  negative_weight: float = 0.5, chunk: int = 100_000) -> pd.DataFrame:
    """Per-cell marker scores: mean z of a type's markers minus ``negative_weight`` x mean z of negatives.

    ``source``: ``'counts'`` (X holds raw counts; log-normalised on the fly), ``'X'`` (X already
    log-normalised) or ``'raw'`` (``adata.raw`` log-normalised, e.g. scanpy's pbmc68k_reduced).
    Genes are z-scored across all cells. Types whose markers are all absent score NaN.
    """
    hier = hierarchy or load_markers()
    names = _var_names(adata, source)
    genes = [g for g in hier.all_genes() if g in names]
    if not genes:
        raise InputError([Problem("none of the marker genes is in var_names (gene symbols expected)", "var")])
    gpos = {g: i for i, g in enumerate(genes)}
    n = adata.n_obs
    M = _expr_source(adata, genes, source)  # cells x marker genes (sparse when from counts)
    if sp.issparse(M):
        mu = np.asarray(M.mean(axis=0, dtype=np.float64)).ravel()
        sq = np.asarray(M.multiply(M).mean(axis=0, dtype=np.float64)).ravel()
    else:
        mu = M.mean(axis=0, dtype=np.float64)
        sq = (M.astype(np.float64) ** 2).mean(axis=0)
    sd = np.sqrt(np.maximum(sq - mu**2, 0))
    sd[sd == 0] = np.inf
    types = list(hier.nodes)
    out = np.full((n, len(types)), np.nan, dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        Mb = M[start:stop]
        Z = ((Mb.toarray() if sp.issparse(Mb) else Mb) - mu) / sd
        for t_i, t in enumerate(types):
            node = hier.nodes[t]
            pos = [gpos[g] for g in node.markers if g in gpos]
            if not pos:
                continue
            sc = Z[:, pos].mean(axis=1)
            neg = [gpos[g] for g in node.negative if g in gpos]
            if neg:
                sc = sc - negative_weight * Z[:, neg].mean(axis=1)
            out[start:stop, t_i] = sc
    return pd.DataFrame(out, index=adata.obs_names, columns=types)


def annotate(adata, hierarchy: MarkerHierarchy | None = None, *, source: str = "counts", min_score: float = 0.25,
             key: str = "cell_type", cd7: bool = True) -> pd.DataFrame:
    """Annotate cells with the marker hierarchy; returns the per-type cell counts.

    Scores (:func:`score_markers`) are averaged over each cell's kNN neighbourhood; the lineage is
    the best-scoring level-1 type, ``unknown`` when its smoothed score is below ``min_score``
    (z units); within T and NK the best child is taken. ``obs``: ``lineage``, ``<key>``,
    ``annot_confidence`` (share of the neighbourhood with the same lineage), ``annot_score``. With
    ``cd7`` (and counts in X), T cells called CD7- by :func:`cd7_state` are labelled ``CD7- T``.
    """
    hier = hierarchy or load_markers()
    S = score_markers(adata, hier, source=source)
    W = _smoother(adata)
    Ssm = pd.DataFrame(W @ np.nan_to_num(S.to_numpy(), nan=-1e3), index=S.index, columns=S.columns)
    lin = [t for t in hier.lineages if S[t].notna().any()]
    L = Ssm[lin].to_numpy()
    best = L.argmax(axis=1)
    best_score = L[np.arange(len(best)), best]
    lineage = np.asarray(lin, dtype=object)[best]
    lineage[best_score < min_score] = UNKNOWN
    label = lineage.copy()
    for parent in lin:
        kids = [k for k in hier.children(parent) if S[k].notna().any()]
        if not kids:
            continue
        m = lineage == parent
        if m.any():
            K = Ssm.loc[m, kids].to_numpy()
            label[m] = np.asarray(kids, dtype=object)[K.argmax(axis=1)]
    # confidence: neighbourhood agreement on the lineage
    codes, uniq = pd.factorize(lineage)
    onehot = sp.csr_matrix((np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)),
                           shape=(len(codes), len(uniq)))
    agree = np.asarray((W @ onehot)[np.arange(len(codes)), codes]).ravel()
    adata.obs["lineage"] = pd.Categorical(lineage)
    adata.obs["annot_score"] = best_score.astype(np.float32)
    adata.obs["annot_confidence"] = np.clip(agree, 0.0, 1.0).astype(np.float32)
    adata.obs[key] = label
    adata.obsm["marker_scores"] = S.to_numpy()
    _uns(adata)["annotation"] = {"hierarchy_version": hier.version, "types": list(S.columns), "min_score": min_score,
                                 "smoothing": "kNN connectivities + self, row-normalised", "source": source}
    if cd7 and source == "counts" and "CD7" in adata.var_names:
        cd7_state(adata)
        m = (adata.obs["cd7_neg_prob"].to_numpy() > 0.5) & (lineage == "T")
        label = adata.obs[key].to_numpy().astype(object)
        label[m] = CD7NEG_LABEL
        adata.obs[key] = label
    adata.obs[key] = pd.Categorical(adata.obs[key].astype(str))
    return adata.obs[key].value_counts().rename_axis(key).reset_index(name="n_cells")


def cd7_state(adata, *, lineage_key: str = "lineage", t_lineage: str = "T", gene: str = "CD7",
              max_iter: int = 200, pool: bool = True) -> dict[str, float]:
    """Probabilistic CD7- call within T cells, pooled over each cell's neighbourhood.

    Model: CD7 UMIs of T cell i ~ Poisson(total_i x lambda_k), k in {neg, pos}, mixture weight pi
    (fitted by EM over all T cells, lambda_neg <= lambda_pos / 5). Each cell's log-likelihood ratio
    (neg vs pos) is summed over itself and its kNN neighbours that are T cells, added to the prior
    log-odds, and turned into ``obs['cd7_neg_prob']``; ``obs['cd7_state']`` is ``CD7-`` when > 0.5,
    ``CD7+`` otherwise, NA outside T cells. Returns the fitted parameters.
    """
    if gene not in adata.var_names:
        raise InputError([Problem(f"{gene} not in var_names", "var", None, None, gene)])
    x = counts(adata, [gene]).toarray().ravel().astype(float)
    tot = adata.obs["total_counts"].to_numpy(float) if "total_counts" in adata.obs else row_sums(adata)
    isT = adata.obs[lineage_key].astype(str).to_numpy() == t_lineage
    prob = np.full(adata.n_obs, np.nan)
    state = np.full(adata.n_obs, None, dtype=object)
    params = {"pi_neg": float("nan"), "lambda_pos": float("nan"), "lambda_neg": float("nan"), "n_t_cells": int(isT.sum())}
    if isT.sum() >= 10 and x[isT].sum() > 0:
        xt, tt = x[isT], tot[isT]
        lam_pos = 2 * xt.sum() / tt.sum()
        lam_neg = lam_pos / 20
        pi = 0.3
        for _ in range(max_iter):
            lneg = stats.poisson.logpmf(xt, tt * lam_neg) + np.log(pi)
            lpos = stats.poisson.logpmf(xt, tt * lam_pos) + np.log(1 - pi)
            r = 1 / (1 + np.exp(np.clip(lpos - lneg, -50, 50)))
            new_pi = float(np.clip(r.mean(), 1e-3, 1 - 1e-3))
            new_pos = float((1 - r) @ xt / max((1 - r) @ tt, 1e-12))
            new_neg = float(min(r @ xt / max(r @ tt, 1e-12), new_pos / 5))
            done = abs(new_pi - pi) < 1e-6 and abs(new_pos - lam_pos) < 1e-9 * max(lam_pos, 1e-12)
            pi, lam_pos, lam_neg = new_pi, new_pos, max(new_neg, 1e-9)
            if done:
                break
        llr = xt * np.log(lam_neg / lam_pos) - tt * (lam_neg - lam_pos)
        full = np.zeros(adata.n_obs)
        full[isT] = llr
        if pool and "distances" in adata.obsp:
            A = sp.csr_matrix(adata.obsp["distances"])
            A = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape) + sp.identity(adata.n_obs, format="csr")
            pooled = A @ full
        else:
            pooled = full
        logit = np.log(pi / (1 - pi)) + pooled[isT]
        p = 1 / (1 + np.exp(-np.clip(logit, -50, 50)))
        prob[isT] = p
        state[isT] = np.where(p > 0.5, "CD7-", "CD7+")
        params = {"pi_neg": pi, "lambda_pos": lam_pos, "lambda_neg": lam_neg, "n_t_cells": int(isT.sum())}
    adata.obs["cd7_neg_prob"] = prob.astype(np.float32)
    adata.obs["cd7_state"] = pd.Categorical(state, categories=["CD7+", "CD7-"])
    _uns(adata)["cd7_state"] = {"model": "Poisson mixture with library offsets, kNN-pooled log-likelihood ratio",
                                **{k: float(v) for k, v in params.items()}}
    return params


def car_cells(adata, features: Sequence[str] = ("CAR",), *, min_counts: int = 1, sample_key: str = "sample",
              lineage_key: str = "lineage") -> pd.DataFrame:
    """CAR+ cells from transgene features (UMIs summed over ``features`` >= ``min_counts``).

    Returns per sample: cells, T cells, CAR-detected cells, % of T cells and of all cells. The
    detection rate of a 3' assay on a transgene is partial, so these are lower bounds. When none of
    ``features`` is in ``var_names`` the table has NaN and ``uns[...]['car']['missing']`` says so.
    """
    present = [f for f in features if f in adata.var_names]
    u = _uns(adata)
    if not present:
        adata.obs["car_umis"] = np.nan
        adata.obs["car_positive"] = False
        u["car"] = {"features": list(features), "missing": f"none of {list(features)} in var_names"}
        umis = np.full(adata.n_obs, np.nan)
    else:
        umis = np.asarray(counts(adata, present).sum(axis=1)).ravel()
        adata.obs["car_umis"] = umis.astype(np.float32)
        adata.obs["car_positive"] = umis >= min_counts
        u["car"] = {"features": present, "min_counts": min_counts, "missing": ""}
    isT = adata.obs[lineage_key].astype(str).to_numpy() == "T" if lineage_key in adata.obs else np.ones(adata.n_obs, bool)
    df = pd.DataFrame({"sample": adata.obs[sample_key].astype(str).to_numpy(), "T": isT,
                       "car": adata.obs["car_positive"].to_numpy(bool)})
    rows = []
    for s, g in df.groupby("sample", sort=False):
        n_t = int(g["T"].sum())
        n_car = int(g["car"].sum()) if present else np.nan
        rows.append({"sample": s, "n_cells": len(g), "n_t_cells": n_t, "n_car_detected": n_car,
                     "car_pct_of_t": 100 * float((g["car"] & g["T"]).sum()) / n_t if (present and n_t) else np.nan,
                     "car_pct_of_cells": 100 * n_car / len(g) if present else np.nan})
    out = pd.DataFrame(rows)
    if "true_car" in adata.obs and present:
        truth = adata.obs["true_car"].to_numpy(bool)
        u["car"]["detection_rate_vs_truth"] = float(adata.obs["car_positive"].to_numpy(bool)[truth].mean()) if truth.any() else float("nan")
    return out


def composition(adata, patient_key: str, timepoint_key: str, label_key: str = "cell_type", *, n_boot: int = 1000,
                seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Cell counts and fractions per patient x timepoint x cell type with bootstrap intervals.

    The interval resamples cells within the sample (multinomial bootstrap, ``n_boot`` draws,
    percentile interval); it expresses sampling of cells only, not biological variation.
    """
    rng = np.random.default_rng(seed)
    obs = adata.obs[[patient_key, timepoint_key, label_key]].astype(str)
    tab = obs.groupby([patient_key, timepoint_key, label_key]).size().unstack(label_key, fill_value=0)
    types = list(tab.columns)
    rows = []
    a = (1 - ci) / 2
    for (p, t), n_by_type in tab.iterrows():
        c = n_by_type.to_numpy(float)
        n = int(c.sum())
        if n == 0:
            continue
        frac = c / n
        boot = rng.multinomial(n, frac, size=n_boot) / n
        lo, hi = np.quantile(boot, [a, 1 - a], axis=0)
        for k, ct in enumerate(types):
            rows.append({"patient": p, "timepoint": t, "cell_type": ct, "n": int(c[k]), "total": n,
                         "fraction": frac[k], "ci_low": lo[k], "ci_high": hi[k]})
    out = pd.DataFrame(rows)
    tps = _ordered(adata.obs[timepoint_key])
    out["timepoint"] = pd.Categorical(out["timepoint"], categories=tps, ordered=True)
    return out.sort_values(["patient", "timepoint", "cell_type"]).reset_index(drop=True)


def _ordered(col: pd.Series) -> list[str]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [str(c) for c in col.cat.categories if (col == c).any()]
    return [str(c) for c in pd.unique(col.astype(str))]


def composition_test(comp: pd.DataFrame, reference: str | None = None, *, pseudocount: float = 0.5,
                     alpha: float = 0.05) -> pd.DataFrame:
    """Compositional test of each timepoint against ``reference`` (default: the first), paired by patient.

    Counts -> centred log-ratios (pseudocount 0.5) per sample; per patient the difference to its
    reference sample; a one-sample t-test over patients per cell type; BH across cell types within a
    timepoint. ``direction`` is the sign of the mean CLR change; ``significant`` is q < ``alpha``.
    """
    wide = comp.pivot_table(index=["patient", "timepoint"], columns="cell_type", values="n", aggfunc="sum",
                            fill_value=0, observed=True)
    logc = np.log(wide.to_numpy(float) + pseudocount)
    clr = pd.DataFrame(logc - logc.mean(axis=1, keepdims=True), index=wide.index, columns=wide.columns)
    frac = wide.div(wide.sum(axis=1), axis=0)
    tps = list(comp["timepoint"].cat.categories) if isinstance(comp["timepoint"].dtype, pd.CategoricalDtype) else list(pd.unique(comp["timepoint"]))
    ref = reference or tps[0]
    rows = []
    for t in tps:
        if t == ref:
            continue
        pats = [p for p in clr.index.get_level_values(0).unique() if (p, ref) in clr.index and (p, t) in clr.index]
        if len(pats) < 3:
            continue
        d = np.vstack([clr.loc[(p, t)].to_numpy() - clr.loc[(p, ref)].to_numpy() for p in pats])
        with np.errstate(all="ignore"):
            tt = stats.ttest_1samp(d, 0.0, axis=0)
        block = pd.DataFrame({
            "timepoint": t, "reference": ref, "cell_type": clr.columns, "n_patients": len(pats),
            "mean_fraction_ref": [frac.loc[[(p, ref) for p in pats], c].mean() for c in clr.columns],
            "mean_fraction": [frac.loc[[(p, t) for p in pats], c].mean() for c in clr.columns],
            "clr_change": d.mean(axis=0), "t": tt.statistic, "p": tt.pvalue,
        })
        block["q"] = _bh(block["p"].to_numpy())
        rows.append(block)
    if not rows:
        return pd.DataFrame(columns=["timepoint", "reference", "cell_type", "n_patients", "mean_fraction_ref",
                                     "mean_fraction", "clr_change", "t", "p", "q", "direction", "significant"])
    out = pd.concat(rows, ignore_index=True)
    out["direction"] = np.where(out["clr_change"] > 0, "up", "down")
    out["significant"] = out["q"] < alpha
    return out


#: Monocyte-loss rule (cd7kit convention, documented in docs/singlecell.md): the seed paper reports
#: "loss of monocytes" in the two patients who died of infection without a number; cd7kit flags a
#: sample whose monocyte fraction is below 50 % of the same patient's baseline fraction (a >= 50 %
#: relative loss) with the bootstrap 97.5 % upper bound of that ratio below 0.8, or, without a usable
#: baseline, a monocyte fraction below 1 % of cells. Note that depletion of CD7+ T/NK cells raises
#: the monocyte *fraction* of every patient after CD7 CAR-T, so a halving is a marked loss.
MONO_LOSS_RULE = Rule(
    system="cd7kit monocyte-loss flag",
    version="1.0",
    options={"relative_threshold": 0.5, "relative_upper_bound": 0.8, "absolute_threshold": 0.01},
    source="cd7kit convention; motivated by Clin Cancer Res 2023;29(8):1484 (monocyte loss in fatal infections)",
)


def monocyte_loss(adata, patient_key: str, timepoint_key: str, label_key: str = "cell_type", *,
                  baseline: str | None = None, mono_types: Sequence[str] = MONO_TYPES,
                  relative_threshold: float = 0.5, relative_upper_bound: float = 0.8,
                  absolute_threshold: float = 0.01, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Monocyte-loss flag per patient x timepoint relative to the patient's baseline (see MONO_LOSS_RULE)."""
    rng = np.random.default_rng(seed)
    obs = adata.obs[[patient_key, timepoint_key, label_key]].astype(str)
    obs["mono"] = obs[label_key].isin(list(mono_types))
    g = obs.groupby([patient_key, timepoint_key])["mono"].agg(["sum", "size"])
    tps = _ordered(adata.obs[timepoint_key])
    base_tp = baseline or tps[0]
    rows = []
    for (p, t), r in g.iterrows():
        k, n = int(r["sum"]), int(r["size"])
        frac = k / n if n else np.nan
        row = {"patient": p, "timepoint": t, "mono_n": k, "total": n, "mono_fraction": frac,
               "baseline_fraction": np.nan, "ratio": np.nan, "ratio_ci_high": np.nan, "flag": False, "reason": ""}
        if t == base_tp:
            row["reason"] = "baseline"
            rows.append(row)
            continue
        if (p, base_tp) in g.index and g.loc[(p, base_tp), "sum"] > 0:
            kb, nb = int(g.loc[(p, base_tp), "sum"]), int(g.loc[(p, base_tp), "size"])
            fb = kb / nb
            ratio = frac / fb
            bt = rng.binomial(n, frac, n_boot) / n
            bb = rng.binomial(nb, fb, n_boot) / nb
            hi = float(np.quantile(bt / np.maximum(bb, 1e-12), 0.975))
            flag = ratio < relative_threshold and hi < relative_upper_bound
            row.update(baseline_fraction=fb, ratio=ratio, ratio_ci_high=hi, flag=bool(flag),
                       reason=f"monocytes {100 * frac:.1f}% vs baseline {100 * fb:.1f}% (ratio {ratio:.2f})" if flag else "")
        else:
            flag = frac < absolute_threshold
            row.update(flag=bool(flag), reason="no baseline; below absolute threshold" if flag else "no baseline")
        rows.append(row)
    return pd.DataFrame(rows)


def s100_score(adata, patient_key: str, timepoint_key: str, label_key: str = "cell_type", *,
               genes: Sequence[str] = ("S100A8", "S100A9"), source: str = "counts", min_cells: int = 5) -> pd.DataFrame:
    """S100A8/S100A9 score (mean log-normalised expression) per cell, summarised within cell types.

    ``obs['s100a8a9_score']`` per cell; the table has the mean score per patient x timepoint x cell
    type (NaN below ``min_cells``) and ``z_within_type``, the score standardised across samples
    within the same cell type -- never across cell types, since monocytes express S100A8/A9 far
    more than lymphocytes and a pooled score would follow composition.
    """
    present = [g for g in genes if g in _var_names(adata, source)]
    if not present:
        raise InputError([Problem("none of the S100 genes is in var_names", "var", None, None, list(genes))])
    M = _expr_source(adata, present, source)
    sc = np.asarray(M.mean(axis=1)).ravel()
    adata.obs["s100a8a9_score"] = sc.astype(np.float32)
    df = adata.obs[[patient_key, timepoint_key, label_key]].astype(str).assign(score=sc)
    tab = df.groupby([patient_key, timepoint_key, label_key])["score"].agg(["mean", "size"]).reset_index()
    tab.columns = ["patient", "timepoint", "cell_type", "score", "n_cells"]
    tab.loc[tab["n_cells"] < min_cells, "score"] = np.nan
    tab["timepoint"] = pd.Categorical(tab["timepoint"], categories=_ordered(adata.obs[timepoint_key]), ordered=True)
    grp = tab.groupby("cell_type")["score"]
    tab["z_within_type"] = (tab["score"] - grp.transform("mean")) / grp.transform("std")
    return tab


def s100_relapse(table: pd.DataFrame, relapse_patients: Sequence[str], *, baseline: str | None = None,
                 cell_types: Sequence[str] | None = None) -> pd.DataFrame:
    """Relapsing vs non-relapsing patients: change of the S100A8/A9 score from baseline, per cell type.

    Per patient the change (timepoint minus the patient's baseline score) within a cell type;
    Welch t-test between groups (patients are the unit; with 1-3 relapsing patients report the
    effect size first, the p-value is indicative).
    """
    tab = table.dropna(subset=["score"]).copy()
    col = table["timepoint"]
    tps = [str(c) for c in col.cat.categories] if isinstance(col.dtype, pd.CategoricalDtype) else [str(c) for c in pd.unique(col)]
    tab["timepoint"] = tab["timepoint"].astype(str)
    base = baseline or tps[0]
    rel = set(map(str, relapse_patients))
    rows = []
    for ct in cell_types or sorted(tab["cell_type"].unique()):
        sub = tab[tab["cell_type"] == ct].set_index(["patient", "timepoint"])["score"]
        for t in tps:
            if t == base:
                continue
            d = {p: sub[(p, t)] - sub[(p, base)] for p in sub.index.get_level_values(0).unique()
                 if (p, t) in sub.index and (p, base) in sub.index}
            a = np.array([v for p, v in d.items() if p in rel])
            b = np.array([v for p, v in d.items() if p not in rel])
            if len(a) < 1 or len(b) < 2:
                continue
            if len(a) >= 2:
                with np.errstate(all="ignore"):
                    tt = stats.ttest_ind(a, b, equal_var=False)
                pval = float(tt.pvalue)
            else:
                pval = float(2 * stats.t.sf(abs((a[0] - b.mean()) / (b.std(ddof=1) * np.sqrt(1 + 1 / len(b)))), len(b) - 1))
            rows.append({"cell_type": ct, "timepoint": t, "n_relapse": len(a), "n_other": len(b),
                         "change_relapse": a.mean(), "change_other": b.mean(), "difference": a.mean() - b.mean(),
                         "p": pval})
    out = pd.DataFrame(rows)
    if len(out):
        out["q"] = _bh(out["p"].to_numpy())
        out["direction"] = np.where(out["difference"] > 0, "up", "down")
    return out


def pseudobulk(adata, groupby: Sequence[str], *, min_cells: int = 10, mask: np.ndarray | None = None):
    """Sum raw counts (``X``, either backend, block by block) per group; returns an AnnData (groups x genes)
    with ``obs['n_cells']``."""
    import anndata as ad

    obs = adata.obs[list(groupby)].astype(str)
    keep = np.ones(adata.n_obs, bool) if mask is None else np.asarray(mask, bool)
    key = obs.agg("|".join, axis=1).to_numpy()
    key = np.where(keep, key, None)
    codes, uniq = pd.factorize(pd.Series(key, dtype=object))
    ok = codes >= 0
    G = sp.csr_matrix((np.ones(ok.sum(), np.float32), (codes[ok], np.flatnonzero(ok))), shape=(len(uniq), adata.n_obs))
    Gc = G.tocsc()
    sums = sp.csr_matrix((len(uniq), adata.n_vars), dtype=np.float64)
    for _, _, part in iter_blocks(adata, lambda B, s, e: sp.csr_matrix(Gc[:, s:e] @ B, dtype=np.float64)):
        sums = sums + part
    n_cells = np.asarray(G.sum(axis=1)).ravel().astype(int)
    meta = pd.DataFrame([u.split("|") for u in uniq], columns=list(groupby))
    meta["n_cells"] = n_cells
    meta.index = [f"pb{i}" for i in range(len(uniq))]
    sel = n_cells >= min_cells
    pb = ad.AnnData(X=sp.csr_matrix(sums)[sel], obs=meta.loc[sel].copy(), var=pd.DataFrame(index=adata.var_names.copy()))
    return pb


def de_pseudobulk(pb, condition_key: str, test: str, ref: str, *, block_key: str | None = "patient",
                  min_total: int = 10, n_cpus: int = 1, paired: bool = True) -> pd.DataFrame:
    """pyDESeq2 on pseudobulk counts: ``~ block + condition``, Wald test of ``test`` vs ``ref``.

    With ``paired``, only blocks (patients) having both levels are kept. Genes with fewer than
    ``min_total`` counts in total are dropped. Returns one row per gene (log2 fold change, Wald
    statistic, p-value, BH ``padj``), sorted by p-value.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats

    meta = pb.obs.copy()
    meta = meta[meta[condition_key].isin([test, ref])]
    if block_key and paired:
        both = meta.groupby(block_key)[condition_key].nunique()
        meta = meta[meta[block_key].isin(both[both == 2].index)]
    if meta[condition_key].nunique() < 2 or len(meta) < 3:
        raise InputError([Problem("too few pseudobulk samples for a contrast", condition_key, None, None,
                                  f"{test} vs {ref}: {len(meta)} samples")])
    X = pb[meta.index].X
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    counts = pd.DataFrame(np.rint(X).astype(np.int64), index=meta.index, columns=pb.var_names)
    counts = counts.loc[:, counts.sum(axis=0) >= min_total]
    md = pd.DataFrame(index=meta.index)
    md["condition"] = np.where(meta[condition_key] == test, "B", "A")  # safe level names
    design = "~condition"
    if block_key:
        md["block"] = ["b" + "".join(ch for ch in str(v) if ch.isalnum()) for v in meta[block_key]]
        if md["block"].nunique() > 1:
            design = "~block + condition"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = DeseqDataSet(counts=counts, metadata=md, design=design, quiet=True, n_cpus=n_cpus)
        dds.deseq2()
        ds = DeseqStats(dds, contrast=["condition", "B", "A"], quiet=True, n_cpus=n_cpus)
        ds.summary()
    res = ds.results_df.copy()
    res.index.name = "gene"
    res = res.reset_index()
    res.insert(1, "contrast", f"{test} vs {ref}")
    return res.sort_values("pvalue", na_position="last").reset_index(drop=True)


def de_post_vs_pre(adata, patient_key: str, timepoint_key: str, cell_type: str, post: str, pre: str, *,
                   label_key: str = "cell_type", min_cells: int = 10, **kw: Any) -> pd.DataFrame:
    """Pseudobulk DE within one cell type: ``post`` vs ``pre``, patient as block."""
    mask = adata.obs[label_key].astype(str).to_numpy() == cell_type
    pb = pseudobulk(adata, [patient_key, timepoint_key], min_cells=min_cells, mask=mask)
    res = de_pseudobulk(pb, timepoint_key, post, pre, block_key=patient_key, **kw)
    res.insert(1, "cell_type", cell_type)
    return res


def de_cd7neg_vs_pos(adata, patient_key: str, *, lineage_key: str = "lineage", min_cells: int = 10,
                     timepoint_key: str | None = None, timepoints: Sequence[str] | None = None, **kw: Any) -> pd.DataFrame:
    """Pseudobulk DE of CD7- vs CD7+ T cells (``obs['cd7_state']``), patient as block.

    Cells of all timepoints are pooled per patient and state unless ``timepoints`` restricts them.
    """
    if "cd7_state" not in adata.obs:
        raise InputError([Problem("no cd7_state; run tl.annotate (or tl.cd7_state) first", "obs", None, "cd7_state")])
    mask = (adata.obs[lineage_key].astype(str).to_numpy() == "T") & adata.obs["cd7_state"].notna().to_numpy()
    if timepoints is not None and timepoint_key is not None:
        mask &= adata.obs[timepoint_key].astype(str).isin(list(timepoints)).to_numpy()
    pb = pseudobulk(adata, [patient_key, "cd7_state"], min_cells=min_cells, mask=mask)
    res = de_pseudobulk(pb, "cd7_state", "CD7-", "CD7+", block_key=patient_key, **kw)
    res.insert(1, "cell_type", "T")
    return res


def pathway_scores(de: pd.DataFrame, gmt: str | None = None, *, stat_col: str = "stat", tmin: int = 3) -> pd.DataFrame:
    """Gene-set activity from a DE table: decoupler ULM on the Wald statistics (one row per set)."""
    import decoupler as dc

    sets = load_gene_sets(gmt)
    net = pd.DataFrame([(s, g) for s, gs in sets.items() for g in gs], columns=["source", "target"])
    d = de.dropna(subset=[stat_col]).drop_duplicates("gene").set_index("gene")[stat_col]
    mat = pd.DataFrame([d.to_numpy()], index=["contrast"], columns=d.index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es, pv = dc.mt.ulm(mat, net, tmin=tmin)
    out = pd.DataFrame({"gene_set": es.columns, "score": es.iloc[0].to_numpy(), "p": pv.iloc[0].to_numpy()})
    out["q"] = _bh(out["p"].to_numpy())
    out["n_genes"] = [len(set(sets[s]) & set(d.index)) for s in out["gene_set"]]
    return out.sort_values("p").reset_index(drop=True)


SUMMARY_CODES = {
    "SC_T_FRAC": "%",
    "SC_CD7NEG_T_FRAC": "%",
    "SC_NK_FRAC": "%",
    "SC_MONO_FRAC": "%",
    "SC_S100A8A9_SCORE": "score",
    "SC_CAR_FRAC": "%",
}


def sample_summaries(adata, patient_key: str, timepoint_key: str, *, day_key: str | None = "day",
                     day_map: dict[str, float] | None = None, label_key: str = "cell_type",
                     specimen: str = "PB", source: str = "scRNA-seq (cd7kit.singlecell)") -> pd.DataFrame:
    """Per-sample summaries as Study observation rows (subject_id, day, code, value, unit, ...).

    Codes (``vocab/data/singlecell.csv``): T cells % of cells, CD7- T % of T cells, NK % of cells,
    monocytes % of cells, S100A8/A9 score within classical monocytes, CAR-detected % of T cells.
    The day comes from ``obs[day_key]`` or ``day_map[timepoint]``; samples with neither are skipped
    (listed in the returned frame's ``attrs['missing']``).
    """
    obs = adata.obs
    lineage = obs["lineage"].astype(str) if "lineage" in obs else pd.Series("", index=obs.index)
    label = obs[label_key].astype(str)
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for (p, t), idx in obs.groupby([patient_key, timepoint_key], observed=True).groups.items():
        if day_map and str(t) in day_map:
            day = float(day_map[str(t)])
        elif day_key and day_key in obs and obs.loc[idx, day_key].notna().any():
            day = float(obs.loc[idx, day_key].astype(float).median())
        else:
            missing.append(f"{p}/{t}: no day")
            continue
        n = len(idx)
        lin = lineage.loc[idx]
        lab = label.loc[idx]
        isT = lin == "T"
        nT = int(isT.sum())
        vals: dict[str, float] = {
            "SC_T_FRAC": 100 * nT / n,
            "SC_NK_FRAC": 100 * float((lin == "NK").sum()) / n,
            "SC_MONO_FRAC": 100 * float(lab.isin(MONO_TYPES).sum()) / n,
        }
        if nT and "cd7_state" in obs:
            vals["SC_CD7NEG_T_FRAC"] = 100 * float((obs.loc[idx, "cd7_state"].astype(str)[isT] == "CD7-").sum()) / nT
        if "s100a8a9_score" in obs:
            m = lab == "Classical monocyte"
            if m.sum() >= 5:
                vals["SC_S100A8A9_SCORE"] = float(obs.loc[idx, "s100a8a9_score"][m].mean())
        if nT and "car_positive" in obs and obs["car_umis"].notna().any():
            vals["SC_CAR_FRAC"] = 100 * float(obs.loc[idx, "car_positive"].astype(bool)[isT].sum()) / nT
        for code, v in vals.items():
            rows.append({"subject_id": str(p), "day": day, "code": code, "value": float(v),
                         "unit": SUMMARY_CODES[code], "specimen": specimen, "source": f"{source}; sample {p}/{t}"})
    out = pd.DataFrame(rows, columns=["subject_id", "day", "code", "value", "unit", "specimen", "source"])
    out.attrs["missing"] = missing
    return out


def merge_into_study(study, observations: pd.DataFrame, *, subject_map: dict[str, str] | None = None):
    """A new Study with the summary rows appended to ``observations`` (re-validated; pure, no store).

    ``subject_map`` renames single-cell patient ids to the Study's ``subject_id``. Rows of subjects
    absent from the Study are refused (InputError listing them).
    """
    obs = observations.copy()
    if subject_map:
        obs["subject_id"] = obs["subject_id"].map(lambda x: subject_map.get(x, x))
    known = set(study.subjects["subject_id"].astype(str))
    unknown = sorted(set(obs["subject_id"]) - known)
    if unknown:
        raise InputError([Problem("subject not in the study", "observations", None, "subject_id", u,
                                  "a subject_id of the study (use a subject map)") for u in unknown])
    old = study.observations
    start = int(old["row_id"].max()) + 1 if len(old) else 0
    obs.insert(0, "row_id", np.arange(start, start + len(obs), dtype=np.int64))
    new = pd.concat([old, obs], ignore_index=True)
    return study.replace(observations=new)


@dataclass
class SingleCellReport:
    """All answers of :func:`analyze`; ``to_dict`` has value / rule / evidence / missing like a Result."""

    tables: dict[str, pd.DataFrame]
    rule: Rule
    missing: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": "singlecell_immune_reconstitution",
            "value": {k: jsonable(v) for k, v in self.tables.items()},
            "rule": self.rule.to_dict(),
            "evidence": [],  # evidence is the AnnData itself (cells), not Study rows
            "missing": list(self.missing),
            "details": jsonable(self.notes),
        }


def analyze(adata, patient_key: str, timepoint_key: str, *, car_features: Sequence[str] = ("CAR",),
            relapse_patients: Sequence[str] = (), baseline: str | None = None, gmt: str | None = None,
            sample_key: str | None = None, day_map: dict[str, float] | None = None, day_key: str | None = "day",
            de: bool = True, min_cells: int = 10, progress: Any = None) -> SingleCellReport:
    """Annotation and every seed question on a preprocessed AnnData (counts in X, graph present)."""
    step = progress or (lambda s: None)
    missing: list[str] = []
    notes: dict[str, Any] = {}
    if sample_key is None:
        sample_key = "_sample"
        adata.obs[sample_key] = (adata.obs[patient_key].astype(str) + "_" + adata.obs[timepoint_key].astype(str)).astype("category")
    tables: dict[str, pd.DataFrame] = {}
    step("annotation")
    tables["annotation"] = annotate(adata)
    step("CAR detection")
    tables["car"] = car_cells(adata, car_features, sample_key=sample_key)
    car_info = _uns(adata).get("car", {})
    if car_info.get("missing"):
        missing.append(f"CAR: {car_info['missing']}")
    step("composition")
    comp = composition(adata, patient_key, timepoint_key)
    tables["composition"] = comp
    tables["composition_test"] = composition_test(comp, baseline)
    tables["monocyte_loss"] = monocyte_loss(adata, patient_key, timepoint_key, baseline=baseline)
    step("S100A8/A9")
    s100 = s100_score(adata, patient_key, timepoint_key)
    tables["s100"] = s100
    if relapse_patients:
        tables["s100_relapse"] = s100_relapse(s100, relapse_patients, baseline=baseline)
    else:
        missing.append("relapse patients not given: S100A8/A9 relapse contrast skipped")
    tps = _ordered(adata.obs[timepoint_key])
    base = baseline or tps[0]
    if de:
        step("pseudobulk DE (pyDESeq2)")
        des = []
        for t in tps:
            if t == base:
                continue
            for key, ct in (("cell_type", "Classical monocyte"), ("lineage", "T")):
                try:
                    des.append(de_post_vs_pre(adata, patient_key, timepoint_key, ct, t, base, label_key=key,
                                              min_cells=min_cells))
                except InputError as exc:
                    missing.append(f"DE {ct} {t} vs {base}: {exc}")
        try:
            des.append(de_cd7neg_vs_pos(adata, patient_key, min_cells=min_cells))
        except InputError as exc:
            missing.append(f"DE CD7- vs CD7+ T: {exc}")
        if des:
            tables["de"] = pd.concat(des, ignore_index=True)
            step("pathways (decoupler ULM)")
            pw = []
            for (ct, con), sub in tables["de"].groupby(["cell_type", "contrast"], sort=False):
                r = pathway_scores(sub, gmt)
                r.insert(0, "contrast", con)
                r.insert(0, "cell_type", ct)
                pw.append(r)
            tables["pathways"] = pd.concat(pw, ignore_index=True)
    step("per-sample summaries")
    summ = sample_summaries(adata, patient_key, timepoint_key, day_key=day_key, day_map=day_map)
    tables["observations"] = summ
    missing.extend(summ.attrs.get("missing", []))
    notes["car"] = car_info
    notes["cd7_state"] = _uns(adata).get("cd7_state", {})
    notes["versions"] = _uns(adata).get("versions", {})
    rule = Rule(system="cd7kit.singlecell", version="1.0",
                options={"patient_key": patient_key, "timepoint_key": timepoint_key, "baseline": base,
                         "car_features": list(car_features), "min_cells": min_cells},
                source="pipeline per docs/singlecell.md; seed doi 10.1158/1078-0432.CCR-22-2924")
    adata.uns[UNS_KEY]["analysis"] = {"baseline": base, "missing": list(missing)}
    return SingleCellReport(tables=tables, rule=rule, missing=missing, notes=notes)


__all__ = ["score_markers", "annotate", "cd7_state", "car_cells", "composition", "composition_test",
           "monocyte_loss", "MONO_LOSS_RULE", "s100_score", "s100_relapse", "pseudobulk", "de_pseudobulk",
           "de_post_vs_pre", "de_cd7neg_vs_pos", "pathway_scores", "sample_summaries", "merge_into_study", "SUMMARY_CODES",
           "SingleCellReport", "analyze", "UNKNOWN", "CD7NEG_LABEL"]
