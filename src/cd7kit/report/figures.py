"""Plotly figures of a Study: the subject timeline (in the spirit of the seed case report's Figures 2
and 4), the study swimmer plot and the CAR kinetics spaghetti plot (specs/data-and-platform.md section 6).

Each function takes the Study (and, where a panel shows an engine's result, that result) and returns a
``plotly.graph_objects.Figure``. No computation beyond selecting and drawing rows happens here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cd7kit.data import Study
from cd7kit.vocab import load_vocabulary

#: Treatment strip rows: intervention kinds in display order.
TREATMENT_KINDS = (
    "lymphodepletion",
    "car_infusion",
    "tocilizumab",
    "corticosteroid",
    "vasopressor",
    "oxygen",
    "transfusion",
    "chemotherapy",
    "conditioning",
    "hsct",
)
_COLORS = {
    "lymphodepletion": "#8c564b",
    "car_infusion": "#d62728",
    "tocilizumab": "#9467bd",
    "corticosteroid": "#e377c2",
    "vasopressor": "#ff7f0e",
    "oxygen": "#1f77b4",
    "transfusion": "#7f7f7f",
    "chemotherapy": "#bcbd22",
    "conditioning": "#17becf",
    "hsct": "#2ca02c",
}
GRADE_COLORS = {0: "rgba(0,0,0,0)", 1: "#fde725", 2: "#f89540", 3: "#cc4778", 4: "#7e03a8", 5: "#0d0887"}
#: A measurement line is broken where more than this many days pass without a measurement: a line drawn
#: across weeks without data (e.g. a fever on day 30 and another after transplant on day 64) would show a
#: course that was never observed. The markers are always drawn.
MAX_LINE_GAP_DAYS = 14.0


def break_gaps(s: pd.DataFrame, max_gap: float = MAX_LINE_GAP_DAYS) -> pd.DataFrame:
    """Rows sorted by ``day`` with an all-missing row inserted wherever consecutive days are more than
    ``max_gap`` apart, so that plotly (``connectgaps`` off) breaks the line there."""
    s = s.sort_values("day").reset_index(drop=True)
    day = s["day"].to_numpy(dtype=float)
    gaps = np.flatnonzero(np.diff(day) > max_gap)
    if not len(gaps):
        return s
    out = s.reindex(np.insert(np.arange(len(s)), gaps + 1, -1))  # label -1: an all-missing row
    filler = (out.index == -1)
    out.loc[filler, "day"] = (day[gaps] + day[gaps + 1]) / 2
    return out.reset_index(drop=True)


def _lines(fig: go.Figure, obs: pd.DataFrame, codes: Sequence[str], row: int, specimen: str | None = None) -> None:
    vocab = load_vocabulary()
    for code in codes:
        s = obs[obs["code"] == code]
        if specimen is not None:
            s = s[s["specimen"] == specimen]
        if s.empty:
            continue
        s = break_gaps(s)
        unit = vocab[code].canonical_unit
        fig.add_trace(
            go.Scatter(
                x=s["day"],
                y=s["value"],
                mode="lines+markers",
                connectgaps=False,
                name=f"{code} ({unit})",
                customdata=np.stack([s["row_id"], s["source"].fillna("")], axis=1),
                hovertemplate=f"day %{{x}}<br>{code} %{{y}} {unit}<br>row %{{customdata[0]}}<extra>%{{customdata[1]}}</extra>",
            ),
            row=row,
            col=1,
        )


def grade_bands(results: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Per-day grades of graded results (``Result.to_dict()`` with ``details.days``), keyed by upper-case name."""
    return {str(r["name"]).upper(): list((r.get("details") or {}).get("days", [])) for r in results}


#: The measurement panels of the subject timeline, top to bottom (the treatment strip follows).
_TIMELINE_PANEL_CODES = (
    ("CAR_COPIES", "CAR_CELLS"),
    ("BM_BLASTS", "PB_BLASTS", "MRD_FLOW", "CSF_BLASTS"),
    ("TEMP",),
    ("IL6", "IFNG", "IL10", "MCP1", "IL18"),
    ("ANC", "PLT"),
)


def subject_timeline(
    study: Study,
    subject_id: str,
    grade_bands: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    day_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Stacked panels for one subject: CAR kinetics (log, with LLOQ), blasts, temperature, cytokines,
    ANC and platelets, and a treatment strip; ``grade_bands`` (e.g. ``{"CRS": [{"day": 29, "grade": 3}, ...]}``
    from the grading engine) are drawn as coloured bands on the temperature panel.
    """
    s = study.subject(subject_id)
    obs = s.observations
    titles = ("CAR kinetics (log)", "Blasts and MRD (%)", "Temperature (degC)", "Cytokines (pg/mL)", "ANC and platelets (10^9/L)", "Treatments")
    fig = make_subplots(rows=6, cols=1, shared_xaxes=True, vertical_spacing=0.03, subplot_titles=titles, row_heights=[0.2, 0.14, 0.14, 0.16, 0.16, 0.2])
    car_codes, blast_codes, temp_codes, cytokine_codes, count_codes = _TIMELINE_PANEL_CODES
    car = obs[obs["code"].isin(car_codes)]
    _lines(fig, car[car["value"].notna()], car_codes, 1)
    lloq = car["lloq"].dropna()
    if not lloq.empty:
        # A line trace, not add_hline(annotation_text=...): plotly places an hline's label at 10**y on a log
        # axis, which stretches the axis to absurd values.
        days = obs["day"]
        y = float(lloq.min())
        fig.add_trace(go.Scatter(x=[float(days.min()), float(days.max())], y=[y, y], mode="lines", name=f"LLOQ {y:g}",
                                 line={"dash": "dot", "color": "grey"}, hoverinfo="name"), row=1, col=1)
    blq = car[car["blq"]]
    if not blq.empty:
        fig.add_trace(go.Scatter(x=blq["day"], y=blq["lloq"], mode="markers", marker_symbol="triangle-down", name="below LLOQ", marker_color="grey"), row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    _lines(fig, obs, blast_codes, 2)
    _lines(fig, obs, temp_codes, 3)
    fig.add_hline(y=38.0, line_dash="dot", line_color="red", row=3, col=1)
    _lines(fig, obs, cytokine_codes, 4)
    _lines(fig, obs, count_codes, 5)
    for k, (name, bands) in enumerate((grade_bands or {}).items()):
        for b in bands:
            g = int(b.get("grade") or 0)
            if g <= 0:
                continue
            d = float(b["day"])
            fig.add_vrect(x0=d - 0.5, x1=d + 0.5, fillcolor=GRADE_COLORS.get(g, "#444"), opacity=0.35, line_width=0, row=3, col=1)
        worst = max((int(b.get("grade") or 0) for b in bands), default=0)
        if worst > 0:
            fig.add_annotation(text=f"{name} bands (max grade {worst})", xref="paper", yref="paper", x=1.0, y=0.62 - 0.03 * k, showarrow=False, font={"size": 11})
    iv = s.interventions
    for kind in TREATMENT_KINDS:
        rows = iv[iv["kind"] == kind]
        if rows.empty:
            continue
        start = rows["start_day"].to_numpy(dtype=float)
        end = rows["end_day"].fillna(rows["start_day"]).to_numpy(dtype=float) + 1.0
        fig.add_trace(
            go.Bar(
                x=end - start,
                base=start,
                y=[kind] * len(rows),
                orientation="h",
                marker_color=_COLORS[kind],
                name=kind,
                showlegend=False,
                customdata=np.stack([rows["row_id"], rows["agent"].fillna(""), rows["source"].fillna("")], axis=1),
                hovertemplate="%{y}: %{customdata[1]}<br>day %{base} for %{x} d<br>row %{customdata[0]}<extra></extra>",
            ),
            row=6,
            col=1,
        )
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(TREATMENT_KINDS)), row=6, col=1)
    if day_range is None:
        # from a few days before lymphodepletion (or day -14) to the last record: history before that
        # (diagnosis, earlier relapses) stays in the data and in the tables, not on the treatment axis
        ld = s.lymphodepletion_start(subject_id)
        days = pd.concat([obs["day"], iv["start_day"], iv["end_day"].dropna(), s.events["day"]])
        lo = min(-14.0, (ld - 3.0) if ld is not None else -14.0)
        hi = float(days.max()) + 3.0 if len(days) else 30.0
        day_range = (lo, max(hi, 30.0))
    fig.update_xaxes(range=list(day_range))
    shown = obs[obs["value"].notna() & obs["day"].between(*day_range)]
    for row, codes in enumerate(_TIMELINE_PANEL_CODES, start=1):
        if not shown["code"].isin(codes).any():
            # an empty panel says so, instead of an axis autoscaled around points outside the window
            n = int(obs["code"].isin(codes).sum())
            # paper coordinates: plotly.js does not draw a subplot without traces, so "y4 domain" would not resolve
            lo, hi = fig.layout[f"yaxis{'' if row == 1 else row}"].domain
            fig.add_annotation(text="no measurement in the days shown" + (f" ({n} outside)" if n else ""), xref="paper",
                               yref="paper", x=0.5, y=(lo + hi) / 2, showarrow=False, font={"color": "grey"})
            fig.update_yaxes(showticklabels=False, showgrid=False, row=row, col=1)
    fig.update_xaxes(title_text="day (day 0 = first infusion)", row=6, col=1)
    fig.update_layout(height=1200, title=f"{subject_id}", barmode="overlay", legend={"orientation": "h"}, margin={"l": 60, "r": 20, "t": 60, "b": 40})
    return fig


def swimmer_plot(study: Study, max_crs: Mapping[str, int | None] | None = None) -> go.Figure:
    """One bar per infused subject from day 0 to last contact; markers for response, HSCT, relapse and death.

    ``max_crs`` (subject -> maximum ASTCT CRS grade, from the grading engine) colours the bars when given.
    """
    ev = study.events
    obs = study.observations
    infused = study.infusions()["subject_id"].unique()
    rows = []
    for sid in infused:
        last = max(
            float(obs.loc[obs["subject_id"] == sid, "day"].max() if (obs["subject_id"] == sid).any() else 0),
            float(ev.loc[ev["subject_id"] == sid, "day"].max() if (ev["subject_id"] == sid).any() else 0),
        )
        rows.append((sid, last))
    rows.sort(key=lambda r: r[1])
    fig = go.Figure()
    # one bar trace for all subjects: a figure stays small for a study of a thousand subjects
    sids = [r[0] for r in rows]
    lasts = [r[1] for r in rows]
    grades = [None if max_crs is None else max_crs.get(sid) for sid in sids]
    colors = [GRADE_COLORS.get(int(g), "#999") if g else "#9ecae1" for g in grades]
    text = [f"{sid}: day 0 to {last:g}" + (f"<br>max CRS {g}" if g is not None else "") for sid, last, g in zip(sids, lasts, grades, strict=True)]
    fig.add_trace(go.Bar(y=sids, x=lasts, base=[0] * len(sids), orientation="h", marker_color=colors, showlegend=False, hovertext=text, hoverinfo="text"))
    symbols = {"response": "circle", "hsct": "star", "relapse": "x", "death": "square"}
    for kind, sym in symbols.items():
        e = ev[(ev["kind"] == kind) & ev["subject_id"].isin(infused) & (ev["day"] >= 0)]
        if e.empty:
            continue
        fig.add_trace(go.Scatter(y=e["subject_id"], x=e["day"], mode="markers", marker_symbol=sym, marker_size=11, name=kind, text=e["term"], hovertemplate="%{y} day %{x}: %{text}<extra>" + kind + "</extra>"))
    fig.update_layout(title="Swimmer plot (day 0 = first infusion)", xaxis_title="day", barmode="overlay", height=120 + 28 * len(rows), margin={"l": 140})
    return fig


def survival_figure(estimates: Sequence[Any], title: str = "Outcomes") -> go.Figure:
    """Step curves of :class:`~cd7kit.clinical.outcomes.SurvivalEstimate` objects with 95% bands and an
    at-risk table under the axis (numbers at risk at the estimate's ``at_risk`` days)."""
    fig = make_subplots(rows=2, cols=1, row_heights=[0.8, 0.2], shared_xaxes=True, vertical_spacing=0.08)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for k, est in enumerate(estimates):
        color = palette[k % len(palette)]
        name = f"{est.endpoint.upper()} ({est.estimator}, n={est.n}, events={est.n_events})"
        fig.add_trace(go.Scatter(x=est.timeline, y=est.upper, line_shape="hv", mode="lines", line_width=0, showlegend=False, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(x=est.timeline, y=est.lower, line_shape="hv", mode="lines", line_width=0, fill="tonexty", fillcolor="rgba(0,0,0,0.08)", showlegend=False, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(x=est.timeline, y=est.estimate, line_shape="hv", mode="lines", name=name, line_color=color), row=1, col=1)
        ar = est.at_risk
        fig.add_trace(go.Scatter(x=ar["day"], y=[est.endpoint.upper()] * len(ar), mode="text", text=ar["at_risk"].astype(str), showlegend=False, textfont_color=color), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="probability", row=1, col=1)
    fig.update_yaxes(title_text="at risk", row=2, col=1)
    fig.update_xaxes(title_text="days after first infusion", row=2, col=1)
    fig.update_layout(title=title, height=520, legend={"orientation": "h"})
    return fig


#: Colours of the dose-level panels of the kinetics spaghetti plot (viridis-like, colour-blind safe).
DOSE_COLORS = ("#440154", "#31688e", "#35b779", "#fde725", "#b5de2b", "#26828e", "#6ece58")


def kinetics_spaghetti(study: Study, code: str | None = None, subject_ids: Sequence[str] | None = None) -> go.Figure:
    """CAR kinetics spaghetti plot by dose level (specs/data-and-platform.md section 6).

    One panel per dose level (``subjects.dose_level``; subjects without one in a last "no dose level"
    panel), one line per subject over study days (day 0 = first infusion), log y axis in the code's
    canonical unit, a dotted line at the assay's lower limit of quantification (the lowest LLOQ recorded
    in the panel, over the panel's days) and below-LLOQ samples as grey triangles at their LLOQ. ``code`` is ``CAR_COPIES`` (qPCR)
    or ``CAR_CELLS`` (flow); default: CAR_COPIES if the study has it, else CAR_CELLS -- the NCA engine's
    choice. Peripheral-blood samples only (no specimen recorded counts as blood), as in the NCA.
    Each panel is one line trace (subjects separated by gaps), so a study of a thousand subjects stays a
    small figure; hovering a point names its subject and Study row.
    """
    obs = study.observations
    if code is None:
        code = "CAR_COPIES" if (obs["code"] == "CAR_COPIES").any() else "CAR_CELLS"
    s = study.series(None, code)
    s = s[s["specimen"].isna() | (s["specimen"] == "PB")]
    if subject_ids is not None:
        s = s[s["subject_id"].isin(list(subject_ids))]
    unit = load_vocabulary()[code].canonical_unit
    levels = study.subjects.set_index("subject_id")["dose_level"]
    lvl = s["subject_id"].map(levels)
    panels: list[tuple[str, pd.DataFrame]] = [
        (f"dose level {int(v)}", s[lvl == v]) for v in sorted(float(x) for x in lvl.dropna().unique())
    ]
    if lvl.isna().any():
        panels.append(("no dose level", s[lvl.isna()]))
    fig = make_subplots(
        rows=1,
        cols=max(1, len(panels)),
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=[f"{name} (n={g['subject_id'].nunique()})" for name, g in panels] or [code],
    )
    for k, (name, g) in enumerate(panels, start=1):
        color = DOSE_COLORS[(k - 1) % len(DOSE_COLORS)] if name != "no dose level" else "#7f7f7f"
        xs: list[Any] = []
        ys: list[Any] = []
        cd: list[Any] = []
        q = g[g["value"].notna() & (g["value"] > 0)]
        for sid, one in q.groupby("subject_id", sort=True):
            xs += [*one["day"].tolist(), None]
            ys += [*one["value"].tolist(), None]
            cd += [*([sid, int(r)] for r in one["row_id"]), [None, None]]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                line={"color": color, "width": 1.5},
                marker={"size": 5, "color": color},
                name=name,
                customdata=cd,
                connectgaps=False,
                hovertemplate=f"%{{customdata[0]}}<br>day %{{x}}<br>{code} %{{y}} {unit}<br>row %{{customdata[1]}}<extra>{name}</extra>",
            ),
            row=1,
            col=k,
        )
        blq = g[g["blq"].fillna(False).astype(bool) & g["lloq"].notna()]
        if not blq.empty:
            fig.add_trace(
                go.Scatter(
                    x=blq["day"],
                    y=blq["lloq"],
                    mode="markers",
                    marker={"symbol": "triangle-down", "color": "grey", "size": 7},
                    name="below LLOQ",
                    legendgroup="blq",
                    showlegend=k == 1,
                    customdata=np.stack([blq["subject_id"], blq["row_id"]], axis=1),
                    hovertemplate="%{customdata[0]}<br>day %{x}: below LLOQ (%{y})<br>row %{customdata[1]}<extra></extra>",
                ),
                row=1,
                col=k,
            )
        lloq = g["lloq"].dropna()
        if not lloq.empty:
            # a line trace, not a shape: a shape's annotation on a log axis is placed at 10**y
            y = float(lloq.min())
            fig.add_trace(
                go.Scatter(
                    x=[float(g["day"].min()), float(g["day"].max())],
                    y=[y, y],
                    mode="lines",
                    line={"dash": "dot", "color": "grey", "width": 1},
                    name="LLOQ",
                    legendgroup="lloq",
                    showlegend=k == 1,
                    hovertemplate=f"LLOQ {y:g} {unit}<extra></extra>",
                ),
                row=1,
                col=k,
            )
        fig.update_xaxes(title_text="day (day 0 = first infusion)", row=1, col=k)
    if not panels:
        fig.add_annotation(text=f"no {code} observations", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
    fig.update_yaxes(type="log", row=1, col=1, title_text=f"{code} ({unit}, log scale)")
    for k in range(2, len(panels) + 1):
        fig.update_yaxes(type="log", row=1, col=k)
    fig.update_layout(title=f"CAR kinetics by dose level ({code})", height=460, legend={"orientation": "h"}, margin={"l": 70, "r": 20, "t": 70, "b": 50})
    return fig


__all__ = ["grade_bands", "kinetics_spaghetti", "subject_timeline", "swimmer_plot", "survival_figure", "TREATMENT_KINDS", "DOSE_COLORS"]
