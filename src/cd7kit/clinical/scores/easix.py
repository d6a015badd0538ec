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

from ..grading._common import union_keys
from ._common import LazyEvidence, Pick, Repeat, load_rules, obs_index, resolve_options, subject_ids

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


def _wide(study: Study, subject_id: str | None = None) -> dict[str, Any]:
    """The day x code matrix of the EASIX inputs: one row per subject and calendar day with any input,
    sorted by subject id and day; per code the last value of that day (by time, then row id) in the
    formula's unit, its row id (NaN where absent) and its day; the three scores (NaN where an input is
    missing or platelets are 0). Built per code from the per-Study split of the observations with integer
    keys (no pivot of a string-keyed table)."""
    rules = _rules()
    units: dict[str, str] = rules["units"]
    idx = obs_index(study)
    sids = np.asarray(study.subjects["subject_id"], dtype=object)
    srank = np.empty(len(sids), np.int64)
    srank[np.argsort(sids, kind="stable")] = np.arange(len(sids))
    only = idx.subject_index.get_indexer([subject_id])[0] if subject_id is not None else None
    vocab = load_vocabulary()
    picked: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for code, unit in units.items():
        tc = vocab[code]
        factor = float(convert(np.array([1.0]), tc.canonical_unit, unit, tc.molar_mass_g_mol)[0])
        v = idx.col(code, "value").astype(float, copy=False)
        keep = ~np.isnan(v)
        sx = idx.sidx(code)
        if only is not None:
            keep &= sx == only
        sx, v = sx[keep].astype(np.int64), v[keep]
        day = idx.col(code, "day").astype(float, copy=False)[keep]
        row = idx.col(code, "row_id")[keep]
        cday = np.floor(day)
        o = np.lexsort((row, day, cday, sx))
        last = np.r_[(sx[o][1:] != sx[o][:-1]) | (cday[o][1:] != cday[o][:-1]), True] if len(o) else np.zeros(0, bool)
        pick = o[last]
        picked[code] = (srank[sx[pick]], cday[pick].astype(np.int64), v[pick] * factor, row[pick].astype(float), day[pick])
    # one integer key per (subject rank, calendar day): sortable by subject id, then day
    all_days = [p[1] for p in picked.values() if len(p[1])]
    dmin = int(min(int(d.min()) for d in all_days)) if all_days else 0
    span = int(max(int(d.max()) for d in all_days)) - dmin + 1 if all_days else 1
    per = {code: (r * span + (d - dmin), val, row, day) for code, (r, d, val, row, day) in picked.items()}
    grid = union_keys([k for k, _, _, _ in per.values()])
    by_rank = np.argsort(srank)  # subject position of each rank
    out: dict[str, Any] = {"s": by_rank[grid // span] if len(grid) else np.zeros(0, np.int64), "cday": (grid % span + dmin).astype(float)}
    n = len(grid)
    for code, (key, val, row, day) in per.items():
        at = np.searchsorted(grid, key)
        col = np.full(n, np.nan)
        col[at] = val
        r = np.full(n, np.nan)
        r[at] = row
        d = np.full(n, np.nan)
        d[at] = day
        out[code], out[f"{code}_row"], out[f"{code}_day"] = col, r, d
    plt = out["PLT"]
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_plt = np.where(plt > 0, plt, np.nan)
        for score, factors in rules["formulas"].items():
            num = np.ones(n)
            for f in factors:
                num = num * out[f]
            out[score] = num / safe_plt
    out["subject_id"] = sids[out["s"]] if n else np.zeros(0, dtype=object)
    return out


def easix_frame(study: Study, subject_id: str | None = None) -> pd.DataFrame:
    """Wide daily frame: one row per subject and calendar day with LDH, CREAT, PLT, CRP (formula units),
    their row ids and the three scores (NaN where an input is missing or platelets are 0)."""
    units: dict[str, str] = _rules()["units"]
    w = _wide(study, subject_id)
    cols = ["subject_id", "cday"] + [c for code in units for c in (code, f"{code}_row", f"{code}_day")] + list(SCORES)
    return pd.DataFrame({c: w[c] for c in cols})


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
    w = _wide(study, subject_id)
    n = len(w["cday"])
    sidx = np.asarray(w["s"], dtype=np.int64)
    # the input rows (one per subject, day and code) for lazily built evidence: by subject, day, then code name
    codes = sorted(units)
    present = np.column_stack([~np.isnan(w[f"{c}_row"]) for c in codes]) if n else np.zeros((0, len(codes)), bool)
    flat = np.flatnonzero(present.ravel())
    pos, ci = flat // len(codes), flat % len(codes)
    cols: dict[str, Any] = {
        "table": Repeat("observations", len(flat)),
        "row_id": np.column_stack([w[f"{c}_row"] for c in codes]).ravel()[flat] if n else np.zeros(0),
        "subject_id": w["subject_id"][pos] if n else np.zeros(0, dtype=object),
        "day": np.column_stack([w[f"{c}_day"] for c in codes]).ravel()[flat] if n else np.zeros(0),
        "what": Pick(codes, ci),
        "value": np.column_stack([w[c] for c in codes]).ravel()[flat] if n else np.zeros(0),
        "unit": Pick([units[c] for c in codes], ci),
        "note": Repeat("", len(flat)),
    }
    ev_s = sidx[pos] if n else np.zeros(0, np.int64)
    spos = obs_index(study).subject_index.get_indexer(ids)
    out: list[Result] = []
    for score, factors in rules["formulas"].items():
        needed = list(factors) + ["PLT"]
        pres: np.ndarray = np.column_stack([~np.isnan(w[c]) for c in needed]) if n else np.zeros((0, len(needed)), bool)
        rows = np.flatnonzero(pres.any(axis=1))  # days with any input of this score
        pres = pres[rows]
        complete = np.asarray(pres.all(axis=1), dtype=bool)
        vals = w[score][rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            log2 = np.where(vals > 0, np.log2(vals), np.nan)
        days, val_l, log_l = w["cday"][rows].tolist(), _to_list(vals), _to_list(log2)
        # reasons per NA day (few): subject position -> {day: [missing inputs]}
        na_by: dict[int, dict[str, list[str]]] = {}
        for k in np.flatnonzero(np.isnan(vals)).tolist():
            ds = f"{days[k]:g}"
            why = [f"{c} on day {ds}" for c, p in zip(needed, pres[k], strict=True) if not p] if not complete[k] else [f"PLT is 0 on day {ds}: {score} is undefined"]
            na_by.setdefault(int(sidx[rows[k]]), {})[ds] = why
        cutoff = opts[_OPT_FOR[score]]
        thr = None if cutoff is None or isinstance(cutoff, str) else float(cutoff)
        above = [None if x != x else bool(x > thr) for x in vals.tolist()] if thr is not None else []
        use = np.zeros(len(codes), bool)
        use[[codes.index(c) for c in needed]] = True
        ev_idx = np.flatnonzero(use[ci])
        fb = _spans(sidx[rows], spos)
        eb = _spans(ev_s[ev_idx], spos)
        units_used = {c: units[c] for c in needed}
        for sid, p, (a, b), (ea, eb_) in zip(ids, spos.tolist(), fb, eb, strict=True):
            missing_by_day = na_by.get(p, {})
            details: dict[str, Any] = {"days": days[a:b], "log2": log_l[a:b], "missing_by_day": missing_by_day, "units": dict(units_used)}
            if thr is not None:
                details["classification"] = {"cutoff": "user", "threshold": thr, "comparator": ">", "above": above[a:b], "source": "user-supplied cut-off"}
            summary = [f"{score} is NA on {len(missing_by_day)} of {b - a} days (see details.missing_by_day)"] if missing_by_day else []
            if b == a:
                summary = [f"{', '.join(needed)}: no values"]
            out.append(Result(score, val_l[a:b], rule, LazyEvidence(cols, ev_idx[ea:eb_]), summary, sid, None, details))
    out.extend(_easix_pre(study, w, ids, opts, rule))
    return out


def _spans(sidx_sorted: np.ndarray, spos: np.ndarray) -> list[tuple[int, int]]:
    """Start/stop of each subject position of ``spos`` in an array whose rows are grouped by subject."""
    if len(sidx_sorted) == 0:
        return [(0, 0)] * len(spos)
    b = np.flatnonzero(np.r_[True, sidx_sorted[1:] != sidx_sorted[:-1]])
    e = np.r_[b[1:], len(sidx_sorted)]
    at = {int(s): (int(i), int(j)) for s, i, j in zip(sidx_sorted[b].tolist(), b.tolist(), e.tolist(), strict=True)}
    return [at.get(int(p), (0, 0)) for p in spos]


def _easix_pre(study: Study, w: Mapping[str, Any], ids: list[str], opts: Mapping[str, Any], rule: Rule) -> list[Result]:
    """EASIX on the last day with LDH, creatinine and platelets within the look-back before LD start."""
    units: dict[str, str] = _rules()["units"]
    iv = study.interventions
    ld = iv[(iv["kind"] == "lymphodepletion") & iv["subject_id"].isin(ids)].groupby("subject_id")["start_day"].min()
    sindex = obs_index(study).subject_index
    ld_pos = np.full(len(sindex), np.nan)
    ld_pos[sindex.get_indexer(ld.index)] = ld.to_numpy(dtype=float)
    sx = np.asarray(w["s"], dtype=np.int64)
    ldd = np.floor(ld_pos[sx]) if len(sx) else np.zeros(0)
    cday = w["cday"]
    ok = (cday <= ldd) & (cday >= ldd - float(opts["easix_pre_lookback_days"])) & ~np.isnan(w["EASIX"])
    sel = np.flatnonzero(ok)
    last = sel[np.r_[sx[sel][1:] != sx[sel][:-1], True]] if len(sel) else sel  # rows are sorted by subject and day
    found = {str(w["subject_id"][i]): i for i in last.tolist()}
    out = []
    for sid in ids:
        if sid not in ld.index:
            out.append(Result("EASIX-pre", None, rule, (), ["lymphodepletion start (an intervention of kind 'lymphodepletion')"], sid, None, {}))
            continue
        i = found.get(sid)
        if i is None:
            lo = float(ld[sid]) - float(opts["easix_pre_lookback_days"])
            out.append(Result("EASIX-pre", None, rule, (), [f"LDH, CREAT and PLT (> 0) on one day between day {lo:g} and the LD start (day {float(ld[sid]):g})"], sid, float(ld[sid]), {}))
            continue
        r = {c: w[c][i] for code in units for c in (code, f"{code}_row", f"{code}_day")}
        v = float(w["EASIX"][i])
        details: dict[str, Any] = {"log2": math.log2(v) if v > 0 else None, "ld_start_day": float(ld[sid]), "measured_day": float(cday[i])}
        cls = _classify("EASIX", v, opts["easix_cutoff"], "pre_ld")
        if cls:
            details["classification"] = cls
        out.append(Result("EASIX-pre", v, rule, _evidence(r, sid, ["LDH", "CREAT", "PLT"], units), (), sid, float(cday[i]), details))
    return out


__all__ = ["compute_easix", "easix_frame", "default_options", "SCORES"]
