"""EASIX, s-EASIX and m-EASIX as daily series, and EASIX before lymphodepletion (EASIX-pre).

* EASIX = LDH [U/L] x creatinine [mg/dL] / platelets [10^9/L] (Luft T et al., Lancet Haematol 2017;4:e414).
* s-EASIX = LDH / platelets; m-EASIX = LDH x CRP [mg/dL] / platelets (Pennisi M et al., Blood Adv
  2021;5(17):3397-3406). CRP is stored in mg/L (the vocabulary's canonical unit) and converted to mg/dL
  with :func:`cd7kit.data.units.convert` before the formula (30 mg/L -> 3.0 mg/dL): the 10x trap of spec
  section 0.2. Creatinine is canonical in mg/dL.

Inputs are paired on the same calendar day (the last value of each code that day). Each score is one
result per subject whose value is the daily series (aligned with ``details["days"]``); a day whose
inputs are incomplete, or whose platelet count is 0, is NA (None) with the reason in
``details["missing_by_day"]``. ``details["log2"]`` is the scale the papers analyse. One result per
subject and day would be 540,000 objects for 1,000 subjects x 180 days; the series keeps the engine
vectorised and its evidence rows are materialised on access. Published cut-offs are cohort-specific (CD19
products); they are named, cited options with no default (ambiguity register A19):
``easix_cutoff=korell2022_pre_ld`` classifies EASIX-pre > 4.67 (Korell F et al., Front Immunol
2022;13:877477); a number may be given for any of ``easix_cutoff``, ``s_easix_cutoff``, ``m_easix_cutoff``.
Rule data: ``cd7kit/clinical/rules/scores_easix.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study
from cd7kit.data.units import convert
from cd7kit.errors import InputError, Problem
from cd7kit.vocab import load_vocabulary

from ._common import (
    LazyEvidence,
    daily_last,
    evidence_columns,
    load_rules,
    observations,
    resolve_options,
    subject_ids,
)

RULE_FILE = "scores_easix.yaml"
SCORES = ("EASIX", "s-EASIX", "m-EASIX")
_OPT_FOR = {"EASIX": "easix_cutoff", "s-EASIX": "s_easix_cutoff", "m-EASIX": "m_easix_cutoff"}


def _rules() -> dict[str, Any]:
    return load_rules(RULE_FILE)


def default_options() -> dict[str, Any]:
    return dict(_rules()["options"])


def _resolve(options: Mapping[str, Any] | None, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    rules = _rules()
    opts = resolve_options("EASIX", rules["options"], options, ignore=ignore)
    problems = []
    for score, name in _OPT_FOR.items():
        v = opts[name]
        if isinstance(v, str):
            c = rules["cutoffs"].get(v)
            if c is None or c["score"] != score:
                allowed = [k for k, c2 in rules["cutoffs"].items() if c2["score"] == score]
                problems.append(Problem(f"unknown cut-off for {score}", column=name, value=v, expected="a number or one of: " + ", ".join(allowed or ["(none shipped)"])))
    if problems:
        raise InputError(problems)
    return opts


def easix_frame(study: Study, subject_id: str | None = None) -> pd.DataFrame:
    """Wide daily frame: one row per subject and calendar day with LDH, CREAT, PLT, CRP (formula units),
    their row ids and the three scores (NaN where an input is missing or platelets are 0)."""
    rules = _rules()
    units: dict[str, str] = rules["units"]
    obs = daily_last(observations(study, list(units), subject_id))
    if obs.empty:
        cols = ["subject_id", "cday"] + [c for code in units for c in (code, f"{code}_row", f"{code}_day")] + list(SCORES)
        return pd.DataFrame(columns=cols)
    vocab = load_vocabulary()
    factor = {}
    for code, unit in units.items():
        tc = vocab[code]
        factor[code] = float(convert(np.array([1.0]), tc.canonical_unit, unit, tc.molar_mass_g_mol)[0])
    obs = obs.assign(fv=obs["value"].to_numpy(dtype=float) * obs["code"].map(factor).to_numpy(dtype=float))
    wide = obs.set_index(["subject_id", "cday", "code"])[["fv", "row_id", "day"]].unstack("code")
    out = pd.DataFrame(index=wide.index)
    for code in units:
        out[code] = wide["fv"][code] if code in wide["fv"].columns else np.nan
        out[f"{code}_row"] = wide["row_id"][code] if code in wide["row_id"].columns else np.nan
        out[f"{code}_day"] = wide["day"][code] if code in wide["day"].columns else np.nan
    plt = out["PLT"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_plt = np.where(plt > 0, plt, np.nan)
        for score, factors in rules["formulas"].items():
            num = np.ones(len(out))
            for f in factors:
                num = num * out[f].to_numpy(dtype=float)
            out[score] = num / safe_plt
    return out.reset_index()


def _classify(score: str, value: float, cutoff: Any, timepoint: str) -> dict[str, Any] | None:
    if cutoff is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(cutoff, str):
        c = _rules()["cutoffs"][cutoff]
        if c["timepoint"] != timepoint:
            return None
        thr, name, src = float(c["value"]), cutoff, c["source"]
    else:
        thr, name, src = float(cutoff), "user", "user-supplied cut-off"
    return {"cutoff": name, "threshold": thr, "comparator": ">", "above": bool(value > thr), "source": src}


def _evidence(rec: Mapping[str, Any], sid: str, codes: list[str], units: Mapping[str, str]) -> list[Evidence]:
    ev = []
    for code in codes:
        rid = rec[f"{code}_row"]
        if rid is None or (isinstance(rid, float) and math.isnan(rid)):
            continue
        ev.append(Evidence("observations", int(rid), sid, float(rec[f"{code}_day"]), code, float(rec[code]), units[code], ""))
    return ev


def _to_list(x: np.ndarray) -> list[float | None]:
    """Floats with NaN as None (C-level conversion)."""
    obj = x.astype(object)
    obj[np.isnan(x)] = None
    out: list[float | None] = obj.tolist()
    return out


def _bounds(keys: np.ndarray, ids: list[str]) -> dict[str, tuple[int, int]]:
    """Start/stop positions of each subject in an array sorted by subject."""
    lo = np.searchsorted(keys, np.asarray(ids, dtype=object), side="left")
    hi = np.searchsorted(keys, np.asarray(ids, dtype=object), side="right")
    return {sid: (int(a), int(b)) for sid, a, b in zip(ids, lo, hi, strict=True)}


def compute_easix(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """EASIX / s-EASIX / m-EASIX as one daily series per subject and score, and EASIX-pre per subject.

    A series result's ``value`` is the list of daily values (``None`` where an input is missing or the
    platelet count is 0; the reasons per day are in ``details["missing_by_day"]``), aligned with
    ``details["days"]``; ``details["log2"]`` holds log2 of each value. ``evidence`` lists every input row used.
    """
    rules = _rules()
    opts = _resolve(options)
    ids = subject_ids(study, subject_id)
    units: dict[str, str] = rules["units"]
    rule = Rule(rules["system"], str(rules["version"]), opts, rules["source"])
    frame = easix_frame(study, subject_id)
    frame = frame[frame["subject_id"].isin(ids)].sort_values(["subject_id", "cday"], kind="stable").reset_index(drop=True)
    # long table of the input rows (one per subject, day and code) for lazily built evidence
    longs = []
    for code in units:
        has = frame[f"{code}_row"].notna().to_numpy()
        f = frame[has]
        longs.append(pd.DataFrame({"table": "observations", "row_id": f[f"{code}_row"].to_numpy(), "subject_id": f["subject_id"].to_numpy(), "day": f[f"{code}_day"].to_numpy(), "what": code, "value": f[code].to_numpy(), "unit": units[code], "note": "", "pos": f.index.to_numpy()}))
    ev_long = pd.concat(longs, ignore_index=True).sort_values(["subject_id", "pos", "what"], kind="stable").reset_index(drop=True)
    cols = evidence_columns(ev_long)
    fkeys = frame["subject_id"].to_numpy(dtype=object)
    fb = _bounds(fkeys, ids)
    days = frame["cday"].to_numpy(dtype=float)
    out: list[Result] = []
    for score, factors in rules["formulas"].items():
        needed = list(factors) + ["PLT"]
        present: np.ndarray = np.column_stack([frame[c].notna().to_numpy() for c in needed])
        any_present = np.asarray(present.any(axis=1), dtype=bool)
        vals = frame[score].to_numpy(dtype=float)
        complete = np.asarray(present.all(axis=1), dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            log2 = np.where(vals > 0, np.log2(vals), np.nan)
        cutoff = opts[_OPT_FOR[score]]
        thr = None if cutoff is None or isinstance(cutoff, str) else float(cutoff)
        ev_sel = ev_long["what"].isin(needed).to_numpy()
        ev_idx = np.flatnonzero(ev_sel)
        ekeys = cols["subject_id"][ev_idx].astype(object)
        eb = _bounds(ekeys, ids)
        for sid in ids:
            a, b = fb[sid]
            m = any_present[a:b]
            d = days[a:b][m]
            v = vals[a:b][m]
            na = np.isnan(v)
            missing_by_day: dict[str, list[str]] = {}
            if na.any():
                pres = present[a:b][m]
                comp = complete[a:b][m]
                for k in np.flatnonzero(na):
                    day_s = f"{d[k]:g}"
                    missing_by_day[day_s] = [f"{c} on day {day_s}" for c, p in zip(needed, pres[k], strict=True) if not p] if not comp[k] else [f"PLT is 0 on day {day_s}: {score} is undefined"]
            ea, eb_ = eb[sid]
            details: dict[str, Any] = {
                "days": d.tolist(),
                "log2": _to_list(log2[a:b][m]),
                "missing_by_day": missing_by_day,
                "units": {c: units[c] for c in needed},
            }
            if thr is not None:
                details["classification"] = {"cutoff": "user", "threshold": thr, "comparator": ">", "above": [None if x != x else bool(x > thr) for x in v], "source": "user-supplied cut-off"}
            summary = [f"{score} is NA on {len(missing_by_day)} of {len(d)} days (see details.missing_by_day)"] if missing_by_day else []
            if len(d) == 0:
                summary = [f"{', '.join(needed)}: no values"]
            value = _to_list(v)
            out.append(Result(score, value, rule, LazyEvidence(cols, ev_idx[ea:eb_]), summary, sid, None, details))
    out.extend(_easix_pre(study, frame, ids, opts, rule))
    return out


def _easix_pre(study: Study, frame: pd.DataFrame, ids: list[str], opts: Mapping[str, Any], rule: Rule) -> list[Result]:
    """EASIX on the last day with LDH, creatinine and platelets within the look-back before LD start."""
    units: dict[str, str] = _rules()["units"]
    iv = study.interventions
    ld = iv[(iv["kind"] == "lymphodepletion") & iv["subject_id"].isin(ids)].groupby("subject_id")["start_day"].min()
    f = frame.assign(ld=frame["subject_id"].map(ld))
    ldd = np.floor(f["ld"].to_numpy(dtype=float))
    ok = (f["cday"].to_numpy(dtype=float) <= ldd) & (f["cday"].to_numpy(dtype=float) >= ldd - float(opts["easix_pre_lookback_days"]))
    f = f[ok & f["EASIX"].notna()].sort_values(["subject_id", "cday"]).drop_duplicates("subject_id", keep="last")
    found = {str(r["subject_id"]): r for r in f.to_dict("records")}
    out = []
    for sid in ids:
        if sid not in ld.index:
            out.append(Result("EASIX-pre", None, rule, (), ["lymphodepletion start (an intervention of kind 'lymphodepletion')"], sid, None, {}))
            continue
        r = found.get(sid)
        if r is None:
            lo = float(ld[sid]) - float(opts["easix_pre_lookback_days"])
            out.append(Result("EASIX-pre", None, rule, (), [f"LDH, CREAT and PLT (> 0) on one day between day {lo:g} and the LD start (day {float(ld[sid]):g})"], sid, float(ld[sid]), {}))
            continue
        v = float(r["EASIX"])
        details: dict[str, Any] = {"log2": math.log2(v) if v > 0 else None, "ld_start_day": float(ld[sid]), "measured_day": float(r["cday"])}
        cls = _classify("EASIX", v, opts["easix_cutoff"], "pre_ld")
        if cls:
            details["classification"] = cls
        out.append(Result("EASIX-pre", v, rule, _evidence(r, sid, ["LDH", "CREAT", "PLT"], units), (), sid, float(r["cday"]), details))
    return out


__all__ = ["compute_easix", "easix_frame", "default_options", "SCORES"]
