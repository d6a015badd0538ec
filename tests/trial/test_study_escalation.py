"""Escalation on a Study: DLT window, evidence naming the subjects and events, the NCT06849401 preset."""

from __future__ import annotations

import pandas as pd
import pytest

from cd7kit.data import Study
from cd7kit.trial import NCT06849401, DltDefinition, escalation_state, next_dose_for_study


def _study(dlt_rows, levels=(1, 1, 1, 2, 2, 2), followup=40.0):
    ids = [f"P{i}" for i in range(1, len(levels) + 1)]
    subjects = pd.DataFrame({"subject_id": ids, "dose_level": list(levels)})
    iv = pd.DataFrame({"subject_id": ids * 2, "start_day": [0.0] * len(ids) + [followup] * len(ids), "kind": ["car_infusion"] * (2 * len(ids))})
    ev = pd.DataFrame(dlt_rows, columns=["subject_id", "day", "kind", "term", "grade"]) if dlt_rows else None
    return Study.from_tables(subjects, None, iv, ev, meta={"study_id": "T", "preset": "NCT06849401"})


def test_preset():
    assert NCT06849401.dose_levels == (4e7, 1.2e8, 3.6e8)
    assert NCT06849401.cohortsize == 3 and NCT06849401.target == 0.3
    assert NCT06849401.ncohort * 3 == 9 and NCT06849401.max_ncohort * 3 == 12
    assert NCT06849401.labels[0] == "4e7 cells/kg"
    d = NCT06849401.design("boin")
    assert d.ncohort == 3 and d.cohortsize == 3


def test_state_counts_dlts_in_window_and_names_evidence():
    st = _study([["P5", 12.0, "dlt", "grade 3 CRS", 3], ["P6", 35.0, "dlt", "late cytopenia", 4], ["P2", 5.0, "ae", "fever", 1]])
    s = escalation_state(st)
    assert [d.n for d in s.doses] == [3, 3, 0]
    assert [d.dlt for d in s.doses] == [0, 1, 0]  # the day-35 DLT is outside the 28-day window
    assert s.current == 2
    rec = s.recommendation
    assert rec.value == 2 and rec.action == "stay"  # 1/3 at dose 2
    ev = [e for e in rec.evidence if e.table == "events"]
    assert [(e.subject_id, e.day) for e in ev] == [("P5", 12.0)]
    assert {e.subject_id for e in rec.evidence} == {"P4", "P5", "P6"}
    d = s.to_dict()
    assert d["value"] == 2 and d["doses"][1]["dlt_subjects"] == ["P5"] and d["rule"]["options"]["dlt"]["window_days"] == 28.0


def test_longer_window_and_grade_filter():
    st = _study([["P5", 12.0, "dlt", "grade 3 CRS", 3], ["P6", 35.0, "dlt", "late cytopenia", 4]])
    s = escalation_state(st, dlt=DltDefinition(window_days=42))
    assert s.doses[1].dlt == 2 and s.recommendation.action == "de-escalate"
    s = escalation_state(st, dlt=DltDefinition(window_days=42, min_grade=4))
    assert s.doses[1].dlt == 1


def test_escalation_and_maximum_sample_size():
    s = escalation_state(_study([], levels=(1, 1, 1)))
    assert s.recommendation.action == "escalate" and s.value == 2
    s = escalation_state(_study([], levels=(1, 1, 1, 2, 2, 2, 3, 3, 3)))
    assert s.recommendation.stop and s.recommendation.mtd.mtd == 3  # 9 patients: stop, select
    assert next_dose_for_study(_study([], levels=(1, 1, 1)), design="3+3").value == 2


def test_pending_follow_up_is_reported():
    s = escalation_state(_study([], levels=(1, 1, 1), followup=10.0))
    assert [d.pending for d in s.doses] == [3, 0, 0]
    assert any("10 of 28 days" in m for m in s.missing)
    t = escalation_state(_study([], levels=(1, 1, 1), followup=10.0), design="tite-boin")
    assert t.recommendation.action == "suspend"


def test_no_subjects_yet():
    st = Study.from_tables(pd.DataFrame({"subject_id": ["S1"], "status": ["screened"]}), meta={"preset": "NCT06849401"})
    s = escalation_state(st)
    assert s.recommendation is None and s.current is None and len(s.doses) == 3
    assert any("start at dose level 1" in m for m in s.missing)


def test_dose_level_above_preset_is_an_input_error():
    from cd7kit.errors import InputError

    with pytest.raises(InputError):
        escalation_state(_study([], levels=(4, 4, 4)))
