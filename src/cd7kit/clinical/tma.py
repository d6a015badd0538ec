"""TA-TMA after allogeneic HSCT (Cho 2010, Jodele 2014, harmonized 2023) and IEC-HS laboratory flags.

Sources and thresholds are data with citations: ``cd7kit/clinical/rules/tma_criteria.yaml`` (Cho BS et al.,
Transplantation 2010;90:918; Jodele S et al., Blood 2014;124:645; Schoettler ML et al., Transplant Cell Ther
2023;29:151) and ``tma_iec_hs.yaml`` (Hines MR et al., Transplant Cell Ther 2023;29:438.e1).

How it works (vectorised with pandas; grading spec section 6):

1. The HSCT day is the first intervention of kind ``hsct``; only days on or after it are evaluated.
2. Every relevant row becomes a *finding* for a criterion, positive or negative: an LDH above / not above
   the row's ULN, a platelet count < 50 x10^9/L or >= 50 % below the pre-HSCT baseline, a hemoglobin >= 1 g/dL
   below it, more RBC transfusions in the last 7 days than the 7 before, a smear with schistocytes, low
   haptoglobin, a negative Coombs test (``DAT``), PT/INR and aPTT within the ULN, sC5b-9 above the ULN,
   proteinuria (dipstick >= 1+ ~ 30 mg/dL for Jodele; a random UPCR >= 1 mg/mg for the harmonized criteria --
   a dipstick is never a UPCR), blood pressure >= 140/90 mmHg from age 18, and investigator findings
   (events of kind ``tma``: "platelet transfusion refractoriness", "schistocytes", "biopsy" ...),
   acute GVHD grade >= 2 and infections (events) for the high-risk features.
3. A *time point* is a post-HSCT calendar day with at least one finding. At a time point a criterion is
   met (True) if its latest finding within ``tma_lookback_days`` is positive, not met (False) if that
   finding is negative, and unknown (None, listed in ``missing``) if there is none.
4. Cho 2010 needs all seven items; Jodele 2014 needs ``jodele_min_criteria`` of seven markers (or
   histology); the harmonized criteria need >= 4 of 7 at two consecutive time points <= 14 days apart (or
   histology). A set is NA whenever the unknown items could change the answer -- never a silent "no".

The IEC-HS flags (:func:`iec_hs_flags`) are laboratory signals for an investigator to confirm; they are
not a diagnosis and not a grade (the Hines 2023 tables were not verified, ambiguity A18).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Result, Rule, Study

from .scores._common import (
    LazyEvidence,
    evidence_columns,
    load_rules,
    observations,
    resolve_options,
    subject_ids,
)

RULE_FILE = "tma_criteria.yaml"
IEC_FILE = "tma_iec_hs.yaml"
_OBS_CODES = ["SCHISTO", "SCHISTO_HPF", "PLT", "LDH", "HGB", "HAPTOGLOBIN", "DAT", "PT", "INR", "APTT", "SC5B9", "UPCR", "UPROT_DIP", "SBP", "DBP"]
_PRESENT = {"present", "positive", "seen", "yes", "detected", "few", "many", "+"}
_ABSENT = {"absent", "negative", "none", "not seen", "no", "not detected", "0"}
_CORE_CHO = ["schistocytes_cho", "thrombocytopenia", "ldh_persistent", "anemia"]
_DESCRIBE = {
    "schistocytes_cho": "schistocytes per HPF on a smear (Cho)",
    "schistocytes_present": "schistocytes on a smear",
    "thrombocytopenia": "platelet count (or platelet refractoriness)",
    "ldh_persistent": "LDH above ULN on consecutive measurements",
    "ldh_high": "LDH with its ULN",
    "ldh_2x_uln": "LDH with its ULN",
    "anemia": "hemoglobin against the pre-HSCT baseline, or RBC transfusions",
    "haptoglobin_low": "haptoglobin with its LLN",
    "coombs_negative": "direct antiglobulin (Coombs) test, DAT",
    "coagulation_normal": "PT or INR and aPTT with their ULN",
    "pt_normal": "PT or INR with its ULN",
    "aptt_normal": "aPTT with its ULN",
    "sc5b9_gt_uln": "sC5b-9 with its ULN",
    "sc5b9_ge_uln": "sC5b-9 with its ULN",
    "upcr_ge_1": "random urine protein/creatinine ratio (UPCR; a dipstick is not a UPCR)",
    "proteinuria_30": "urine protein (dipstick or UPCR)",
    "hypertension": "blood pressure (age >= 18; paediatric percentile tables are not implemented)",
    "agvhd_2_4": "acute GVHD grade (events of kind gvhd)",
    "infection": "infection events",
    "organ_dysfunction": "organ dysfunction (investigator finding)",
    "biopsy_proven": "biopsy",
}


def _rules() -> dict[str, Any]:
    return load_rules(RULE_FILE)


def default_options() -> dict[str, Any]:
    return dict(_rules()["options"])


# ----------------------------------------------------------------------------------------- findings


def _frame(rows: pd.DataFrame, crit: str, status: np.ndarray, note: str | np.ndarray = "") -> pd.DataFrame:
    """Findings rows for one criterion from observation rows (status True/False; NaN rows dropped)."""
    st = np.asarray(status, dtype=float)
    keep = ~np.isnan(st)
    r = rows[keep]
    val = r["value"].astype(object).where(r["value"].notna(), r["value_text"]) if "value_text" in r else r["value"]
    return pd.DataFrame(
        {
            "subject_id": r["subject_id"].to_numpy(),
            "day": r["day"].to_numpy(dtype=float),
            "crit": crit,
            "status": st[keep].astype(bool),
            "table": "observations",
            "row_id": r["row_id"].to_numpy(),
            "what": r["code"].to_numpy(),
            "value": val.to_numpy(),
            "unit": r["unit"].to_numpy(),
            "note": (np.asarray(note)[keep] if isinstance(note, np.ndarray) else note),
        }
    )


def _tri(true_mask: np.ndarray, false_mask: np.ndarray) -> np.ndarray:
    out = np.full(len(true_mask), np.nan)
    out[np.asarray(false_mask, dtype=bool)] = 0.0
    out[np.asarray(true_mask, dtype=bool)] = 1.0
    return out


def _text(rows: pd.DataFrame) -> pd.Series:
    return rows["value_text"].astype("string").str.strip().str.lower()


def _findings(study: Study, ids: list[str], hsct: pd.Series, opts: Mapping[str, Any], age: pd.Series) -> pd.DataFrame:
    obs = observations(study, _OBS_CODES, None)
    obs = obs[obs["subject_id"].isin(list(hsct.index))]
    h = obs["subject_id"].map(hsct).to_numpy(dtype=float)
    hday = np.floor(h)
    cday = np.floor(obs["day"].to_numpy(dtype=float))
    post = cday >= hday
    if opts["tma_window_end_days"] is not None:
        post &= cday <= hday + float(opts["tma_window_end_days"])
    pre = obs[~post & (cday < hday)]
    obs = obs[post]
    parts: list[pd.DataFrame] = []

    def rows(code: str) -> pd.DataFrame:
        return obs[obs["code"] == code]

    # schistocytes
    hpf = rows("SCHISTO_HPF")
    v = hpf["value"].to_numpy(dtype=float)
    thr = float(opts["cho_schistocytes_per_hpf"])
    meets = v >= thr if opts["cho_schistocytes_comparator"] == ">=" else v > thr
    parts.append(_frame(hpf, "schistocytes_cho", _tri(meets, ~np.isnan(v) & ~meets)))
    parts.append(_frame(hpf, "schistocytes_present", _tri(v > 0, v == 0)))
    pct = rows("SCHISTO")
    v = pct["value"].to_numpy(dtype=float)
    t = _text(pct)
    pres = (v > 0) | t.isin(list(_PRESENT)).to_numpy(dtype=bool)
    absn = (v == 0) | t.isin(list(_ABSENT)).to_numpy(dtype=bool)
    parts.append(_frame(pct, "schistocytes_present", _tri(pres, absn & ~pres)))
    qual_note = "reported without a count per HPF; accepted for Cho (option cho_accept_qualitative_schistocytes)"
    if opts["cho_accept_qualitative_schistocytes"]:
        parts.append(_frame(pct, "schistocytes_cho", _tri(pres, absn & ~pres), qual_note))
    else:
        parts.append(_frame(pct, "schistocytes_cho", _tri(np.zeros(len(pct), bool), absn & ~pres)))

    # platelets and hemoglobin against the pre-HSCT baseline
    def baseline(code: str) -> pd.Series:
        b = pre[(pre["code"] == code) & pre["value"].notna()].sort_values(["subject_id", "day", "row_id"])
        return b.groupby("subject_id")["value"].last()

    plt = rows("PLT")
    v = plt["value"].to_numpy(dtype=float)
    pb = plt["subject_id"].map(baseline("PLT")).to_numpy(dtype=float)
    low = (v < float(opts["platelets_below"])) | (v <= pb * (1 - float(opts["platelet_drop_pct"]) / 100.0))
    parts.append(_frame(plt, "thrombocytopenia", _tri(low, ~np.isnan(v) & ~low)))
    hgb = rows("HGB")
    v = hgb["value"].to_numpy(dtype=float)
    hb0 = hgb["subject_id"].map(baseline("HGB")).to_numpy(dtype=float)
    drop = v <= hb0 - float(opts["hb_drop_g_l"])
    parts.append(_frame(hgb, "anemia", _tri(drop, ~np.isnan(hb0) & ~np.isnan(v) & ~drop), "decline from the last pre-HSCT hemoglobin"))

    # LDH
    ldh = rows("LDH").sort_values(["subject_id", "day", "row_id"])
    v = ldh["value"].to_numpy(dtype=float)
    uln = ldh["uln"].to_numpy(dtype=float)
    high = v > uln
    parts.append(_frame(ldh, "ldh_high", _tri(high, ~np.isnan(uln) & ~high)))
    parts.append(_frame(ldh, "ldh_2x_uln", _tri(v >= 2 * uln, ~np.isnan(uln) & (v < 2 * uln))))
    hs = pd.Series(high, index=ldh.index)
    run_id = (~hs).groupby(ldh["subject_id"]).cumsum()
    runlen = hs.groupby([ldh["subject_id"], run_id]).cumsum().to_numpy()
    persistent = high & (runlen >= int(opts["cho_ldh_consecutive"]))
    parts.append(_frame(ldh, "ldh_persistent", _tri(persistent, ~np.isnan(uln) & ~high), f"{int(opts['cho_ldh_consecutive'])} consecutive values > ULN"))

    # haptoglobin, Coombs, coagulation
    hp = rows("HAPTOGLOBIN")
    v, lln = hp["value"].to_numpy(dtype=float), hp["lln"].to_numpy(dtype=float)
    parts.append(_frame(hp, "haptoglobin_low", _tri(v < lln, ~np.isnan(lln) & (v >= lln))))
    dat = rows("DAT")
    t = _text(dat)
    parts.append(_frame(dat, "coombs_negative", _tri(t.isin(["negative", "neg"]).to_numpy(bool), t.isin(["positive", "pos"]).to_numpy(bool))))
    for code, crit in (("PT", "pt_normal"), ("INR", "pt_normal"), ("APTT", "aptt_normal")):
        r = rows(code)
        v, u = r["value"].to_numpy(dtype=float), r["uln"].to_numpy(dtype=float)
        parts.append(_frame(r, crit, _tri(v <= u, v > u)))

    # complement and urine
    c5 = rows("SC5B9")
    v, u = c5["value"].to_numpy(dtype=float), c5["uln"].to_numpy(dtype=float)
    parts.append(_frame(c5, "sc5b9_gt_uln", _tri(v > u, v <= u)))
    parts.append(_frame(c5, "sc5b9_ge_uln", _tri(v >= u, v < u)))
    up = rows("UPCR")
    v = up["value"].to_numpy(dtype=float)
    parts.append(_frame(up, "upcr_ge_1", _tri(v >= 1.0, v < 1.0)))
    parts.append(_frame(up, "proteinuria_30", _tri(v >= float(opts["jodele_upcr_mg_mg"]), np.zeros(len(up), bool)), "UPCR"))
    dip = rows("UPROT_DIP")
    v = dip["value"].to_numpy(dtype=float)
    parts.append(_frame(dip, "proteinuria_30", _tri(v >= float(opts["dipstick_plus_for_30_mg_dl"]), v < float(opts["dipstick_plus_for_30_mg_dl"])), "dipstick (about 30 mg/dL at 1+); not a UPCR"))

    # blood pressure (adults only)
    bp = obs[obs["code"].isin(["SBP", "DBP"])]
    adult = bp["subject_id"].map(age).to_numpy(dtype=float) >= float(opts["adult_age_years"])
    v = bp["value"].to_numpy(dtype=float)
    lim = np.where(bp["code"].to_numpy() == "SBP", 140.0, 90.0)
    parts.append(_frame(bp, "hypertension", _tri(adult & (v >= lim), adult & (v < lim))))

    # every post-HSCT measurement day is a time point, even when it is no finding (e.g. a child's BP)
    parts.append(_frame(obs, "_seen", np.zeros(len(obs))))
    parts += [_transfusion_findings(study, hsct, opts), _event_findings(study, hsct, opts)]
    parts = [p for p in parts if len(p)]
    fnd = pd.concat(parts, ignore_index=True) if parts else _empty_findings()
    fnd = fnd[fnd["subject_id"].isin(ids)]
    fnd["cday"] = np.floor(fnd["day"].to_numpy(dtype=float))
    return fnd.reset_index(drop=True)


def _empty_findings() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ["subject_id", "day", "crit", "status", "table", "row_id", "what", "value", "unit", "note"]})


def _in_window(df: pd.DataFrame, day_col: str, hsct: pd.Series, opts: Mapping[str, Any]) -> pd.DataFrame:
    hday = np.floor(df["subject_id"].map(hsct).to_numpy(dtype=float))
    c = np.floor(df[day_col].to_numpy(dtype=float))
    ok = c >= hday
    if opts["tma_window_end_days"] is not None:
        ok &= c <= hday + float(opts["tma_window_end_days"])
    return df[ok]


def _transfusion_findings(study: Study, hsct: pd.Series, opts: Mapping[str, Any]) -> pd.DataFrame:
    """RBC transfusions: more units in the last N days than in the N days before -> anemia criterion."""
    iv = study.interventions
    tx = iv[(iv["kind"] == "transfusion") & iv["subject_id"].isin(list(hsct.index))]
    tx = tx[tx["agent"].astype("string").str.lower().str.contains(r"rbc|red|erythro|packed", regex=True).fillna(False).to_numpy(bool)]
    if tx.empty:
        return _empty_findings()
    tx = tx.sort_values(["subject_id", "start_day", "row_id"]).reset_index(drop=True)
    n = float(opts["transfusion_compare_days"])
    code = pd.factorize(tx["subject_id"])[0].astype(float)
    key = code * 1e7 + tx["start_day"].to_numpy(dtype=float)
    upto = np.searchsorted(key, key, side="right")
    mid = np.searchsorted(key, key - n, side="right")
    lo = np.searchsorted(key, key - 2 * n, side="right")
    recent, before = upto - mid, mid - lo
    more = recent > before
    tx = tx.assign(_more=more, _recent=recent, _before=before)
    tx = _in_window(tx, "start_day", hsct, opts)
    tx = tx[tx["_more"].to_numpy(bool)]
    return pd.DataFrame(
        {
            "subject_id": tx["subject_id"].to_numpy(),
            "day": tx["start_day"].to_numpy(dtype=float),
            "crit": "anemia",
            "status": True,
            "table": "interventions",
            "row_id": tx["row_id"].to_numpy(),
            "what": "transfusion",
            "value": tx["agent"].to_numpy(),
            "unit": None,
            "note": [f"increased RBC transfusion requirement: {a} in the last {n:g} days vs {b} before" for a, b in zip(tx["_recent"], tx["_before"], strict=True)],
        }
    )


def _event_findings(study: Study, hsct: pd.Series, opts: Mapping[str, Any]) -> pd.DataFrame:
    ev = study.events[study.events["subject_id"].isin(list(hsct.index))]
    ev = _in_window(ev, "day", hsct, opts)
    parts = []
    tma = ev[ev["kind"] == "tma"]
    terms = tma["term"].astype("string").str.lower()
    for phrase, crits in _rules()["finding_terms"].items():  # a loop over the rule's phrases, not over rows
        hit = tma[terms.str.contains(phrase, regex=False).fillna(False).to_numpy(bool)]
        for crit in crits:
            parts.append(pd.DataFrame({"subject_id": hit["subject_id"].to_numpy(), "day": hit["day"].to_numpy(dtype=float), "crit": crit, "status": True, "table": "events", "row_id": hit["row_id"].to_numpy(), "what": "tma", "value": hit["term"].to_numpy(), "unit": None, "note": "investigator finding"}))
    gv = ev[(ev["kind"] == "gvhd") & (ev["grade"].fillna(0).astype(int) >= 2).to_numpy(bool)]
    parts.append(pd.DataFrame({"subject_id": gv["subject_id"].to_numpy(), "day": gv["day"].to_numpy(dtype=float), "crit": "agvhd_2_4", "status": True, "table": "events", "row_id": gv["row_id"].to_numpy(), "what": "gvhd", "value": gv["term"].to_numpy(), "unit": None, "note": "GVHD grade >= 2"}))
    inf = ev[ev["kind"] == "infection"]
    parts.append(pd.DataFrame({"subject_id": inf["subject_id"].to_numpy(), "day": inf["day"].to_numpy(dtype=float), "crit": "infection", "status": True, "table": "events", "row_id": inf["row_id"].to_numpy(), "what": "infection", "value": inf["term"].to_numpy(), "unit": None, "note": "concurrent infection"}))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else _empty_findings()


# ----------------------------------------------------------------------------------------- evaluation


def _status_at_timepoints(fnd: pd.DataFrame, tp: pd.DataFrame, crits: list[str], lookback: float) -> pd.DataFrame:
    """Wide frame over time points: for each criterion its status (1/0/NaN) and the finding index used.

    One backward ``merge_asof`` per polarity over (time point x criterion), keyed by subject and criterion:
    the latest positive and the latest negative finding within ``lookback`` days; the later one wins
    (a positive one on the same day wins).
    """
    out = tp.copy()
    n = len(tp)
    grid = pd.DataFrame(
        {
            "subject_id": np.repeat(tp["subject_id"].to_numpy(), len(crits)),
            "crit": np.tile(np.asarray(crits, dtype=object), n),
            "_pos": np.repeat(np.arange(n), len(crits)),
            "_k": np.repeat(tp["cday"].to_numpy(dtype=float), len(crits)),
        }
    ).sort_values("_k", kind="stable")
    f = fnd[fnd["crit"].isin(crits)].reset_index().rename(columns={"index": "fidx"})
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for flag, label in ((True, "t"), (False, "f")):
        sub = f[f["status"] == flag].sort_values(["cday", "fidx"])
        sub = sub.drop_duplicates(["subject_id", "crit", "cday"], keep="last")
        sub = pd.DataFrame({"subject_id": sub["subject_id"], "crit": sub["crit"], "_k": sub["cday"].astype(float), "d": sub["cday"].astype(float), "i": sub["fidx"].astype(float)}).sort_values("_k")
        if sub.empty:
            m = grid.assign(d=np.nan, i=np.nan)
        else:
            m = pd.merge_asof(grid, sub, on="_k", by=["subject_id", "crit"], direction="backward", tolerance=lookback)
        m = m.sort_values(["_pos", "crit"])
        found[label] = (m["d"].to_numpy(dtype=float), m["i"].to_numpy(dtype=float))
    order = np.argsort(np.asarray(crits, dtype=object), kind="stable")  # column order after sorting by crit
    td, ti = found["t"]
    fd, fi = found["f"]
    is_t = ~np.isnan(td) & (np.isnan(fd) | (td >= fd))
    is_f = ~is_t & ~np.isnan(fd)
    st = np.where(is_t, 1.0, np.where(is_f, 0.0, np.nan)).reshape(n, len(crits))
    idx = np.where(is_t, ti, np.where(is_f, fi, np.nan)).reshape(n, len(crits))
    sorted_crits = [crits[j] for j in order]
    cols = {}
    for j, crit in enumerate(sorted_crits):
        cols[crit] = st[:, j]
        cols[f"{crit}__idx"] = idx[:, j]
    return pd.concat([out, pd.DataFrame(cols, index=out.index)], axis=1)


def _combine_and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full(len(a), np.nan)
    out[(a == 0) | (b == 0)] = 0.0
    out[(a == 1) & (b == 1)] = 1.0
    return out


def assess_tma(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """TA-TMA by Cho 2010, Jodele 2014 and the 2023 harmonized criteria, per post-HSCT time point and per subject."""
    rules = _rules()
    iec_names = set(load_rules(IEC_FILE)["options"])
    options = dict(options or {})
    iec_opts = {k: options.pop(k) for k in list(options) if k in iec_names}
    opts = resolve_options("TA-TMA", rules["options"], options, rules.get("choices"))
    ids = subject_ids(study, subject_id)
    iv = study.interventions
    hsct = iv[(iv["kind"] == "hsct") & iv["subject_id"].isin(ids)].groupby("subject_id")["start_day"].min()
    age = study.subjects.set_index("subject_id")["age_years"]
    fnd = _findings(study, ids, hsct, opts, age)
    sets: dict[str, Any] = rules["sets"]
    crits = sorted({c for s in sets.values() for c in s["criteria"] + s.get("high_risk_any", []) + s.get("high_risk_all", [])} | {"pt_normal", "aptt_normal", "biopsy_proven"})
    crits = [c for c in crits if c != "coagulation_normal"]
    tp = fnd[["subject_id", "cday"]].drop_duplicates().sort_values(["subject_id", "cday"]).reset_index(drop=True)
    fnd = fnd[fnd["crit"] != "_seen"].reset_index(drop=True)  # "_seen" rows only define time points
    st = _status_at_timepoints(fnd, tp, crits, float(opts["tma_lookback_days"]))
    st["coagulation_normal"] = _combine_and(st["pt_normal"].to_numpy(), st["aptt_normal"].to_numpy())
    biopsy = st["biopsy_proven"].to_numpy() == 1
    values: dict[str, np.ndarray] = {}

    # Cho 2010: all items
    cho = sets["cho2010"]["criteria"]
    m = st[cho].to_numpy(dtype=float)
    any_false = (m == 0).any(axis=1)
    if opts["cho_unassessed"] == "ignore":
        core = st[_CORE_CHO].to_numpy(dtype=float)
        met = (core == 1).all(axis=1) & ~any_false
    else:
        met = (m == 1).all(axis=1)
    values["cho2010"] = np.where(met, 1.0, np.where(any_false, 0.0, np.nan))

    # Jodele 2014: >= k markers (or histology)
    jd = sets["jodele2014"]["criteria"]
    m = st[jd].to_numpy(dtype=float)
    k = int(opts["jodele_min_criteria"])
    n_true, n_unk = (m == 1).sum(axis=1), np.isnan(m).sum(axis=1)
    values["jodele2014"] = np.where((n_true >= k) | biopsy, 1.0, np.where(n_true + n_unk < k, 0.0, np.nan))

    # harmonized 2023: >= 4 of 7 at two consecutive time points <= 14 days apart (or biopsy)
    hz = sets["harmonized2023"]
    m = st[hz["criteria"]].to_numpy(dtype=float)
    kk = int(hz["min_criteria"])
    n_true, n_unk = (m == 1).sum(axis=1), np.isnan(m).sum(axis=1)
    tp_met = np.where(n_true >= kk, 1.0, np.where(n_true + n_unk < kk, 0.0, np.nan))
    st["_tp_met"] = tp_met
    prev = st.groupby("subject_id")["_tp_met"].shift(1).to_numpy(dtype=float)
    prev_day = st.groupby("subject_id")["cday"].shift(1).to_numpy(dtype=float)
    gap_ok = (st["cday"].to_numpy(dtype=float) - prev_day) <= float(hz["max_gap_days"])
    both = (tp_met == 1) & (prev == 1) & gap_ok
    impossible = (tp_met == 0) | (prev == 0) | ~gap_ok
    values["harmonized2023"] = np.where(both | biopsy, 1.0, np.where(impossible, 0.0, np.nan))
    st["_hz_n"] = n_true

    out: list[Result] = []
    src = rules["sources"]
    met = np.where(fnd["status"].to_numpy(dtype=bool), "met", "not met")
    note = fnd["note"].fillna("").astype(str).to_numpy()
    suffix = np.where(note != "", " (" + note.astype(object) + ")", "")
    fnd = fnd.assign(note=fnd["crit"].to_numpy().astype(object) + ": " + met.astype(object) + suffix.astype(object))
    cols = evidence_columns(fnd)
    for key, spec in sets.items():
        rule = Rule(rules["system"], key, opts, src[key])
        tps = _timepoint_results(key, spec, st, values[key], cols, hsct, rule, opts)
        out.extend(tps)
        first_met = {}
        for r in tps:
            if r.value is True and r.subject_id not in first_met:
                first_met[r.subject_id] = r
        out.extend(_subject_summary(key, spec, st, values[key], ids, hsct, rule, first_met))
    if opts["include_iec_hs_flags"]:
        out.extend(iec_hs_flags(study, subject_id, iec_opts))
    return out


def _labels(v: float) -> bool | None:
    return None if math.isnan(v) else bool(v == 1)


def _tri_lists(m: np.ndarray) -> list[list[bool | None]]:
    """A (rows x criteria) 1/0/NaN matrix as lists of True/False/None."""
    obj = np.empty(m.shape, dtype=object)
    obj[:] = None
    obj[m == 1] = True
    obj[m == 0] = False
    out: list[list[bool | None]] = obj.tolist()
    return out


def _timepoint_results(key: str, spec: Mapping[str, Any], st: pd.DataFrame, vals: np.ndarray, cols: Mapping[str, Any], hsct: pd.Series, rule: Rule, opts: Mapping[str, Any]) -> list[Result]:
    crits: list[str] = list(spec["criteria"])
    extra = [c for c in list(spec.get("high_risk_any", [])) + list(spec.get("high_risk_all", [])) if c not in crits]
    ev_crits = [c for c in crits if c != "coagulation_normal"] + (["pt_normal", "aptt_normal"] if "coagulation_normal" in crits else []) + extra + ["biopsy_proven"]
    lb = float(opts["tma_lookback_days"])
    status = _tri_lists(st[crits].to_numpy(dtype=float))
    hr_cols = list(spec.get("high_risk_any", spec.get("high_risk_all", [])))
    hr_status = _tri_lists(st[hr_cols].to_numpy(dtype=float)) if hr_cols else [[] for _ in range(len(st))]
    idx_rows = st[[f"{c}__idx" for c in ev_crits]].to_numpy(dtype=float).tolist()
    sids = st["subject_id"].to_numpy()
    cdays = st["cday"].to_numpy(dtype=float)
    hdays = np.floor(st["subject_id"].map(hsct).to_numpy(dtype=float))
    tp_met = _tri_lists(st[["_tp_met"]].to_numpy(dtype=float))
    biopsy = (st["biopsy_proven"].to_numpy(dtype=float) == 1).tolist()
    value_list = _tri_lists(np.asarray(vals, dtype=float).reshape(-1, 1))
    desc = [f"{c}: {_DESCRIBE.get(c, c)} within {lb:g} days" for c in crits]
    if key == "cho2010":
        rule_text = "all 7 items" + (" (unassessed haptoglobin/Coombs/coagulation ignored)" if opts["cho_unassessed"] == "ignore" else "")
    elif key == "jodele2014":
        rule_text = f">= {int(opts['jodele_min_criteria'])} of 7 markers or histology"
    else:
        rule_text = f">= {spec['min_criteria']} of 7 at 2 consecutive time points within {spec['max_gap_days']} days, or biopsy"
    out = []
    for i in range(len(st)):
        crit_status = dict(zip(crits, status[i], strict=True))
        ev = LazyEvidence(cols, [int(x) for x in idx_rows[i] if x == x])
        missing = [desc[j] for j, s_ in enumerate(status[i]) if s_ is None]
        value = value_list[i][0]
        details: dict[str, Any] = {
            "criteria": crit_status,
            "n_met": sum(1 for s_ in status[i] if s_),
            "days_post_hsct": float(cdays[i] - hdays[i]),
            "biopsy_proven": biopsy[i],
            "rule": rule_text,
        }
        if key == "cho2010":
            if value is True and missing:
                details["note"] = "met on the assessed items; unassessed items listed in missing"
        elif key == "jodele2014":
            hr = dict(zip(hr_cols, hr_status[i], strict=True))
            details["high_risk_features"] = hr
            details["high_risk"] = True if all(hr.values()) else (False if any(v is False for v in hr.values()) else None)
        else:
            details["timepoint_met"] = tp_met[i][0]
            hr = dict(zip(hr_cols, hr_status[i], strict=True))
            details["high_risk_features"] = hr
            details["high_risk"] = True if any(hr.values()) else (None if any(v is None for v in hr.values()) else False)
        out.append(Result(spec["name"], value, rule, ev, missing, str(sids[i]), float(cdays[i]), details))
    return out


def _subject_summary(
    key: str, spec: Mapping[str, Any], st: pd.DataFrame, vals: np.ndarray, ids: list[str], hsct: pd.Series, rule: Rule, first_met: Mapping[Any, Result]
) -> list[Result]:
    name = spec["name"] + " (subject)"
    s = st.assign(_v=vals)
    out = []
    groups = {sid: g for sid, g in s.groupby("subject_id")}
    for sid in ids:
        if sid not in hsct.index:
            out.append(Result(name, None, rule, (), ["an allogeneic HSCT (intervention of kind 'hsct'): TA-TMA is assessed after it"], sid, None, {}))
            continue
        g = groups.get(sid)
        if g is None:
            out.append(Result(name, None, rule, (), ["any TA-TMA finding after the HSCT"], sid, float(hsct[sid]), {"hsct_day": float(hsct[sid])}))
            continue
        v = g["_v"].to_numpy(dtype=float)
        days = g["cday"].to_numpy(dtype=float)
        details: dict[str, Any] = {"hsct_day": float(hsct[sid]), "timepoints": int(len(g)), "timepoints_met": int((v == 1).sum()), "timepoints_not_met": int((v == 0).sum()), "timepoints_na": int(np.isnan(v).sum())}
        if (v == 1).any():
            first = float(days[np.argmax(v == 1)])
            details["first_day_met"] = first
            fm = first_met.get(sid)
            if fm is not None:
                details["criteria_at_first_day_met"] = fm.details.get("criteria")
            out.append(Result(name, True, rule, fm.evidence if fm is not None else (), fm.missing if fm is not None else (), sid, first, details))
        elif (v == 0).all():
            out.append(Result(name, False, rule, (), (), sid, float(hsct[sid]), details))
        else:
            never = [c for c in spec["criteria"] if g[c].isna().all()]
            miss = [f"{c}: {_DESCRIBE.get(c, c)} (never assessed after HSCT)" for c in never] or ["criteria unknown at some time points"]
            out.append(Result(name, None, rule, (), miss, sid, float(hsct[sid]), details))
    return out


# ----------------------------------------------------------------------------------------- IEC-HS flags


def iec_hs_flags(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """Per day, laboratory flags suggestive of IEC-HS (Hines 2023) -- for investigator confirmation only.

    One result per subject. Value: the sorted list of features flagged on any day (empty list: assessed,
    nothing flagged; None: nothing to assess); ``details["flags_by_day"]`` maps each flagged day to its
    features and ``evidence`` lists every flagged row. Features:
    ``ferritin`` (> 2 x ULN or > 2 x the last pre-infusion value), ``transaminases`` (ALT/AST > 5 x ULN, or
    > 5 x baseline when the baseline is above ULN), ``hypofibrinogenemia`` (< 1.5 g/L), ``cytopenia`` (ANC < 1.0,
    platelets < 50 or Hb < 80 g/L after a value at or above that threshold since day 0: new or worsening),
    ``ldh`` (> ULN), ``hypertriglyceridemia`` (> 3.0 mmol/L).
    """
    rules = load_rules(IEC_FILE)
    opts = resolve_options("IEC-HS flags", rules["options"], options)
    ids = subject_ids(study, subject_id)
    rule = Rule(rules["system"], str(rules["version"]), opts, rules["source"])
    codes = ["FERRITIN", "ALT", "AST", "FIBRINOGEN", "ANC", "PLT", "HGB", "LDH", "TRIGLYCERIDES"]
    obs = observations(study, codes, subject_id)
    obs = obs[obs["value"].notna()]
    pre = obs[obs["day"] < 0]
    base = pre.sort_values(["subject_id", "day", "row_id"]).groupby(["subject_id", "code"])["value"].last()
    post = obs[obs["day"] >= float(opts["iec_from_day"])].copy()
    v = post["value"].to_numpy(dtype=float)
    uln = post["uln"].to_numpy(dtype=float)
    code = post["code"].to_numpy()
    post = post.merge(base.rename("_base"), left_on=["subject_id", "code"], right_index=True, how="left")
    b = post["_base"].to_numpy(dtype=float)
    flag = np.full(len(post), None, dtype=object)
    f_uln = float(opts["iec_ferritin_fold_uln"])
    f_b = float(opts["iec_ferritin_fold_baseline"])
    fer = code == "FERRITIN"
    flag[fer & ((v > f_uln * uln) | (v > f_b * b))] = "ferritin"
    tf = float(opts["iec_transaminase_fold"])
    tr = np.isin(code, ["ALT", "AST"])
    ref = np.where(~np.isnan(b) & (b > uln), b, uln)
    flag[tr & (v > tf * ref)] = "transaminases"
    flag[(code == "FIBRINOGEN") & (v < float(opts["iec_fibrinogen_below_g_l"]))] = "hypofibrinogenemia"
    flag[(code == "LDH") & (v > uln)] = "ldh"
    flag[(code == "TRIGLYCERIDES") & (v > float(opts["iec_triglycerides_above_mmol_l"]))] = "hypertriglyceridemia"
    thr = np.select([code == "ANC", code == "PLT", code == "HGB"], [float(opts["iec_anc_below"]), float(opts["iec_plt_below"]), float(opts["iec_hgb_below_g_l"])], np.nan)
    cyto_code = ~np.isnan(thr)
    above = pd.Series(np.where(cyto_code, (v >= thr).astype(float), np.nan), index=post.index)
    keys = [post["subject_id"], post["code"]]
    sid_code = pd.factorize(post["subject_id"], sort=True)[0]
    code_code = pd.factorize(post["code"])[0]
    order = np.lexsort((post["row_id"].to_numpy(), post["day"].to_numpy(dtype=float), code_code, sid_code))
    srt = above.iloc[order]
    skeys = [k.iloc[order] for k in keys]
    seen = srt.groupby(skeys).shift(1).groupby(skeys).cummax().reindex(post.index)
    below = cyto_code & (v < thr)
    new_or_worse = below & (seen.to_numpy(dtype=float) == 1)
    flag[new_or_worse] = "cytopenia"
    post["_flag"] = flag
    post["cday"] = np.floor(post["day"].to_numpy(dtype=float))
    label = rules["label"]
    common = {"label": label, "investigator_confirmation_required": True, "is_diagnosis": False}
    post["_sid"] = sid_code
    fl = post[post["_flag"].notna()]
    fl = fl.iloc[np.lexsort((fl["row_id"].to_numpy(), fl["cday"].to_numpy(dtype=float), fl["_sid"].to_numpy()))].reset_index(drop=True)
    fl = fl.assign(table="observations", what=fl["code"], note="IEC-HS flag: " + fl["_flag"].astype(str))
    cols = evidence_columns(fl)
    out: list[Result] = []
    by_subject: dict[str, dict[str, list[str]]] = {}
    span: dict[str, tuple[int, int]] = {}
    if len(fl):
        sc, dc = fl["_sid"].to_numpy(), fl["cday"].to_numpy(dtype=float)
        new_group = np.r_[True, (sc[1:] != sc[:-1]) | (dc[1:] != dc[:-1])]
        starts = np.flatnonzero(new_group)
        gid = np.cumsum(new_group) - 1
        fcode, names = pd.factorize(fl["_flag"], sort=True)
        onehot = np.zeros((len(starts), len(names)), dtype=bool)
        onehot[gid, fcode] = True
        name_list = [str(n) for n in names]
        bits = onehot.astype(np.int64) @ (np.int64(1) << np.arange(len(name_list), dtype=np.int64))
        lut = {int(c): [n for j, n in enumerate(name_list) if (int(c) >> j) & 1] for c in np.unique(bits)}
        feats_rows = [lut[c] for c in bits.tolist()]
        sid_arr = fl["subject_id"].to_numpy()[starts].tolist()
        day_arr = fl["cday"].to_numpy(dtype=float)[starts].tolist()
        for sid_, day_, feats_ in zip(sid_arr, day_arr, feats_rows, strict=True):
            by_subject.setdefault(str(sid_), {})[f"{day_:g}"] = feats_
        subj = fl["subject_id"].to_numpy().astype(object)
        uniq = list(dict.fromkeys(sid_arr))
        lo = np.searchsorted(subj, np.asarray(uniq, dtype=object), side="left")
        hi = np.searchsorted(subj, np.asarray(uniq, dtype=object), side="right")
        span = {str(u): (int(a), int(b)) for u, a, b in zip(uniq, lo, hi, strict=True)}
    assessed = set(post["subject_id"])
    fer = post[post["code"] == "FERRITIN"]
    fer_ok = set(fer.loc[fer["uln"].notna(), "subject_id"]) | {s_ for (s_, c) in base.index if c == "FERRITIN"}
    for sid in ids:
        missing = []
        if sid not in assessed:
            missing.append("ferritin, ALT/AST, fibrinogen, blood counts, LDH or triglycerides on or after day 0")
        elif sid not in fer_ok:
            missing.append("ferritin ULN or a pre-infusion ferritin (ferritin flag not assessable)")
        days = by_subject.get(sid, {})
        feats = sorted({f for fs in days.values() for f in fs})
        value = feats if sid in assessed else None
        a, b = span.get(sid, (0, 0))
        first = float(next(iter(days))) if days else None
        out.append(Result("IEC-HS laboratory flags", value, rule, LazyEvidence(cols, np.arange(a, b)), missing, sid, first, {**common, "flags_by_day": days, "flag_days": [float(d) for d in days]}))
    return out


__all__ = ["assess_tma", "iec_hs_flags", "default_options"]
