"""Dose-limiting toxicity (DLT) derivation from computed grades, for the dose-escalation engine.

A DLT definition is protocol-specific; here it is a set of named options (``clinical/rules/dlt.yaml``)
evaluated on the grades this package computes within the DLT window (default day 0-28 after the first
infusion, e.g. NCT04572308 'first 1 month'):

* ``crs``: ASTCT CRS grade >= 3 that does not improve to <= 2 within 72 h (the grade is still >= 3 on an
  assessed day at least 3 calendar days after that run began), or any grade >= 4 at once;
* ``icans``: ASTCT ICANS grade >= 3;
* ``neutropenia``: CTCAE neutrophil count decreased grade 4 still present at the first ANC measured after
  day 28 (within 7 days of it);
* ``ae`` (off by default): investigator-graded events kind ``ae`` of at least a grade, attributable;
* grade 5 CRS or ICANS in the window.

:func:`dlt_events` returns rows shaped like the Study ``events`` table (kind ``dlt``; ``details`` is JSON
with the criterion and the evidence rows) -- what the escalation engine consumes; :func:`derive_dlt`
returns one :class:`~cd7kit.data.Result` per subject (value True/False, or None when not infused).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import Evidence, Result, Rule, Study, jsonable

from .grading import _common as C

RULES = "dlt"

EVENT_COLUMNS = ["subject_id", "day", "end_day", "kind", "term", "grade", "attribution", "details", "source"]


def _rule(opts: Mapping[str, Any]) -> Rule:
    r = C.load_rules(RULES)
    return Rule(r["system"], str(r["version"]), dict(opts), " ".join(str(r["source"]).split()))


def _split(options: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """DLT options (bare or ``dlt.``) and the options passed on to the graders (prefixed)."""
    own: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for k, v in (options or {}).items():
        if k.startswith("dlt."):
            own[k[4:]] = v
        elif "." in k:
            other[k] = v
        else:
            own[k] = v
    return own, other


def _find(
    study: Study, opts: Mapping[str, Any], grader_options: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, list[Evidence]], dict[str, dict[str, Any]]]:
    from .grading.crs import crs_daily
    from .grading.ctcae import ctcae_parts
    from .grading.icans import icans_daily

    win = float(opts["window_days"])
    found: list[dict[str, Any]] = []
    ev_by: dict[str, list[Evidence]] = {}
    notes: dict[str, dict[str, Any]] = {}

    def add(sid: str, day: float, term: str, grade: int | None, criterion: str, evidence: list[Evidence], extra: dict[str, Any] | None = None) -> None:
        found.append({"subject_id": sid, "day": float(day), "term": term, "grade": grade, "criterion": criterion, "evidence": evidence, **(extra or {})})
        ev_by.setdefault(sid, []).extend(evidence)

    # CRS
    daily, extras = crs_daily(study, grader_options)
    rule_crs = C.load_rules("astct_crs")
    mg = opts["crs_min_grade"]
    if mg is not None and len(daily):
        d = daily
        s = d["sidx"].to_numpy()
        g = d["grade"].to_numpy()
        day = d["day"].to_numpy()
        hi = g >= int(mg)
        start = hi & ~(np.r_[False, hi[:-1]] & np.r_[False, s[1:] == s[:-1]])
        run = np.cumsum(start)
        rid = np.where(hi, run, 0)
        if hi.any():
            grp = pd.DataFrame({"r": rid[hi], "s": s[hi], "day": day[hi], "g": g[hi], "i": np.flatnonzero(hi)}).groupby("r")
            agg = grp.agg(s=("s", "first"), first=("day", "first"), last=("day", "last"), gmax=("g", "max"), i=("i", "first"))
            need = None if opts["crs_improve_hours"] is None else int(np.ceil(float(opts["crs_improve_hours"]) / 24.0))
            for r in agg.itertuples():
                if r.first < 0 or r.first > win:
                    continue
                sid = str(extras["inputs"].sids[r.s])
                evid = [Evidence("observations", int(daily["temp_row"].iloc[r.i]), sid, float(r.first), "TEMP", None, None, "CRS run onset")] if daily["temp_row"].iloc[r.i] >= 0 else []
                if opts["crs_always_grade"] is not None and r.gmax >= int(opts["crs_always_grade"]):
                    first4 = d[(s == r.s) & (day >= r.first) & (day <= r.last) & (g >= int(opts["crs_always_grade"]))]["day"].iloc[0]
                    if first4 <= win:
                        add(sid, first4, f"CRS grade {int(r.gmax)} ({rule_crs['system']} {rule_crs['version']})", int(r.gmax), "crs_always_grade", evid)
                        continue
                if need is None or (r.last - r.first) >= need:
                    add(sid, r.first, f"CRS grade >= {mg} not improving to <= {int(mg) - 1} within {opts['crs_improve_hours']} h", int(r.gmax), "crs_not_improving", evid, {"confirmed_day": float(r.first + (need or 0))})
                elif r.last == day[(s == r.s)].max():
                    notes.setdefault(sid, {})["crs_followup_short"] = f"grade >= {mg} CRS from day {r.first} still ongoing at the last assessment (< {opts['crs_improve_hours']} h of follow-up)"
    # ICANS
    if opts["icans_min_grade"] is not None:
        idaily, iex = icans_daily(study, grader_options)
        m = (idaily["grade"].to_numpy() >= int(opts["icans_min_grade"])) & (idaily["day"].to_numpy() >= 0) & (idaily["day"].to_numpy() <= win)
        first = idaily[m].drop_duplicates("sidx")
        for r in first.itertuples():
            add(str(r.subject_id), float(r.day), f"ICANS grade {int(r.grade)}", int(r.grade), "icans_min_grade", [])
    # grade 5 CRS / ICANS
    if opts["grade5_is_dlt"]:
        deaths = C.death_days(study)
        pats = [rule_crs["options"]["death_cause_pattern"]["default"], C.load_rules("astct_icans")["options"]["death_cause_pattern"]["default"]]
        hit = np.zeros(len(deaths), bool)
        for p in pats:
            hit |= C.matches(deaths["cause"], p)
        dd = deaths[hit & (deaths["day"] >= 0).to_numpy() & (deaths["day"] <= win).to_numpy()]
        for r in dd.to_dict("records"):
            add(str(r["subject_id"]), float(r["day"]), "Death due to CRS or ICANS (grade 5)", 5, "grade5", [Evidence("events", int(r["row_id"]), str(r["subject_id"]), float(r["day"]), "death", r["cause"].strip(), None, "grade 5")])
    # neutropenia beyond day N
    if opts["neutropenia_grade"] is not None:
        ct_opts = {k: v for k, v in grader_options.items() if k.startswith("ctcae.")}
        ct_opts.update({"ctcae.terms": ["neutrophil_count_decreased"], "ctcae.window_start_day": 0, "ctcae.censor_kinds": []})
        parts, cx = ctcae_parts(study, ct_opts)
        after = float(opts["neutropenia_after_day"])
        sids = cx["sids"]
        for p in (p for p in parts if p["term"] == "neutrophil_count_decreased"):
            # rows are sorted by subject and day: the first ANC after the day, per subject
            d = p["day"]
            sel = np.flatnonzero((d > after) & (d <= after + float(opts["neutropenia_lookahead_days"])))
            sx = p["sidx"][sel]
            first = sel[np.r_[True, sx[1:] != sx[:-1]]] if len(sel) else sel
            first = first[p["grade"][first] >= int(opts["neutropenia_grade"])]
            for i in first.tolist():
                sid, day, g = str(sids[p["sidx"][i]]), float(d[i]), int(p["grade"][i])
                add(sid, day, f"Neutrophil count decreased grade {g} beyond day {int(after)}", g, "neutropenia", [Evidence("observations", int(p["row_id"][i]), sid, day, "ANC", float(p["value"][i]), "10^9/L", f"first ANC after day {int(after)}")])
    # investigator-graded adverse events
    if opts["ae_min_grade"] is not None:
        ev = study.events
        ae = ev[(ev["kind"] == "ae") & ev["grade"].notna()]
        ae = ae[(ae["grade"].astype(float) >= float(opts["ae_min_grade"])) & (ae["day"] >= 0) & (ae["day"] <= win)]
        ae = ae[C.attributable_mask(ae["attribution"], C.load_rules("astct_crs")["options"]["attributable"]["default"])]
        for r in ae.to_dict("records"):
            add(str(r["subject_id"]), float(r["day"]), str(r["term"]), int(r["grade"]), "ae_min_grade", [C.ev_row("events", r, "investigator-graded adverse event")])
    return found, ev_by, notes


def dlt_events(study: Study, options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """DLT events (Study ``events`` shape, kind ``dlt``), sorted by subject and day."""
    own, other = _split(options)
    opts = C.resolve_options("dlt", RULES, own)
    found, _, _ = _find(study, opts, other)
    rule = _rule(opts).to_dict()
    rows = [
        {
            "subject_id": f["subject_id"],
            "day": f["day"],
            "end_day": None,
            "kind": "dlt",
            "term": f["term"],
            "grade": f["grade"],
            "attribution": "IEC",
            "details": json.dumps(jsonable({"criterion": f["criterion"], "evidence": [e.to_dict() for e in f["evidence"]], "rule": rule, **({"confirmed_day": f["confirmed_day"]} if "confirmed_day" in f else {})}), sort_keys=True),
            "source": "cd7kit.clinical.dlt",
        }
        for f in found
    ]
    df = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return df.sort_values(["subject_id", "day"], kind="stable").reset_index(drop=True)


def derive_dlt(study: Study, subject_id: str | None = None, options: Mapping[str, Any] | None = None) -> list[Result]:
    """One Result per subject: value True (at least one DLT), False (none), None (not infused)."""
    st = C.restrict(study, subject_id)
    own, other = _split(options)
    opts = C.resolve_options("dlt", RULES, own)
    found, ev_by, notes = _find(st, opts, other)
    rule = _rule(opts)
    infused = set(st.infusions()["subject_id"])
    by: dict[str, list[dict[str, Any]]] = {}
    for f in found:
        by.setdefault(f["subject_id"], []).append({k: v for k, v in f.items() if k != "evidence"})
    out: list[Result] = []
    for sid in st.subjects["subject_id"]:
        sid = str(sid)
        dl = sorted(by.get(sid, []), key=lambda x: x["day"])
        if sid not in infused and not dl:
            out.append(Result("dlt", None, rule, [], ["no CAR infusion recorded: not DLT-evaluable"], sid))
            continue
        out.append(Result("dlt", bool(dl), rule, ev_by.get(sid, []), [], sid, dl[0]["day"] if dl else None, {"dlts": dl, **notes.get(sid, {})}))
    return out


__all__ = ["dlt_events", "derive_dlt", "EVENT_COLUMNS"]
