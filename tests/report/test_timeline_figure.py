"""The subject timeline (report.figures.subject_timeline): measurement lines break across long gaps without
data, so that no course is drawn that was never observed; every measured point is still drawn."""

from __future__ import annotations

import math

import pandas as pd

from cd7kit.datasets import load_demo_study
from cd7kit.datasets.case_reports import CASE1
from cd7kit.report.figures import MAX_LINE_GAP_DAYS, break_gaps, subject_timeline


def test_break_gaps_inserts_one_break_per_long_gap_only():
    s = pd.DataFrame({"day": [1.0, 2.0, 2.0 + MAX_LINE_GAP_DAYS, 40.0], "value": [1.0, 2.0, 3.0, 4.0]})
    out = break_gaps(s)
    # 2 -> 16 is exactly the limit (kept), 16 -> 40 is longer (broken)
    assert out["value"].isna().sum() == 1
    assert list(out["value"].dropna()) == [1.0, 2.0, 3.0, 4.0]
    i = int(out["value"].isna().to_numpy().nonzero()[0][0])
    assert out["day"].iloc[i - 1] == 2.0 + MAX_LINE_GAP_DAYS and out["day"].iloc[i + 1] == 40.0


def test_case1_temperature_is_not_joined_across_the_transplant_gap():
    study = load_demo_study()
    fig = subject_timeline(study, CASE1)
    (temp,) = [t for t in fig.data if t.name and t.name.startswith("TEMP")]
    days = [d for d in temp.x]
    values = [v for v in temp.y]
    measured = study.series(CASE1, "TEMP")
    assert sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))) == sorted(measured["value"])
    # the fever of days 23-30 after the second infusion and the 42 degC after HSCT are separate segments
    k = days.index(64.0)
    assert values[k - 1] is None or math.isnan(values[k - 1])
    assert temp.connectgaps is False


def test_a_panel_without_data_in_the_window_says_so():
    study = load_demo_study()
    fig = subject_timeline(study, CASE1)
    notes = [a.text for a in fig.layout.annotations if a.text and a.text.startswith("no measurement")]
    # case 1's only platelet count is from diagnosis (day -547), outside the days shown; no cytokine values
    assert "no measurement in the days shown (1 outside)" in notes
    assert "no measurement in the days shown" in notes
    # the temperature panel has data and no such note
    assert len(notes) == 2
