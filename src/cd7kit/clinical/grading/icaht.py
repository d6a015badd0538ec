"""ICAHT (early, late), T-ICAHT and count-recovery days, from daily ANC and platelet series.

Sources: Rejeski K et al., Immune effector cell-associated hematotoxicity: EHA/EBMT consensus grading and
best practice recommendations, Blood 2023;142(10):865-877; the automated implementation conventions of
E.C. Liang (github.com/emilyliangmd/automatedicahtgrading, index.Rmd); T-ICAHT thresholds as tabulated in
the cd7kit spec; CIBMTR Forms Instruction Manual (initial ANC recovery); ASTCT platelet recovery
(Kharfan-Dabaja, PMC11161398). Rule data: ``clinical/rules/icaht.yaml``; spec grading.md 5.2, 8, A14.

Early ICAHT (days 0-30) is graded on the longest neutropenic run of a daily grid: one ANC per day (the
lowest), gaps of <= 7 days filled by linear interpolation (ends by the nearest value), values rounded to
10 cells/uL, "ANC <= 500/uL" as ``< 501``, runs separated by < 3 days of non-stable recovery joined with
the gap counted. Grade 4 also when a run starting by day 3 is still ongoing at the last available ANC
(special rule: early death without recovery). Grids stop at censoring (next therapy, re-infusion, HSCT,
progression) and death. Late ICAHT (day 31-100) is graded on the nadir when at least two values are
<= 1500/uL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study

from . import _common as C
from ._kernels import fill_gaps, longest_runs

RULES = "icaht"


def _rule(opts: Mapping[str, Any], name: str) -> Rule:
    r = C.load_rules(RULES)
    return Rule(r["system"] if not name.startswith("recovery") else "CIBMTR/ASTCT count recovery", str(r["version"]), {**opts, "part": name}, " ".join(str(r["source"]).split()))


class _Series:
    """Daily minimum of one code per subject, attributable values only, within [0, end]."""

    def __init__(self, study: Study, code: str, opts: Mapping[str, Any], sids: np.ndarray, end_day: np.ndarray):
        df = C.obs_index(study).get(code, C.GRADER_COLS)
        df = df[df["value"].notna()]
        ok = C.attributable_mask(df["attribution"], opts["attributable"])
        self.excluded = df[~ok & (df["day"] >= 0)]
        df = df[ok]
        s = df["sidx"].to_numpy()
        d = C.day_floor(df["day"])
        keep = (d >= 0) & (d <= end_day[s])
        f = pd.DataFrame({"s": s[keep], "day": d[keep], "v": df["value"].to_numpy(dtype=float)[keep], "row": df["row_id"].to_numpy()[keep]})
        f = f.sort_values(["s", "day", "v"], kind="stable").drop_duplicates(["s", "day"], keep="first")
        self.f = f.reset_index(drop=True)


def _grid(series: _Series, n_sub: int, first: np.ndarray, last: np.ndarray, scale: float, max_gap: int, round_to: float | None):
    """Daily grid per subject over [first, last] (inclusive), filled and rounded."""
    length = np.maximum(last - first + 1, 0).astype(np.int64)
    starts = np.r_[0, np.cumsum(length)[:-1]].astype(np.int64) if n_sub else np.zeros(0, np.int64)
    ends = (starts + length).astype(np.int64)
    total = int(length.sum())
    raw = np.full(total, np.nan)
    rowid = np.full(total, -1, np.int64)
    f = series.f
    s = f["s"].to_numpy(dtype=np.int64)
    d = f["day"].to_numpy(dtype=np.int64)
    inside = (d >= first[s]) & (d <= last[s]) & (length[s] > 0)
    pos = starts[s[inside]] + d[inside] - first[s[inside]]
    raw[pos] = f["v"].to_numpy(dtype=float)[inside] * scale
    rowid[pos] = f["row"].to_numpy()[inside]
    filled = fill_gaps(raw, starts, ends, int(max_gap))
    if round_to:
        filled = np.round(filled / round_to) * round_to
    return raw, filled, rowid, starts, ends


def icaht_tables(study: Study, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """All ICAHT pieces for every subject, as arrays indexed by subject position."""
    opts = C.resolve_options("icaht", RULES, options)
    rules = C.load_rules(RULES)
    sids = np.asarray(study.subjects["subject_id"], dtype=object)
    n = len(sids)
    cens = C.censor_days(study, opts["censor_kinds"], opts["censor_event_kinds"]).reindex(sids).to_numpy(dtype=float)
    deaths = C.death_days(study).set_index("subject_id")["day"].reindex(sids).to_numpy(dtype=float)
    stop = np.fmin(np.floor(cens) - 1, np.floor(deaths))  # NaN where neither
    late_end = np.where(np.isnan(stop), float(opts["late_end_day"]), np.minimum(stop, float(opts["late_end_day"]))).astype(np.int64)
    anc = _Series(study, "ANC", opts, sids, late_end)
    plt = _Series(study, "PLT", opts, sids, late_end)
    # last available value per subject -> early grid end
    e_end = np.minimum(float(opts["early_end_day"]), late_end).astype(np.int64)
    out: dict[str, Any] = {"opts": opts, "sids": sids, "anc": anc, "plt": plt, "late_end": late_end, "early_end": e_end}
    thr500 = float(rules["early"]["anc_500_cells"])
    thr100 = float(rules["early"]["anc_100_cells"])
    inclusive = bool(opts["le_inclusive"])
    join = int(opts["join_gap_days"])
    zeros = np.zeros(n, np.int64)

    def lastday(series: _Series, upto: np.ndarray) -> np.ndarray:
        f = series.f
        f = f[f["day"].to_numpy() <= upto[f["s"].to_numpy()]]
        m = f.groupby("s")["day"].max()
        return pd.Series(m).reindex(range(n)).to_numpy(dtype=float)

    # ---- early ICAHT ------------------------------------------------------------------------------
    last_anc = lastday(anc, e_end)
    grid_last = np.where(np.isnan(last_anc), -1, np.minimum(e_end, last_anc + float(opts["max_gap_days"]))).astype(np.int64)
    raw, filled, rowid, starts, ends = _grid(anc, n, zeros, grid_last, 1000.0, int(opts["max_gap_days"]), float(opts["round_to_cells"]))
    known = ~np.isnan(filled)
    le = (lambda x, t: x <= t) if inclusive else (lambda x, t: x < t)
    with np.errstate(invalid="ignore"):
        f500 = known & le(filled, thr500)
        f100 = known & le(filled, thr100)
    l500, l500_start, open500, last500 = longest_runs(f500, known, starts, ends, join)
    l100, _, _, _ = longest_runs(f100, known, starts, ends, join)
    md = rules["early"]["le500_grade_min_days"]
    m1 = rules["early"]["le100_grade_min_days"]
    g = np.where(l500 >= md[4], 4, np.where(l500 >= md[3], 3, np.where(l500 >= md[2], 2, np.where(l500 >= md[1], 1, 0))))
    g = np.maximum(g, np.where(l100 >= m1[4], 4, np.where(l100 >= m1[3], 3, 0)))
    last_start_day = np.where(last500 >= 0, last500 - starts, -1)
    special = bool(opts["special_grade4"]) & (last500 >= 0) & open500 & (last_start_day <= int(opts["special_grade4_start_by_day"]))
    g_early = np.where(special, 4, g)
    out["early"] = {
        "grade": g_early, "special": special & (g < 4), "l500": l500, "l100": l100, "l500_start": np.where(l500_start >= 0, l500_start - starts, -1),
        "no_data": np.isnan(last_anc), "starts": starts, "ends": ends, "filled": filled, "raw": raw, "rowid": rowid
    }  # fmt: skip

    # ---- late ICAHT (nadir of measured values after the early window) ------------------------------
    f = anc.f
    s = f["s"].to_numpy(dtype=np.int64)
    d = f["day"].to_numpy(dtype=np.int64)
    late = (d > int(opts["early_end_day"])) & (d <= late_end[s])
    cells = f["v"].to_numpy(dtype=float)[late] * 1000.0
    ls = s[late]
    lt = rules["late"]["thresholds_cells"]
    n_low = np.bincount(ls[cells <= lt[1]], minlength=n) if len(ls) else zeros
    n_val = np.bincount(ls, minlength=n) if len(ls) else zeros
    nadir = np.full(n, np.nan)
    nadir_row = np.full(n, -1, np.int64)
    if len(ls):
        o = np.lexsort((-cells, ls))
        lastk = np.r_[ls[o][1:] != ls[o][:-1], True]
        nadir[ls[o][lastk]] = cells[o][lastk]
        nadir_row[ls[o][lastk]] = f["row"].to_numpy()[late][o][lastk]
    gl = np.where(nadir <= lt[4], 4, np.where(nadir <= lt[3], 3, np.where(nadir <= lt[2], 2, np.where(nadir <= lt[1], 1, 0))))
    gl = np.where(n_low >= int(opts["late_min_values"]), gl, 0)
    out["late"] = {"grade": gl, "n_values": n_val, "n_low": n_low, "nadir": nadir, "nadir_row": nadir_row}

    # ---- T-ICAHT ---------------------------------------------------------------------------------
    te = rules["t_icaht"]["early"]
    last_plt = lastday(plt, e_end)
    pl_last = np.where(np.isnan(last_plt), -1, np.minimum(e_end, last_plt + float(opts["max_gap_days"]))).astype(np.int64)
    praw, pf, prow, pst, pen = _grid(plt, n, zeros, pl_last, 1.0, int(opts["max_gap_days"]), None)
    pk = ~np.isnan(pf)
    with np.errstate(invalid="ignore"):
        l50, _, _, _ = longest_runs(pk & (pf < te["g1_below"]), pk, pst, pen, join)
        l20, _, _, _ = longest_runs(pk & (pf < te["g3_below"]), pk, pst, pen, join)
    gt = np.where(l20 >= te["g4_min_days"], 4, np.where(l20 >= 1, 3, np.where(l50 >= te["g2_min_days"], 2, np.where(l50 >= 1, 1, 0))))
    out["t_early"] = {"grade": gt, "l50": l50, "l20": l20, "no_data": np.isnan(last_plt), "unknown": ~pk}
    tl = rules["t_icaht"]["late"]
    first_late = np.full(n, int(opts["early_end_day"]) + 1, np.int64)
    last_plt_late = lastday(plt, late_end)
    has_late = ~np.isnan(last_plt_late) & (last_plt_late > int(opts["early_end_day"]))
    ll_last = np.where(has_late, np.minimum(late_end, np.nan_to_num(last_plt_late) + float(opts["max_gap_days"])), first_late - 1).astype(np.int64)
    lraw, lf, lrow, lst, len_ = _grid(plt, n, first_late, ll_last, 1.0, int(opts["max_gap_days"]), None)
    lk = ~np.isnan(lf)
    with np.errstate(invalid="ignore"):
        ll20, _, _, _ = longest_runs(lk & (lf < tl["g3_below"]), lk, lst, len_, join)
    fs = plt.f
    ps_ = fs["s"].to_numpy(dtype=np.int64)
    pd_ = fs["day"].to_numpy(dtype=np.int64)
    pl_late = (pd_ > int(opts["early_end_day"])) & (pd_ <= late_end[ps_])
    pv = fs["v"].to_numpy(dtype=float)[pl_late]
    pls = ps_[pl_late]
    n100 = np.bincount(pls[pv < tl["g1_below"]], minlength=n) if len(pls) else zeros
    n50 = np.bincount(pls[pv < tl["g2_below"]], minlength=n) if len(pls) else zeros
    mv = int(opts["late_min_values"])
    gtl = np.where(ll20 >= tl["g4_min_days"], 4, np.where(ll20 >= 1, 3, np.where(n50 >= mv, 2, np.where(n100 >= mv, 1, 0))))
    out["t_late"] = {"grade": gtl, "has_data": has_late, "l20": ll20}

    # ---- recovery days ----------------------------------------------------------------------------
    out["anc_recovery"] = _recovery(anc.f, n, float(opts["anc_recovery_threshold"]), int(opts["recovery_consecutive"]), None)
    tf = study.interventions
    tf = tf[(tf["kind"] == "transfusion") & tf["agent"].fillna("").astype(str).str.contains("(?i)platelet|PLT")]
    tfs = pd.Index(sids).get_indexer(tf["subject_id"].to_numpy())
    tr = pd.DataFrame({"s": tfs, "tday": tf["start_day"].to_numpy(dtype=float), "tend": tf["end_day"].fillna(tf["start_day"]).to_numpy(dtype=float)})
    out["plt_recovery"] = _recovery(plt.f, n, float(opts["platelet_recovery_threshold"]), int(opts["recovery_consecutive"]), (tr, float(opts["platelet_transfusion_free_days"])))
    return out


def _recovery(f: pd.DataFrame, n: int, thr: float, k: int, transfusions: tuple[pd.DataFrame, float] | None) -> dict[str, np.ndarray]:
    """First of ``k`` consecutive values >= ``thr`` after the first value below it (per subject)."""
    f = f.sort_values(["s", "day"], kind="stable").reset_index(drop=True)
    s = f["s"].to_numpy(dtype=np.int64)
    v = f["v"].to_numpy(dtype=float)
    d = f["day"].to_numpy(dtype=float)
    low = v < thr
    seen_low = pd.Series(low).groupby(s).cummax().to_numpy(dtype=bool) if len(s) else low
    ok = (v >= thr) & seen_low
    if transfusions is not None and len(f):
        tr, free = transfusions
        if len(tr):
            # transfused within [day - free, day]: last transfusion end on or before the day
            tr = tr.sort_values("tend")
            q = pd.DataFrame({"s": s, "day": d, "i": np.arange(len(f))}).sort_values("day")
            m = pd.merge_asof(q, tr[["s", "tday", "tend"]].rename(columns={"tend": "tend_"}).sort_values("tday"), left_on="day", right_on="tday", by="s", direction="backward")
            recent = (m["tend_"].to_numpy(dtype=float) >= m["day"].to_numpy(dtype=float) - free)
            bad = np.zeros(len(f), bool)
            bad[m["i"].to_numpy()] = recent
            ok &= ~bad
    run = ok.copy()
    for j in range(1, k):
        nxt = np.zeros(len(ok), bool)
        if len(ok) > j:
            nxt[:-j] = ok[j:] & (s[j:] == s[:-j])
        run &= nxt
    day = np.full(n, np.nan)
    row = np.full(n, -1, np.int64)
    hits = np.flatnonzero(run)
    if len(hits):
        first = hits[np.r_[True, s[hits][1:] != s[hits][:-1]]]
        day[s[first]] = d[first]
        row[s[first]] = f["row"].to_numpy()[first]
    ever_low = np.zeros(n, bool)
    if len(s):
        ever_low[np.unique(s[low])] = True
    has = np.zeros(n, bool)
    has[np.unique(s)] = True
    lastd = np.full(n, np.nan)
    if len(s):
        lastd[s] = d  # sorted by day: the last assignment wins
    return {"day": day, "row": row, "ever_low": ever_low, "has_data": has, "last_day": lastd}


def grade_icaht(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """Early and late ICAHT, early and late T-ICAHT, ANC and platelet recovery days of each subject.

    Six :class:`Result` per subject: ``icaht:early``, ``icaht:late``, ``t_icaht:early``, ``t_icaht:late``,
    ``recovery:anc`` and ``recovery:platelets`` (value = the study day of recovery, or ``None`` with the reason).
    """
    st = C.restrict(study, subject_id)
    t = icaht_tables(st, options)
    return icaht_results(st, t)


def icaht_results(st: Study, t: Mapping[str, Any]) -> list[Result]:
    opts = t["opts"]
    sids = t["sids"]
    anc: _Series = t["anc"]
    e = t["early"]
    la = t["late"]
    te = t["t_early"]
    tl = t["t_late"]
    rules = {k: _rule(opts, k) for k in ("icaht:early", "icaht:late", "t_icaht:early", "t_icaht:late", "recovery:anc", "recovery:platelets")}
    out: list[Result] = []
    excl = anc.excluded
    for si, sid in enumerate(sids):
        sid = str(sid)
        a, b = int(e["starts"][si]), int(e["ends"][si])
        # early
        missing: list[str] = []
        evidence: list[Evidence] = []
        details: dict[str, Any] = {}
        if e["no_data"][si]:
            value: int | None = None
            missing.append(f"no ANC between day 0 and day {int(t['early_end'][si])}")
        else:
            value = int(e["grade"][si])
            unk = np.flatnonzero(np.isnan(e["filled"][a:b]))
            if len(unk):
                missing.append(f"{len(unk)} day(s) without ANC beyond the {opts['max_gap_days']}-day interpolation limit (days {int(unk[0])}..{int(unk[-1])}): the grade is a lower bound")
            details = {
                "longest_run_le500_days": int(e["l500"][si]),
                "longest_run_le500_start_day": int(e["l500_start"][si]),
                "longest_run_le100_days": int(e["l100"][si]),
                "special_grade4_rule": bool(e["special"][si]),
                "grid": {"day": np.arange(b - a), "anc_cells_per_uL": e["filled"][a:b], "measured": ~np.isnan(e["raw"][a:b])},
            }
            rows = e["rowid"][a:b]
            fl = e["filled"][a:b]
            if value and value > 0:
                lowest = np.nanargmin(np.where(rows >= 0, fl, np.nan)) if (rows >= 0).any() else None
                if lowest is not None:
                    evidence.append(Evidence("observations", int(rows[lowest]), sid, float(lowest), "ANC", float(fl[lowest]) / 1000.0, "10^9/L", "lowest measured ANC of the early window"))
                st_day = int(e["l500_start"][si])
                if st_day >= 0 and rows[st_day] >= 0:
                    evidence.append(Evidence("observations", int(rows[st_day]), sid, float(st_day), "ANC", float(fl[st_day]) / 1000.0, "10^9/L", f"start of the longest ANC <= 500/uL run ({int(e['l500'][si])} days)"))
        ex = excl[excl["subject_id"] == sid] if len(excl) else excl
        if len(ex):
            missing.append(f"{len(ex)} ANC value(s) attributed to another cause excluded (row ids {', '.join(str(int(r)) for r in ex['row_id'])})")
        out.append(Result("icaht:early", value, rules["icaht:early"], evidence, missing, sid, None, details))
        # late
        if la["n_values"][si] == 0:
            out.append(Result("icaht:late", None, rules["icaht:late"], [], [f"no ANC after day {opts['early_end_day']} (up to day {int(t['late_end'][si])})"], sid))
        else:
            ev_: list[Evidence] = []
            if la["grade"][si] > 0 and la["nadir_row"][si] >= 0:
                ev_.append(Evidence("observations", int(la["nadir_row"][si]), sid, None, "ANC", float(la["nadir"][si]) / 1000.0, "10^9/L", "late nadir ANC"))
            out.append(Result("icaht:late", int(la["grade"][si]), rules["icaht:late"], ev_, [], sid, None, {"n_values": int(la["n_values"][si]), "n_le1500": int(la["n_low"][si]), "nadir_cells_per_uL": la["nadir"][si]}))
        # T-ICAHT
        if te["no_data"][si]:
            out.append(Result("t_icaht:early", None, rules["t_icaht:early"], [], ["no platelet count between day 0 and day 30"], sid))
        else:
            out.append(Result("t_icaht:early", int(te["grade"][si]), rules["t_icaht:early"], [], [], sid, None, {"longest_run_lt50_days": int(te["l50"][si]), "longest_run_lt20_days": int(te["l20"][si])}))
        if not tl["has_data"][si]:
            out.append(Result("t_icaht:late", None, rules["t_icaht:late"], [], ["no platelet count after day 30"], sid))
        else:
            out.append(Result("t_icaht:late", int(tl["grade"][si]), rules["t_icaht:late"], [], [], sid, None, {"longest_run_lt20_days": int(tl["l20"][si])}))
        # recovery
        for name, rec, what, thr in (
            ("recovery:anc", t["anc_recovery"], "ANC", opts["anc_recovery_threshold"]),
            ("recovery:platelets", t["plt_recovery"], "PLT", opts["platelet_recovery_threshold"]),
        ):
            if not rec["has_data"][si]:
                out.append(Result(name, None, rules[name], [], [f"no {what} after day 0"], sid))
            elif not rec["ever_low"][si]:
                out.append(Result(name, None, rules[name], [], [f"{what} never below {thr} after day 0: no recovery to date"], sid, None, {"status": "never_below"}))
            elif np.isnan(rec["day"][si]):
                out.append(Result(name, None, rules[name], [], [f"not recovered by the last {what} (day {rec['last_day'][si]:g})"], sid, None, {"status": "not_recovered"}))
            else:
                ev_ = [Evidence("observations", int(rec["row"][si]), sid, float(rec["day"][si]), what, None, None, f"first of {opts['recovery_consecutive']} consecutive values >= {thr}")]
                out.append(Result(name, float(rec["day"][si]), rules[name], ev_, [], sid, float(rec["day"][si]), {"status": "recovered"}))
    return out


__all__ = ["grade_icaht", "icaht_tables", "icaht_results"]
