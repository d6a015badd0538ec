"""CAR-HEMATOTOX: a pre-lymphodepletion risk score for CAR T-cell hematotoxicity.

Source: Rejeski K et al., "CAR-HEMATOTOX: a model for CAR T-cell-related hematologic toxicity in
relapsed/refractory large B-cell lymphoma", Blood 2021;138(24):2499-2513 (score figure); use and risk
groups as reproduced by the European MCL Network score page. Rule data with cut-offs, points and sources:
``cd7kit/clinical/rules/scores_hematotox.yaml``.

The score is measured before lymphodepletion (about day -5). The start of lymphodepletion is read from
the Study (``interventions`` of kind ``lymphodepletion``), never assumed: a subject without one gets NA.
For each component the last value on a calendar day in ``[LD start - lookback, LD start]`` is used
(the LD start day itself counts unless ``hematotox_include_ld_day`` is false). Units are converted
explicitly from the vocabulary's canonical units to the table's (hemoglobin g/L -> g/dL, CRP mg/L -> mg/dL).

Points: platelets < 75: 2, 75-175: 1, > 175: 0 (10^9/L); ANC < 1.2: 1 (10^9/L); hemoglobin < 9.0: 1 (g/dL);
CRP > 3.0: 1 (mg/dL); ferritin 650-2000: 1, > 2000: 2 (ng/mL). Total 0-7; low risk 0-1, high risk >= 2.
A value exactly at a cut-off is scored in the lower-risk category by default (ambiguity register A13,
option ``hematotox_boundary=lower_risk``); ``table_ranges`` follows the table's inclusive ranges
(platelets 75 and 175 -> 1 point; ferritin 650 and 2000 -> 1 point).

Two results per subject: ``CAR-HEMATOTOX`` (the total; NA if any component is missing) and
``CAR-HEMATOTOX risk`` (``high``/``low``; ``high`` is decided as soon as the available points reach 2,
``low`` needs all five components). Not validated in T-ALL or for CD7-directed products.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study
from cd7kit.data.units import convert
from cd7kit.vocab import load_vocabulary

from ._common import (
    daily_last,
    evidence_from,
    load_rules,
    obs_index,
    observations,
    resolve_options,
    subject_ids,
)

RULE_FILE = "scores_hematotox.yaml"


def _rules() -> dict[str, Any]:
    return load_rules(RULE_FILE)


def default_options() -> dict[str, Any]:
    return dict(_rules()["options"])


def component_points(code: str, values: np.ndarray, boundary: str = "lower_risk") -> np.ndarray:
    """Points of one component for values already in the table's unit (NaN stays NaN)."""
    comp = _rules()["components"][code]
    cuts = np.asarray(comp["cutoffs"], dtype=float)
    pts = np.asarray(comp["points"], dtype=float)
    x = np.asarray(values, dtype=float)
    idx = np.searchsorted(cuts, x, side="right")
    out = pts[np.clip(idx, 0, len(pts) - 1)].astype(float)
    eq_table = {float(k): v for k, v in (comp.get("table_equality") or {}).items()}
    for j, c in enumerate(cuts):
        at = np.isclose(x, c, rtol=1e-9, atol=1e-12)
        if not at.any():
            continue
        lower = min(pts[j], pts[j + 1])
        tv = eq_table.get(float(c))
        out[at] = float(tv) if (boundary == "table_ranges" and tv is not None) else lower
    out[np.isnan(x)] = np.nan
    return out


def hematotox_frame(
    study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, float], list[str]]:
    """(frame, options in force, LD start per subject, subjects): one frame row per subject and component
    with the value used (table unit), its points and row id (vectorised)."""
    rules = _rules()
    opts = resolve_options("CAR-HEMATOTOX", rules["options"], options, rules.get("choices"))
    ids = subject_ids(study, subject_id)
    iv = study.interventions
    ld = iv[(iv["kind"] == "lymphodepletion") & iv["subject_id"].isin(ids)].groupby("subject_id")["start_day"].min()
    comps = list(rules["components"])
    # rows near each subject's LD start, per component, from the per-Study split (integer subject positions)
    idx = obs_index(study)
    ld_pos = np.full(len(idx.subject_index), np.nan)
    ld_pos[idx.subject_index.get_indexer(ld.index)] = ld.to_numpy(dtype=float)
    only = idx.subject_index.get_indexer([subject_id])[0] if subject_id is not None else None
    parts = []
    for code in comps:
        sx = idx.sidx(code)
        ld_row = ld_pos[sx]
        rday = idx.col(code, "day").astype(float, copy=False)
        with np.errstate(invalid="ignore"):
            near = (np.floor(rday) >= np.floor(ld_row) - float(opts["hematotox_lookback_days"])) & (rday < ld_row + 1)
        if only is not None:
            near &= sx == only
        parts.append(idx.take(code, near, ("row_id", "subject_id", "day", "code", "value", "value_text", "unit", "lln", "uln")))
    raw = pd.concat(parts) if parts else observations(study, comps, subject_id)
    obs = daily_last(raw)
    obs = obs[obs["subject_id"].isin(ids)]
    obs = obs.assign(ld_start=obs["subject_id"].map(ld))
    ld_day = np.floor(obs["ld_start"].to_numpy(dtype=float))
    upper_ok = obs["cday"].to_numpy() <= ld_day if opts["hematotox_include_ld_day"] else obs["cday"].to_numpy() < ld_day
    in_win = upper_ok & (obs["cday"].to_numpy() >= ld_day - float(opts["hematotox_lookback_days"]))
    win = obs[in_win].sort_values(["subject_id", "code", "cday"]).drop_duplicates(["subject_id", "code"], keep="last")
    vocab = load_vocabulary()
    parts = []
    for code in comps:  # five components: a loop over rule rows, not data rows
        sub = win[win["code"] == code].copy()
        unit = rules["components"][code]["unit"]
        tc = vocab[code]
        sub["table_value"] = convert(sub["value"].to_numpy(dtype=float), tc.canonical_unit, unit, tc.molar_mass_g_mol)
        sub["table_unit"] = unit
        sub["points"] = component_points(code, sub["table_value"].to_numpy(), str(opts["hematotox_boundary"]))
        parts.append(sub)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return frame, opts, ld.to_dict(), ids


def compute_hematotox(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """CAR-HEMATOTOX total and risk group per subject (two Results each)."""
    rules = _rules()
    frame, opts, ld_start, ids = hematotox_frame(study, subject_id, options)
    comps = list(rules["components"])
    high_min = int(rules["risk_groups"]["high_min"])
    rule = Rule(rules["system"], str(rules["version"]), opts, rules["source"])
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for rec in frame.to_dict("records") if len(frame) else []:
        by_subject.setdefault(str(rec["subject_id"]), []).append(rec)
    out: list[Result] = []
    for sid in ids:
        if sid not in ld_start:
            miss = ["lymphodepletion start (an intervention of kind 'lymphodepletion'); the score is measured before it"]
            out.append(Result("CAR-HEMATOTOX", None, rule, (), miss, sid, None, {}))
            out.append(Result("CAR-HEMATOTOX risk", None, rule, (), miss, sid, None, {}))
            continue
        recs = {r["code"]: r for r in by_subject.get(sid, [])}
        ev: list[Evidence] = []
        components: dict[str, Any] = {}
        missing: list[str] = []
        for code in comps:
            r = recs.get(code)
            if r is None:
                missing.append(
                    f"{code} between day {ld_start[sid] - float(opts['hematotox_lookback_days']):g} and the lymphodepletion start (day {ld_start[sid]:g})"
                )
                components[code] = {"value": None, "points": None}
                continue
            ev.append(evidence_from(r, note=f"{rules['components'][code]['label']} = {r['table_value']:g} {r['table_unit']}: {int(r['points'])} point(s)"))
            components[code] = {"value": float(r["table_value"]), "unit": r["table_unit"], "points": int(r["points"]), "day": float(r["day"])}
        known = sum(int(c["points"]) for c in components.values() if c["points"] is not None)
        total = None if missing else known
        details = {"components": components, "ld_start_day": ld_start[sid], "points_available": known}
        out.append(Result("CAR-HEMATOTOX", total, rule, ev, missing, sid, ld_start[sid], details))
        if known >= high_min:
            risk: str | None = "high"
        elif missing:
            risk = None
        else:
            risk = "low"
        rmiss = [] if risk is not None else missing
        out.append(Result("CAR-HEMATOTOX risk", risk, rule, ev, rmiss, sid, ld_start[sid], {**details, "high_risk_min": high_min}))
    return out


__all__ = ["compute_hematotox", "hematotox_frame", "component_points", "default_options"]
