"""The synthetic NCT06849401-like screening cohort gets the verdicts its generator intended; the flow."""

from __future__ import annotations

import pandas as pd
import pytest

from cd7kit.clinical.eligibility import ELIGIBLE, INELIGIBLE, PENDING, screen, screening_flow, screening_log
from cd7kit.datasets.screening import (
    INTENDED_VERDICTS,
    SCREEN_FAILURES,
    SUBJECT_IDS,
    screening_study,
    screening_tables,
)


@pytest.fixture(scope="module")
def study():
    return screening_study()


@pytest.fixture(scope="module")
def study_without_attestations():
    return screening_study(with_attestations=False)


def test_tables_are_seeded_synthetic_and_shaped_for_the_merge():
    a, b = screening_tables(2026), screening_tables(2026)
    for t in a:
        pd.testing.assert_frame_equal(a[t], b[t])
    assert not screening_tables(7)["observations"]["value"].equals(a["observations"]["value"])
    subj = a["subjects"]
    assert list(subj["subject_id"]) == list(SUBJECT_IDS) == [f"NCT06849401-{i:02d}" for i in range(1, 13)]
    assert subj["age_years"].between(2, 18).all()
    enrolled = subj[subj["status"] == "enrolled"]
    assert len(enrolled) == 9 and enrolled["dose_level"].value_counts().to_dict() == {1: 3, 2: 3, 3: 3}
    assert set(subj.loc[subj["status"] == "screen_failure", "subject_id"]) == set(SCREEN_FAILURES)
    for t in ("subjects", "observations", "interventions", "events", "attestations"):
        assert a[t]["source"].str.contains("synthetic").all(), t
    assert len(set(SCREEN_FAILURES.values())) == 3  # three distinct reasons


def test_the_12_children_get_the_intended_verdicts(study):
    for sid, (verdict, reason) in INTENDED_VERDICTS.items():
        rep = screen(study, sid, "NCT06849401", "screening")
        assert rep.verdict == verdict, sid
        assert [r.id for r in rep.reasons] == ([reason] if reason else []), sid
        assert not rep.pending, sid


def test_failures_are_decided_by_data_even_without_attestations(study_without_attestations):
    for sid in SUBJECT_IDS:
        rep = screen(study_without_attestations, sid)
        if sid in SCREEN_FAILURES:
            assert rep.verdict == INELIGIBLE and [r.id for r in rep.reasons] == [SCREEN_FAILURES[sid]]
        else:
            assert rep.verdict == PENDING
            assert {r.id for r in rep.pending} <= {"I3", "I6", "I11", "I13", "E7", "E18", "E20"}


def test_failure_evidence_points_at_the_rows(study):
    rep = screen(study, "NCT06849401-08")
    ev = [e for e in rep.result("I10").evidence if e.what == "CREAT"]
    row = study.observations.set_index("row_id").loc[ev[0].row_id]
    assert row["code"] == "CREAT" and row["value"] == 1.9
    rep = screen(study, "NCT06849401-04")
    assert any(e.what == "CD7_BLASTS" and e.value == 75.0 for e in rep.result("I5").evidence)


def test_pre_lymphodepletion_recheck_when_a_lymphodepletion_day_is_given(study):
    # the screening tables carry the day -6 re-check; the course (lymphodepletion) is merged elsewhere
    rep = screen(study, "NCT06849401-06", checkpoint="pre-lymphodepletion", day=-5.0)
    assert rep.verdict == PENDING
    assert [r.id for r in rep.pending] == ["I10"]  # organ-function labs of the last week come with the course
    assert "I10: BILI (value) within the 7 days before pre-lymphodepletion (day -5)" in rep.missing
    assert rep.result("E19").value == "NOT_MET"  # adolescent girl: pregnancy test negative on day -6


def test_flow_12_screened_9_enrolled_reasons_for_the_3(study):
    flow = screening_flow(study)
    c = flow.counts
    assert c["screened"] == 12 and c["eligible"] == 9 and c["enrolled"] == 9
    assert c["lymphodepleted"] == 0  # no course in the screening tables alone
    out = {e["subject_id"]: e for e in flow.excluded if e["lost_at"] == "eligible"}
    assert set(out) == set(SCREEN_FAILURES)
    for sid, cid in SCREEN_FAILURES.items():
        assert [r["criterion_id"] for r in out[sid]["reasons"]] == [cid]
    text = "\n".join(flow.lines())
    assert "screened" in text and "NCT06849401-04 not eligible: I5" in text
    d = flow.to_dict()
    assert d["value"]["screened"] == 12 and len(d["log"]) == 12
    assert not flow.discrepancies


def test_flow_through_infusion_and_restriction_to_trial_subjects(study):
    t = study.tables()
    sids = [s for s in SUBJECT_IDS if s not in SCREEN_FAILURES]
    iv = pd.DataFrame(
        [{"subject_id": s, "start_day": -5.0, "end_day": -3.0, "kind": "lymphodepletion", "agent": "Flu/Cy"} for s in sids]
        + [{"subject_id": s, "start_day": 0.0, "kind": "car_infusion", "agent": "VGO-Cs01p"} for s in sids[:8]]
    )
    t["interventions"] = pd.concat([t["interventions"].drop(columns="row_id"), iv], ignore_index=True)
    ev = pd.DataFrame([{"subject_id": s, "day": 28.0, "kind": "disposition", "term": "evaluable"} for s in sids[:7]])
    t["events"] = pd.concat([t["events"].drop(columns="row_id"), ev], ignore_index=True)
    t["observations"] = t["observations"].drop(columns="row_id")
    full = study.replace(**t)
    flow = screening_flow(full)
    assert [flow.counts[s] for s in ("screened", "eligible", "enrolled", "lymphodepleted", "infused", "evaluable")] == [12, 9, 9, 9, 8, 7]
    assert any(e["subject_id"] == sids[8] and e["lost_at"] == "infused" for e in flow.excluded)
    log = screening_log(full, subject_ids=sids[:2])
    assert {(r.subject_id, r.checkpoint) for r in log} == {(s, cp) for s in sids[:2] for cp in ("screening", "pre-lymphodepletion", "pre-infusion")}
    part = screening_flow(full, subject_ids=sids[:3])
    assert part.counts["screened"] == 3


def test_overrides_change_the_verdict_and_keep_the_computed_result(study):
    ovr = [{"subject_id": "NCT06849401-04", "criterion_id": "I5", "checkpoint": "screening", "result": "MET", "reason": "repeat flow cytometry 83%", "actor": "dr a"}]
    rep = screen(study, "NCT06849401-04", overrides=ovr)
    r = rep.result("I5")
    assert (r.value, r.computed) == ("MET", "NOT_MET")
    assert rep.verdict == ELIGIBLE and rep.computed_verdict == INELIGIBLE
    d = rep.to_dict()
    i5 = next(c for c in d["criteria"] if c["criterion_id"] == "I5")
    assert i5["override"]["reason"] == "repeat flow cytometry 83%" and i5["computed"] == "NOT_MET"
    assert i5["rule"]["trial"] == "NCT06849401" and i5["rule"]["criterion_id"] == "I5" and i5["rule"]["text"].startswith("Cell immunophenotyping")
    # an override for another checkpoint or subject does not apply
    other = [dict(ovr[0], checkpoint="pre-infusion"), dict(ovr[0], subject_id="NCT06849401-01", checkpoint=None)]
    assert screen(study, "NCT06849401-04", overrides=other).verdict == INELIGIBLE
