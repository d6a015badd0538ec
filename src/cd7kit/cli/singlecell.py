"""``cd7kit singlecell``: simulate planted-truth data and run the immune-reconstitution pipeline.

``cd7kit singlecell simulate --cells N --patients 7 --seed 1 --out FILE.h5ad``
``cd7kit singlecell run INPUT.h5ad --patient-key ... --timepoint-key ... --out DIR [--car-feature NAME] [--study ID]
[--backend dask --chunk-size 20000]``
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._common import DB_HELP, JSON_HELP, console, emit, err_console

sub = typer.Typer(help="Single-cell immune reconstitution (scanpy-style pipeline, offline annotation).",
                  no_args_is_help=True)


def _progress():
    """Progress bars on stderr, so that ``--json`` output on stdout stays parseable."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False)


@sub.command("simulate")
def simulate_cmd(
    cells: int = typer.Option(5000, "--cells", help="Number of cells."),
    patients: int = typer.Option(7, "--patients", help="Number of patients."),
    genes: int = typer.Option(2000, "--genes", help="Number of genes (>= about 300: marker genes come first)."),
    seed: int = typer.Option(1, "--seed", help="Random seed."),
    null: bool = typer.Option(False, "--null", help="Plant nothing (no shifts, no monocyte loss, no S100 effect)."),
    out: Path = typer.Option(..., "--out", help="Output .h5ad file."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Simulate blood scRNA-seq before/after CD7 CAR-T with planted truth (raw counts, float32 CSR).

    Written to disk chunk by chunk (one chunk of cells in memory at a time), so a million cells fit.
    """
    import h5py

    from cd7kit.errors import InputError, Problem
    from cd7kit.singlecell.sim import write_h5ad

    if cells < 100 or patients < 1:
        raise InputError([Problem("need --cells >= 100 and --patients >= 1", None, None, "--cells", cells)])
    if out.suffix != ".h5ad":
        raise InputError([Problem("output must be an .h5ad file", str(out), None, "--out", out.suffix, ".h5ad")])
    with _progress() as prog:
        t = prog.add_task("simulating and writing", total=cells)
        write_h5ad(out, cells, patients, seed=seed, n_genes=genes, planted=not null,
                   progress=lambda done, total: prog.update(t, completed=done))
    import anndata as ad

    with h5py.File(out, "r") as f:
        nnz = int(f["X/indptr"][-1])
        n_genes = int(f["X"].attrs["shape"][1])
        truth = {k: [str(x) for x in ad.io.read_elem(f[f"uns/sim/{k}"])] for k in ("mono_loss_patients", "relapse_patients")}
    info = {"out": str(out), "n_cells": cells, "n_genes": n_genes, "patients": patients, "seed": seed,
            "planted": not null, **truth, "nnz_per_cell": nnz / cells}
    emit(info, as_json, lambda o: console.print(f"wrote {o['out']}: {o['n_cells']:,} cells x {o['n_genes']:,} genes "
                                                f"(planted: {o['planted']})"))


def _write_study(study_id: str, observations, db: str | None, out: Path, reason: str) -> dict:
    """Append the summaries to a stored study (new version) or, with no store, write a CSV template."""
    try:
        from cd7kit.store import open_store
    except ImportError:  # pragma: no cover - the store is part of cd7kit
        open_store = None  # type: ignore[assignment]
    if open_store is None:
        path = out / "observations_template.csv"
        observations.to_csv(path, index=False)
        return {"study": study_id, "written": "csv-template", "path": str(path)}
    from cd7kit.singlecell.tl import merge_into_study

    store = open_store(db)
    try:
        study = store.load_study(study_id)
        new = merge_into_study(study, observations)
        version = store.save_study(new, "cd7kit-singlecell", "system", reason, new_version=True, study_id=study_id,
                                   source="cd7kit singlecell run")
    finally:
        store.close()
    return {"study": study_id, "written": "store", "version": version, "n_observations": len(observations)}


@sub.command("run")
def run_cmd(
    input: Path = typer.Argument(..., help="AnnData .h5ad with raw UMI counts in X (gene symbols as var_names)."),
    patient_key: str = typer.Option("patient", "--patient-key", help="obs column with the patient / subject id."),
    timepoint_key: str = typer.Option("timepoint", "--timepoint-key", help="obs column with the timepoint."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    car_feature: list[str] = typer.Option(["CAR"], "--car-feature", help="Transgene feature name(s) in var_names."),
    relapse: str | None = typer.Option(None, "--relapse", help="Comma-separated relapsing patients (S100A8/A9 contrast)."),
    baseline: str | None = typer.Option(None, "--baseline", help="Baseline timepoint (default: the first)."),
    day_key: str = typer.Option("day", "--day-key", help="obs column with the day relative to infusion."),
    day_map: str | None = typer.Option(None, "--day-map", help="timepoint=day pairs, e.g. 'pre=-5,d14=14'."),
    gmt: Path | None = typer.Option(None, "--gmt", help="User gene-set file (GMT); default: shipped CC0 sets."),
    n_top_genes: int = typer.Option(2000, "--n-top-genes", help="Highly variable genes."),
    resolution: float = typer.Option(1.0, "--resolution", help="Leiden resolution."),
    no_umap: bool = typer.Option(False, "--no-umap", help="Skip UMAP (figures use PCA)."),
    no_doublets: bool = typer.Option(False, "--no-doublets", help="Skip scrublet."),
    no_de: bool = typer.Option(False, "--no-de", help="Skip pseudobulk DE and pathways."),
    graph_method: str = typer.Option("umap", "--graph-method", help="kNN connectivities: umap (scanpy default) or gauss."),
    threads: int = typer.Option(1, "--threads", help="Thread count (fixed for reproducibility)."),
    gpu: bool = typer.Option(False, "--gpu", help="Graph, Leiden and UMAP on the GPU (needs rapids-singlecell; "
                             "an error names what to install when it is missing)."),
    backend: str = typer.Option("memory", "--backend", help="memory: read the file into RAM; dask: keep the counts "
                                "on disk and read them in row blocks (out-of-core, for data larger than RAM)."),
    chunk_size: int = typer.Option(5000, "--chunk-size", help="Cells per block with --backend dask."),
    study: str | None = typer.Option(None, "--study", help="Study id: append the per-sample summaries as a new version."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run QC -> annotation -> composition, monocyte loss, S100A8/A9, pseudobulk DE, pathways; write tables and figures."""
    from cd7kit.errors import InputError, Problem
    from cd7kit.singlecell import pl, pp, tl

    if not input.exists():
        raise InputError([Problem("input file not found", str(input))])
    if gpu:
        pp.require_gpu()  # fails before any work, naming what to install
    adata = pp.read(input, backend=backend, chunk_size=chunk_size)
    out.mkdir(parents=True, exist_ok=True)
    problems = [Problem(f"obs has no column {k!r}", str(input), None, k) for k in (patient_key, timepoint_key)
                if k not in adata.obs]
    dm: dict[str, float] | None = None
    if day_map:
        try:
            dm = {k.strip(): float(v) for k, v in (p.split("=") for p in day_map.split(","))}
        except ValueError:
            problems.append(Problem("--day-map must be timepoint=day pairs", None, None, "--day-map", day_map))
    if problems:
        raise InputError(problems)
    adata.obs["sample"] = (adata.obs[patient_key].astype(str) + "_" + adata.obs[timepoint_key].astype(str)).astype("category")
    steps = ["QC (per-sample MAD thresholds)", "doublet scores (scrublet)", "normalisation (shifted log)",
             "highly variable genes", "PCA (covariance, implicit centring)", "neighbours", "Leiden", "UMAP", "annotation",
             "CAR detection", "composition", "S100A8/A9", "pseudobulk DE (pyDESeq2)", "pathways (decoupler ULM)",
             "per-sample summaries", "figures and tables"]
    with _progress() as prog:
        task = prog.add_task("starting", total=len(steps))

        def step(name: str) -> None:
            prog.update(task, description=name, completed=steps.index(name) if name in steps else None)

        pp.run(adata, "sample", n_top_genes=n_top_genes, resolution=resolution, do_umap=not no_umap,
               do_doublets=not no_doublets, exclude_from_hvg=car_feature, n_threads=threads, use_gpu=gpu, graph_method=graph_method,
               progress=step)
        rel = [r.strip() for r in relapse.split(",")] if relapse else []
        report = tl.analyze(adata, patient_key, timepoint_key, car_features=car_feature, relapse_patients=rel,
                            baseline=baseline, gmt=str(gmt) if gmt else None, sample_key="sample", day_map=dm,
                            day_key=day_key, de=not no_de, progress=step)
        step("figures and tables")
        files: dict[str, str] = {}
        for name, df in report.tables.items():
            p = out / f"{name}.csv"
            df.to_csv(p, index=False)
            files[name] = str(p)
        files["umap_png"] = str(pl.embedding(adata, "cell_type", out / "umap_cell_type.png"))
        files["composition_png"] = str(pl.composition_over_time(report.tables["composition"], out / "composition.png"))
        files["s100_png"] = str(pl.s100_within_types(report.tables["s100"], out / "s100.png", rel))
        h5 = out / "annotated.h5ad"
        adata.write_h5ad(h5)
        files["h5ad"] = str(h5)
        prog.update(task, completed=len(steps), description="done")
    result = report.to_dict()
    result["files"] = files
    if study:
        result["study_write"] = _write_study(study, report.tables["observations"], db, out,
                                             reason=f"single-cell summaries from {input.name}")
    (out / "report.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")

    def render(r: dict) -> None:
        console.print(f"[bold]cell types[/]: {len(report.tables['annotation'])}; cells: {adata.n_obs:,}")
        ct = report.tables["composition_test"]
        for _, row in ct[ct["significant"]].iterrows():
            console.print(f"  {row['cell_type']}: {row['direction']} at {row['timepoint']} (q={row['q']:.2g})")
        ml = report.tables["monocyte_loss"]
        for _, row in ml[ml["flag"]].iterrows():
            console.print(f"  [red]monocyte loss[/] {row['patient']} {row['timepoint']}: {row['reason']}")
        if r["missing"]:
            console.print("[yellow]missing[/]: " + "; ".join(r["missing"]))
        if "study_write" in r:
            console.print(f"study: {r['study_write']}")
        console.print(f"written to {out}")

    emit(result, as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="singlecell")
