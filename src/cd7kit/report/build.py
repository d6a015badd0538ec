"""Static reports a DSMB or a study file can keep: a subject report and a study safety report.

HTML with the same figures as the web pages rendered to static PNG images by kaleido (which drives a
local Chromium), and PDF printed from that HTML by headless Chromium. The report only lays out what the
engines return -- grades with their evidence, the escalation state with its recommendation, the screening
flow, time-to-event estimates -- each stamped with the rule (system, version) that produced it.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cd7kit import __version__
from cd7kit.data import Study, jsonable
from cd7kit.errors import Cd7kitError

from .figures import grade_bands, subject_timeline, survival_figure, swimmer_plot

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def _env() -> Environment:
    folder = str(resources.files("cd7kit.report") / "templates")
    return Environment(loader=FileSystemLoader(folder), autoescape=select_autoescape(["html"]))


def figure_png(fig: go.Figure, width: int = 1100, height: int | None = None) -> str:
    """A figure as a base64 PNG data URI (kaleido)."""
    png = fig.to_image(format="png", width=width, height=height or int(fig.layout.height or 500), scale=1)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _stamp(study: Study) -> dict[str, Any]:
    return {
        "generated_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "study_id": study.study_id,
        "title": study.meta.get("title"),
        "synthetic": study.meta.get("synthetic"),
    }


def subject_report_html(study: Study, subject_id: str) -> str:
    """One subject: timeline figure, ASTCT/CTCAE grades with evidence, response, kinetics, events."""
    from cd7kit.clinical import grade_all
    from cd7kit.kinetics.nca import nca_overview

    sub = study.subject(subject_id)
    graded = grade_all(sub, systems=("crs", "icans", "ctcae", "icaht"))
    results = [r.to_dict() for k in ("crs", "icans", "icaht", "ctcae") for r in graded[k]]
    bands = grade_bands([r for r in results if r["name"] in ("crs", "icans")])
    timeline = figure_png(subject_timeline(study, subject_id, grade_bands=bands))
    kinetics = [k for k in nca_overview(sub) if k["subject_id"] == subject_id]
    return _env().get_template("subject_report.html").render(
        stamp=_stamp(study),
        subject=jsonable(study.subject_row(subject_id).to_dict()),
        timeline=timeline,
        results=results,
        kinetics=jsonable(kinetics),
        events=jsonable(sub.events.sort_values("day")),
    )


def safety_report_html(study: Study) -> str:
    """The study: enrolment, screening flow, escalation with its evidence, maximum grades, DLTs, deaths, outcomes."""
    from cd7kit.clinical.outcomes import cumulative_incidence, kaplan_meier

    from .overview import study_overview

    ov = study_overview(study)
    grades, escalation = ov.grading, ov.escalation.to_dict()
    flow = None if ov.screening is None else ov.screening.to_dict()
    swimmer = figure_png(swimmer_plot(study, {k: v.get("max_crs") for k, v in grades.items()}))
    outcomes = figure_png(survival_figure([kaplan_meier(study, "os"), kaplan_meier(study, "efs")], "Overall and event-free survival"))
    cir = figure_png(survival_figure([cumulative_incidence(study)], "Cumulative incidence of relapse (death without relapse competing)"))
    ev = study.events
    serious = ev[ev["kind"].isin(["dlt", "death"]) | (ev["grade"].fillna(0) >= 3)].sort_values(["subject_id", "day"])
    return _env().get_template("safety_report.html").render(
        stamp=_stamp(study),
        summary=ov.summary,
        flow=flow,
        escalation=escalation,
        grades=grades,
        subjects=jsonable(study.subjects),
        serious=jsonable(serious),
        swimmer=swimmer,
        outcomes=outcomes,
        cir=cir,
    )


def find_chromium() -> str:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise Cd7kitError("PDF output needs a Chromium browser on the PATH (Debian: apt-get install chromium); HTML output does not")


def html_to_pdf(html: str, out: Path) -> Path:
    """Print HTML to PDF with headless Chromium."""
    chromium = find_chromium()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(html, encoding="utf-8")
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-pdf-header-footer", f"--print-to-pdf={out.resolve()}", src.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not out.exists():
            raise Cd7kitError(f"Chromium could not print the PDF: {proc.stderr.strip()[-500:]}")
    return out


def write_report(study: Study, out: str | Path, fmt: str = "html", subject_id: str | None = None) -> Path:
    """Write a subject report (``subject_id`` given) or the study safety report as HTML or PDF."""
    if fmt not in ("html", "pdf"):
        raise Cd7kitError("format must be html or pdf")
    html = subject_report_html(study, subject_id) if subject_id else safety_report_html(study)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        out.write_text(html, encoding="utf-8")
        return out
    return html_to_pdf(html, out)


__all__ = ["subject_report_html", "safety_report_html", "write_report", "html_to_pdf", "figure_png"]
