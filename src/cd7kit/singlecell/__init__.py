"""Immune reconstitution from single-cell RNA-seq after CD7 CAR-T / CAR-NK therapy (scanpy-style).

``pp`` preprocessing (memory-lean: raw counts stay the only copy in ``X``), ``tl`` annotation and
the seed's questions (composition, monocyte loss, S100A8/A9, pseudobulk DE, pathways, summaries
for the Study), ``pl`` figures, ``sim`` a planted-truth simulator. AnnData in, AnnData out.
Seed: Clin Cancer Res 2023;29(8):1484 (doi 10.1158/1078-0432.CCR-22-2924). See docs/singlecell.md.
"""

from __future__ import annotations

from . import markers, pl, pp, sim, tl
from .markers import load_gene_sets, load_markers
from .sim import simulate

__all__ = ["pp", "tl", "pl", "sim", "markers", "simulate", "load_markers", "load_gene_sets"]
