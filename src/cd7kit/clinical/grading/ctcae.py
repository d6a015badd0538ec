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


#: Columns of every per-term part (and of :func:`ctcae_table`, which adds term, code, in_window, subject_id).
_PART_COLS = ("sidx", "day", "row_id", "value", "lln", "uln", "baseline", "baseline_relative", "grade", "lower_bound", "anc", "anc_row")


def ctcae_table(study: Study, options: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every graded observation as one long table (subject_id, term, day, row_id, value, grade, ...).

    Rows are term-major, then by subject and time. :func:`grade_ctcae` reads the same grades per term
    (:func:`ctcae_parts`) without building this table.
    """
    opts = C.resolve_options("ctcae", OPTIONS, options)
    return C.memo(study, "ctcae_table", opts, lambda: _table(*_ctcae_parts(study, opts)))  # type: ignore[no-any-return]


def ctcae_parts(study: Study, options: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The graded observations per term: a list of column dicts (``_PART_COLS`` plus ``term``, ``code`` and
    ``in_window``), each sorted by subject position, day and row id (vectorised; memoised per Study)."""
    opts = C.resolve_options("ctcae", OPTIONS, options)
    return C.memo(study, "ctcae_parts", opts, lambda: _ctcae_parts(study, opts))  # type: ignore[no-any-return]


def _ctcae_parts(study: Study, opts: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
        code = spec["code"]
        keep = ~np.isnan(idx.col(code, "value").astype(float, copy=False))
        if not keep.any():
            continue
        s = idx.sidx(code)[keep]
        day = idx.col(code, "day").astype(float, copy=False)[keep]
        v = idx.col(code, "value").astype(float, copy=False)[keep]
        lln = idx.col(code, "lln").astype(float, copy=False)[keep]
        uln = idx.col(code, "uln").astype(float, copy=False)[keep]
        rows = idx.col(code, "row_id")[keep]
        r = ref[s]
        pre = day < r  # at or before the baseline time point: not graded against the baseline
        uses_base = any(c.get("ref") == "base" or str(c.get("when", "")).startswith("base") for c in spec["criteria"])
        base = np.full(len(v), np.nan)
        b_lln = np.full(len(v), np.nan)
        b_uln = np.full(len(v), np.nan)
        if uses_base:
            pre_rows = np.flatnonzero(pre)
            if len(pre_rows):
                o = pre_rows[np.lexsort((day[pre_rows], s[pre_rows]))]
                last = np.r_[s[o][1:] != s[o][:-1], True]
                at = np.full(len(sids), -1, np.int64)  # per subject position: the baseline row (last before the reference day)
                at[s[o][last]] = o[last]
                bi = at[s]
                has = bi >= 0
                base = np.where(has, v[bi], np.nan)
                b_lln = np.where(has, lln[bi], np.nan)
                b_uln = np.where(has, uln[bi], np.nan)
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
                "row_id": rows,
                "code": code,
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
    # window: [window_start_day, window_end_day] and before censoring
    cens = C.censor_days(study, opts["censor_kinds"]).reindex(sids).to_numpy(dtype=float)
    parts: list[dict[str, Any]] = []
    for f in frames:
        n_f = len(f["sidx"])
        fs = np.asarray(f["sidx"])
        fd = np.asarray(f["day"], dtype=float)
        ordered = n_f < 2 or bool(np.all((fs[1:] > fs[:-1]) | ((fs[1:] == fs[:-1]) & (fd[1:] >= fd[:-1]))))
        order: np.ndarray | None = None if ordered else np.lexsort((np.asarray(f["row_id"]), fd, fs))
        part: dict[str, Any] = {"term": f["term"], "code": f["code"]}
        for c in _PART_COLS:
            col = f.get(c)
            if col is None:
                col = np.full(n_f, np.nan) if c not in ("baseline_relative", "lower_bound") else np.zeros(n_f, bool)
            part[c] = np.asarray(col) if order is None else np.asarray(col)[order]
        d = part["day"]
        inw = d >= float(opts["window_start_day"])
        if opts["window_end_day"] is not None:
            inw &= d <= float(opts["window_end_day"])
        cd = cens[np.asarray(part["sidx"], dtype=np.int64)] if n_f else np.zeros(0)
        inw &= np.isnan(cd) | (d < np.floor(cd))
        part["in_window"] = inw
        parts.append(part)
    terms_out = wanted + [t for t in ("fever", "febrile_neutropenia") if t in vr and (opts["terms"] == "all" or t in opts["terms"])]
    return parts, {"opts": opts, "sids": sids, "missing_base": missing_base, "terms": terms_out, "vr": vr}


def _table(parts: list[dict[str, Any]], extras: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The per-term parts as one long DataFrame (the public :func:`ctcae_table` shape)."""
    sids = extras["sids"]
    tab = pd.DataFrame({c: (np.concatenate([p[c] for p in parts]) if parts else np.zeros(0)) for c in _PART_COLS})
    term_keys = [p["term"] for p in parts]
    term_i = np.concatenate([np.full(len(p["sidx"]), k, np.int64) for k, p in enumerate(parts)]) if parts else np.zeros(0, np.int64)
    tab["term_i"] = term_i
    tab["term"] = pd.Categorical.from_codes(term_i, categories=term_keys) if parts else pd.Categorical([])
    code_keys = list(dict.fromkeys(p["code"] for p in parts))
    tab["code"] = pd.Categorical.from_codes(np.array([code_keys.index(p["code"]) for p in parts], np.int64)[term_i], categories=code_keys) if parts else pd.Categorical([])
    tab["in_window"] = np.concatenate([p["in_window"] for p in parts]) if parts else np.zeros(0, bool)
    tab["subject_id"] = sids[tab["sidx"].to_numpy(dtype=np.int64)] if len(tab) else []
    return tab, extras


def _long_runs(rid: np.ndarray, member: np.ndarray, day: np.ndarray, min_span_days: float) -> np.ndarray:
    """Run ids (rows sorted by subject and time) whose first-to-last reading spans more than ``min_span_days``."""
    r = rid[member]
    d = day[member]
    b = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    span = np.maximum.reduceat(d, b) - np.minimum.reduceat(d, b)
    return r[b][span > min_span_days]


def _temps(study: Study) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Numeric temperatures sorted by subject position and day (ties in table order): sidx, day, value, row."""
    idx = C.obs_index(study)
    v = idx.col("TEMP", "value").astype(float, copy=False)
    keep = ~np.isnan(v)
    s = idx.sidx("TEMP")[keep]
    day = idx.col("TEMP", "day").astype(float, copy=False)[keep]
    o = np.lexsort((day, s))
    return s[o], day[o], v[keep][o], idx.col("TEMP", "row_id")[keep][o]


def _fever(study: Study, spec: Mapping[str, Any], sindex: pd.Index) -> dict[str, Any]:
    s, day, v, rows = _temps(study)
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


def _febrile_neutropenia(study: Study, spec: Mapping[str, Any], sindex: pd.Index, lookback: float) -> dict[str, Any]:
    idx = C.obs_index(study)
    s, d, v, rows = _temps(study)
    av = idx.col("ANC", "value").astype(float, copy=False)
    ak = ~np.isnan(av)
    a_s, a_d, a_v, a_row = idx.sidx("ANC")[ak], idx.col("ANC", "day").astype(float, copy=False)[ak], av[ak], idx.col("ANC", "row_id")[ak]
    # sustained >= 38.0 for > 1 h: consecutive readings >= 38 spanning more than 1 hour
    warm = v >= spec["sustained_min_c"]
    new_run = warm & ~(np.r_[False, warm[:-1]] & np.r_[False, s[1:] == s[:-1]])
    rid = np.where(warm, np.cumsum(new_run), 0)
    sustained = np.zeros(len(s), bool)
    if warm.any():
        sustained = warm & np.isin(rid, _long_runs(rid, warm, d, spec["sustained_hours"] / 24.0))
    febrile = (v > spec["single_temp_above_c"]) | sustained
    # the last ANC before the end of the temperature's calendar day (an ANC from the same day counts)
    j = C.last_before(s, np.floor(d) + 1.0, a_s, a_d)
    anc = np.full(len(s), np.nan)
    anc_row = np.full(len(s), np.nan)
    hit = j >= 0
    hit[hit] = a_d[j[hit]] >= np.floor(d[hit]) - lookback
    anc[hit] = a_v[j[hit]]
    anc_row[hit] = a_row[j[hit]]
    g = np.where(~febrile, 0.0, np.where(np.isnan(anc), np.nan, np.where(anc < spec["anc_below"], float(spec["grade"]), 0.0)))
    return {"sidx": s, "term": "febrile_neutropenia", "day": d, "row_id": rows, "code": "TEMP", "value": v, "grade": g, "anc": anc, "anc_row": anc_row}


def grade_ctcae(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """Worst CTCAE grade per subject and term in the window, with every graded value as evidence table.

    One :class:`Result` per (subject, term), named ``ctcae:<term>``; ``value`` None when the subject has no
    gradable value of the term (reason in ``missing``).
    """
    st = C.restrict(study, subject_id)
    parts, extras = ctcae_parts(st, options)
    return ctcae_results(st, parts, extras)


def ctcae_results(st: Study, parts: list[dict[str, Any]], extras: Mapping[str, Any]) -> list[Result]:
    opts = extras["opts"]
    vr = extras["vr"]
    sids = extras["sids"]
    terms = list(extras["terms"])
    nsub, nterm = len(sids), len(terms)
    na_msg = " value(s) not gradable (LLN/ULN or, for febrile neutropenia, a same-day ANC missing)"
    mb = extras["missing_base"]
    base_msg = "no baseline value before the baseline time point: " + ("baseline-normal criteria used (A11)" if opts["missing_baseline"] == "assume_normal" else "not graded")
    empty = {"day": np.zeros(0), "value": np.zeros(0), "grade": np.zeros(0), "row_id": np.zeros(0, np.int64)}
    by_term = {str(p["term"]): p for p in parts}
    out: list[Result | None] = [None] * (nsub * nterm)
    str_sids = [str(x) for x in sids]
    for ti, t in enumerate(terms):
        rule = _rule(opts, t)
        name = vr["terms"][t]["term"] if t in vr["terms"] else vr[t]["term"]
        no_value = f"no {vr['terms'][t]['code'] if t in vr['terms'] else 'TEMP'} value in the window"
        # per subject position (rows of the term are contiguous per subject, sorted by day): the window's
        # rows, worst grade, where it is and how many values were not gradable
        lo = np.full(nsub, -1, np.int64)
        hi = np.full(nsub, -1, np.int64)
        worst = np.full(nsub, -1.0)
        nas = np.zeros(nsub, np.int64)
        wpos = np.zeros(nsub, np.int64)
        part = by_term.get(t)
        c: dict[str, Any] = part or {}
        if part is not None and part["in_window"].any():
            # a subject's rows are sorted by day and its window is an interval of days: its in-window rows
            # are one contiguous block (no copy of the table is needed)
            w = part["in_window"]
            s = np.asarray(part["sidx"], dtype=np.int64)
            n = len(s)
            ar = np.arange(n)
            grade = np.asarray(part["grade"], dtype=float)
            b = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
            first = np.minimum.reduceat(np.where(w, ar, n), b)
            last = np.maximum.reduceat(np.where(w, ar, -1), b)
            na = np.isnan(grade)
            gz = np.where(w, np.where(na, -1.0, grade), -2.0)
            wk = np.maximum.reduceat(gz, b)
            at = np.where(gz == np.repeat(wk, np.diff(np.r_[b, n])), ar, n)
            has = first < n
            sb = s[b][has]
            lo[sb], hi[sb] = first[has], last[has] + 1
            worst[sb] = wk[has]
            nas[sb] = np.add.reduceat((na & w).astype(np.int64), b)[has]
            wpos[sb] = np.minimum.reduceat(at, b)[has]
            code = str(part["code"])
        lo_l, hi_l, worst_l, nas_l, wpos_l = lo.tolist(), hi.tolist(), worst.tolist(), nas.tolist(), wpos.tolist()
        na_text = [f"{k}{na_msg}" for k in range(int(nas.max()) + 1)] if nsub else []
        for si in range(nsub):
            sid = str_sids[si]
            v0 = lo_l[si]
            evidence: list[Evidence] = []
            value: int | None = None
            worst_day = None
            if v0 < 0:
                missing = [no_value]
                values = empty
            else:
                v1, gm, n_na, wi = hi_l[si], worst_l[si], nas_l[si], wpos_l[si]
                missing = [na_text[n_na]] if n_na else []
                if gm >= 0 and not (gm == 0 and n_na):
                    value = int(gm)
                    worst_day = float(c["day"][wi])
                    if value > 0:
                        note = f"worst {name} grade {value}" + (" (lower bound: a limit was missing)" if c["lower_bound"][wi] else "") + (" vs baseline" if c["baseline_relative"][wi] else "")
                        evidence.append(Evidence("observations", int(c["row_id"][wi]), sid, worst_day, code, float(c["value"][wi]), None, note))
                        if t == "febrile_neutropenia" and not np.isnan(c["anc_row"][wi]):
                            evidence.append(Evidence("observations", int(c["anc_row"][wi]), sid, None, "ANC", float(c["anc"][wi]), "10^9/L", "ANC < 1.0 paired with the fever"))
                values = {"day": c["day"][v0:v1], "value": c["value"][v0:v1], "grade": c["grade"][v0:v1], "row_id": c["row_id"][v0:v1]}
            if mb and t in mb.get(sid, ()):
                missing.append(base_msg)
            out[si * nterm + ti] = Result(f"ctcae:{t}", value, rule, evidence, missing, sid, worst_day, {"term": name, "values": values})
    return out  # type: ignore[return-value]


__all__ = ["grade_ctcae", "ctcae_table", "ctcae_parts", "ctcae_results", "grade_values", "version_rules"]
