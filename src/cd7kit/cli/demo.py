"""``cd7kit demo``: load the embedded demo study into the database (idempotently) and print an overview.

The overview is what each engine computes on the demo study -- subjects by dose level, observations by
domain and the day span; the screening flow; the escalation state and next recommended dose; per subject
the maximum CRS and ICANS grade, worst cytopenia grades and best response; CAR kinetics (Cmax, Tmax,
AUC0-28d). ``--json`` prints the same as one object.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Column

from cd7kit.data import Study

from ._common import DB_OPTION, JSON_OPTION, console, emit, ensure_demo_study, print_table, stored


def _subjects(study: Study) -> list[dict[str, Any]]:
    obs = study.observations
    n_obs = obs.groupby("subject_id").size()
    codes = obs.groupby("subject_id")["code"].unique()
    out = []
    for r in study.subjects.to_dict("records"):
        sid = r["subject_id"]
        out.append(
            {
                "subject_id": sid,
                "status": r["status"],
                "dose_level": r["dose_level"],
                "age_years": r["age_years"],
                "source": "synthetic" if str(r.get("source") or "").startswith("synthetic") or sid.startswith("NCT06849401") else "published case report",
                "n_observations": int(n_obs.get(sid, 0)),
                "codes": sorted(codes.get(sid, [])),
            }
        )
    return out


def demo_overview(study: Study) -> dict[str, Any]:
    """The study overview (screening, escalation, grades) plus the subject list and CAR kinetics (pure)."""
    from cd7kit.kinetics.nca import nca_overview
    from cd7kit.report.overview import study_overview

    ov = study_overview(study)
    return {
        "summary": ov.summary,
        "subjects": _subjects(study),
        "screening": ov.screening,
        "escalation": ov.escalation,
        "grading": ov.grading,
        "kinetics": nca_overview(study),
    }


def _render(o: dict[str, Any]) -> None:
    from .escalate import render_state

    s = o["summary"]
    console.rule(f"[bold]{s['study_id']}[/]")
    console.print(s["title"])
    console.print(f"[dim]{s['synthetic']}[/]")
    console.print(f"{s['n_subjects']} subjects; by status {s['subjects_by_status']}; by dose level {s['subjects_by_dose_level']}")
    console.print(f"observations by domain: {s['observations_by_category']}")
    console.print(f"days {s['day_span'][0]:g} to {s['day_span'][1]:g} (day 0 = first infusion)")
    if "load" in o:
        ld = o["load"]
        console.print(f"database: {ld['study_id']} version {ld['version']} ({'written now' if ld['written'] else 'already stored: nothing written'})")
    if o["screening"] is not None:
        console.rule("Screening")
        for line in o["screening"].lines():
            console.print(line, highlight=False)
    console.rule("Dose escalation")
    render_state(o["escalation"])
    console.rule("Safety, response and CAR kinetics per subject")
    kin = {k["subject_id"]: k for k in o["kinetics"]}

    def row(sid: str, g: dict[str, Any]) -> list[str]:
        k = kin.get(sid, {})
        wc = g.get("worst_cytopenia", {})
        values = (g.get("max_crs"), g.get("max_icans"), wc.get("neutrophil_count_decreased"), wc.get("platelet_count_decreased"),
                  g.get("best_response"), k.get("cmax"), k.get("tmax_day"), k.get("auc0_28d"))
        return [sid, *map(_fmt, values)]

    columns = [Column("subject", no_wrap=True), *(Column(c, no_wrap=True, justify="right") for c in ("CRS", "ICANS", "ANC", "PLT", "BOR", "Cmax", "Tmax", "AUC0-28"))]
    print_table(None, columns, (row(sid, g) for sid, g in o["grading"].items()))
    units = sorted({str(k.get("unit")) for k in o["kinetics"] if k.get("unit")})
    console.print(
        "[dim]CRS, ICANS: maximum ASTCT 2019 grade; ANC, PLT: worst CTCAE v5.0 grade of neutrophil and platelet count decreased; "
        f"BOR: best overall response; Cmax, Tmax (days), AUC0-28 (NCA, PKNCA rules){' in ' + ', '.join(units) if units else ''}; "
        "'-': not applicable or not computable (see --json for the reasons)[/]"
    )


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def demo(
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Load the demo study (two published case-report patients and a synthetic NCT06849401-like cohort) and print its overview."""
    from cd7kit.datasets import load_demo_study

    with stored(db) as store:
        loaded = ensure_demo_study(store)
    study = load_demo_study()
    overview = demo_overview(study)
    overview["load"] = {"study_id": loaded.study_id, "version": loaded.version, "written": loaded.written}
    emit(overview, as_json, _render)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
