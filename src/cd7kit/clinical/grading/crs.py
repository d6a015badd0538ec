"""ASTCT 2019 cytokine release syndrome grading, per calendar day and per episode, from raw data.

Source: Lee DW et al., ASTCT Consensus Grading for CRS and Neurologic Toxicity Associated with Immune
Effector Cells, Biol Blood Marrow Transplant 2019;25:625-638 (CRS table and footnotes; verbatim copies
PMC8021214 Table 1, PMC9327779 Table 2). Rule data: ``clinical/rules/astct_crs.yaml``; spec: grading.md
section 1, edge rules E1-E10 and ambiguities A1-A7.

Inputs (Study tables):

* fever: observations ``TEMP`` >= 38.0 degC whose ``attribution`` is empty or attributable (F1);
* hypotension: an investigator flag (events kind ``ae`` with a term saying hypotension, ``day``..``end_day``)
  and/or the numeric SBP rule by age (A1), and any running vasopressor (option);
* vasopressors: interventions kind ``vasopressor`` (``agent`` says vasopressin -> the vasopressin rule;
  inotropes only with ``include_inotropes``); the count is the maximum number running *concurrently*
  (A4): a row with whole-day bounds runs the whole calendar days, a fractional day is a time of day;
* oxygen: interventions kind ``oxygen`` with ``device`` and ``flow_l_min`` (F4, E4, E5); positive pressure
  counts only when its ``indication`` is hypoxia/CRS or empty (E9, F6);
* masking (F2): interventions of ``masking_kinds`` given on or after the CRS onset day;
* grade 5: a death event whose cause names CRS.

Per day: ``grade = max(1 if fever, hypotension grade, hypoxia grade)`` while fever is present or masked;
an episode starts with an attributable fever and ends (resolution, A7) on the first assessed day without
fever and either unmasked or with no hypotension, hypoxia or masking therapy that day (E10: a later fever
starts a new episode). Days without any CRS input are not graded and leave the state unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Result, Rule, Study

from . import _common as C
from ._kernels import crs_episodes

RULES = "astct_crs"
_OFF = 100_000  # day offset in grid keys
_MUL = 1_000_000  # subject multiplier in grid keys


def _rule(opts: Mapping[str, Any]) -> Rule:
    r = C.load_rules(RULES)
    return Rule(r["system"], str(r["version"]), dict(opts), " ".join(str(r["source"]).split()))


def _key(sidx: np.ndarray, day: np.ndarray) -> np.ndarray:
    return sidx.astype(np.int64) * _MUL + (day.astype(np.int64) + _OFF)


def _sbp_threshold(age: np.ndarray, adult_below: float, rules: Mapping[str, Any]) -> np.ndarray:
    h = rules["hypotension_sbp"]
    a = np.asarray(age, dtype=float)
    thr = np.full(a.shape, float(adult_below))
    whole = np.floor(a)
    thr = np.where(a < 1, float(h["infant_lt"]), thr)
    child = (a >= 1) & (whole <= h["child_max_age"])
    thr = np.where(child, h["child_base"] + h["child_per_year"] * whole, thr)
    return thr


class _Inputs:
    """The CRS inputs of every subject, filtered to each subject's grading window."""

    def __init__(self, study: Study, opts: Mapping[str, Any]):
        self.study = study
        self.opts = opts
        self.rules = C.load_rules(RULES)
        self.sids = np.asarray(study.subjects["subject_id"], dtype=object)
        self.sindex = pd.Index(self.sids)
        start = float(opts["window_start_day"])
        cens = C.censor_days(study, opts["censor_kinds"])
        self.window_start = start
        self.window_end = pd.Series(np.floor(cens.to_numpy(dtype=float)), index=cens.index).reindex(self.sids).to_numpy(dtype=float)
        self.excluded: list[dict[str, Any]] = []

    def sidx(self, subject_ids: pd.Series) -> np.ndarray:
        return self.sindex.get_indexer(subject_ids.to_numpy())

    def in_window(self, sidx: np.ndarray, day: np.ndarray) -> np.ndarray:
        end = self.window_end[sidx]
        return (day >= self.window_start) & (np.isnan(end) | (day < end))

    def readings(self, idx: C.ObsIndex, code: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The numeric rows of ``code`` in the grading window, their subject positions and calendar days."""
        df = idx.get(code, C.GRADER_COLS)
        df = df[df["value"].notna()]
        s, d = df["sidx"].to_numpy(), C.day_floor(df["day"])
        w = self.in_window(s, d)
        return df[w], s[w], d[w]

    def spans(self, df: pd.DataFrame, start: str, keep: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows spanning ``start``..``end_day`` expanded to one grid key per calendar day in the window:
        (keys, row ids, position of the source row); ``keep`` (per expanded day) drops days."""
        pos, day = C.expand_days(df[start].to_numpy(dtype=float), df["end_day"].to_numpy(dtype=float))
        s = self.sidx(df["subject_id"])[pos]
        w = self.in_window(s, day) if keep is None else self.in_window(s, day) & keep(pos)
        return _key(s[w], day[w]), df["row_id"].to_numpy()[pos][w], pos[w]

    def exclude(self, table: str, rows: pd.DataFrame, day_col: str, why: str) -> None:
        for sid, rid, d in zip(rows["subject_id"], rows["row_id"], rows[day_col], strict=True):
            self.excluded.append({"subject_id": sid, "table": table, "row_id": int(rid), "day": float(d), "reason": why})


def crs_daily(study: Study, options: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The per-day CRS grid of every subject (vectorised) and the extras the results need.

    Columns: subject_id, day, grade, fever, tmax, hypotension, hypotension_grade, vasopressors (max
    concurrent, vasopressin excluded), vasopressin, oxygen_grade, masked, masking_therapy, episode,
    closes_episode, and the row ids of the evidence (temp_row, sbp_row, flag_row, oxygen_row, therapy_row,
    vasopressor_rows).
    """
    opts = C.resolve_options("crs", RULES, options)
    return C.memo(study, "crs_daily", opts, lambda: _crs_daily(study, opts))  # type: ignore[no-any-return]


def _crs_daily(study: Study, opts: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    inp = _Inputs(study, opts)
    rules = inp.rules
    idx = C.obs_index(study)
    keys: list[np.ndarray] = []
    attributable = opts["attributable"]

    # -- temperatures -------------------------------------------------------------------------
    t, t_s, t_d = inp.readings(idx, "TEMP")
    t_att = C.attributable_mask(t["attribution"], attributable)
    t_val = t["value"].to_numpy(dtype=float)
    febrile = t_val >= float(rules["fever_min_c"])
    if (febrile & ~t_att).any():
        inp.exclude("observations", t[febrile & ~t_att], "day", "fever attributed to another cause (F1)")
    t_key = _key(t_s, t_d)
    keys.append(t_key)

    # -- SBP (numeric hypotension rule) -----------------------------------------------------------
    s, s_s, s_d = inp.readings(idx, "SBP")
    ages = C.subject_ages(study).reindex(inp.sids).to_numpy(dtype=float)
    thr = _sbp_threshold(ages[s_s], float(opts["adult_sbp_below"]), rules) if len(s) else np.zeros(0)
    s_low = (s["value"].to_numpy(dtype=float) < thr) & C.attributable_mask(s["attribution"], attributable)
    s_key = _key(s_s, s_d)
    keys.append(s_key)

    # -- investigator hypotension flag ------------------------------------------------------------
    ev = study.events
    fl = ev[(ev["kind"] == "ae") & C.matches(ev["term"], rules["hypotension_flag_terms"])]
    fl_att = C.attributable_mask(fl["attribution"], attributable)
    if (~fl_att).any():
        inp.exclude("events", fl[~fl_att], "day", "hypotension attributed to another cause")
    fl = fl[fl_att]
    f_key, f_row, _ = inp.spans(fl, "day")
    keys.append(f_key)

    # -- vasopressors ---------------------------------------------------------------------------
    iv = study.interventions
    agent = iv["agent"].fillna("").astype(str).str.lower()
    is_inotrope_agent = agent.str.contains("|".join(rules["inotrope_agents"]), regex=True).to_numpy(dtype=bool)
    is_vasopressin = agent.str.contains("|".join(rules["vasopressin_agents"]), regex=True).to_numpy(dtype=bool)
    kind = iv["kind"].to_numpy(dtype=object)
    pressor = (kind == "vasopressor") & ~is_inotrope_agent
    inotrope = (kind == "inotrope") | ((kind == "vasopressor") & is_inotrope_agent)
    counted = pressor | (inotrope & bool(opts["include_inotropes"]))
    ind_ok = C.attributable_mask(iv["indication"], list(opts["vasopressor_indications"]) + list(attributable))
    if (counted & ~ind_ok).any():
        inp.exclude("interventions", iv[counted & ~ind_ok], "start_day", "vasopressor given for another indication")
    if (inotrope & ~counted).any():
        inp.exclude("interventions", iv[inotrope & ~counted], "start_day", "inotrope, not counted as a vasopressor (A2, option include_inotropes)")
    counted &= ind_ok
    vp = iv[counted & ~is_vasopressin]
    vz = iv[counted & is_vasopressin]
    # concurrency sweep over [lo, hi) intervals (whole-day bounds cover the whole calendar day)
    lo = vp["start_day"].to_numpy(dtype=float)
    end = vp["end_day"].to_numpy(dtype=float)
    end = np.where(np.isnan(end), np.floor(lo), end)
    hi = np.where(end == np.floor(end), end + 1.0, end)
    v_s = inp.sidx(vp["subject_id"])
    ev_s = np.concatenate([v_s, v_s])
    ev_t = np.concatenate([lo, hi])
    ev_delta = np.concatenate([np.ones(len(lo), np.int64), -np.ones(len(lo), np.int64)])
    order = np.lexsort((ev_delta, ev_t, ev_s))
    ev_s, ev_t, ev_delta = ev_s[order], ev_t[order], ev_delta[order]
    count = np.cumsum(ev_delta)
    if len(ev_t) > 1:
        seg_ok = (ev_s[:-1] == ev_s[1:]) & (ev_t[1:] > ev_t[:-1]) & (count[:-1] > 0)
        seg_lo = ev_t[:-1][seg_ok]
        seg_hi = ev_t[1:][seg_ok]
        seg_c = count[:-1][seg_ok]
        seg_sub = ev_s[:-1][seg_ok]
        ppos, pday = C.expand_days(seg_lo, np.ceil(seg_hi) - 1.0)
        pc = seg_c[ppos]
        ps = seg_sub[ppos]
    else:
        pday = np.zeros(0, np.int64)
        pc = np.zeros(0, np.int64)
        ps = np.zeros(0, np.int64)
    w = inp.in_window(ps, pday)
    p_key = _key(ps[w], pday[w])
    p_cnt = pc[w]
    keys.append(p_key)
    z_key, _, _ = inp.spans(vz, "start_day")
    keys.append(z_key)
    a_key, a_row, _ = inp.spans(pd.concat([vp, vz]), "start_day")

    # -- oxygen ---------------------------------------------------------------------------------
    ox = iv[iv["kind"] == "oxygen"]
    ox_ok = C.attributable_mask(ox["indication"], list(opts["oxygen_indications"]) + list(attributable))
    if (~ox_ok).any():
        inp.exclude("interventions", ox[~ox_ok], "start_day", "oxygen for another indication (e.g. airway protection, home CPAP; E9, F6)")
    ox = ox[ox_ok]
    dev = ox["device"].fillna("").astype(str).to_numpy(dtype=object)
    flow = ox["flow_l_min"].to_numpy(dtype=float)
    dg = pd.Series(dev).map(rules["device_grade"]).to_numpy(dtype=float)
    nc = dev == "nasal_cannula"
    lowmax = float(rules["low_flow_max_l_min"])
    dg = np.where(nc, np.where(flow > lowmax, 3.0, 2.0), dg)
    inp.nc_no_flow = ox[nc & np.isnan(flow)]  # type: ignore[attr-defined]
    inp.ox_ungradable = ox[np.isnan(dg)]  # type: ignore[attr-defined]
    o_key, o_row, o_src = inp.spans(ox, "start_day", keep=lambda pos: ~np.isnan(dg[pos]))
    o_g = dg[o_src].astype(np.int64)
    keys.append(o_key)

    # -- masking therapy ------------------------------------------------------------------------
    mk = iv[iv["kind"].isin(list(opts["masking_kinds"]))]
    m_key, m_row, _ = inp.spans(mk, "start_day")
    keys.append(m_key)

    # -- the day grid ---------------------------------------------------------------------------
    grid = C.union_keys(keys)
    n = len(grid)

    def at(k: np.ndarray) -> np.ndarray:
        return np.searchsorted(grid, k)

    tmax = np.full(n, np.nan)
    temp_row = np.full(n, -1, np.int64)
    t_pos_grid = np.full(n, -1, np.int64)
    if len(t_key):
        ta = t_att.astype(bool)
        o = np.lexsort((t_val[ta], t_key[ta]))
        kk = t_key[ta][o]
        last = np.r_[kk[1:] != kk[:-1], True] if len(kk) else np.zeros(0, bool)
        g = at(kk[last])
        tmax[g] = t_val[ta][o][last]
        temp_row[g] = t["row_id"].to_numpy()[ta][o][last]
        t_pos_grid[g] = np.flatnonzero(ta)[o][last]
    fever = tmax >= float(rules["fever_min_c"])
    temp_assessed = np.zeros(n, bool)
    temp_assessed[at(t_key)] = True

    hypo_num = np.zeros(n, bool)
    sbp_row = np.full(n, -1, np.int64)
    if len(s_key):
        sv = s["value"].to_numpy(dtype=float)
        o = np.lexsort((-sv, s_key))
        kk = s_key[o]
        last = np.r_[kk[1:] != kk[:-1], True]
        g = at(kk[last])
        sbp_row[g] = s["row_id"].to_numpy()[o][last]
        hypo_num[at(s_key[s_low])] = True
    flag = np.zeros(n, bool)
    flag_row = np.full(n, -1, np.int64)
    if len(f_key):
        flag[at(f_key)] = True
        flag_row[at(f_key)] = f_row
    n_press = np.zeros(n, np.int64)
    if len(p_key):
        np.maximum.at(n_press, at(p_key), p_cnt.astype(np.int64))
    vasopressin = np.zeros(n, bool)
    if len(z_key):
        vasopressin[at(z_key)] = True
    ox_g = np.zeros(n, np.int64)
    ox_row = np.full(n, -1, np.int64)
    if len(o_key):
        o = np.lexsort((o_g, o_key))
        kk = o_key[o]
        last = np.r_[kk[1:] != kk[:-1], True]
        g = at(kk[last])
        ox_g[g] = o_g[o][last]
        ox_row[g] = o_row[o][last]
    therapy = np.zeros(n, bool)
    therapy_row = np.full(n, -1, np.int64)
    if len(m_key):
        therapy[at(m_key)] = True
        therapy_row[at(m_key)] = m_row

    mode = opts["hypotension"]
    hypotension = np.zeros(n, bool)
    if mode in ("flag", "flag_or_numeric"):
        hypotension |= flag
    if mode in ("numeric", "flag_or_numeric"):
        hypotension |= hypo_num
    if opts["vasopressor_implies_hypotension"]:
        hypotension |= (n_press > 0) | vasopressin
    hypo_g = np.where(
        hypotension,
        np.where(n_press >= 2, 4, np.where(n_press == 1, 3, np.where(vasopressin, int(opts["vasopressin_alone_grade"]), 2))),
        0,
    ).astype(np.int64)

    sub = (grid // _MUL).astype(np.int64)
    day = (grid % _MUL - _OFF).astype(np.int64)
    bounds = np.flatnonzero(np.r_[True, sub[1:] != sub[:-1]]) if n else np.zeros(0, np.int64)
    starts = bounds.astype(np.int64)
    ends = np.r_[bounds[1:], n].astype(np.int64) if n else np.zeros(0, np.int64)
    grade, masked, episode, closes = crs_episodes(starts, ends, fever, hypo_g, ox_g, therapy)

    daily = pd.DataFrame(
        {
            "sidx": sub,
            "subject_id": inp.sids[sub] if n else np.zeros(0, dtype=object),
            "day": day,
            "grade": grade,
            "fever": fever,
            "tmax": tmax,
            "temperature_assessed": temp_assessed,
            "hypotension": hypotension,
            "hypotension_grade": hypo_g,
            "vasopressors": n_press,
            "vasopressin": vasopressin,
            "oxygen_grade": ox_g,
            "masked": masked,
            "masking_therapy": therapy,
            "episode": episode,
            "closes_episode": closes,
            "temp_row": temp_row,
            "sbp_row": sbp_row,
            "flag_row": flag_row,
            "oxygen_row": ox_row,
            "therapy_row": therapy_row,
        }
    )
    pressor_rows: dict[int, list[int]] = {}
    if len(a_key):
        pr = pd.DataFrame({"g": at(a_key), "row": a_row}).groupby("g")["row"].agg(lambda x: sorted(set(int(v) for v in x)))
        pressor_rows = pr.to_dict()
    extras = {"inputs": inp, "opts": opts, "pressor_rows": pressor_rows, "temps": t, "temp_pos": t_pos_grid}
    return daily, extras


def episode_table(daily: pd.DataFrame) -> pd.DataFrame:
    """All episodes of all subjects (vectorised): onset, resolution, duration, maximum, grid positions."""
    ep = daily["episode"].to_numpy()
    sidx = daily["sidx"].to_numpy()
    day = daily["day"].to_numpy()
    grade = daily["grade"].to_numpy()
    m = ep > 0
    if not m.any():
        return pd.DataFrame(columns=["sidx", "episode", "onset_day", "resolution_day", "duration_days", "ongoing_at_last_assessment", "last_day", "max_grade", "max_grade_day", "masked_days", "onset_pos", "max_pos"])
    pos = np.flatnonzero(m)
    key = sidx[pos].astype(np.int64) * 1_000_000 + ep[pos]
    o = np.lexsort((day[pos], -grade[pos], key))
    first_max = np.r_[True, key[o][1:] != key[o][:-1]]
    max_pos = pd.Series(pos[o][first_max], index=key[o][first_max])
    g = pd.DataFrame({"key": key, "sidx": sidx[pos], "episode": ep[pos], "day": day[pos], "grade": grade[pos], "masked": daily["masked"].to_numpy()[pos], "pos": pos})
    t = g.groupby("key", sort=True).agg(
        sidx=("sidx", "first"), episode=("episode", "first"), onset_day=("day", "first"), last_day=("day", "last"), max_grade=("grade", "max"), masked_days=("masked", "sum"), onset_pos=("pos", "first")
    )
    t["max_pos"] = max_pos.reindex(t.index).to_numpy()
    t["max_grade_day"] = day[t["max_pos"].to_numpy()]
    cl = daily["closes_episode"].to_numpy()
    cm = cl > 0
    res = pd.Series(day[cm], index=sidx[cm].astype(np.int64) * 1_000_000 + cl[cm])
    res = res[~res.index.duplicated()]
    t["resolution_day"] = res.reindex(t.index).to_numpy()
    t["duration_days"] = t["resolution_day"] - t["onset_day"]
    t["ongoing_at_last_assessment"] = t["resolution_day"].isna()
    return t.reset_index(drop=True)


def grade_crs(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """ASTCT 2019 CRS grade of each subject (or one): the maximum over episodes, with per-day grades.

    ``Result.value`` is the maximum grade (0-5) or ``None`` when no temperature was recorded in the window.
    ``details`` holds ``days`` (the per-day table), ``episodes`` (onset, resolution, duration, maximum) and
    ``excluded`` (findings left out, with the reason).
    """
    st = C.restrict(study, subject_id)
    daily, extras = crs_daily(st, options)
    return crs_results(st, daily, extras)


_DAY_COLS = [
    "day", "grade", "fever", "tmax", "hypotension", "hypotension_grade", "vasopressors", "vasopressin",
    "oxygen_grade", "masked", "masking_therapy", "episode", "temp_row", "sbp_row", "flag_row", "oxygen_row", "therapy_row",
]  # fmt: skip


def crs_results(st: Study, daily: pd.DataFrame, extras: Mapping[str, Any]) -> list[Result]:
    opts = extras["opts"]
    inp: _Inputs = extras["inputs"]
    rule = _rule(opts)
    temps: pd.DataFrame = extras["temps"]
    pressor_rows: dict[int, list[int]] = extras["pressor_rows"]
    eps = episode_table(daily)
    # evidence items for every episode at once: (subject position, table, row id, note)
    items: C.EvidenceItems = {"observations": [], "sbp": [], "interventions": [], "events": []}
    col = {c: daily[c].to_numpy() for c in ("temp_row", "sbp_row", "flag_row", "oxygen_row", "therapy_row", "fever", "masked", "hypotension_grade", "oxygen_grade", "vasopressors")}
    for r in eps.itertuples(index=False):
        s_, k, op, mp = int(r.sidx), int(r.episode), int(r.onset_pos), int(r.max_pos)
        if col["temp_row"][op] >= 0:
            items["observations"].append((s_, int(col["temp_row"][op]), f"episode {k} onset: fever >= 38.0 degC"))
        tag = f"episode {k} maximum (grade {int(r.max_grade)}, day {int(r.max_grade_day)})"
        if mp != op and col["fever"][mp] and col["temp_row"][mp] >= 0:
            items["observations"].append((s_, int(col["temp_row"][mp]), tag + ": fever"))
        if col["hypotension_grade"][mp] > 0:
            if col["flag_row"][mp] >= 0:
                items["events"].append((s_, int(col["flag_row"][mp]), tag + ": hypotension (investigator)"))
            if col["sbp_row"][mp] >= 0:
                items["sbp"].append((s_, int(col["sbp_row"][mp]), tag + ": lowest SBP of the day"))
            for rid in pressor_rows.get(mp, []):
                items["interventions"].append((s_, rid, tag + f": vasopressor ({int(col['vasopressors'][mp])} concurrent)"))
        if col["oxygen_grade"][mp] > 0 and col["oxygen_row"][mp] >= 0:
            items["interventions"].append((s_, int(col["oxygen_row"][mp]), tag + f": oxygen (hypoxia grade {int(col['oxygen_grade'][mp])})"))
        if col["masked"][mp] and col["therapy_row"][mp] >= 0:
            items["interventions"].append((s_, int(col["therapy_row"][mp]), tag + ": fever masked by therapy (F2)"))
    idx = C.obs_index(st)
    lookups = {
        "observations": lambda ids, notes: idx.evidence(["TEMP"], ids, notes),
        "sbp": lambda ids, notes: idx.evidence(["SBP"], ids, notes),
        "interventions": C.RowLookup("interventions", st.interventions).evidence,
        "events": C.RowLookup("events", st.events).evidence,
    }
    evidence_by = C.collect_evidence(items, lookups)
    death_by_sid = C.grade5_deaths(st, opts["death_cause_pattern"], inp.window_start, "death due to CRS: grade 5")
    excluded_by_sid = C.group_by_subject(inp.excluded)
    has_temp = set(temps["subject_id"].unique()) if len(temps) else set()
    notes: dict[str, list[str]] = {}
    for rr in inp.nc_no_flow.to_dict("records"):  # type: ignore[attr-defined]
        notes.setdefault(str(rr["subject_id"]), []).append(f"oxygen row {rr['row_id']}: nasal cannula without flow_l_min, graded as low-flow (grade 2); > 6 L/min would be grade 3")
    for rr in inp.ox_ungradable.to_dict("records"):  # type: ignore[attr-defined]
        notes.setdefault(str(rr["subject_id"]), []).append(f"oxygen row {rr['row_id']}: device {rr['device']!r} cannot be graded (not counted)")
    ranges = C.subject_ranges(daily["sidx"].to_numpy())
    ep_ranges = C.subject_ranges(eps["sidx"].to_numpy(dtype=np.int64)) if len(eps) else {}
    ep_records = C.episode_records(eps, ["episode", "onset_day", "resolution_day", "duration_days", "ongoing_at_last_assessment", "last_day", "max_grade", "max_grade_day", "masked_days"])
    day_cols = daily[_DAY_COLS].copy()  # one consolidated block per dtype: cheap per-subject slices
    results: list[Result] = []
    for si, sid in enumerate(inp.sids):
        sid = str(sid)
        a, b = ranges.get(si, (0, 0))
        ea, eb = ep_ranges.get(si, (0, 0))
        episodes = ep_records[ea:eb]
        missing = list(notes.get(sid, []))
        if sid not in has_temp:
            value: int | None = None
            missing.insert(0, "no temperature (TEMP) in the grading window: CRS cannot be graded (fever starts CRS)")
        else:
            value = max((e["max_grade"] for e in episodes), default=0)
        details = {"days": C.lazy_rows(day_cols, a, b), "episodes": episodes, "excluded": excluded_by_sid.get(sid, []), "grade5": sid in death_by_sid}
        results.append(C.episode_result("crs", rule, sid, value, missing, evidence_by.get(si, []), death_by_sid.get(sid), episodes, details, day_needs_value=True))
    return results


__all__ = ["grade_crs", "crs_daily", "crs_results", "episode_table"]
