"""The demo's synthetic course: cd7kit.sim virtual patients for the enrolled children, deterministic, valid,
labelled, consistent with the screening data, and its simulated findings are in the raw data."""

import pandas as pd
import pytest

from cd7kit.clinical import grading_overview
from cd7kit.data import Study
from cd7kit.datasets import load_demo_study
from cd7kit.datasets.screening import screening_tables
from cd7kit.datasets.synthetic import DOSE_DAYS, DOSE_LEVELS_CELLS_PER_KG, SOURCE, course_tables, story

SUBJECTS = pd.DataFrame(
    {
        "subject_id": [f"SYN-{i:02d}" for i in range(1, 10)],
        "status": "enrolled",
        "age_years": [4.0, 7, 9, 12, 15, 17, 3, 11, 16],
        "sex": ["F", "M"] * 4 + ["F"],
        "dose_level": [1, 1, 1, 2, 2, 2, 3, 3, 3],
    }
)


def test_deterministic_and_valid():
    a, pa = course_tables(SUBJECTS, seed=7)
    b, pb = course_tables(SUBJECTS, seed=7)
    assert pa == pb
    for t in a:
        pd.testing.assert_frame_equal(a[t], b[t])
    s = Study.from_tables(subjects=SUBJECTS, **a)
    assert s.summary()["day_span"] == [-5.0, 180.0]  # lymphodepletion to day +180
    for t in ("observations", "interventions", "events"):
        assert (getattr(s, t)["source"] == SOURCE).all() and SOURCE.startswith("synthetic")
    c, _ = course_tables(SUBJECTS, seed=8)
    assert not c["observations"]["value"].equals(a["observations"]["value"])


def test_six_doses_at_the_dose_level():
    tabs, _ = course_tables(SUBJECTS, seed=1)
    s = Study.from_tables(subjects=SUBJECTS, **tabs)
    for _, sub in SUBJECTS.iterrows():
        inf = s.infusions(sub["subject_id"])
        assert list(inf["start_day"]) == list(map(float, DOSE_DAYS))
        assert set(inf["dose"]) == {DOSE_LEVELS_CELLS_PER_KG[int(sub["dose_level"])]}
        # CAR samples on a dosing day are drawn before the dose: nothing is quantifiable on day 0
        car = s.series(sub["subject_id"], "CAR_COPIES")
        assert car.loc[car["day"] == 0, "blq"].all()


def test_simulated_crs_is_in_the_raw_findings():
    for seed in range(3):
        tabs, planted = course_tables(SUBJECTS, seed=seed)
        s = Study.from_tables(subjects=SUBJECTS, **tabs)
        assert not (s.events["kind"] == "crs").any()  # no grades in the data: the grading engine grades
        for sid, p in planted.items():
            iv = s.interventions[s.interventions["subject_id"] == sid]
            fever = (s.series(sid, "TEMP").query("day <= 28")["value"] >= 38.0).any()
            pressor = (iv["kind"] == "vasopressor").any()
            mask = (iv["device"] == "simple_facemask").any()
            dlt = not s.events[(s.events["subject_id"] == sid) & (s.events["kind"] == "dlt")].empty
            assert dlt == (p["crs_grade"] >= 3) == (pressor or mask)
            if fever:
                assert p["crs_grade"] >= 1


def test_demo_course_follows_the_screening_data_and_tells_the_story():
    scr = screening_tables(2026)
    subj = scr["subjects"]
    tabs, planted = course_tables(subj, seed=2026, observations=scr["observations"])
    enrolled = subj[subj["status"] == "enrolled"]
    assert sorted(planted) == sorted(enrolled["subject_id"])
    o = scr["observations"]
    bm = o[(o["code"] == "BM_BLASTS") & (o["day"] < 0)].sort_values("day").groupby("subject_id")["value"].last()
    for sid, p in planted.items():
        assert p["bm0"] == pytest.approx(bm[sid])  # the model starts from the child's screening marrow
    assert story(planted, dict(zip(enrolled["subject_id"], enrolled["dose_level"].astype(int), strict=True)))


def test_grading_engine_on_the_demo_agrees_with_the_dlt_events():
    """The simulation's investigators and the ASTCT grader see the same CRS: grade >= 3 exactly where a DLT is."""
    st = load_demo_study()
    ov = grading_overview(st)
    dlt = set(st.events.loc[st.events["kind"] == "dlt", "subject_id"])
    trial = [s for s in st.meta["trial_subjects"] if not st.infusions(s).empty]
    assert len(trial) == 9
    for sid in trial:
        assert (ov[sid]["max_crs"] >= 3) == (sid in dlt), sid
    # CRS is more severe at the top dose level
    lv = st.subjects.set_index("subject_id")["dose_level"]
    worst = {k: max(ov[s]["max_crs"] for s in trial if lv[s] == k) for k in (1, 2, 3)}
    assert worst[1] <= worst[2] < worst[3] == 3
