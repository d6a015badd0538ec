"""Plotly figures for kinetics (scanpy-style ``pl``): each function takes engine output and returns a Figure.

Nothing here computes: the numbers come from :mod:`.nca`, :mod:`.diagnostics`, :mod:`.saem` and the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cd7kit.data import Study


def car_profiles(study: Study, code: str = "CAR_COPIES", subjects: list[str] | None = None) -> go.Figure:
    """CAR time courses per subject (log y); BLQ samples drawn at their LLOQ as open markers; infusions as lines."""
    s = study.series(None, code)
    unit = s["unit"].iloc[0] if len(s) else ""
    fig = go.Figure()
    for sid, g in s.groupby("subject_id"):
        if subjects and sid not in subjects:
            continue
        q = g[~g["blq"]]
        b = g[g["blq"]]
        fig.add_trace(go.Scatter(x=q["day"], y=q["value"], mode="lines+markers", name=str(sid), legendgroup=str(sid)))
        if len(b):
            fig.add_trace(go.Scatter(x=b["day"], y=b["lloq"], mode="markers", marker={"symbol": "circle-open"}, name=f"{sid} BLQ", legendgroup=str(sid), showlegend=False))
    for d in sorted(set(study.infusions()["start_day"])):
        fig.add_vline(x=d, line={"dash": "dot", "width": 1, "color": "grey"})
    fig.update_yaxes(type="log", title=f"{code} ({unit})")
    fig.update_xaxes(title="day since first infusion")
    fig.update_layout(title=f"{code} by subject (open markers: BLQ at LLOQ; dotted: infusions)")
    return fig


def model_curve(t: np.ndarray, y: np.ndarray, obs: pd.DataFrame | None = None, title: str = "", unit: str = "") -> go.Figure:
    """A model curve with optional observations (columns time, value)."""
    fig = go.Figure(go.Scatter(x=t, y=y, mode="lines", name="model"))
    if obs is not None:
        fig.add_trace(go.Scatter(x=obs["time"], y=obs["value"], mode="markers", name="data"))
    fig.update_yaxes(type="log", title=unit)
    fig.update_xaxes(title="day")
    fig.update_layout(title=title)
    return fig


def ck7_states(sim: Mapping[str, np.ndarray], patient: int = 0, title: str = "CK7") -> go.Figure:
    """CK7 trajectories of one virtual patient: CAR, CD7+ T, CD7- T, NK (cells/uL) and BM blasts (%)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("blood (cells/uL)", "marrow blasts (%)"))
    t = sim["time"]
    for key, name in (("C", "CAR cells"), ("Np", "CD7+ T"), ("Nn", "CD7- T"), ("K", "NK")):
        fig.add_trace(go.Scatter(x=t, y=np.maximum(sim[key][patient], 1e-3), name=name), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=np.maximum(sim["bm_blast_pct"][patient], 1e-4), name="BM blasts (CD7+ and CD7-)"), row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title="day")
    fig.update_layout(title=title)
    return fig


def gof(table: pd.DataFrame) -> go.Figure:
    """Goodness of fit from :func:`.diagnostics.gof`: DV vs PRED, DV vs IPRED, IWRES vs time."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("DV vs PRED", "DV vs IPRED", "IWRES vs time"))
    q = table[~table["blq"]]
    lo, hi = float(q[["dv", "pred", "ipred"]].min().min()), float(q[["dv", "pred", "ipred"]].max().max())
    for col, key in ((1, "pred"), (2, "ipred")):
        fig.add_trace(go.Scatter(x=q[key], y=q["dv"], mode="markers", marker={"size": 4}, showlegend=False), row=1, col=col)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dash"}, showlegend=False), row=1, col=col)
        fig.update_xaxes(type="log", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col)
    fig.add_trace(go.Scatter(x=q["time"], y=q["iwres"], mode="markers", marker={"size": 4}, showlegend=False), row=1, col=3)
    fig.add_hline(y=0, row=1, col=3)
    fig.update_layout(title="Goodness of fit")
    return fig


def vpc_nca(vpc: Mapping[str, Any]) -> go.Figure:
    """VPC on NCA metrics from :func:`.diagnostics.vpc_nca`: observed quantiles inside simulated bands."""
    metrics = list(vpc["metrics"])
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    qs = [f"p{int(100 * q)}" for q in vpc["quantiles"]]
    for i, m in enumerate(metrics, start=1):
        d = vpc["metrics"][m]
        fig.add_trace(
            go.Scatter(
                x=qs,
                y=d["simulated_median"],
                error_y={"type": "data", "symmetric": False, "array": np.subtract(d["simulated_hi"], d["simulated_median"]), "arrayminus": np.subtract(d["simulated_median"], d["simulated_lo"])},
                mode="markers",
                name="simulated (90% band)",
                showlegend=i == 1,
                marker={"color": "grey"},
            ),
            row=1,
            col=i,
        )
        fig.add_trace(go.Scatter(x=qs, y=d["observed"], mode="markers", marker={"color": "red", "symbol": "x", "size": 10}, name="observed", showlegend=i == 1), row=1, col=i)
    fig.update_layout(title=f"VPC on NCA metrics ({vpc['n_rep']} replicates)")
    return fig


def vpc_time(table: pd.DataFrame) -> go.Figure:
    """Time-binned VPC from :func:`.diagnostics.vpc_time`."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=table["time"], y=table["sim_p50_hi"], mode="lines", line={"width": 0}, showlegend=False))
    fig.add_trace(go.Scatter(x=table["time"], y=table["sim_p50_lo"], mode="lines", fill="tonexty", line={"width": 0}, name="simulated median, 90% band"))
    for key, dash in (("obs_p05", "dot"), ("obs_p50", "solid"), ("obs_p95", "dot")):
        fig.add_trace(go.Scatter(x=table["time"], y=np.maximum(table[key], 1e-1), mode="lines+markers", line={"dash": dash, "color": "red"}, name=key))
    fig.update_yaxes(type="log")
    fig.update_layout(title="VPC (BLQ counted as 0)")
    return fig


__all__ = ["car_profiles", "model_curve", "ck7_states", "gof", "vpc_nca", "vpc_time"]
