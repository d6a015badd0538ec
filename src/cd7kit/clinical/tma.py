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

from .grading._common import Lazy, LazyDetails, filled, last_before, obs_index
from .scores._common import (
    LazyEvidence,
    Pick,
    Repeat,
    load_rules,
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


#: Criterion names of the findings, in a fixed order (findings carry their index).
_CRITS = [
    "schistocytes_cho", "schistocytes_present", "thrombocytopenia", "anemia", "ldh_high", "ldh_2x_uln", "ldh_persistent",
    "haptoglobin_low", "coombs_negative", "pt_normal", "aptt_normal", "sc5b9_gt_uln", "sc5b9_ge_uln", "upcr_ge_1",
    "proteinuria_30", "hypertension", "agvhd_2_4", "infection", "organ_dysfunction", "biopsy_proven",
]  # fmt: skip
_FIELDS = ("sidx", "day", "crit", "status", "table", "row_id", "what", "value", "unit", "note")


def _frame(rows: Mapping[str, np.ndarray], crit: str, status: np.ndarray, note: str | np.ndarray = "") -> dict[str, Any]:
    """Findings for one criterion from observation rows (status True/False; NaN rows dropped), as columns."""
    st = np.asarray(status, dtype=float)
    keep = ~np.isnan(st)
    n = int(keep.sum())
    v = rows["value"][keep]
    val = v.astype(object)
    na = np.isnan(v)
    if na.any():
        val[na] = rows["value_text"][keep][na]
    return {
        "sidx": rows["sidx"][keep],
        "day": rows["day"][keep],
        "crit": np.full(n, _CRITS.index(crit), np.int64),
        "status": st[keep].astype(bool),
        "table": "observations",
        "row_id": rows["row_id"][keep],
        "what": rows["code"][keep],
        "value": val,
        "unit": rows["unit"][keep],
        "note": (np.asarray(note, dtype=object)[keep] if isinstance(note, np.ndarray) else note),
    }


def _from_df(df: pd.DataFrame, sindex: pd.Index) -> dict[str, Any]:
    """Findings given as a DataFrame (events, transfusions) as columns."""
    return {
        "sidx": sindex.get_indexer(df["subject_id"].to_numpy()),
        "day": df["day"].to_numpy(dtype=float),
        "crit": np.asarray([_CRITS.index(c) for c in df["crit"]], dtype=np.int64),
        "status": df["status"].to_numpy(dtype=bool),
        "table": df["table"].to_numpy(dtype=object),
        "row_id": df["row_id"].to_numpy(),
        "what": df["what"].to_numpy(dtype=object),
        "value": df["value"].to_numpy(dtype=object),
        "unit": df["unit"].to_numpy(dtype=object),
        "note": df["note"].to_numpy(dtype=object),
    }


def _concat(parts: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Concatenate finding columns (scalars broadcast)."""
    out: dict[str, np.ndarray] = {}
    for f in _FIELDS:
        cols = []
        for p in parts:
            n = len(p["sidx"])
            x = p[f]
            cols.append(filled(n, x) if np.isscalar(x) or x is None else np.asarray(x))
        if cols:
            out[f] = np.concatenate(cols)
        else:
            out[f] = np.zeros(0, dtype=np.int64 if f in ("sidx", "crit", "row_id") else (float if f == "day" else (bool if f == "status" else object)))
    out["sidx"] = out["sidx"].astype(np.int64)
    out["crit"] = out["crit"].astype(np.int64)
    out["status"] = out["status"].astype(bool)
    out["day"] = out["day"].astype(float)
    out["cday"] = np.floor(out["day"])
    return out


class _Notes:
    """Evidence notes of the findings ("crit: met (note)"), formatted on access."""

    def __init__(self, fnd: Mapping[str, np.ndarray]):
        self.crit, self.status, self.note = fnd["crit"], fnd["status"], fnd["note"]

    def __len__(self) -> int:
        return len(self.crit)

    def __getitem__(self, j: int) -> str:
        note = self.note[j]
        note = "" if note is None or (isinstance(note, float) and math.isnan(note)) else str(note)
        return f"{_CRITS[int(self.crit[j])]}: {'met' if self.status[j] else 'not met'}" + (f" ({note})" if note else "")


def _tri(true_mask: np.ndarray, false_mask: np.ndarray) -> np.ndarray:
    out = np.full(len(true_mask), np.nan)
    out[np.asarray(false_mask, dtype=bool)] = 0.0
    out[np.asarray(true_mask, dtype=bool)] = 1.0
    return out


def _text(rows: Mapping[str, np.ndarray]) -> pd.Series:
    return pd.Series(rows["value_text"], dtype=object).astype("string").str.strip().str.lower()


class _Rows:
    """Post-HSCT (and pre-HSCT baseline) observation rows of the transplanted subjects, per code, read from
    the per-Study split (:func:`cd7kit.clinical.grading._common.obs_index`): no scan of the whole table."""

    def __init__(self, study: Study, hsct: pd.Series, opts: Mapping[str, Any]):
        self.idx = obs_index(study)
        sindex = self.idx.subject_index
        self.hday = np.full(len(sindex), np.nan)
        if len(hsct):
            self.hday[sindex.get_indexer(hsct.index)] = np.floor(hsct.to_numpy(dtype=float))
        self.end = opts["tma_window_end_days"]
        self._masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def masks(self, code: str | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(post, pre): rows on/after the HSCT day (within the window) and rows before it."""
        key = code if isinstance(code, str) else "|".join(code)
        if key not in self._masks:
            h = self.hday[self.idx.sidx(code)]
            cday = np.floor(self.idx.col(code, "day").astype(float, copy=False))
            have = ~np.isnan(h)
            post = have & (cday >= h)
            if self.end is not None:
                post &= cday <= h + float(self.end)
            self._masks[key] = (post, have & ~post & (cday < h))
        return self._masks[key]

    def post(self, code: str | list[str]) -> dict[str, np.ndarray]:
        """The post-HSCT rows of ``code`` as columns (sidx, day, value, value_text, row_id, code, unit, lln, uln)."""
        m = self.masks(code)[0]
        out = {"sidx": self.idx.sidx(code)[m].astype(np.int64)}
        for c in ("day", "value", "lln", "uln"):
            out[c] = self.idx.col(code, c)[m].astype(float)
        for c in ("value_text", "row_id", "code", "unit"):
            out[c] = self.idx.col(code, c)[m]
        return out

    def baseline(self, code: str) -> np.ndarray:
        """Per subject position: the last numeric pre-HSCT value (by day, then row id), NaN if none."""
        pre = self.masks(code)[1]
        v = self.idx.col(code, "value").astype(float, copy=False)
        m = pre & ~np.isnan(v)
        out = np.full(len(self.hday), np.nan)
        if m.any():
            s = self.idx.sidx(code)[m]
            o = np.lexsort((self.idx.col(code, "row_id")[m], self.idx.col(code, "day")[m].astype(float), s))
            out[s[o]] = v[m][o]  # ascending order: the last assignment per subject wins
        return out


def _findings(study: Study, ids: list[str], hsct: pd.Series, opts: Mapping[str, Any], age: pd.Series) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """(findings, time points). Findings: columns with one entry per (criterion, source row), positive or
    negative, in a fixed order (the order breaks ties between findings of the same day); time points: the
    post-HSCT (subject, calendar day) pairs with any relevant row, sorted by subject id and day."""
    R = _Rows(study, hsct, opts)
    sids = np.asarray(study.subjects["subject_id"], dtype=object)
    srank = np.empty(len(sids), np.int64)
    srank[np.argsort(sids, kind="stable")] = np.arange(len(sids))
    parts: list[dict[str, Any]] = []
    rows = R.post

    # schistocytes
    hpf = rows("SCHISTO_HPF")
    v = hpf["value"]
    thr = float(opts["cho_schistocytes_per_hpf"])
    meets = v >= thr if opts["cho_schistocytes_comparator"] == ">=" else v > thr
    parts.append(_frame(hpf, "schistocytes_cho", _tri(meets, ~np.isnan(v) & ~meets)))
    parts.append(_frame(hpf, "schistocytes_present", _tri(v > 0, v == 0)))
    pct = rows("SCHISTO")
    v = pct["value"]
    t = _text(pct)
    pres = (v > 0) | t.isin(list(_PRESENT)).to_numpy(dtype=bool)
    absn = (v == 0) | t.isin(list(_ABSENT)).to_numpy(dtype=bool)
    parts.append(_frame(pct, "schistocytes_present", _tri(pres, absn & ~pres)))
    qual_note = "reported without a count per HPF; accepted for Cho (option cho_accept_qualitative_schistocytes)"
    if opts["cho_accept_qualitative_schistocytes"]:
        parts.append(_frame(pct, "schistocytes_cho", _tri(pres, absn & ~pres), qual_note))
    else:
        parts.append(_frame(pct, "schistocytes_cho", _tri(np.zeros(len(v), bool), absn & ~pres)))

    # platelets and hemoglobin against the pre-HSCT baseline
    plt = rows("PLT")
    v = plt["value"]
    pb = R.baseline("PLT")[plt["sidx"]]
    with np.errstate(invalid="ignore"):
        low = (v < float(opts["platelets_below"])) | (v <= pb * (1 - float(opts["platelet_drop_pct"]) / 100.0))
    parts.append(_frame(plt, "thrombocytopenia", _tri(low, ~np.isnan(v) & ~low)))
    hgb = rows("HGB")
    v = hgb["value"]
    hb0 = R.baseline("HGB")[hgb["sidx"]]
    with np.errstate(invalid="ignore"):
        drop = v <= hb0 - float(opts["hb_drop_g_l"])
    parts.append(_frame(hgb, "anemia", _tri(drop, ~np.isnan(hb0) & ~np.isnan(v) & ~drop), "decline from the last pre-HSCT hemoglobin"))

    # LDH, by subject id, day and row ("consecutive" values)
    ldh = rows("LDH")
    o = np.lexsort((ldh["row_id"], ldh["day"], srank[ldh["sidx"]]))
    ldh = {k: x[o] for k, x in ldh.items()}
    ls = ldh["sidx"]
    v, uln = ldh["value"], ldh["uln"]
    with np.errstate(invalid="ignore"):
        high = v > uln
        parts.append(_frame(ldh, "ldh_high", _tri(high, ~np.isnan(uln) & ~high)))
        parts.append(_frame(ldh, "ldh_2x_uln", _tri(v >= 2 * uln, ~np.isnan(uln) & (v < 2 * uln))))
    # run length of consecutive values > ULN ending at each row (within the subject)
    i = np.arange(len(ls))
    if len(ls):
        new_subject = np.r_[True, ls[1:] != ls[:-1]]
        runlen = np.where(high, i - np.maximum.accumulate(np.where(~high, i, np.where(new_subject, i - 1, -1))), 0)
    else:
        runlen = i
    persistent = high & (runlen >= int(opts["cho_ldh_consecutive"]))
    parts.append(_frame(ldh, "ldh_persistent", _tri(persistent, ~np.isnan(uln) & ~high), f"{int(opts['cho_ldh_consecutive'])} consecutive values > ULN"))

    # haptoglobin, Coombs, coagulation
    hp = rows("HAPTOGLOBIN")
    v, lln = hp["value"], hp["lln"]
    with np.errstate(invalid="ignore"):
        parts.append(_frame(hp, "haptoglobin_low", _tri(v < lln, ~np.isnan(lln) & (v >= lln))))
    dat = rows("DAT")
    t = _text(dat)
    parts.append(_frame(dat, "coombs_negative", _tri(t.isin(["negative", "neg"]).to_numpy(bool), t.isin(["positive", "pos"]).to_numpy(bool))))
    for code, crit in (("PT", "pt_normal"), ("INR", "pt_normal"), ("APTT", "aptt_normal")):
        r = rows(code)
        v, u = r["value"], r["uln"]
        with np.errstate(invalid="ignore"):
            parts.append(_frame(r, crit, _tri(v <= u, v > u)))

    # complement and urine
    c5 = rows("SC5B9")
    v, u = c5["value"], c5["uln"]
    with np.errstate(invalid="ignore"):
        parts.append(_frame(c5, "sc5b9_gt_uln", _tri(v > u, v <= u)))
        parts.append(_frame(c5, "sc5b9_ge_uln", _tri(v >= u, v < u)))
    up = rows("UPCR")
    v = up["value"]
    parts.append(_frame(up, "upcr_ge_1", _tri(v >= 1.0, v < 1.0)))
    parts.append(_frame(up, "proteinuria_30", _tri(v >= float(opts["jodele_upcr_mg_mg"]), np.zeros(len(v), bool)), "UPCR"))
    dip = rows("UPROT_DIP")
    v = dip["value"]
    parts.append(_frame(dip, "proteinuria_30", _tri(v >= float(opts["dipstick_plus_for_30_mg_dl"]), v < float(opts["dipstick_plus_for_30_mg_dl"])), "dipstick (about 30 mg/dL at 1+); not a UPCR"))

    # blood pressure (adults only)
    bp = rows(["SBP", "DBP"])
    ages = age.reindex(sids).to_numpy(dtype=float)
    adult = ages[bp["sidx"]] >= float(opts["adult_age_years"])
    v = bp["value"]
    lim = np.where(bp["code"] == "SBP", 140.0, 90.0)
    parts.append(_frame(bp, "hypertension", _tri(adult & (v >= lim), adult & (v < lim))))

    sindex = R.idx.subject_index
    parts += [_from_df(df, sindex) for df in (_transfusion_findings(study, hsct, opts), _event_findings(study, hsct, opts)) if len(df)]
    fnd = _concat([p for p in parts if len(p["sidx"])])
    fnd["subject_id"] = sids[fnd["sidx"]] if len(fnd["sidx"]) else np.zeros(0, dtype=object)

    # time points: every post-HSCT measurement day (even one that is no finding, e.g. a child's BP), and the
    # days of transfusion and event findings
    ts, td = [fnd["sidx"]], [fnd["cday"]]
    for code in _OBS_CODES:
        post = R.masks(code)[0]
        if post.any():
            ts.append(R.idx.sidx(code)[post].astype(np.int64))
            td.append(np.floor(R.idx.col(code, "day")[post].astype(float)))
    s_all, d_all = np.concatenate(ts), np.concatenate(td)
    if len(s_all):
        o = np.lexsort((d_all, srank[s_all]))
        s_all, d_all = s_all[o], d_all[o]
        keep = np.r_[True, (s_all[1:] != s_all[:-1]) | (d_all[1:] != d_all[:-1])]
        s_all, d_all = s_all[keep], d_all[keep]
    tp = pd.DataFrame({"subject_id": sids[s_all] if len(s_all) else np.zeros(0, object), "cday": d_all, "sidx": s_all})
    return fnd, tp


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


def _status_at_timepoints(fnd: Mapping[str, np.ndarray], tp: pd.DataFrame, crits: list[str], lookback: float) -> pd.DataFrame:
    """Wide frame over time points: for each criterion its status (1/0/NaN) and the finding index used.

    Per polarity, the latest positive and the latest negative finding of the same subject and criterion on
    or before the time point and at most ``lookback`` days before it (a backward as-of match on integer
    keys, :func:`~cd7kit.clinical.grading._common.last_before`); the later one wins, a positive one on the
    same day wins, and among findings of one day the last one (finding order) is used.
    """
    n, k = len(tp), len(crits)
    lut = np.full(len(_CRITS), -1, np.int64)
    for j, c in enumerate(crits):
        if c in _CRITS:
            lut[_CRITS.index(c)] = j
    crit_i = lut[fnd["crit"]] if len(fnd["crit"]) else np.zeros(0, np.int64)
    f_s, f_d, f_status = fnd["sidx"], fnd["cday"], fnd["status"]
    tp_s = tp["sidx"].to_numpy(dtype=np.int64)
    tp_d = tp["cday"].to_numpy(dtype=float)
    # (status, finding index) per time point and criterion; criteria without findings stay NaN
    mat = np.full((n, 2 * k), np.nan)
    for j in np.unique(crit_i[crit_i >= 0]).tolist():
        found: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
        for flag in (True, False):
            sel = np.flatnonzero((crit_i == j) & (f_status == flag))  # in finding order: later findings win ties
            jj = last_before(tp_s, tp_d, f_s[sel], f_d[sel], inclusive=True)
            hit = jj >= 0
            d = np.full(n, np.nan)
            i = np.full(n, np.nan)
            d[hit] = f_d[sel][jj[hit]]
            i[hit] = sel[jj[hit]]
            old = hit & (tp_d - d > lookback)
            d[old] = np.nan
            i[old] = np.nan
            found[flag] = (d, i)
        td, ti = found[True]
        fd, fi = found[False]
        is_t = ~np.isnan(td) & (np.isnan(fd) | (td >= fd))
        is_f = ~is_t & ~np.isnan(fd)
        mat[:, 2 * j] = np.where(is_t, 1.0, np.where(is_f, 0.0, np.nan))
        mat[:, 2 * j + 1] = np.where(is_t, ti, np.where(is_f, fi, np.nan))
    names = [x for c in crits for x in (c, f"{c}__idx")]
    out = pd.DataFrame(mat, columns=names, index=tp.index)  # one block, no copy
    for pos, c in enumerate(tp.columns):
        out.insert(pos, c, tp[c].to_numpy())
    return out


def _combine_and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full(len(a), np.nan)
    out[(a == 0) | (b == 0)] = 0.0
    out[(a == 1) & (b == 1)] = 1.0
    return out


_SHORT = {
    "schistocytes_cho": "schistocytes",
    "thrombocytopenia": "thrombocytopenia",
    "ldh_persistent": "persistent LDH increase",
    "anemia": "anemia or transfusion requirement",
    "haptoglobin_low": "haptoglobin",
    "coombs_negative": "Coombs test (DAT)",
    "coagulation_normal": "PT/aPTT",
}


def _evaluate(study: Study, subject_id: str | None, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Findings, time points and the three criteria sets at every time point (vectorised)."""
    rules = _rules()
    iec_names = set(load_rules(IEC_FILE)["options"])
    options = dict(options or {})
    iec_opts = {k: options.pop(k) for k in list(options) if k in iec_names}
    opts = resolve_options("TA-TMA", rules["options"], options, rules.get("choices"))
    ids = subject_ids(study, subject_id)
    iv = study.interventions
    hsct = iv[(iv["kind"] == "hsct") & iv["subject_id"].isin(ids)].groupby("subject_id")["start_day"].min()
    age = study.subjects.set_index("subject_id")["age_years"]
    fnd, tp = _findings(study, ids, hsct, opts, age)
    sets: dict[str, Any] = rules["sets"]
    crits = sorted({c for s in sets.values() for c in s["criteria"] + s.get("high_risk_any", []) + s.get("high_risk_all", [])} | {"pt_normal", "aptt_normal", "biopsy_proven"})
    crits = [c for c in crits if c != "coagulation_normal"]
    st = _status_at_timepoints(fnd, tp, crits, float(opts["tma_lookback_days"]))
    st["coagulation_normal"] = _combine_and(st["pt_normal"].to_numpy(), st["aptt_normal"].to_numpy())
    biopsy = st["biopsy_proven"].to_numpy() == 1
    values: dict[str, np.ndarray] = {}

    # Cho 2010: all items
    cho = sets["cho2010"]["criteria"]
    m = st[cho].to_numpy(dtype=float)
    any_false = (m == 0).any(axis=1)
    core = st[_CORE_CHO].to_numpy(dtype=float)
    core_met = (core == 1).all(axis=1) & ~any_false  # every assessed item met, the four core items assessed
    met = core_met if opts["cho_unassessed"] == "ignore" else (m == 1).all(axis=1)
    values["cho2010"] = np.where(met, 1.0, np.where(any_false, 0.0, np.nan))
    st["_cho_assessed_met"] = core_met

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
    sx = st["sidx"].to_numpy(dtype=np.int64)
    same = np.r_[False, sx[1:] == sx[:-1]]  # time points are sorted by subject and day
    prev = np.where(same, np.r_[np.nan, tp_met[:-1]], np.nan)
    cd = st["cday"].to_numpy(dtype=float)
    prev_day = np.where(same, np.r_[np.nan, cd[:-1]], np.nan)
    gap_ok = (cd - prev_day) <= float(hz["max_gap_days"])
    both = (tp_met == 1) & (prev == 1) & gap_ok
    impossible = (tp_met == 0) | (prev == 0) | ~gap_ok
    values["harmonized2023"] = np.where(both | biopsy, 1.0, np.where(impossible, 0.0, np.nan))
    st["_hz_n"] = n_true

    cols = {k: fnd[k] for k in ("table", "row_id", "subject_id", "day", "what", "value", "unit")}
    cols["note"] = _Notes(fnd)  # type: ignore[assignment]
    return {"rules": rules, "opts": opts, "iec_opts": iec_opts, "ids": ids, "hsct": hsct, "sets": sets, "st": st, "values": values, "cols": cols}


def assess_tma(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """TA-TMA by Cho 2010, Jodele 2014 and the 2023 harmonized criteria: one result per subject and set.

    ``value`` True (met at some post-HSCT time point; ``day`` = the first), False (not met at every time
    point) or None (undecidable, with what was missing; or no HSCT). ``evidence`` and ``missing`` are those
    of the first time point met; ``details["timeline"]`` holds every time point (day, verdict, number of
    criteria met and each criterion True/False/None). :func:`tma_timepoints` gives one full result per
    time point. The IEC-HS laboratory flags follow (option ``include_iec_hs_flags``).
    """
    e = _evaluate(study, subject_id, options)
    opts = e["opts"]
    out: list[Result] = []
    for key, spec in e["sets"].items():
        rule = Rule(e["rules"]["system"], key, opts, e["rules"]["sources"][key])
        out.extend(_subject_results(key, spec, e, rule))
    if opts["include_iec_hs_flags"]:
        out.extend(iec_hs_flags(study, subject_id, e["iec_opts"]))
    return out


def tma_timepoints(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """One result per post-HSCT time point and criteria set (the detail behind :func:`assess_tma`).

    ``value`` is the set's verdict at that time point; ``details["criteria"]`` each criterion's status,
    ``evidence`` the finding behind each assessed criterion and ``missing`` the unassessed ones.
    """
    e = _evaluate(study, subject_id, options)
    out: list[Result] = []
    for key, spec in e["sets"].items():
        rule = Rule(e["rules"]["system"], key, e["opts"], e["rules"]["sources"][key])
        out.extend(_timepoint_results(key, spec, e["st"], e["values"][key], e["cols"], e["hsct"], rule, e["opts"]))
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


def _timepoint_results(
    key: str, spec: Mapping[str, Any], st: pd.DataFrame, vals: np.ndarray, cols: Mapping[str, Any], hsct: pd.Series, rule: Rule, opts: Mapping[str, Any], rows: np.ndarray | None = None
) -> list[Result]:
    """Full per-time-point results (all time points, or the positions ``rows`` of ``st``)."""
    if rows is not None:
        st = st.iloc[rows]
        vals = np.asarray(vals)[rows]
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
    assessed_met = st["_cho_assessed_met"].to_numpy(dtype=bool)
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
            details["met_on_assessed_items"] = bool(assessed_met[i])
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


def _obj(m: np.ndarray) -> np.ndarray:
    """A 1/0/NaN array as an object array of True/False/None."""
    out = np.full(len(m), None, dtype=object)
    out[m == 1] = True
    out[m == 0] = False
    return out


def _subject_results(key: str, spec: Mapping[str, Any], e: Mapping[str, Any], rule: Rule) -> list[Result]:
    """One result per subject: met at any time point (first day), not met at all, or NA (vectorised per set)."""
    st: pd.DataFrame = e["st"]
    hsct: pd.Series = e["hsct"]
    opts = e["opts"]
    name = spec["name"]
    v = np.asarray(e["values"][key], dtype=float)
    n = len(st)
    crits = list(spec["criteria"])
    sx = st["sidx"].to_numpy(dtype=np.int64)
    sids = st["subject_id"].to_numpy(dtype=object)
    cday = st["cday"].to_numpy(dtype=float)
    b = np.flatnonzero(np.r_[True, sx[1:] != sx[:-1]]) if n else np.zeros(0, np.int64)
    ends = np.r_[b[1:], n] if n else np.zeros(0, np.int64)
    ar = np.arange(n)

    def per_subject(x: np.ndarray, how: str = "sum") -> np.ndarray:
        if not n:
            return np.zeros(0, np.int64)
        return np.minimum.reduceat(x, b) if how == "min" else np.add.reduceat(x.astype(np.int64), b)

    first_met = per_subject(np.where(v == 1, ar, n), "min")
    n_met = per_subject(v == 1)
    n_not = per_subject(v == 0)
    m = st[crits].to_numpy(dtype=float)
    assessed = {c: per_subject(~np.isnan(m[:, j])) for j, c in enumerate(crits)}
    # the full time-point result (evidence, missing, criteria) of each subject's first time point met
    fm_rows = first_met[first_met < n]
    fm = {str(r.subject_id): r for r in _timepoint_results(key, spec, st, v, e["cols"], hsct, rule, opts, rows=fm_rows)} if len(fm_rows) else {}
    hdays = np.floor(st["subject_id"].map(hsct).to_numpy(dtype=float)) if n else np.zeros(0)
    timeline_cols: dict[str, np.ndarray] = {"day": cday, "days_post_hsct": cday - hdays, "met": _obj(v), "n_met": (m == 1).sum(axis=1)}
    for j, c in enumerate(crits):
        timeline_cols[c] = _obj(m[:, j])
    hr_any, hr_all = list(spec.get("high_risk_any", [])), list(spec.get("high_risk_all", []))
    if hr_all or hr_any:
        h = st[hr_all or hr_any].to_numpy(dtype=float)
        if hr_all:
            hr = np.where((h == 1).all(axis=1), 1.0, np.where((h == 0).any(axis=1), 0.0, np.nan))
        else:
            hr = np.where((h == 1).any(axis=1), 1.0, np.where(np.isnan(h).any(axis=1), np.nan, 0.0))
        timeline_cols["high_risk"] = _obj(hr)
    if key == "harmonized2023":
        timeline_cols["timepoint_met"] = _obj(st["_tp_met"].to_numpy(dtype=float))
    first_assessed = per_subject(np.where(st["_cho_assessed_met"].to_numpy(dtype=bool), ar, n), "min") if key == "cho2010" else None
    # harmonized: a pair needs a time point after the last one when that one is met (1) or undecided (NaN)
    pending = st["_tp_met"].to_numpy(dtype=float) if key == "harmonized2023" else None
    # Cho: the full result of the first time point met on every assessed item (evidence when the strict value is NA)
    fa_rows = first_assessed[first_assessed < n] if first_assessed is not None else np.zeros(0, np.int64)
    fa = {str(r.subject_id): r for r in _timepoint_results(key, spec, st, v, e["cols"], hsct, rule, opts, rows=fa_rows)} if len(fa_rows) else {}
    span = {str(sids[i]): (int(i), int(j), k) for k, (i, j) in enumerate(zip(b.tolist(), ends.tolist(), strict=True))}
    out = []
    for sid in e["ids"]:
        if sid not in hsct.index:
            out.append(Result(name, None, rule, (), ["an allogeneic HSCT (intervention of kind 'hsct'): TA-TMA is assessed after it"], sid, None, {}))
            continue
        hday = float(hsct[sid])
        got = span.get(sid)
        if got is None:
            out.append(Result(name, None, rule, (), ["any TA-TMA finding after the HSCT"], sid, hday, {"hsct_day": hday}))
            continue
        a, z, g = got
        details: dict[str, Any] = {
            "hsct_day": hday,
            "timepoints": z - a,
            "timepoints_met": int(n_met[g]),
            "timepoints_not_met": int(n_not[g]),
            "timepoints_na": int(z - a - n_met[g] - n_not[g]),
        }
        if n_met[g]:
            first = float(cday[first_met[g]])
            details["first_day_met"] = first
            r = fm.get(sid)
            if r is not None:
                details["criteria_at_first_day_met"] = r.details.get("criteria")
                for extra in ("high_risk", "high_risk_features"):
                    if extra in r.details:
                        details[extra] = r.details[extra]
            result = Result(name, True, rule, r.evidence if r is not None else (), list(r.missing) if r is not None else [], sid, first, details)
        elif pending is not None and pending[z - 1] == 1:
            # harmonized: >= 4 of 7 met at the subject's last time point, and no later time point documented --
            # the second consecutive time point is missing, which is not a "no"
            last = float(cday[z - 1])
            details["criteria_met_at_last_timepoint"] = int(st["_hz_n"].iloc[z - 1])
            miss = [f"a second time point within {spec['max_gap_days']} days after day {last:g} (>= {spec['min_criteria']} of 7 criteria met on day {last:g}, none documented after it)"]
            result = Result(name, None, rule, (), miss, sid, last, details)
        elif n_not[g] == z - a and not (pending is not None and np.isnan(pending[z - 1])):
            result = Result(name, False, rule, (), [], sid, hday, details)
        else:
            never = [c for c in crits if assessed[c][g] == 0]
            miss = [f"{c}: {_DESCRIBE.get(c, c)} (never assessed after HSCT)" for c in never] or ["criteria unknown at some time points"]
            if pending is not None and np.isnan(pending[z - 1]):
                miss.append(f"the criteria at the last time point (day {float(cday[z - 1]):g}) are undecided and no later time point is documented")
            r = fa.get(sid)  # Cho met on every assessed item: that time point's rows are the evidence
            result = Result(name, None, rule, r.evidence if r is not None else (), miss, sid, float(r.day) if r is not None and r.day is not None else hday, details)
        if first_assessed is not None:
            _cho_reading(details, result.value, int(first_assessed[g]), cday, st)
        details["timeline"] = {c: col[a:z] for c, col in timeline_cols.items()}
        out.append(result)
    return out


def _cho_reading(d: dict[str, Any], value: bool | None, first_assessed: int, cday: np.ndarray, st: pd.DataFrame) -> None:
    """Cho 2010 in words (grading spec section 6.1; docs/grading-scores-response-tma.md). Strict Cho needs all
    seven items; when a report documents only some of them and every documented item is met, the reading
    says "met on every assessed item" and names what was not assessed -- the strict value stays NA (or is
    True with ``cho_unassessed=ignore``). No unreported laboratory value is assumed."""
    has = first_assessed < len(cday)
    d["met_on_assessed_items"] = bool(has)
    unassessed: list[str] = []
    day = float("nan")
    if has:
        day = float(cday[first_assessed])
        d["first_day_met_on_assessed_items"] = day
        row = st.iloc[first_assessed]
        unassessed = [_SHORT[c] for c in _SHORT if pd.isna(row[c])]
        d["not_assessed_on_that_day"] = unassessed
    if value is True and unassessed:
        d["reading"] = f"met on every assessed item from day {day:g} (option cho_unassessed=ignore); not assessed: {', '.join(unassessed)}"
    elif value is True:
        d["reading"] = "met: all seven Cho 2010 items documented and met"
    elif value is False:
        d["reading"] = "not met: at every time point at least one required item is documented as not met"
    elif has:
        d["reading"] = (
            f"met on every assessed item from day {day:g} (schistocytes, thrombocytopenia, persistent LDH increase, anemia); "
            f"not assessed: {', '.join(unassessed)} -- strict Cho 2010 needs all seven items, so the value stays NA"
        )
    else:
        d["reading"] = "undetermined: required Cho 2010 items not assessed"


# ----------------------------------------------------------------------------------------- IEC-HS flags


_IEC_CODES = ["FERRITIN", "ALT", "AST", "FIBRINOGEN", "ANC", "PLT", "HGB", "LDH", "TRIGLYCERIDES"]
#: IEC-HS flag features, sorted (a day's features are listed in this order).
_IEC_FEATURES = sorted(["ferritin", "transaminases", "hypofibrinogenemia", "ldh", "hypertriglyceridemia", "cytopenia"])


def iec_hs_flags(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """Per day, laboratory flags suggestive of IEC-HS (Hines 2023) -- for investigator confirmation only.

    One result per subject. Value: the sorted list of features flagged on any day (empty list: assessed,
    nothing flagged; None: nothing to assess); ``details["flags_by_day"]`` maps each flagged day to its
    features and ``evidence`` lists every flagged row. Features:
    ``ferritin`` (> 2 x ULN or > 2 x the last pre-infusion value), ``transaminases`` (ALT/AST > 5 x ULN, or
    > 5 x baseline when the baseline is above ULN), ``hypofibrinogenemia`` (< 1.5 g/L), ``cytopenia`` (ANC < 1.0,
    platelets < 50 or Hb < 80 g/L after a value at or above that threshold since day 0: new or worsening),
    ``ldh`` (> ULN), ``hypertriglyceridemia`` (> 3.0 mmol/L).

    Vectorised per code over the per-Study split of the observations (integer subject positions; no
    table-wide merge or string group-by).
    """
    rules = load_rules(IEC_FILE)
    opts = resolve_options("IEC-HS flags", rules["options"], options)
    ids = subject_ids(study, subject_id)
    rule = Rule(rules["system"], str(rules["version"]), opts, rules["source"])
    idx = obs_index(study)
    sids = np.asarray(study.subjects["subject_id"], dtype=object)
    nsub = len(sids)
    only = idx.subject_index.get_indexer([subject_id])[0] if subject_id is not None else None
    srank = np.empty(nsub, np.int64)
    srank[np.argsort(sids, kind="stable")] = np.arange(nsub)
    from_day = float(opts["iec_from_day"])
    thresholds = {"ANC": float(opts["iec_anc_below"]), "PLT": float(opts["iec_plt_below"]), "HGB": float(opts["iec_hgb_below_g_l"])}
    assessed = np.zeros(nsub, bool)
    fer_ok = np.zeros(nsub, bool)
    fl: dict[str, list[np.ndarray]] = {k: [] for k in ("s", "cday", "row_id", "day", "what", "value", "unit", "flag")}
    for code in _IEC_CODES:
        v = idx.col(code, "value").astype(float, copy=False)
        keep = ~np.isnan(v)
        s = idx.sidx(code)
        if only is not None:
            keep &= s == only
        if not keep.any():
            continue
        s, v = s[keep], v[keep]
        day = idx.col(code, "day").astype(float, copy=False)[keep]
        uln = idx.col(code, "uln").astype(float, copy=False)[keep]
        row = idx.col(code, "row_id")[keep]
        pre = day < 0
        base = np.full(nsub, np.nan)  # the last value before day 0 (by day, then row id)
        if pre.any():
            o = np.lexsort((row[pre], day[pre], s[pre]))
            base[s[pre][o]] = v[pre][o]
        post = day >= from_day
        assessed[s[post]] = True
        if code == "FERRITIN":
            fer_ok[s[post & ~np.isnan(uln)]] = True
            fer_ok[s[pre]] = True
        b = base[s]
        with np.errstate(invalid="ignore"):
            if code == "FERRITIN":
                flag, name = (v > float(opts["iec_ferritin_fold_uln"]) * uln) | (v > float(opts["iec_ferritin_fold_baseline"]) * b), "ferritin"
            elif code in ("ALT", "AST"):
                ref = np.where(~np.isnan(b) & (b > uln), b, uln)
                flag, name = v > float(opts["iec_transaminase_fold"]) * ref, "transaminases"
            elif code == "FIBRINOGEN":
                flag, name = v < float(opts["iec_fibrinogen_below_g_l"]), "hypofibrinogenemia"
            elif code == "LDH":
                flag, name = v > uln, "ldh"
            elif code == "TRIGLYCERIDES":
                flag, name = v > float(opts["iec_triglycerides_above_mmol_l"]), "hypertriglyceridemia"
            else:  # new or worsening cytopenia: below the threshold after a value at or above it (since from_day)
                thr = thresholds[code]
                pi = np.flatnonzero(post)
                o = pi[np.lexsort((row[pi], day[pi], s[pi]))]
                above = (v[o] >= thr).astype(np.int64)
                so = s[o]
                start = np.r_[True, so[1:] != so[:-1]] if len(o) else np.zeros(0, bool)
                before = np.cumsum(above) - above  # values at or above the threshold before this one ...
                before -= np.maximum.accumulate(np.where(start, before, 0)) if len(o) else before  # ... of this subject
                flag = np.zeros(len(v), bool)
                flag[o] = (v[o] < thr) & (before > 0)
                name = "cytopenia"
        flag &= post
        if not flag.any():
            continue
        fl["s"].append(s[flag])
        fl["cday"].append(np.floor(day[flag]))
        fl["row_id"].append(row[flag])
        fl["day"].append(day[flag])
        fl["what"].append(np.full(int(flag.sum()), _IEC_CODES.index(code), np.int64))
        fl["value"].append(v[flag])
        fl["unit"].append(idx.col(code, "unit")[keep][flag])
        fl["flag"].append(np.full(int(flag.sum()), _IEC_FEATURES.index(name), dtype=np.int64))
    cat = {k: (np.concatenate(x) if x else np.zeros(0, dtype=object if k == "unit" else float)) for k, x in fl.items()}
    fs = cat["s"].astype(np.int64)
    o = np.lexsort((cat["row_id"], cat["cday"], srank[fs])) if len(fs) else np.zeros(0, np.int64)
    cat = {k: x[o] for k, x in cat.items()}
    fs = fs[o]
    cols = {
        "table": Repeat("observations", len(fs)),
        "row_id": cat["row_id"],
        "subject_id": sids[fs] if len(fs) else np.zeros(0, dtype=object),
        "day": cat["day"],
        "what": Pick(_IEC_CODES, cat["what"].astype(np.int64)),
        "value": cat["value"],
        "unit": cat["unit"],
        "note": np.asarray(["IEC-HS flag: " + f for f in _IEC_FEATURES], dtype=object)[cat["flag"].astype(np.int64)],
    }
    label = rules["label"]
    common = {"label": label, "investigator_confirmation_required": True, "is_diagnosis": False}
    # per (subject, day) group of flagged rows: the day's features as a bit set; per subject: its groups and rows
    groups: dict[int, tuple[int, int, int, int, int]] = {}  # subject position -> group range, row range, feature bits
    g_day = np.zeros(0)
    g_bits = np.zeros(0, np.int64)
    if len(fs):
        dc = cat["cday"]
        starts = np.flatnonzero(np.r_[True, (fs[1:] != fs[:-1]) | (dc[1:] != dc[:-1])])
        g_bits = np.bitwise_or.reduceat(np.left_shift(np.int64(1), cat["flag"].astype(np.int64)), starts)
        g_day = dc[starts]
        gs = fs[starts]
        gb = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
        ge = np.r_[gb[1:], len(gs)]
        s_bits = np.bitwise_or.reduceat(g_bits, gb)
        rb = starts[gb]
        re_ = np.r_[rb[1:], len(fs)]
        groups = {int(gs[i]): (int(i), int(j), int(r0), int(r1), int(sb)) for i, j, r0, r1, sb in zip(gb.tolist(), ge.tolist(), rb.tolist(), re_.tolist(), s_bits.tolist(), strict=True)}
    names = {c: [nm for j, nm in enumerate(_IEC_FEATURES) if (c >> j) & 1] for c in range(1 << len(_IEC_FEATURES))}

    def by_day(i: int, j: int) -> Any:
        return Lazy(lambda: {f"{d:g}": names[c] for d, c in zip(g_day[i:j].tolist(), g_bits[i:j].tolist(), strict=True)})

    def day_list(i: int, j: int) -> Any:
        return Lazy(lambda: g_day[i:j].tolist())

    out: list[Result] = []
    pos = idx.subject_index.get_indexer(ids)
    for sid, p in zip(ids, pos.tolist(), strict=True):
        missing = []
        if not assessed[p]:
            missing.append("ferritin, ALT/AST, fibrinogen, blood counts, LDH or triglycerides on or after day 0")
        elif not fer_ok[p]:
            missing.append("ferritin ULN or a pre-infusion ferritin (ferritin flag not assessable)")
        i, j, a, b, sb = groups.get(p, (0, 0, 0, 0, 0))
        value = list(names[sb]) if assessed[p] else None
        first = float(g_day[i]) if j > i else None
        details = LazyDetails({**common, "flags_by_day": by_day(i, j), "flag_days": day_list(i, j)})
        out.append(Result("IEC-HS laboratory flags", value, rule, LazyEvidence(cols, np.arange(a, b)), missing, sid, first, details))
    return out


__all__ = ["assess_tma", "tma_timepoints", "iec_hs_flags", "default_options"]
