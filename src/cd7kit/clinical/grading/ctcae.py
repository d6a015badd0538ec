"""CTCAE v5.0 (or v6.0, never mixed) grades of laboratory terms, fever and febrile neutropenia.

Sources: NCI Common Terminology Criteria for Adverse Events v5.0 (27 Nov 2017) and v6.0; laboratory
comparators as coded in pharmaverse/admiral (``ncictcaev5.json`` / ``ncictcaev6.json``). Rule data:
``clinical/rules/ctcae_v5.yaml``, ``ctcae_v6.yaml``; options ``ctcae_options.yaml``; spec grading.md section
3 and ambiguities A10-A12.

Every observation of a graded code is graded (vectorised over all rows at once). Baseline-dependent terms
use the subject's baseline -- the last value strictly before the start of lymphodepletion by default --
and "baseline abnormal" means BASE > ULN of the baseline sample (A11, admiral). Values at or before the
baseline time point are graded against ULN/LLN only, never against the baseline itself (admiral issue
#2512: otherwise a baseline value is always grade 0 against itself). A value that needs a missing LLN,
ULN or baseline is NA, never a silent 0. A subject's result per term is the worst grade in the window.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study

from . import _common as C

OPTIONS = "ctcae_options"
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def version_rules(version: str) -> dict[str, Any]:
    return C.load_rules("ctcae_v5" if str(version).startswith("5") else "ctcae_v6")


def _rule(opts: Mapping[str, Any], term: str | None = None) -> Rule:
    r = version_rules(opts["version"])
    o = dict(opts)
    if term:
        o["term"] = term
    return Rule(r["system"], str(r["version"]), o, " ".join(str(r["source"]).split()))


def _reference_days(study: Study, opts: Mapping[str, Any], sids: np.ndarray) -> np.ndarray:
    ref = pd.Series(np.nan, index=pd.Index(sids))
    if opts["baseline"] == "pre_lymphodepletion":
        ld = C.ld_start_days(study)
        ref.loc[ld.index.intersection(ref.index)] = ld
        if opts["baseline_fallback"] == "pre_infusion":
            ref = ref.fillna(0.0)
    else:
        ref[:] = 0.0
    return ref.to_numpy(dtype=float)


def grade_values(
    value: np.ndarray,
    lln: np.ndarray,
    uln: np.ndarray,
    base: np.ndarray,
    base_lln: np.ndarray,
    base_uln: np.ndarray,
    criteria: list[dict[str, Any]],
    base_relative: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grade arrays of values against one term's criteria.

    Returns ``(grade, uncertain)``: grade is float (NaN = not gradable); ``uncertain`` marks a grade that
    is a lower bound because a higher grade needed a missing limit. ``base_relative`` False disables the
    baseline-relative criteria for a row (the baseline time point itself).
    """
    n = len(value)
    v = np.asarray(value, dtype=float)
    if base_relative is None:
        base_relative = np.ones(n, bool)
    base = np.where(base_relative, base, np.nan)
    have_base = ~np.isnan(base)
    abnormal = have_base & (base > base_uln)
    low = have_base & (base < base_lln)
    when = {
        "always": np.ones(n, bool),
        "base_normal": ~abnormal,
        "base_abnormal": abnormal,
        "base_low": low,
        "base_not_low": ~low,
        "below_lln": v < lln,
    }
    grade = np.full(n, np.nan)
    decided = np.isnan(v)
    uncertain = np.zeros(n, bool)
    for g in sorted({int(c["grade"]) for c in criteria}, reverse=True):
        any_true = np.zeros(n, bool)
        any_eval = np.zeros(n, bool)
        any_appl = np.zeros(n, bool)
        for c in (c for c in criteria if int(c["grade"]) == g):
            appl = when[c.get("when", "always")]
            ref = c.get("ref", "abs")
            f = float(c.get("factor", 1.0))
            if ref == "abs":
                rv = np.full(n, float(c["value"]))
            elif ref == "lln":
                rv = lln * f
            elif ref == "uln":
                rv = uln * f
            else:
                rv = base * f
            ev = appl & ~np.isnan(rv)
            with np.errstate(invalid="ignore"):
                t = ev & _OPS[c["op"]](v, rv)
            any_true |= t
            any_eval |= ev
            any_appl |= appl
        hit = ~decided & any_true
        grade[hit] = g
        decided |= hit
        uncertain |= ~decided & any_appl & ~any_eval
    rest = ~decided
    grade[rest & ~uncertain] = 0
    # undecided and uncertain stay NaN; decided-with-uncertainty above keep their (lower-bound) grade
    return grade, uncertain & ~np.isnan(grade)


def ctcae_table(study: Study, options: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every graded observation as one long table (subject_id, term, day, row_id, value, grade, ...)."""
    opts = C.resolve_options("ctcae", OPTIONS, options)
    return C.memo(study, "ctcae_table", opts, lambda: _ctcae_table(study, opts))  # type: ignore[no-any-return]


def _ctcae_table(study: Study, opts: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    vr = version_rules(opts["version"])
    terms = vr["terms"]
    wanted = list(terms) if opts["terms"] == "all" else [t for t in opts["terms"] if t in terms]
    if opts["terms"] != "all":
        unknown = [t for t in opts["terms"] if t not in terms and t not in ("fever", "febrile_neutropenia")]
        if unknown:
            from cd7kit.errors import InputError, Problem

            raise InputError([Problem(f"no term {t!r} in CTCAE {vr['version']}", column="terms", value=t, expected=", ".join(terms)) for t in unknown])
    sids = np.asarray(study.subjects["subject_id"], dtype=object)
    sindex = pd.Index(sids)
    ref = _reference_days(study, opts, sids)
    idx = C.obs_index(study)
    frames: list[dict[str, Any]] = []
    missing_base: dict[str, set[str]] = {}
    for key in wanted:
        spec = terms[key]
        df = idx.get(spec["code"])
        keep = df["value"].notna().to_numpy()
        s = idx.sidx(spec["code"])[keep]
        df = df[keep]
        if df.empty:
            continue
        day = df["day"].to_numpy(dtype=float)
        v = df["value"].to_numpy(dtype=float)
        lln = df["lln"].to_numpy(dtype=float)
        uln = df["uln"].to_numpy(dtype=float)
        r = ref[s]
        pre = day < r  # at or before the baseline time point: not graded against the baseline
        uses_base = any(c.get("ref") == "base" or str(c.get("when", "")).startswith("base") for c in spec["criteria"])
        base = np.full(len(df), np.nan)
        b_lln = np.full(len(df), np.nan)
        b_uln = np.full(len(df), np.nan)
        if uses_base:
            pre_rows = np.flatnonzero(pre)
            if len(pre_rows):
                o = pre_rows[np.lexsort((day[pre_rows], s[pre_rows]))]
                last = np.r_[s[o][1:] != s[o][:-1], True]
                bs = s[o][last]
                bmap_v = pd.Series(v[o][last], index=bs)
                bmap_l = pd.Series(lln[o][last], index=bs)
                bmap_u = pd.Series(np.where(np.isnan(uln[o][last]), np.nan, uln[o][last]), index=bs)
                base = bmap_v.reindex(s).to_numpy(dtype=float)
                b_lln = bmap_l.reindex(s).to_numpy(dtype=float)
                b_uln = bmap_u.reindex(s).to_numpy(dtype=float)
                b_uln = np.where(np.isnan(b_uln), uln, b_uln)
                b_lln = np.where(np.isnan(b_lln), lln, b_lln)
            nob = np.isnan(base) & ~pre
            for sid in np.unique(sids[s[nob]]):
                missing_base.setdefault(str(sid), set()).add(key)
        g, unc = grade_values(v, lln, uln, base, b_lln, b_uln, spec["criteria"], base_relative=~pre)
        if uses_base and opts["missing_baseline"] == "na":
            g = np.where(np.isnan(base) & ~pre, np.nan, g)
        frames.append(
            {
                "sidx": s,
                "term": key,
                "day": day,
                "row_id": df["row_id"].to_numpy(),
                "code": spec["code"],
                "value": v,
                "lln": lln,
                "uln": uln,
                "baseline": base,
                "baseline_relative": ~pre & ~np.isnan(base),
                "grade": g,
                "lower_bound": unc,
            }
        )
    if "fever" in vr and (opts["terms"] == "all" or "fever" in opts["terms"]):
        frames.append(_fever(study, vr["fever"], sindex))
    if "febrile_neutropenia" in vr and (opts["terms"] == "all" or "febrile_neutropenia" in opts["terms"]):
        frames.append(_febrile_neutropenia(study, vr["febrile_neutropenia"], sindex, float(opts["fn_anc_lookback_days"])))
    cols = ["sidx", "day", "row_id", "value", "lln", "uln", "baseline", "baseline_relative", "grade", "lower_bound", "anc", "anc_row"]
    merged: dict[str, list[np.ndarray]] = {c: [] for c in cols}
    for f in frames:
        n_f = len(f["sidx"])
        fs = np.asarray(f["sidx"])
        fd = np.asarray(f["day"], dtype=float)
        ordered = n_f < 2 or bool(np.all((fs[1:] > fs[:-1]) | ((fs[1:] == fs[:-1]) & (fd[1:] >= fd[:-1]))))
        order: np.ndarray | None = None if ordered else np.lexsort((np.asarray(f["row_id"]), fd, fs))
        for c in cols:
            col = f.get(c)
            if col is None:
                col = np.full(n_f, np.nan) if c not in ("baseline_relative", "lower_bound") else np.zeros(n_f, bool)
            merged[c].append(np.asarray(col) if order is None else np.asarray(col)[order])
    tab = pd.DataFrame({c: (np.concatenate(v) if v else np.zeros(0)) for c, v in merged.items()})
    term_keys = [f["term"] for f in frames]
    term_i = np.concatenate([np.full(len(f["sidx"]), k, np.int64) for k, f in enumerate(frames)]) if frames else np.zeros(0, np.int64)
    tab["term_i"] = term_i
    tab["term"] = pd.Categorical.from_codes(term_i, categories=term_keys) if frames else pd.Categorical([])
    code_keys = list(dict.fromkeys(f["code"] for f in frames))
    tab["code"] = pd.Categorical.from_codes(np.array([code_keys.index(f["code"]) for f in frames], np.int64)[term_i], categories=code_keys) if frames else pd.Categorical([])
    # window: [window_start_day, window_end_day] and before censoring
    cens = C.censor_days(study, opts["censor_kinds"]).reindex(sids).to_numpy(dtype=float)
    s = tab["sidx"].to_numpy(dtype=np.int64)
    d = tab["day"].to_numpy(dtype=float)
    inw = d >= float(opts["window_start_day"])
    if opts["window_end_day"] is not None:
        inw &= d <= float(opts["window_end_day"])
    cd = cens[s] if len(s) else np.zeros(0)
    inw &= np.isnan(cd) | (d < np.floor(cd))
    tab["in_window"] = inw
    tab["subject_id"] = sids[tab["sidx"].to_numpy(dtype=np.int64)] if len(tab) else []
    return tab, {"opts": opts, "sids": sids, "missing_base": missing_base, "terms": wanted + [t for t in ("fever", "febrile_neutropenia") if t in vr and (opts["terms"] == "all" or t in opts["terms"])], "vr": vr}


def _long_runs(rid: np.ndarray, member: np.ndarray, day: np.ndarray, min_span_days: float) -> np.ndarray:
    """Run ids (rows sorted by subject and time) whose first-to-last reading spans more than ``min_span_days``."""
    r = rid[member]
    d = day[member]
    b = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    span = np.maximum.reduceat(d, b) - np.minimum.reduceat(d, b)
    return r[b][span > min_span_days]


def _fever(study: Study, spec: Mapping[str, Any], sindex: pd.Index) -> dict[str, np.ndarray]:
    t = C.obs_index(study).get("TEMP")
    t = t[t["value"].notna()]
    s = sindex.get_indexer(t["subject_id"].to_numpy())
    day = t["day"].to_numpy(dtype=float)
    v = t["value"].to_numpy(dtype=float)
    o = np.lexsort((day, s))
    s, day, v, rows = s[o], day[o], v[o], t["row_id"].to_numpy()[o]
    g = np.where(v > spec["grade3_above_c"], 3.0, np.where(v > spec["grade2_above_c"], 2.0, np.where(v >= spec["grade1_min_c"], 1.0, 0.0)))
    hot = g == 3
    # > 40.0 degC for > 24 h: a run of consecutive readings above 40 spanning more than 24 hours
    new_run = hot & ~(np.r_[False, hot[:-1]] & np.r_[False, s[1:] == s[:-1]])
    run_id = np.cumsum(new_run)
    rid = np.where(hot, run_id, 0)
    if hot.any():
        long_runs = _long_runs(rid, hot, day, spec["grade4_hours"] / 24.0)
        g = np.where(hot & np.isin(rid, long_runs), 4.0, g)
    return {"sidx": s, "term": "fever", "day": day, "row_id": rows, "code": "TEMP", "value": v, "grade": g}


def _febrile_neutropenia(study: Study, spec: Mapping[str, Any], sindex: pd.Index, lookback: float) -> dict[str, np.ndarray]:
    idx = C.obs_index(study)
    t = idx.get("TEMP")
    t = t[t["value"].notna()][["subject_id", "day", "value", "row_id"]].copy()
    a = idx.get("ANC")
    a = a[a["value"].notna()][["subject_id", "day", "value", "row_id"]].rename(columns={"value": "anc", "row_id": "anc_row", "day": "anc_day"})
    t["sidx"] = sindex.get_indexer(t["subject_id"].to_numpy())
    t = t.sort_values(["sidx", "day"], kind="stable")
    # sustained >= 38.0 for > 1 h: consecutive readings >= 38 spanning more than 1 hour
    v = t["value"].to_numpy(dtype=float)
    s = t["sidx"].to_numpy()
    d = t["day"].to_numpy(dtype=float)
    warm = v >= spec["sustained_min_c"]
    new_run = warm & ~(np.r_[False, warm[:-1]] & np.r_[False, s[1:] == s[:-1]])
    rid = np.where(warm, np.cumsum(new_run), 0)
    sustained = np.zeros(len(t), bool)
    if warm.any():
        sustained = warm & np.isin(rid, _long_runs(rid, warm, d, spec["sustained_hours"] / 24.0))
    febrile = (v > spec["single_temp_above_c"]) | sustained
    t["febrile"] = febrile
    t["t_end"] = np.floor(d) + 1.0  # an ANC from the same calendar day counts
    if len(a) and len(t):
        a = a.sort_values("anc_day")
        tt = t.sort_values("t_end")
        m = pd.merge_asof(tt, a, left_on="t_end", right_on="anc_day", by="subject_id", direction="backward", allow_exact_matches=False)
        too_old = m["anc_day"] < np.floor(m["day"]) - lookback
        m.loc[too_old, ["anc", "anc_row"]] = np.nan
        m = m.sort_values(["sidx", "day"], kind="stable")
    else:
        m = t.assign(anc=np.nan, anc_row=np.nan)
    anc = m["anc"].to_numpy(dtype=float)
    feb = m["febrile"].to_numpy(dtype=bool)
    g = np.where(~feb, 0.0, np.where(np.isnan(anc), np.nan, np.where(anc < spec["anc_below"], float(spec["grade"]), 0.0)))
    return {
        "sidx": m["sidx"].to_numpy(),
        "term": "febrile_neutropenia",
        "day": m["day"].to_numpy(dtype=float),
        "row_id": m["row_id"].to_numpy(),
        "code": "TEMP",
        "value": m["value"].to_numpy(dtype=float),
        "grade": g,
        "anc": anc,
        "anc_row": m["anc_row"].to_numpy(dtype=float),
    }


def grade_ctcae(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """Worst CTCAE grade per subject and term in the window, with every graded value as evidence table.

    One :class:`Result` per (subject, term), named ``ctcae:<term>``; ``value`` None when the subject has no
    gradable value of the term (reason in ``missing``).
    """
    st = C.restrict(study, subject_id)
    tab, extras = ctcae_table(st, options)
    return ctcae_results(st, tab, extras)


def ctcae_results(st: Study, tab: pd.DataFrame, extras: Mapping[str, Any]) -> list[Result]:
    opts = extras["opts"]
    vr = extras["vr"]
    sids = extras["sids"]
    w = tab[tab["in_window"].to_numpy(dtype=bool)] if len(tab) else tab
    s = w["sidx"].to_numpy(dtype=np.int64)
    term_cats = list(w["term"].cat.categories) if len(w) else []
    day = w["day"].to_numpy(dtype=float)
    grade = w["grade"].to_numpy(dtype=float)
    rows = w["row_id"].to_numpy()
    vals = w["value"].to_numpy(dtype=float)
    lb = w["lower_bound"].to_numpy(dtype=bool)
    code_cats = list(w["code"].cat.categories) if len(w) else []
    code_i = w["code"].cat.codes.to_numpy() if len(w) else np.zeros(0, np.int64)
    anc = w["anc"].to_numpy(dtype=float) if "anc" in w.columns else np.full(len(w), np.nan)
    anc_row = w["anc_row"].to_numpy(dtype=float) if "anc_row" in w.columns else np.full(len(w), np.nan)
    br = w["baseline_relative"].to_numpy(dtype=bool)
    # per (subject, term) group (rows are contiguous: term-major, then subject, then day): worst grade and where
    summary: dict[tuple[int, str], tuple[int, int, float, int, int]] = {}
    if len(w):
        ti = w["term_i"].to_numpy(dtype=np.int64)
        change = np.r_[True, (s[1:] != s[:-1]) | (ti[1:] != ti[:-1])]
        b = np.flatnonzero(change)
        e = np.r_[b[1:], len(w)]
        na = np.isnan(grade)
        nas = np.add.reduceat(na.astype(np.int64), b)
        gz = np.where(na, -1.0, grade)
        worst = np.maximum.reduceat(gz, b)
        at = np.where(gz == np.repeat(worst, e - b), np.arange(len(w)), len(w))
        worst_i = np.minimum.reduceat(at, b)
        for k in range(len(b)):
            summary[(int(s[b[k]]), str(term_cats[ti[b[k]]]))] = (int(b[k]), int(e[k]), float(worst[k]), int(nas[k]), int(worst_i[k]))
    rules = {t: _rule(opts, t) for t in extras["terms"]}
    names = {t: (vr["terms"][t]["term"] if t in vr["terms"] else vr[t]["term"]) for t in extras["terms"]}
    code_of = {t: (vr["terms"][t]["code"] if t in vr["terms"] else "TEMP") for t in extras["terms"]}
    na_msg = " value(s) not gradable (LLN/ULN or, for febrile neutropenia, a same-day ANC missing)"
    mb = extras["missing_base"]
    base_msg = "no baseline value before the baseline time point: " + ("baseline-normal criteria used (A11)" if opts["missing_baseline"] == "assume_normal" else "not graded")
    out: list[Result] = []
    for si, sid in enumerate(sids):
        sid = str(sid)
        for t in extras["terms"]:
            missing: list[str] = []
            evidence: list[Evidence] = []
            info = summary.get((si, t))
            value: int | None = None
            worst_day = None
            if info is None:
                v0 = v1 = 0
                missing.append(f"no {code_of[t]} value in the window")
            else:
                v0, v1, gm, n_na, wi = info
                if n_na:
                    missing.append(f"{n_na}{na_msg}")
                if gm >= 0 and not (gm == 0 and n_na):
                    value = int(gm)
                    worst_day = float(day[wi])
                    if value > 0:
                        note = f"worst {names[t]} grade {value}" + (" (lower bound: a limit was missing)" if lb[wi] else "") + (" vs baseline" if br[wi] else "")
                        evidence.append(Evidence("observations", int(rows[wi]), sid, float(day[wi]), str(code_cats[code_i[wi]]), float(vals[wi]), None, note))
                        if t == "febrile_neutropenia" and not np.isnan(anc_row[wi]):
                            evidence.append(Evidence("observations", int(anc_row[wi]), sid, None, "ANC", float(anc[wi]), "10^9/L", "ANC < 1.0 paired with the fever"))
            if t in mb.get(sid, ()):
                missing.append(base_msg)
            out.append(
                Result(
                    name=f"ctcae:{t}",
                    value=value,
                    rule=rules[t],
                    evidence=evidence,
                    missing=missing,
                    subject_id=sid,
                    day=worst_day,
                    details={"term": names[t], "values": {"day": day[v0:v1], "value": vals[v0:v1], "grade": grade[v0:v1], "row_id": rows[v0:v1]}},
                )
            )
    return out


__all__ = ["grade_ctcae", "ctcae_table", "ctcae_results", "grade_values", "version_rules"]
