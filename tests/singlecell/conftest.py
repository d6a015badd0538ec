"""Shared single-cell fixtures: one small planted simulation run through the pipeline once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def planted_run():
    """2,100 cells x 500 genes, 7 patients x 2 timepoints, pipeline (gauss graph, no UMAP) + analysis."""
    from cd7kit.singlecell import pp, tl
    from cd7kit.singlecell.sim import simulate

    adata = simulate(2100, 7, seed=11, n_genes=500)
    pp.run(adata, "sample", n_top_genes=400, n_comps=30, do_doublets=False, do_umap=False, graph_method="gauss")
    report = tl.analyze(adata, "patient", "timepoint", relapse_patients=["P3", "P6"], sample_key="sample")
    return adata, report
