"""The synthetic course generator: deterministic, valid, labelled, and its planted findings are in the data."""

import pandas as pd

from cd7kit.data import Study
from cd7kit.datasets.synthetic import DOSE_DAYS, DOSE_LEVELS_CELLS_PER_KG, SOURCE, course_tables

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
    assert s.summary()["day_span"] == [-7.0, 180.0]
    assert (s.observations["source"] == SOURCE).all()


def test_six_doses_at_the_dose_level():
    tabs, _ = course_tables(SUBJECTS, seed=1)
    s = Study.from_tables(subjects=SUBJECTS, **tabs)
    for _, sub in SUBJECTS.iterrows():
        inf = s.infusions(sub["subject_id"])
        assert list(inf["start_day"]) == list(map(float, DOSE_DAYS))
        assert set(inf["dose"]) == {DOSE_LEVELS_CELLS_PER_KG[int(sub["dose_level"])]}


def test_planted_crs_is_in_the_raw_findings():
    for seed in range(5):
        tabs, planted = course_tables(SUBJECTS, seed=seed)
        s = Study.from_tables(subjects=SUBJECTS, **tabs)
        for sid, p in planted.items():
            fever = (s.series(sid, "TEMP")["value"] >= 38.0).any()
            pressor = not s.interventions[(s.interventions["subject_id"] == sid) & (s.interventions["kind"] == "vasopressor")].empty
            dlt = not s.events[(s.events["subject_id"] == sid) & (s.events["kind"] == "dlt")].empty
            assert fever == (p["crs_max_grade"] > 0)
            assert pressor == (p["crs_max_grade"] >= 3) == dlt
