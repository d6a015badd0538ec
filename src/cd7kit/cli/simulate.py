"""``cd7kit simulate``: virtual patients and in-silico trials (engine :mod:`cd7kit.sim`).

``cd7kit simulate cohort --design NCT06849401 --n 9 --seed 1 --out DIR`` writes a CSV-template study folder;
``cd7kit simulate population --n 100000 [--scheduler ADDRESS]`` runs a large virtual population on Dask
(a local cluster by default) with a progress bar; ``cd7kit simulate dlt`` gives per-dose DLT
probabilities from virtual patients for the escalation engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress
from rich.table import Table

from ._common import JSON_HELP, console, emit

simulate_app = typer.Typer(help="Virtual patients (CK7 model) and in-silico trials.", no_args_is_help=True)
DESIGN_HELP = "NCT06849401 (CD7 CAR-NK, 3 levels x 6 doses) or CD7-CAR-T (single infusion)."


@simulate_app.command("cohort")
def cohort_cmd(
    design: str = typer.Option("NCT06849401", "--design", help=DESIGN_HELP),
    n: int = typer.Option(9, "--n", min=1, help="Number of virtual patients."),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed, same study)."),
    days: int = typer.Option(180, "--days", min=28, help="Follow-up in days."),
    out: Path = typer.Option(..., "--out", help="Folder to write the study to (cd7kit CSV template)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Simulate a virtual cohort and write it as a CSV-template study folder."""
    from cd7kit.io import write_cd7kit
    from cd7kit.sim import simulate_cohort

    st = simulate_cohort(design=design, n=n, seed=seed, days=days)
    path = write_cd7kit(st, out)
    summary = {**st.summary(), "folder": str(path), "provenance": st.meta.get("provenance")}
    emit(summary, as_json, lambda s: console.print(f"wrote {s['n_subjects']} virtual patients, {s['n_observations']} observations to {s['folder']}"))


@simulate_app.command("dlt")
def dlt_cmd(
    design: str = typer.Option("NCT06849401", "--design", help=DESIGN_HELP),
    n_per_dose: int = typer.Option(1000, "--n-per-dose", min=10, help="Virtual patients per dose level."),
    seed: int = typer.Option(1, "--seed"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Per-dose DLT probabilities from virtual patients (p_true for the escalation engine)."""
    from cd7kit.sim.trial import dlt_probabilities

    res = dlt_probabilities(design, n_per_dose, seed)

    def render(r: Any) -> None:
        t = Table(title=f"P(DLT) from {r.n_per_dose} virtual patients per level ({r.design})")
        for c in ("level", "cells/kg", "P(DLT)", "SE", "P(CRS>=3)", "P(ANC<0.5 at d28)"):
            t.add_column(c)
        for i, d in enumerate(r.doses_per_kg):
            t.add_row(str(i + 1), f"{d:.3g}", f"{r.p[i]:.3f}", f"{r.se[i]:.3f}", f"{r.p_crs3[i]:.3f}", f"{r.p_neutropenia[i]:.3f}")
        console.print(t)

    emit(res, as_json, render)


@simulate_app.command("population")
def population_cmd(
    n: int = typer.Option(10000, "--n", min=1, help="Number of virtual patients."),
    design: str = typer.Option("NCT06849401", "--design", help=DESIGN_HELP),
    seed: int = typer.Option(1, "--seed"),
    days: int = typer.Option(180, "--days", min=28),
    chunk: int = typer.Option(1000, "--chunk", min=1, help="Patients per Dask task."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler ADDRESS (default: a LocalCluster)."),
    workers: int | None = typer.Option(None, "--workers", help="Workers of the local cluster."),
    out: Path | None = typer.Option(None, "--out", help="CSV file for the per-patient summary."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Simulate a large virtual population on Dask and summarise it."""
    from cd7kit.sim.distributed import simulate_population

    with Progress(console=console, disable=as_json, transient=True) as prog:
        task = prog.add_task("simulating", total=None)

        def on_done(k: int, total: int) -> None:
            prog.update(task, completed=k, total=total)

        df = simulate_population(n, design, seed, days, chunk, scheduler, workers, on_done=on_done)
    if out is not None:
        df.to_csv(out, index=False)
    g = df.groupby("dose_level").agg(
        n=("cr_d28", "size"), cr_d28=("cr_d28", "mean"), relapse=("relapse", "mean"), car_cmax_median=("car_cmax_cells_per_uL", "median"), il6_peak_median=("il6_peak_pg_mL", "median")
    )
    res = {"name": "virtual_population", "value": g.reset_index().to_dict("records"), "details": {"n": n, "design": design, "seed": seed, "scheduler": scheduler or "LocalCluster", "out": str(out) if out else None}}
    emit(res, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(simulate_app, name="simulate")
