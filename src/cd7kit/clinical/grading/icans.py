"""ASTCT 2019 ICANS grading (immune effector cell-associated neurotoxicity syndrome), per day and episode.

Source: Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638, ICANS grading tables for adults
(ICE-based) and children < 12 years (CAPD-based) and their footnotes (reproduced in PMC8403007 Table 4,
PMC7990806 Table 2; ICE items PMC8153820 Table 2). CAPD cut-point 9: Traube C et al., Crit Care Med
2014;42:656. Rule data: ``clinical/rules/astct_icans.yaml``; spec grading.md section 2, A8-A9.

Domains and inputs:

* ICE score (observations ``ICE``, or the sum of the five item codes when the total is missing) for age
  >= 12 y; CAPD (``CAPD``) under 12 y (``capd_age_rule``); ``value_text`` 'unable ...' = not performable;
* depressed level of consciousness (``LOC`` levels: awake 0, voice 1, tactile 2, unarousable 3, coma 4);
* seizures and motor findings (events kind ``neuro``), raised ICP / cerebral oedema (events kind
  ``imaging`` or ``neuro``), by the term patterns of the rule file.

Grade = the most severe domain on that day among findings not attributed to another cause. Footnotes:
ICE 0 with the patient awake (global aphasia) is grade 3, ICE 0 and unarousable is grade 4 (from the
LOC domain); tremor, myoclonus and intracranial haemorrhage do not count (reported as excluded); grade 5
only on death from ICANS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study

from . import _common as C

RULES = "astct_icans"
DOMAINS = ("ice", "capd", "loc", "seizure", "motor", "icp")


def _rule(opts: Mapping[str, Any]) -> Rule:
    r = C.load_rules(RULES)
    return Rule(r["system"], str(r["version"]), dict(opts), " ".join(str(r["source"]).split()))


def _ice_grade(v: np.ndarray, bands: list[dict[str, Any]]) -> np.ndarray:
    g = np.full(v.shape, np.nan)
    for b in sorted(bands, key=lambda x: -x["min"]):
        g = np.where(np.isnan(g) & (v >= b["min"]), b["grade"], g)
    return g


def icans_daily(study: Study, options: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-day ICANS grid of every subject: domain grades, grade, episode, evidence rows."""
    opts = C.resolve_options("icans", RULES, options)
    return C.memo(study, "icans_daily", opts, lambda: _icans_daily(study, opts))  # type: ignore[no-any-return]


def _icans_daily(study: Study, opts: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    rules = C.load_rules(RULES)
    idx = C.obs_index(study)
    sids = np.asarray(study.subjects["subject_id"], dtype=object)
    sindex = pd.Index(sids)
    cens = C.censor_days(study, opts["censor_kinds"]).reindex(sids).to_numpy(dtype=float)
    wstart = float(opts["window_start_day"])
    ages = C.subject_ages(study).reindex(sids).to_numpy(dtype=float)
    capd_limit = 12.0 if opts["capd_age_rule"] == "lt12" else 13.0
    uses_capd = ages < capd_limit  # NaN age -> False here; handled below
    age_known = ~np.isnan(ages)
    att = opts["attributable"]
    excluded: list[dict[str, Any]] = []

    def window(si: np.ndarray, day: np.ndarray) -> np.ndarray:
        e = cens[si]
        return (day >= wstart) & (np.isnan(e) | (day < np.floor(e)))

    def excl(df: pd.DataFrame, mask: np.ndarray, why: str, day_col: str = "day", table: str = "observations") -> None:
        for sid, rid, d in zip(df["subject_id"][mask], df["row_id"][mask], df[day_col][mask], strict=True):
            excluded.append({"subject_id": sid, "table": table, "row_id": int(rid), "day": float(d), "reason": why})

    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # domain -> keys, grades, rows
    frames: dict[str, pd.DataFrame] = {}
    unable_pat = rules["unable_pattern"]

    def prep(code: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        df = idx.get(code, C.GRADER_COLS)
        si = df["sidx"].to_numpy()
        d = C.day_floor(df["day"])
        w = window(si, d)
        df, si, d = df[w], si[w], d[w]
        ok = C.attributable_mask(df["attribution"], att)
        if (~ok).any():
            excl(df, ~ok, f"{code} attributed to another cause (e.g. sedation)")
        return df[ok], si[ok], d[ok]

    # ICE (total, or the sum of the five items when the total is missing)
    ice, ice_s, ice_d = prep("ICE")
    unable = ice["value"].isna().to_numpy()
    if unable.any():
        unable[unable] = C.matches(ice["value_text"][unable], unable_pat)
    ice_v = np.where(unable, 0.0, ice["value"].to_numpy(dtype=float))
    items, it_s, it_d = prep(list(rules["ice_items"]))  # type: ignore[arg-type]
    ice_rows = ice["row_id"].to_numpy()
    if len(items):
        it = pd.DataFrame({"s": it_s, "day": items["day"].to_numpy(), "code": items["code"].to_numpy(), "v": items["value"].to_numpy(dtype=float), "row": items["row_id"].to_numpy()})
        agg = it.groupby(["s", "day"]).agg(n=("code", "nunique"), total=("v", "sum"), row=("row", "min")).reset_index()
        agg = agg[agg["n"] == len(rules["ice_items"])]
        have = pd.MultiIndex.from_arrays([ice_s, ice["day"].to_numpy()])
        agg = agg[~pd.MultiIndex.from_arrays([agg["s"].to_numpy(), agg["day"].to_numpy()]).isin(have)]
        ice_s = np.r_[ice_s, agg["s"].to_numpy()]
        ice_d = np.r_[ice_d, C.day_floor(agg["day"])]
        ice_v = np.r_[ice_v, agg["total"].to_numpy(dtype=float)]
        ice_rows = np.r_[ice_rows, agg["row"].to_numpy()]
    ice_g = _ice_grade(ice_v, rules["ice_bands"])
    use = ~uses_capd[ice_s] | ~age_known[ice_s]
    parts["ice"] = (C.grid_key(ice_s[use], ice_d[use]), ice_g[use], ice_rows[use])
    frames["ice"] = ice
    not_used = ~use
    for s_, d_, r_ in zip(ice_s[not_used], ice_d[not_used], ice_rows[not_used], strict=True):
        excluded.append({"subject_id": sids[s_], "table": "observations", "row_id": int(r_), "day": float(d_), "reason": "ICE is not used under the CAPD age limit (A8)"})

    # CAPD
    capd, capd_s, capd_d = prep("CAPD")
    cv = capd["value"].to_numpy(dtype=float)
    cunable = np.isnan(cv)
    if cunable.any():
        cunable[cunable] = C.matches(capd["value_text"][cunable], unable_pat)
    capd_g = np.where(cunable, 4.0, np.where(cv >= rules["capd_severe_min"], 3.0, np.where(cv >= 1, float(opts["capd_1_to_8_grade"]), np.where(cv >= 0, 0.0, np.nan))))
    use = uses_capd[capd_s] | ~age_known[capd_s]
    parts["capd"] = (C.grid_key(capd_s[use], capd_d[use]), capd_g[use], capd["row_id"].to_numpy()[use])
    if (~use).any():
        excl(capd, ~use, "CAPD is not used at or above the CAPD age limit (A8)")

    # level of consciousness
    loc, loc_s, loc_d = prep("LOC")
    lmap = {float(k): float(v) for k, v in rules["loc_grade"].items()}
    loc_g = pd.Series(loc["value"].to_numpy(dtype=float)).map(lmap).to_numpy(dtype=float)
    parts["loc"] = (C.grid_key(loc_s, loc_d), loc_g, loc["row_id"].to_numpy())

    # neuro and imaging events
    ev = study.events
    ne = ev[ev["kind"].isin(["neuro", "imaging"])].copy()
    ne_dom = C.filled(len(ne), "")
    ne_g = np.full(len(ne), np.nan)
    terms = (ne["term"].fillna("") + " " + ne["details"].fillna("")).reset_index(drop=True)
    decided = np.zeros(len(ne), bool)
    for r in rules["event_rules"]:
        m = ~decided & C.matches(terms, r["pattern"])
        ne_dom[m] = r["domain"]
        if r["grade"] is None:
            ne_g[m] = np.nan
        else:
            ne_g[m] = float(r["grade"])
        decided |= m
    ne_att = C.attributable_mask(ne["attribution"], att)
    ne_s = sindex.get_indexer(ne["subject_id"].to_numpy())
    in_w = window(ne_s, C.day_floor(ne["day"])) if len(ne) else np.zeros(0, bool)
    is_ex = ne_dom == "excluded"
    if (in_w & decided & ~ne_att).any():
        excl(ne, in_w & decided & ~ne_att, "neurological event attributed to another cause", table="events")
    for i in np.flatnonzero(in_w & is_ex):
        note = next(r.get("note", "") for r in rules["event_rules"] if C.matches(pd.Series([terms.iloc[i]]), r["pattern"])[0])
        excluded.append({"subject_id": ne["subject_id"].iloc[i], "table": "events", "row_id": int(ne["row_id"].iloc[i]), "day": float(ne["day"].iloc[i]), "reason": note})
    out_w = decided & ~in_w & ~is_ex
    if out_w.any():
        excl(ne, out_w, "outside the ICANS grading window (after conditioning/HSCT or before day 0)", table="events")
    keep = decided & ~is_ex & ne_att
    nk = ne[keep]
    pos, days = C.expand_days(nk["day"].to_numpy(dtype=float), nk["end_day"].to_numpy(dtype=float))
    ks = ne_s[keep][pos]
    w = window(ks, days)
    for dom in ("seizure", "motor", "icp", "loc"):
        dm = (ne_dom[keep][pos] == dom) & w
        k = C.grid_key(ks[dm], days[dm])
        g = ne_g[keep][pos][dm]
        r = nk["row_id"].to_numpy()[pos][dm]
        if dom == "loc":  # coma/stupor events join the LOC observations; their row ids are coded -(id + 2)
            ok_, og_, or_ = parts["loc"]
            parts["loc"] = (np.r_[ok_, k], np.r_[og_, g], np.r_[or_, -(r + 2)])
        else:
            parts[dom] = (k, g, r)

    allkeys = [p[0] for p in parts.values()]
    grid = C.union_keys(allkeys)
    sub, day = C.grid_parts(grid)
    cols: dict[str, Any] = {"sidx": sub, "subject_id": sids[sub] if len(grid) else np.zeros(0, object), "day": day}
    grade = np.zeros(len(grid))
    for dom in DOMAINS:
        k, g, r = parts.get(dom, (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)))
        good = ~np.isnan(g)
        mx, row = C.max_by_key(grid, k[good], g[good], r[good])
        cols[dom] = np.where(mx < 0, np.nan, mx)
        cols[dom + "_row"] = row
        grade = np.maximum(grade, np.where(mx < 0, 0, mx))
    cols["grade"] = grade.astype(np.int64)
    lr = cols["loc_row"]
    cols["loc_event_row"] = np.where(lr <= -2, -lr - 2, -1)  # coma/stupor events in the LOC domain
    cols["loc_row"] = np.where(lr <= -2, -1, lr)
    daily = pd.DataFrame(cols)
    # episodes: runs of positive assessed days, closed by the next assessed day with grade 0
    pos_ = daily["grade"].to_numpy() > 0
    same = np.r_[False, sub[1:] == sub[:-1]]
    prev_pos = np.r_[False, pos_[:-1]] & same
    start = pos_ & ~prev_pos
    ep_sub = pd.Series(start.astype(np.int64)).groupby(sub).cumsum().to_numpy() if len(sub) else np.zeros(0, np.int64)
    daily["episode"] = np.where(pos_, ep_sub, 0).astype(np.int64)
    return daily, {"opts": opts, "excluded": excluded, "sids": sids, "frames": frames, "uses_capd": uses_capd, "age_known": age_known, "censor": cens}


def episode_table(daily: pd.DataFrame) -> pd.DataFrame:
    """All ICANS episodes (vectorised): onset, resolution (next assessed day at grade 0), maximum."""
    ep = daily["episode"].to_numpy()
    sidx = daily["sidx"].to_numpy()
    day = daily["day"].to_numpy()
    grade = daily["grade"].to_numpy()
    pos = np.flatnonzero(ep > 0)
    cols = ["sidx", "episode", "onset_day", "resolution_day", "duration_days", "ongoing_at_last_assessment", "max_grade", "max_grade_day", "max_pos"]
    if len(pos) == 0:
        return pd.DataFrame(columns=cols)
    key = sidx[pos].astype(np.int64) * 1_000_000 + ep[pos]
    o = np.lexsort((day[pos], -grade[pos], key))
    first_max = np.r_[True, key[o][1:] != key[o][:-1]]
    max_pos = pd.Series(pos[o][first_max], index=key[o][first_max])
    t = pd.DataFrame({"key": key, "sidx": sidx[pos], "episode": ep[pos], "day": day[pos], "grade": grade[pos], "pos": pos}).groupby("key", sort=True).agg(
        sidx=("sidx", "first"), episode=("episode", "first"), onset_day=("day", "first"), max_grade=("grade", "max"), last_pos=("pos", "last")
    )
    t["max_pos"] = max_pos.reindex(t.index).to_numpy()
    t["max_grade_day"] = day[t["max_pos"].to_numpy()]
    nxt = t["last_pos"].to_numpy() + 1
    ok = nxt < len(day)
    same = np.zeros(len(t), bool)
    same[ok] = sidx[nxt[ok]] == t["sidx"].to_numpy()[ok]
    t["resolution_day"] = np.where(same, day[np.minimum(nxt, len(day) - 1)], np.nan)
    t["duration_days"] = t["resolution_day"] - t["onset_day"]
    t["ongoing_at_last_assessment"] = ~same
    return t[cols].reset_index(drop=True)


_DAY_COLS = ["day", "grade", *DOMAINS, *[d + "_row" for d in DOMAINS], "loc_event_row", "episode"]


def grade_icans(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """ASTCT 2019 ICANS grade of each subject: maximum over days, with per-day domain grades and episodes.

    ``value`` is ``None`` when the subject has no ICANS assessment at all in the window (no ICE/CAPD, LOC or
    neurological/imaging event): absence of assessment is not grade 0.
    """
    st = C.restrict(study, subject_id)
    daily, extras = icans_daily(st, options)
    return icans_results(st, daily, extras)


def _reported_absence(st: Study, extras: Mapping[str, Any]) -> dict[str, Evidence]:
    """Per subject, the first clinician statement in the window that ICANS did not occur: an event of kind
    ``icans`` with grade 0 (option ``accept_reported_absence``; seed 004 case 2)."""
    ev = st.events
    stated = ev[(ev["kind"] == "icans") & (ev["grade"].astype("Float64") == 0).fillna(False).to_numpy(dtype=bool)]
    if stated.empty:
        return {}
    sids = extras["sids"]
    si = pd.Index(sids).get_indexer(stated["subject_id"].to_numpy())
    d = C.day_floor(stated["day"])
    cens = extras["censor"]
    ok = (si >= 0) & (d >= float(extras["opts"]["window_start_day"])) & (np.isnan(cens[np.maximum(si, 0)]) | (d < np.floor(cens[np.maximum(si, 0)])))
    stated = stated[ok].sort_values(["subject_id", "day", "row_id"]).drop_duplicates("subject_id")
    note = "clinician-reported absence of ICANS (no ICE/CAPD or neurological assessment recorded): grade 0"
    return {str(e.subject_id): e for e in C.RowLookup("events", st.events).evidence(stated["row_id"].tolist(), [note] * len(stated))}


def icans_results(st: Study, daily: pd.DataFrame, extras: Mapping[str, Any]) -> list[Result]:
    opts = extras["opts"]
    rule = _rule(opts)
    sids = extras["sids"]
    ranges = C.subject_ranges(daily["sidx"].to_numpy())
    eps = episode_table(daily)
    items: C.EvidenceItems = {"observations": [], "events": []}
    dom = {d: daily[d].to_numpy() for d in DOMAINS}
    rows = {d: daily[d + "_row"].to_numpy() for d in DOMAINS}
    loc_ev = daily["loc_event_row"].to_numpy()
    for r in eps.itertuples(index=False):
        mp = int(r.max_pos)
        tag = f"episode {int(r.episode)} maximum (grade {int(r.max_grade)}, day {int(r.max_grade_day)})"
        for d in DOMAINS:
            g = dom[d][mp]
            if np.isnan(g) or g <= 0:
                continue
            note = f"{tag}: {d} domain grade {int(g)}"
            if d == "loc" and loc_ev[mp] >= 0:
                items["events"].append((int(r.sidx), int(loc_ev[mp]), note))
            elif rows[d][mp] >= 0:
                items["observations" if d in ("ice", "capd", "loc") else "events"].append((int(r.sidx), int(rows[d][mp]), note))
    idx = C.obs_index(st)
    absence = _reported_absence(st, extras)
    accept = bool(opts["accept_reported_absence"])
    obs_codes = ["ICE", "CAPD", "LOC", "ICE_ORIENT", "ICE_NAMING", "ICE_COMMANDS", "ICE_WRITING", "ICE_ATTENTION"]
    lookups = {"observations": lambda ids, notes: idx.evidence(obs_codes, ids, notes), "events": C.RowLookup("events", st.events).evidence}
    evidence_by = C.collect_evidence(items, lookups)
    death_by_sid = C.grade5_deaths(st, opts["death_cause_pattern"], float(opts["window_start_day"]), "death due to ICANS: grade 5")
    excluded_by = C.group_by_subject(extras["excluded"])
    ep_ranges = C.subject_ranges(eps["sidx"].to_numpy(dtype=np.int64)) if len(eps) else {}
    ep_records = C.episode_records(eps, ["episode", "onset_day", "resolution_day", "duration_days", "ongoing_at_last_assessment", "max_grade", "max_grade_day"])
    day_cols = daily[_DAY_COLS].copy()  # one consolidated block per dtype: cheap per-subject slices
    out: list[Result] = []
    for si, sid in enumerate(sids):
        sid = str(sid)
        a, b = ranges.get(si, (0, 0))
        ea, eb = ep_ranges.get(si, (0, 0))
        episodes = ep_records[ea:eb]
        missing: list[str] = []
        if not extras["age_known"][si]:
            missing.append("age_years missing: ICE or CAPD used as recorded (A8 cannot be applied)")
        evidence = evidence_by.get(si, [])
        basis = "assessments"
        if b == a and accept and sid in absence:
            value: int | None = 0
            evidence = [*evidence, absence[sid]]
            basis = "clinician-reported absence"
            missing.insert(0, f"no ICE/CAPD or neurological assessment recorded: grade 0 rests on the clinician's statement that ICANS did not occur (events row {absence[sid].row_id}; option accept_reported_absence)")
        elif b == a:
            value = None
            basis = "none"
            why = "a clinician statement that ICANS did not occur is recorded but not used (option accept_reported_absence=false)" if sid in absence else "no clinician statement that ICANS did not occur"
            missing.insert(0, f"no ICANS assessment in the window (ICE/CAPD, level of consciousness, neurological or imaging events); {why}")
        else:
            value = int(daily["grade"].to_numpy()[a:b].max())
        details = {
            "instrument": "CAPD" if extras["uses_capd"][si] else ("ICE" if extras["age_known"][si] else "as recorded"),
            "days": C.lazy_rows(day_cols, a, b),
            "episodes": episodes,
            "excluded": excluded_by.get(sid, []),
            "grade5": sid in death_by_sid,
            "basis": basis,
        }
        out.append(C.episode_result("icans", rule, sid, value, missing, evidence, death_by_sid.get(sid), episodes, details))
    return out


__all__ = ["grade_icans", "icans_daily", "icans_results", "episode_table", "DOMAINS"]
