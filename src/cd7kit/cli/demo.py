"""``cd7kit demo``: load the embedded demo study into the database and print its overview."""

from __future__ import annotations

import typer

from ._common import DB_HELP, JSON_HELP, emit


def demo(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Load the demo study (two published case-report patients and a synthetic NCT06849401-like cohort)."""
    from cd7kit.datasets import load_demo_study

    study = load_demo_study()
    emit(study.summary(), as_json)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
