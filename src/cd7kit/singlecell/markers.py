"""Shipped reference data of the single-cell pipeline: the marker hierarchy and the gene sets.

The marker hierarchy (``data/markers.yaml``) is compiled from the Azimuth human PBMC reference
(Hao Y et al., Cell 2021;184:3573) and the Seurat pbmc3k tutorial markers (Stuart T et al., Cell
2019;177:1888), with T-lymphoblast immaturity genes from the WHO/EGIL T-ALL immunophenotype; every
entry carries its source. The gene sets (``data/genesets.gmt``) are self-curated and CC0-licensed
(``data/GENESETS_LICENSE.txt``); users may pass their own GMT file instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from cd7kit.errors import InputError, Problem


@dataclass(frozen=True)
class CellTypeMarkers:
    """One node of the hierarchy: positive and negative marker genes, its parent and source."""

    name: str
    markers: tuple[str, ...]
    negative: tuple[str, ...] = ()
    parent: str | None = None
    source: str = ""
    children: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class MarkerHierarchy:
    """Lineages (level 1) and their subtypes (level 2)."""

    version: str
    nodes: dict[str, CellTypeMarkers]

    @property
    def lineages(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.parent is None]

    def children(self, name: str) -> list[str]:
        return list(self.nodes[name].children)

    def all_genes(self) -> list[str]:
        out: list[str] = []
        for n in self.nodes.values():
            for g in (*n.markers, *n.negative):
                if g not in out:
                    out.append(g)
        return out


def _parse(doc: dict, origin: str) -> MarkerHierarchy:
    problems: list[Problem] = []
    nodes: dict[str, CellTypeMarkers] = {}
    lineages = doc.get("lineages") or {}
    if not lineages:
        raise InputError([Problem("no 'lineages' in marker file", origin)])

    def node(name: str, spec: dict, parent: str | None) -> None:
        markers = tuple(spec.get("markers") or ())
        if not markers:
            problems.append(Problem("cell type without markers", origin, None, name))
        kids = spec.get("children") or {}
        nodes[name] = CellTypeMarkers(
            name=name,
            markers=markers,
            negative=tuple(spec.get("negative") or ()),
            parent=parent,
            source=str(spec.get("source", "")),
            children=tuple(kids),
        )
        for k, v in kids.items():
            node(k, v or {}, name)

    for name, spec in lineages.items():
        node(name, spec or {}, None)
    if problems:
        raise InputError(problems)
    return MarkerHierarchy(version=str(doc.get("version", "")), nodes=nodes)


@lru_cache(maxsize=1)
def _default_hierarchy() -> MarkerHierarchy:
    text = (resources.files("cd7kit.singlecell") / "data" / "markers.yaml").read_text(encoding="utf-8")
    return _parse(yaml.safe_load(text), "markers.yaml")


def load_markers(path: str | Path | None = None) -> MarkerHierarchy:
    """The shipped marker hierarchy, or one read from a YAML file of the same shape."""
    if path is None:
        return _default_hierarchy()
    p = Path(path)
    return _parse(yaml.safe_load(p.read_text(encoding="utf-8")), str(p))


def default_gmt_path() -> Path:
    """Path of the shipped CC0 gene-set file."""
    return Path(str(resources.files("cd7kit.singlecell") / "data" / "genesets.gmt"))


def load_gene_sets(gmt: str | Path | None = None) -> dict[str, list[str]]:
    """Gene sets from a GMT file (name, description, genes...; tab-separated), the shipped one by default."""
    path = Path(gmt) if gmt is not None else default_gmt_path()
    if not path.exists():
        raise InputError([Problem("gene-set file not found", str(path))])
    out: dict[str, list[str]] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3:
            raise InputError([Problem("GMT line needs name, description and at least one gene", str(path), i)])
        out[parts[0]] = [g for g in parts[2:] if g]
    return out


__all__ = ["CellTypeMarkers", "MarkerHierarchy", "load_markers", "load_gene_sets", "default_gmt_path"]
