"""``cd7kit report``: a subject report or the study safety report, as HTML or PDF."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import DB_OPTION, JSON_OPTION, console, emit, open_study


def report(
    study: str = typer.Argument(..., help="A stored study id or a CSV-template folder."),
    subject: str | None = typer.Option(None, "--subject", help="Write a subject report instead of the study safety report."),
    fmt: str = typer.Option("html", "--format", help="html or pdf (PDF needs Chromium)."),
    out: Path = typer.Option(..., "--out", help="Output file."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a report with the same figures as the dashboard (static images)."""
    from cd7kit.errors import InputError, Problem
    from cd7kit.report.build import write_report

    if fmt not in ("html", "pdf"):
        raise InputError([Problem("unknown report format", column="--format", value=fmt, expected="html or pdf")])
    s = open_study(study, db)
    if subject is not None and subject not in s.subject_ids:
        raise InputError([Problem(f"no subject {subject!r} in study {s.study_id!r}", column="--subject", value=subject, expected="a subject id of the study (see 'cd7kit study show')")])
    path = write_report(s, out, fmt, subject)
    emit({"report": str(path), "format": fmt, "subject_id": subject, "study_id": s.study_id}, as_json, lambda o: console.print(f"wrote {o['report']}"))


def register(app: typer.Typer) -> None:
    app.command("report")(report)
