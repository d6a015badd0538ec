"""Response of acute lymphoblastic leukaemia after CAR-T: per marrow assessment, MRD, EMD, BOR and DOR.

Sources (rule data with citations: ``cd7kit/clinical/rules/response_all.yaml``; grading spec section 7):
NCCN ALL response criteria; BBMT 2010;16:1187 Table 4a (PMC7272718); CIBMTR ALL response criteria.

Per bone-marrow assessment (a ``BM_BLASTS`` observation on or after day 0) the marrow response is

* **CR** -- marrow blasts < 5 %, no circulating blasts (``PB_BLASTS`` 0 or below quantification), and count
  recovery: ANC >= 1.0 x10^9/L and platelets >= 100 x10^9/L (nearest values within ``count_window_days``);
* **CRi** -- as CR without count recovery (ANC < 1.0 or platelets < 100);
* **PR** -- marrow blasts 5-25 % and >= 50 % below the pre-infusion baseline (with count recovery unless
  ``pr_requires_count_recovery`` is false);
* **relapse** -- after a CR/CRi: marrow blasts > ``bm_relapse_threshold_pct`` (5 % NCCN by default; the
  trial's 25 % available) or circulating blasts reappear;
* **PD** -- not in CR/CRi and marrow blasts >= 25 % above the nadir (baseline or earlier assessments);
* **NR** -- none of the above.

Flow MRD is reported separately (``MRD (flow)``): negative when ``MRD_FLOW`` < 0.01 % (10^-4); a value below
the assay's limit of quantification is negative only if that limit is <= 0.01 %. Extramedullary disease
(``EMD_STATUS``, ``CNS_STATUS``, and ``response``/``imaging`` events whose details name the EMD site) is
reported as its own response; the overall response combines marrow and EMD (CR/CRi needs no EMD).
``Best overall response`` ranks CR > CRi > PR > NR > PD > relapse up to the first relapse;
``Duration of response`` runs from the first CR/CRi to relapse/PD (or death), censored at the last
assessment. Missing inputs give NA with the reason -- never a silent category.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study

from .grading._common import filled
from .scores._common import load_rules, nan_to_none, observations, resolve_options, subject_ids

RULE_FILE = "response_all.yaml"
_CODES = ["BM_BLASTS", "PB_BLASTS", "MRD_FLOW", "ANC", "PLT", "EMD_STATUS", "CNS_STATUS"]
_NEG_TEXT = {"negative", "neg", "undetectable", "not detected", "nd", "<0.01%"}


def _rules() -> dict[str, Any]:
    return load_rules(RULE_FILE)


def default_options() -> dict[str, Any]:
    return dict(_rules()["options"])


def _daily(obs: pd.DataFrame, code: str) -> pd.DataFrame:
    """Last observation of a code per subject and calendar day (numeric value, BLQ or text kept)."""
    o = obs[obs["code"] == code].copy()
    o["cday"] = np.floor(o["day"].to_numpy(dtype=float))
    o = o.sort_values(["subject_id", "cday", "day", "row_id"], kind="stable").drop_duplicates(["subject_id", "cday"], keep="last")
    return o


def _numeric_or_zero_if_blq(o: pd.DataFrame) -> np.ndarray:
    v = o["value"].to_numpy(dtype=float).copy()
    blq = o["blq"].to_numpy(dtype=bool)
    txt = o["value_text"].astype("string").str.strip().str.lower().isin(list(_NEG_TEXT)).to_numpy(dtype=bool)
    v[np.isnan(v) & (blq | txt)] = 0.0
    return v


def _nearest(left: pd.DataFrame, right: pd.DataFrame, prefix: str, tol: float) -> pd.DataFrame:
    """For each left row, the right row of the same subject nearest in day within +/- tol (merge_asof)."""
    cols = ["subject_id", "day", "row_id", "num"]
    r = right[cols].rename(columns={"day": f"{prefix}_day", "row_id": f"{prefix}_row", "num": prefix})
    r = r.assign(_k=r[f"{prefix}_day"].astype(float)).sort_values("_k")
    lft = left.assign(_k=left["day"].astype(float)).sort_values("_k")
    if r.empty:
        out = lft.copy()
        out[f"{prefix}_day"] = np.nan
        out[f"{prefix}_row"] = np.nan
        out[prefix] = np.nan
        return out.drop(columns="_k")
    m = pd.merge_asof(lft, r, on="_k", by="subject_id", direction="nearest", tolerance=tol)
    return m.drop(columns="_k")


def _mrd_status(o: pd.DataFrame, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """(status array of 'negative'/'positive'/None, note array) for MRD_FLOW rows."""
    v = o["value"].to_numpy(dtype=float)
    blq = o["blq"].to_numpy(dtype=bool)
    lloq = o["lloq"].to_numpy(dtype=float)
    txt = o["value_text"].astype("string").str.strip().str.lower().isin(list(_NEG_TEXT)).to_numpy(dtype=bool)
    below = np.isnan(v) & (blq | txt)
    status = np.full(len(o), None, dtype=object)
    note = filled(len(o), "")
    num = ~np.isnan(v)
    status[num & (v < thr)] = "negative"
    status[num & (v >= thr)] = "positive"
    ok = below & (np.isnan(lloq) | (lloq <= thr))
    status[ok] = "negative"
    note[below & np.isnan(lloq)] = "below quantification; assay sensitivity (lloq) not recorded"
    note[below & ~np.isnan(lloq) & (lloq <= thr)] = "below the assay limit, which is <= the MRD threshold"
    insensitive = below & ~np.isnan(lloq) & (lloq > thr)
    note[insensitive] = "below the assay limit, but the limit is above the MRD threshold: negativity not shown"
    return status, note


def _emd_table(study: Study, obs: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """All EMD/CNS assessments as rows: subject_id, day, status, table, row_id, what, value."""
    rules = _rules()
    emap: dict[str, str] = rules["emd_status_map"]
    cmap: dict[str, str] = rules["cns_status_map"]
    parts = []
    e = obs[obs["code"] == "EMD_STATUS"]
    if len(e):
        t = e["value_text"].astype("string").str.strip().str.lower()
        parts.append(pd.DataFrame({"subject_id": e["subject_id"], "day": e["day"], "raw": t.map(lambda s: emap.get(s) if isinstance(s, str) else None), "table": "observations", "row_id": e["row_id"], "what": "EMD_STATUS", "value": e["value_text"]}))
    c = obs[obs["code"] == "CNS_STATUS"]
    if len(c):
        t = c["value_text"].astype("string").str.strip().str.upper()
        parts.append(pd.DataFrame({"subject_id": c["subject_id"], "day": c["day"], "raw": t.map(lambda s: cmap.get(s) if isinstance(s, str) else None), "table": "observations", "row_id": c["row_id"], "what": "CNS_STATUS", "value": c["value_text"]}))
    ev = study.events
    ev = ev[ev["kind"].isin(["response", "imaging"]) & ev["subject_id"].isin(ids)]
    if len(ev):
        det = ev["details"].astype("string").str.lower().fillna("")
        term = ev["term"].astype("string").str.strip()
        site_emd = det.str.contains(r"emd|extramedullary|mediastin", regex=True) | term.str.lower().str.contains("emd|extramedullary", regex=True)
        sel = ev[site_emd.to_numpy(dtype=bool)]
        if len(sel):
            words = sel["term"].astype("string").str.strip()
            lower = words.str.lower()
            direct = {"cr": "CR", "pr": "PR", "nr": "NR", "pd": "PD", "relapse": "relapse", "sd": "NR"}
            raw = lower.map(lambda s: direct.get(s) or emap.get(s) or emap.get(s.replace("emd ", "")) if isinstance(s, str) else None)
            parts.append(pd.DataFrame({"subject_id": sel["subject_id"], "day": sel["day"], "raw": raw, "table": "events", "row_id": sel["row_id"], "what": sel["kind"], "value": words}))
    if not parts:
        return pd.DataFrame(columns=["subject_id", "day", "raw", "table", "row_id", "what", "value"])
    out = pd.concat(parts, ignore_index=True)
    out = out[out["subject_id"].isin(ids)]
    return out.sort_values(["subject_id", "day", "row_id"], kind="stable").reset_index(drop=True)


def _ev(table: str, row: Any, sid: str, day: Any, what: str, value: Any, unit: str | None, note: str = "") -> Evidence | None:
    if row is None or (isinstance(row, float) and math.isnan(row)):
        return None
    return Evidence(table, int(row), sid, nan_to_none(float(day)) if day is not None else None, what, nan_to_none(value), unit, note)


def assess_response(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """Marrow, MRD, extramedullary and overall response per assessment; best overall response and DOR per subject."""
    rules = _rules()
    opts = resolve_options("ALL response", rules["options"], options, rules.get("choices"))
    const = rules["constants"]
    ids = subject_ids(study, subject_id)
    rule = Rule(rules["system"], str(rules["version"]), opts, rules["source"])
    # per-Study split, one frame per code (the daily counts with only the columns the pairing reads)
    counts = ("row_id", "subject_id", "day", "code", "value")
    by_code = {c: observations(study, [c], subject_id, counts if c in ("ANC", "PLT") else None) for c in _CODES}

    # -- marrow assessments ---------------------------------------------------------------------
    bm_all = _daily(by_code["BM_BLASTS"], "BM_BLASTS")
    bm_all["num"] = _numeric_or_zero_if_blq(bm_all)
    base = bm_all[(bm_all["day"] < 0) & ~np.isnan(bm_all["num"])].groupby("subject_id").last()
    bm = bm_all[bm_all["day"] >= 0].copy()
    bm["baseline"] = bm["subject_id"].map(base["num"]).astype(float)
    bm["baseline_row"] = bm["subject_id"].map(base["row_id"])
    bm["baseline_day"] = bm["subject_id"].map(base["day"])
    tol = float(opts["count_window_days"])
    for code, prefix in (("ANC", "anc"), ("PLT", "plt"), ("PB_BLASTS", "pb")):
        o = by_code[code].copy()
        o["num"] = _numeric_or_zero_if_blq(o) if code == "PB_BLASTS" else o["value"].to_numpy(dtype=float)
        o = o[~np.isnan(o["num"].to_numpy(dtype=float))]
        bm = _nearest(bm, o, prefix, tol)
    mrd = _daily(by_code["MRD_FLOW"], "MRD_FLOW")
    mstat, mnote = _mrd_status(mrd, float(opts["mrd_negative_below_pct"]))
    mrd = mrd.assign(mrd_status=mstat, mrd_note=mnote)
    bm = bm.merge(
        mrd[["subject_id", "cday", "row_id", "day", "value", "mrd_status", "mrd_note"]].rename(columns={"row_id": "mrd_row", "day": "mrd_day", "value": "mrd_value"}),
        on=["subject_id", "cday"],
        how="left",
    )
    bm = bm.sort_values(["subject_id", "day"], kind="stable").reset_index(drop=True)

    b = bm["num"].to_numpy(dtype=float)
    pb = bm["pb"].to_numpy(dtype=float)
    anc = bm["anc"].to_numpy(dtype=float)
    plt = bm["plt"].to_numpy(dtype=float)
    baseline = bm["baseline"].to_numpy(dtype=float)
    remission_marrow = b < float(const["bm_cr_blast_lt_pct"])
    pb_clear = pb <= 0
    recovered = (anc >= float(opts["anc_recovery"])) & (plt >= float(opts["plt_recovery"]))
    not_recovered = (anc < float(opts["anc_recovery"])) | (plt < float(opts["plt_recovery"]))
    counts_unknown = ~recovered & ~not_recovered
    with np.errstate(invalid="ignore", divide="ignore"):
        decrease = (baseline - b) / baseline * 100.0
    pr_marrow = (b >= float(const["bm_cr_blast_lt_pct"])) & (b <= float(const["pr_bm_max_pct"])) & (decrease >= float(const["pr_min_decrease_pct"]))
    pr_needs_counts = bool(opts["pr_requires_count_recovery"])

    static = np.full(len(bm), None, dtype=object)
    miss: list[list[str]] = [[] for _ in range(len(bm))]
    cr_like = remission_marrow & pb_clear
    static[cr_like & recovered] = "CR"
    static[cr_like & not_recovered] = "CRi"
    # prior CR/CRi (any earlier assessment of the same subject) -> relapse rule; nadir -> PD rule
    crish = pd.Series(np.isin(static, ["CR", "CRi"]).astype(float), index=bm.index)
    sid_key = bm["subject_id"]
    prior_cr = crish.groupby(sid_key).shift(1).groupby(sid_key).cummax().fillna(0).to_numpy(dtype=bool)
    prior_min = pd.Series(b, index=bm.index).groupby(sid_key).shift(1).groupby(sid_key).cummin().to_numpy(dtype=float)
    nadir = np.fmin(prior_min, baseline)
    thr = float(opts["bm_relapse_threshold_pct"])
    relapse = prior_cr & ~np.isin(static, ["CR", "CRi"]) & ((b > thr) | (pb > 0))
    pd_inc = ~np.isnan(nadir) & (b > nadir) & (b >= nadir * (1 + float(opts["pd_increase_pct"]) / 100.0))
    for i in range(len(bm)):  # assemble categories with reasons (vectorised masks above; this loop only picks labels)
        if np.isnan(b[i]):
            miss[i].append("BM_BLASTS value (text only)")
            continue
        if static[i] is not None:
            continue
        if relapse[i]:
            static[i] = "relapse"
            continue
        if cr_like[i] and counts_unknown[i]:
            miss[i] += [f"{c} within {tol:g} days of the marrow" for c, v in (("ANC", anc[i]), ("PLT", plt[i])) if np.isnan(v)]
            continue
        if remission_marrow[i] and np.isnan(pb[i]):
            miss[i].append(f"PB_BLASTS within {tol:g} days of the marrow (circulating blasts must be absent for CR/CRi)")
            continue
        if pd_inc[i]:
            static[i] = "PD"
            continue
        if pr_marrow[i] and (pb_clear[i] or np.isnan(pb[i])):
            if not pr_needs_counts or recovered[i]:
                static[i] = "PR"
                continue
            if counts_unknown[i]:
                miss[i] += [f"{c} within {tol:g} days of the marrow" for c, v in (("ANC", anc[i]), ("PLT", plt[i])) if np.isnan(v)]
                continue
        if np.isnan(baseline[i]) and b[i] >= float(const["bm_cr_blast_lt_pct"]) and b[i] <= float(const["pr_bm_max_pct"]):
            miss[i].append("baseline BM_BLASTS before day 0 (needed to decide PR)")
            continue
        static[i] = "NR"
    bm["marrow"] = static
    bm["missing"] = miss
    bm["prior_cr"] = prior_cr
    rec = np.full(len(bm), None, dtype=object)
    rec[recovered] = True
    rec[not_recovered] = False
    bm["count_recovery"] = rec

    # -- extramedullary ---------------------------------------------------------------------------
    emd = _emd_table(study, pd.concat([by_code["EMD_STATUS"], by_code["CNS_STATUS"]]), ids)
    base_emd = emd[emd["day"] < 0].groupby("subject_id")["raw"].last()
    emd_post = emd[emd["day"] >= 0].copy()
    had = emd_post["subject_id"].map(base_emd)
    raw = emd_post["raw"].astype(object).to_numpy()
    had_disease = had.isin(["NR", "PR", "PD", "relapse"]).to_numpy()
    had_known_absent = had.isin(["absent"]).to_numpy()
    resp = np.full(len(emd_post), None, dtype=object)
    for i in range(len(emd_post)):  # label mapping per EMD assessment (few rows per subject)
        r = raw[i]
        if r is None or (isinstance(r, float) and math.isnan(r)):
            continue
        if r == "absent":
            resp[i] = "CR" if had_disease[i] else "none"
        elif r == "NR" and had_known_absent[i]:
            resp[i] = "PD"  # disease where there was none: new EMD
        else:
            resp[i] = r
    emd_post["emd"] = resp
    # new EMD after any CR/CRi (marrow or EMD) is relapse
    first_cr = bm[np.isin(bm["marrow"], ["CR", "CRi"])].groupby("subject_id")["day"].min()
    fcr = emd_post["subject_id"].map(first_cr).to_numpy(dtype=float)
    emd_post.loc[(emd_post["emd"] == "PD").to_numpy() & (emd_post["day"].to_numpy(dtype=float) > fcr), "emd"] = "relapse"

    # -- overall per marrow assessment --------------------------------------------------------------
    e_for_merge = emd_post.rename(columns={"day": "emd_day", "row_id": "emd_row", "table": "emd_table", "value": "emd_value", "what": "emd_what"})
    e_for_merge = e_for_merge.assign(_k=e_for_merge["emd_day"].astype(float)).sort_values("_k")
    left = bm.assign(_k=bm["day"].astype(float)).sort_values("_k")
    if len(e_for_merge):
        ov = pd.merge_asof(left, e_for_merge[["subject_id", "_k", "emd_day", "emd_row", "emd_table", "emd_value", "emd_what", "emd"]], on="_k", by="subject_id", direction="nearest", tolerance=float(opts["emd_window_days"]))
    else:
        ov = left.assign(emd_day=np.nan, emd_row=np.nan, emd_table=None, emd_value=None, emd_what=None, emd=None)
    ov = ov.drop(columns="_k").sort_values(["subject_id", "day"], kind="stable").reset_index(drop=True)
    overall = np.full(len(ov), None, dtype=object)
    omiss: list[list[str]] = [[] for _ in range(len(ov))]
    base_has_emd = ov["subject_id"].map(base_emd).isin(["NR", "PR", "PD", "relapse"]).to_numpy()
    m_arr = ov["marrow"].to_numpy()
    e_arr = ov["emd"].to_numpy()
    for i in range(len(ov)):  # combine two labels per assessment
        m, e = m_arr[i], e_arr[i]
        e = None if e is None or (isinstance(e, float) and math.isnan(e)) else e
        if m in ("relapse",) or e in ("relapse",):
            overall[i] = "relapse"
        elif m == "PD" or e == "PD":
            overall[i] = "relapse" if (ov.at[i, "prior_cr"] and e == "PD") else "PD"
        elif m is None:
            omiss[i] = list(ov.at[i, "missing"])
        elif e is None:
            if base_has_emd[i] and m in ("CR", "CRi", "PR"):
                omiss[i] = [f"an extramedullary assessment within {float(opts['emd_window_days']):g} days (EMD at baseline)"]
            elif opts["emd_unassessed"] == "na" and m in ("CR", "CRi"):
                omiss[i] = [f"an extramedullary assessment within {float(opts['emd_window_days']):g} days"]
            else:
                overall[i] = m
        elif e in ("CR", "none"):
            overall[i] = m
        elif e == "PR":
            overall[i] = "PR" if m in ("CR", "CRi", "PR") else m
        else:  # EMD persists (NR)
            overall[i] = "NR" if m in ("CR", "CRi", "PR") else m
    ov["overall"] = overall
    ov["overall_missing"] = omiss

    out: list[Result] = []
    out.extend(_marrow_results(ov, rule, opts))
    out.extend(_mrd_results(mrd[mrd["day"] >= 0], rule, opts))
    out.extend(_emd_results(emd_post, rule))
    out.extend(_subject_results(study, ov, ids, rule, opts))
    return out


def _assessment_evidence(r: Mapping[str, Any], sid: str) -> list[Evidence]:
    ev = [
        _ev("observations", r["row_id"], sid, r["day"], "BM_BLASTS", r["num"], "%", "marrow blasts"),
        _ev("observations", r.get("pb_row"), sid, r.get("pb_day"), "PB_BLASTS", r.get("pb"), "%", "circulating blasts"),
        _ev("observations", r.get("anc_row"), sid, r.get("anc_day"), "ANC", r.get("anc"), "10^9/L", "count recovery"),
        _ev("observations", r.get("plt_row"), sid, r.get("plt_day"), "PLT", r.get("plt"), "10^9/L", "count recovery"),
        _ev("observations", r.get("mrd_row"), sid, r.get("mrd_day"), "MRD_FLOW", r.get("mrd_value"), "%", "flow MRD"),
        _ev("observations", r.get("baseline_row"), sid, r.get("baseline_day"), "BM_BLASTS", r.get("baseline"), "%", "baseline before infusion"),
    ]
    return [e for e in ev if e is not None]


def _marrow_results(ov: pd.DataFrame, rule: Rule, opts: Mapping[str, Any]) -> list[Result]:
    out = []
    for r in ov.to_dict("records"):
        sid = str(r["subject_id"])
        ev = _assessment_evidence(r, sid)
        mrd = nan_to_none(r.get("mrd_status"))
        details = {
            "bm_blasts_pct": nan_to_none(r["num"]),
            "pb_blasts_pct": nan_to_none(r.get("pb")),
            "anc": nan_to_none(r.get("anc")),
            "plt": nan_to_none(r.get("plt")),
            "count_recovery": nan_to_none(r.get("count_recovery")),
            "baseline_bm_blasts_pct": nan_to_none(r.get("baseline")),
            "mrd": mrd,
            "prior_cr": bool(r["prior_cr"]),
        }
        out.append(Result("ALL response (marrow)", r["marrow"], rule, ev, list(r["missing"]), sid, float(r["day"]), details))
        emd = nan_to_none(r.get("emd"))
        oev = list(ev)
        if emd is not None and nan_to_none(r.get("emd_row")) is not None:
            oev.append(Evidence(str(r["emd_table"]), int(r["emd_row"]), sid, float(r["emd_day"]), str(r["emd_what"]), nan_to_none(r.get("emd_value")), None, "extramedullary"))
        od = {**details, "marrow": r["marrow"], "emd": emd if emd is not None else "not assessed"}
        out.append(Result("ALL response (overall)", r["overall"], rule, oev, list(r["overall_missing"]), sid, float(r["day"]), od))
    return out


def _mrd_results(mrd: pd.DataFrame, rule: Rule, opts: Mapping[str, Any]) -> list[Result]:
    out = []
    thr = float(opts["mrd_negative_below_pct"])
    for r in mrd.to_dict("records"):
        sid = str(r["subject_id"])
        ev = [_ev("observations", r["row_id"], sid, r["day"], "MRD_FLOW", r["value"] if nan_to_none(r["value"]) is not None else r.get("value_text"), "%", str(r["mrd_note"]))]
        status = nan_to_none(r["mrd_status"])
        miss = [] if status is not None else [f"an MRD_FLOW result comparable with {thr:g} % ({r['mrd_note'] or 'no numeric value'})"]
        out.append(Result("MRD (flow)", status, rule, [e for e in ev if e], miss, sid, float(r["day"]), {"threshold_pct": thr, "comparator": "<", "note": r["mrd_note"]}))
    return out


def _emd_results(emd: pd.DataFrame, rule: Rule) -> list[Result]:
    out = []
    for r in emd.to_dict("records"):
        sid = str(r["subject_id"])
        v = nan_to_none(r["emd"])
        ev = [Evidence(str(r["table"]), int(r["row_id"]), sid, float(r["day"]), str(r["what"]), nan_to_none(r["value"]), None, "extramedullary assessment")]
        miss = [] if v is not None else [f"a recognised EMD status (got {r['value']!r})"]
        out.append(Result("ALL response (EMD)", v, rule, ev, miss, sid, float(r["day"]), {}))
    return out


def _subject_results(study: Study, ov: pd.DataFrame, ids: list[str], rule: Rule, opts: Mapping[str, Any]) -> list[Result]:
    """Best overall response and duration of response per subject (numpy slices per subject, no pandas in the loop)."""
    order: list[str] = list(_rules()["order"])
    rank = {c: i for i, c in enumerate(order)}
    ev_tab = study.events
    dead = ev_tab[ev_tab["kind"] == "death"].sort_values(["subject_id", "day", "row_id"]).drop_duplicates("subject_id")
    deaths = dict(zip(dead["subject_id"], dead["day"].astype(float), strict=True))
    deaths_row = dict(zip(dead["subject_id"], dead["row_id"].astype(int), strict=True))
    iv = study.interventions
    hsct = iv[iv["kind"] == "hsct"].groupby("subject_id")["start_day"].min().to_dict()
    ov = ov.sort_values(["subject_id", "day"], kind="stable").reset_index(drop=True)
    recs = ov.to_dict("records")
    keys = ov["subject_id"].to_numpy(dtype=object)
    lo = np.searchsorted(keys, np.asarray(ids, dtype=object), side="left")
    hi = np.searchsorted(keys, np.asarray(ids, dtype=object), side="right")
    all_vals = ov["overall"].to_numpy(dtype=object)
    all_days = ov["day"].to_numpy(dtype=float)
    out = []
    for sid, a, b in zip(ids, lo, hi, strict=True):
        vals = all_vals[a:b]
        days = all_days[a:b]
        valid = [i for i, v in enumerate(vals) if v is not None]
        if not valid:
            if b == a:
                miss = ["a bone-marrow assessment (BM_BLASTS) on or after day 0"]
            else:
                miss = ["every assessment is NA: " + "; ".join(sorted({m for r in recs[a:b] for m in r["overall_missing"]}))]
            out.append(Result("Best overall response", None, rule, (), miss, sid, None, {}))
            out.append(Result("Duration of response", None, rule, (), miss, sid, None, {}))
            continue
        rel_idx = [i for i, v in enumerate(vals) if v == "relapse"]
        upto = rel_idx[0] if rel_idx else len(vals) - 1
        window = [(i, vals[i]) for i in valid if i <= upto]
        best_i, best = min(window, key=lambda t: (rank.get(t[1], 99), t[0]))
        out.append(Result("Best overall response", best, rule, _assessment_evidence(recs[a + best_i], sid), (), sid, float(days[best_i]), {"assessments": len(window), "up_to_day": float(days[upto])}))
        cr_i = [i for i, v in enumerate(vals) if v in ("CR", "CRi")]
        if not cr_i:
            out.append(Result("Duration of response", None, rule, (), [], sid, None, {"reason": "no CR/CRi", "responder": False}))
            continue
        start = float(days[cr_i[0]])
        ends = [i for i, v in enumerate(vals) if i > cr_i[0] and v in ("relapse", "PD")]
        evid = _assessment_evidence(recs[a + cr_i[0]], sid)
        end_day: float | None = None
        event, reason = False, ""
        if ends:
            end_day, event, reason = float(days[ends[0]]), True, str(vals[ends[0]])
            evid += _assessment_evidence(recs[a + ends[0]], sid)[:1]
        death = deaths.get(sid)
        if opts["dor_death_is_event"] and death is not None and death >= start and (end_day is None or death < end_day):
            end_day, event, reason = float(death), True, "death"
            evid.append(Evidence("events", deaths_row[sid], sid, float(death), "death", None, None, "death"))
        h = hsct.get(sid)
        if opts["dor_censor_at_hsct"] and h is not None and h >= start and (end_day is None or h < end_day):
            end_day, event, reason = float(h), False, "censored at allo-HSCT"
        if end_day is None:
            end_day, reason = float(max(days[i] for i in valid)), "censored at last assessment"
        out.append(
            Result("Duration of response", float(end_day - start), rule, evid, (), sid, start, {"start_day": start, "end_day": end_day, "event": event, "end_reason": reason, "responder": True})
        )
    return out


__all__ = ["assess_response", "default_options"]
