"""The vectorised engines agree with slower, readable reference paths.

* every system over a whole (synthetic) study equals the same system run subject by subject;
* the engines' own ``subject_id`` argument equals running them on the one-subject Study;
* the as-of matching, the TA-TMA status per time point, the per-Study split of the observations and the key
  union agree with brute-force loops or plain pandas filters written for the test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cd7kit.clinical import SYSTEMS, grade_all
from cd7kit.clinical.grading import _common as C
from cd7kit.clinical.scores import compute_scores
from cd7kit.clinical.tma import _status_at_timepoints, assess_tma, iec_hs_flags
from cd7kit.data import Study
from cd7kit.vocab import load_vocabulary

DAILY = {  # code: (mean, sd, lln, uln)
    "TEMP": (37.6, 0.9, None, None), "SBP": (105.0, 20.0, None, None), "DBP": (70.0, 12.0, None, None),
    "ANC": (1.2, 1.3, 1.8, 7.5), "PLT": (90.0, 70.0, 150.0, 400.0), "HGB": (95.0, 20.0, 130.0, 170.0),
    "WBC": (3.0, 2.0, 4.0, 10.0), "ALC": (0.8, 0.6, 1.0, 4.0), "ALT": (60.0, 70.0, 7.0, 40.0),
    "AST": (50.0, 60.0, 8.0, 40.0), "BILI": (1.0, 0.8, 0.2, 1.2), "CREAT": (1.0, 0.5, 0.6, 1.2),
    "LDH": (330.0, 180.0, 120.0, 250.0), "CRP": (40.0, 50.0, None, 5.0), "FERRITIN": (900.0, 900.0, 30.0, 400.0),
    "FIBRINOGEN": (2.5, 1.0, 2.0, 4.0), "HAPTOGLOBIN": (0.8, 0.6, 0.3, 2.0), "INR": (1.2, 0.3, None, 1.2),
    "TRIGLYCERIDES": (2.0, 1.2, None, 1.7), "ICE": (9.0, 2.0, None, None), "LOC": (0.0, 0.8, None, None),
}  # fmt: skip


def synthetic(n: int = 24, days: int = 45, seed: int = 3) -> Study:
    """A small validated study with every input of every engine (and its gaps): daily labs and vitals with
    random missing values, children (CAPD), vasopressors, oxygen, tocilizumab, neurological events, marrow
    assessments, allo-HSCT for a third with post-transplant TA-TMA labs, transfusions and deaths."""
    rng = np.random.default_rng(seed)
    voc = load_vocabulary()
    sids = [f"P{i:03d}" for i in range(n)]
    ages = rng.uniform(3, 70, n).round(1)
    obs, iv, ev = [], [], []
    for i, sid in enumerate(sids):
        hsct = 25.0 if i % 3 == 1 else None
        for code, (mean, sd, lln, uln) in DAILY.items():
            if code == "ICE" and ages[i] < 12:
                code, mean, sd = "CAPD", 4.0, 5.0
            tc = voc[code]
            for d in range(-6, days):
                if rng.random() < 0.12:  # gaps
                    continue
                v = mean + sd * rng.standard_normal()
                if code in ("ICE", "CAPD", "LOC"):
                    v = round(v)
                v = float(np.clip(abs(v), tc.plausible_min or 0.0, tc.plausible_max or np.inf))
                day = d + (0.5 if code == "TEMP" and rng.random() < 0.3 else 0.0)
                obs.append({"subject_id": sid, "day": day, "code": code, "value": v, "unit": tc.canonical_unit, "lln": lln, "uln": uln})
        for d in (-7, 28, 40):
            for code, v in (("BM_BLASTS", rng.uniform(0, 40)), ("PB_BLASTS", rng.choice([0.0, rng.uniform(0, 5)])), ("MRD_FLOW", rng.uniform(0, 0.05))):
                if not (code == "MRD_FLOW" and d < 0):
                    obs.append({"subject_id": sid, "day": float(d), "code": code, "value": float(v), "unit": "%"})
        iv.append({"subject_id": sid, "start_day": -5.0, "end_day": -3.0, "kind": "lymphodepletion"})
        iv.append({"subject_id": sid, "start_day": 0.0, "kind": "car_infusion"})
        if i % 2 == 0:
            iv.append({"subject_id": sid, "start_day": 3.0, "end_day": 6.0, "kind": "vasopressor", "agent": "norepinephrine", "indication": "hypotension"})
            iv.append({"subject_id": sid, "start_day": 4.5, "end_day": 5.0, "kind": "vasopressor", "agent": "vasopressin"})
            iv.append({"subject_id": sid, "start_day": 4.0, "kind": "tocilizumab"})
            ev.append({"subject_id": sid, "day": 3.0, "end_day": 5.0, "kind": "ae", "term": "Hypotension"})
        if i % 4 == 1:
            iv.append({"subject_id": sid, "start_day": 5.0, "end_day": 7.0, "kind": "oxygen", "device": "nasal_cannula", "flow_l_min": float(2 + i % 7), "indication": "hypoxia"})
        if i % 5 == 2:
            ev.append({"subject_id": sid, "day": 6.0, "kind": "neuro", "term": "Generalized seizure"})
        if i % 7 == 3:
            ev.append({"subject_id": sid, "day": 8.0, "kind": "icans", "term": "ICANS not detected", "grade": 0})
        if hsct is not None:
            iv.append({"subject_id": sid, "start_day": hsct - 7, "end_day": hsct - 1, "kind": "conditioning"})
            iv.append({"subject_id": sid, "start_day": hsct, "kind": "hsct"})
            iv.append({"subject_id": sid, "start_day": hsct + 4, "kind": "transfusion", "agent": "RBC"})
            iv.append({"subject_id": sid, "start_day": hsct + 6, "kind": "transfusion", "agent": "RBC"})
            for d in range(int(hsct), days, 4):
                obs.append({"subject_id": sid, "day": float(d), "code": "SC5B9", "value": float(rng.uniform(50, 600)), "unit": "ng/mL", "uln": 244.0})
                obs.append({"subject_id": sid, "day": float(d), "code": "UPCR", "value": float(rng.uniform(0, 3)), "unit": "mg/mg"})
                obs.append({"subject_id": sid, "day": float(d), "code": "SCHISTO_HPF", "value": float(rng.integers(0, 5)), "unit": "1/HPF"})
            if i % 2:
                ev.append({"subject_id": sid, "day": hsct + 5, "kind": "tma", "term": "platelet transfusion refractoriness"})
                ev.append({"subject_id": sid, "day": hsct + 3, "kind": "gvhd", "term": "acute GVHD", "grade": 2})
        if i % 11 == 5:
            ev.append({"subject_id": sid, "day": 30.0, "kind": "death", "term": "Death", "details": '{"cause": "infection"}'})
    subjects = pd.DataFrame({"subject_id": sids, "age_years": ages})
    return Study.from_tables(subjects, pd.DataFrame(obs), pd.DataFrame(iv), pd.DataFrame(ev), meta={"study_id": "FAST"})


@pytest.fixture(scope="module")
def study() -> Study:
    return synthetic()


def _json(results) -> list[str]:
    return [json.dumps(r.to_dict(), sort_keys=True, default=str) for r in results]


@pytest.mark.parametrize("system", [*SYSTEMS, "dlt"])
def test_whole_study_equals_subject_by_subject(study, system):
    whole = grade_all(study, systems=[system])[system]
    by_subject = {sid: _json(r for r in whole if r.subject_id == sid) for sid in study.subject_ids}
    assert sum(map(len, by_subject.values())) == len(whole)
    for sid in study.subject_ids:
        one = grade_all(study, subject_id=sid, systems=[system])[system]
        assert _json(one) == by_subject[sid], (system, sid)


def test_engine_subject_argument_equals_one_subject_study(study):
    for sid in study.subject_ids[:6]:
        sub = study.subject(sid)
        for fn in (compute_scores, iec_hs_flags, assess_tma):
            assert _json(fn(study, sid)) == _json(fn(sub)), (fn.__name__, sid)


def _last_before_reference(q_s, q_t, r_s, r_t, inclusive):
    out = []
    for s, t in zip(q_s, q_t, strict=True):
        best, bt = -1, None
        for j in range(len(r_s)):
            if r_s[j] == s and (r_t[j] <= t if inclusive else r_t[j] < t) and (bt is None or r_t[j] >= bt):
                best, bt = j, r_t[j]
        out.append(best)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_last_before_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    nr, nq = int(rng.integers(0, 30)), int(rng.integers(0, 30))
    whole = seed % 2 == 0  # integer days (fast path) or half days (general path)
    r_s, q_s = rng.integers(0, 4, nr), rng.integers(0, 4, nq)
    r_t = rng.integers(-5, 10, nr).astype(float) if whole else rng.integers(-10, 20, nr) / 2
    q_t = rng.integers(-5, 10, nq).astype(float) if seed % 3 else rng.integers(-10, 20, nq) / 2
    for inclusive in (False, True):
        assert list(C.last_before(q_s, q_t, r_s, r_t, inclusive=inclusive)) == _last_before_reference(q_s, q_t, r_s, r_t, inclusive)


@pytest.mark.parametrize("seed", range(15))
def test_tma_status_matches_brute_force(seed):
    from cd7kit.clinical.tma import _CRITS

    rng = np.random.default_rng(seed)
    crits = ["anemia", "ldh_high", "thrombocytopenia"]
    n = int(rng.integers(1, 60))
    fnd = {
        "sidx": rng.integers(0, 3, n).astype(np.int64),
        "cday": rng.integers(0, 25, n).astype(float),
        "crit": np.asarray([_CRITS.index(c) for c in rng.choice(crits + ["hypertension"], n)], np.int64),
        "status": rng.random(n) < 0.5,
    }
    tp = pd.DataFrame({"subject_id": "x", "sidx": np.repeat(np.arange(3), 12), "cday": np.tile(np.arange(0, 24, 2), 3).astype(float)})
    lookback = 5.0
    got = _status_at_timepoints(fnd, tp, crits, lookback)
    for i, (s, d) in enumerate(zip(tp["sidx"], tp["cday"], strict=True)):
        for c in crits:
            # the latest positive and negative finding within the look-back; the later wins, positive on a tie,
            # the last one in finding order among findings of the same day
            pos = [(fnd["cday"][j], j) for j in range(n) if fnd["sidx"][j] == s and _CRITS[fnd["crit"][j]] == c and d - lookback <= fnd["cday"][j] <= d and fnd["status"][j]]
            neg = [(fnd["cday"][j], j) for j in range(n) if fnd["sidx"][j] == s and _CRITS[fnd["crit"][j]] == c and d - lookback <= fnd["cday"][j] <= d and not fnd["status"][j]]
            p, q = max(pos, default=None), max(neg, default=None)
            if p is not None and (q is None or p[0] >= q[0]):
                expected, idx = 1.0, p[1]
            elif q is not None:
                expected, idx = 0.0, q[1]
            else:
                expected, idx = np.nan, np.nan
            assert np.array_equal([got[c].iloc[i], got[f"{c}__idx"].iloc[i]], [expected, idx], equal_nan=True), (seed, i, c)


def test_obs_index_matches_table_filters(study):
    obs = study.observations
    idx = C.obs_index(study)
    for codes in (["TEMP"], ["SBP", "DBP"], ["ICE", "CAPD", "LOC"], ["NOPE"]):
        ref = obs[obs["code"].isin(codes)]
        got = idx.get(codes)
        assert list(got.index) == list(ref.index)
        for c in ("row_id", "subject_id", "day", "code", "value", "unit", "uln"):
            assert got[c].astype(object).where(got[c].notna(), None).tolist() == ref[c].astype(object).where(ref[c].notna(), None).tolist(), (codes, c)
        assert list(idx.sidx(codes)) == list(pd.Index(study.subjects["subject_id"]).get_indexer(ref["subject_id"]))
    rows = obs.loc[obs["code"].isin(["TEMP", "SBP"]), "row_id"].sample(25, random_state=1).tolist() + [10**9]
    notes = [f"n{k}" for k in range(len(rows))]
    assert idx.evidence(["TEMP", "SBP"], rows, notes) == C.RowLookup("observations", obs).evidence(rows, notes)


@pytest.mark.parametrize("spread", [50, 10**12])
def test_union_keys_equals_unique(spread):
    rng = np.random.default_rng(spread % 97)
    keys = [rng.integers(-spread, spread, int(rng.integers(0, 500))) for _ in range(4)]
    assert np.array_equal(C.union_keys(keys), np.unique(np.concatenate(keys)))


def test_lazy_details_read_like_a_dict(study):
    (r,) = grade_all(study, subject_id=study.subject_ids[0], systems=["crs"])["crs"]
    assert list(r.details) == ["days", "episodes", "excluded", "grade5"]
    days = r.details["days"]
    assert isinstance(days, pd.DataFrame) and r.details["days"] is days  # built once, then kept
    assert r.to_dict()["details"]["days"] == json.loads(json.dumps(r.to_dict()["details"]["days"]))
    assert dict(r.details).keys() == {"days", "episodes", "excluded", "grade5"}
