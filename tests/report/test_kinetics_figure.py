"""The CAR kinetics spaghetti plot (report.figures.kinetics_spaghetti): one panel per dose level on log axes,
every plotted point a Study row of that panel's subjects, BLQ samples at their LLOQ, no data drawn twice."""

from __future__ import annotations

import pandas as pd
import pytest

from cd7kit.data import Study
from cd7kit.datasets import load_demo_study
from cd7kit.report.figures import kinetics_spaghetti


@pytest.fixture(scope="module")
def demo() -> Study:
    return load_demo_study()


def _blood(study: Study, code: str) -> pd.DataFrame:
    s = study.series(None, code)
    return s[s["specimen"].isna() | (s["specimen"] == "PB")]


def test_one_panel_per_dose_level_with_each_quantified_sample_once(demo):
    fig = kinetics_spaghetti(demo, "CAR_COPIES")
    levels = sorted(int(v) for v in demo.subjects["dose_level"].dropna().unique())
    lines = [t for t in fig.data if t.name.startswith("dose level")]
    assert [t.name for t in lines] == [f"dose level {v}" for v in levels]
    axes = {t.xaxis for t in lines}
    assert len(axes) == len(levels)  # separate panels
    for k in range(1, len(levels) + 1):
        assert fig.layout[f"yaxis{'' if k == 1 else k}"].type == "log"
    blood = _blood(demo, "CAR_COPIES")
    quantified = blood[blood["value"].notna() & (blood["value"] > 0)]
    level_of = demo.subjects.set_index("subject_id")["dose_level"]
    plotted = []
    for t, lvl in zip(lines, levels, strict=True):
        for (sid, row), x, y in zip(t.customdata, t.x, t.y, strict=True):
            if row is None:
                assert x is None and y is None  # the gap between two subjects
                continue
            obs = quantified[quantified["row_id"] == row].iloc[0]
            assert obs["subject_id"] == sid and level_of[sid] == lvl and obs["day"] == x and obs["value"] == pytest.approx(y)
            plotted.append(row)
    on_level = quantified[quantified["subject_id"].map(level_of).notna()]
    assert sorted(plotted) == sorted(on_level["row_id"].tolist())  # each sample of a dosed subject, once


def test_below_lloq_samples_and_lloq_line(demo):
    fig = kinetics_spaghetti(demo, "CAR_COPIES")
    blood = _blood(demo, "CAR_COPIES")
    blq = blood[blood["blq"].fillna(False).astype(bool) & blood["subject_id"].map(demo.subjects.set_index("subject_id")["dose_level"]).notna()]
    marks = [t for t in fig.data if t.name == "below LLOQ"]
    assert sum(len(t.x) for t in marks) == len(blq) > 0
    assert all(y == pytest.approx(lloq) for t in marks for y, lloq in zip(t.y, blq.set_index("row_id").loc[[r for _, r in t.customdata], "lloq"], strict=True))
    lloq_lines = [t for t in fig.data if t.name == "LLOQ"]
    assert lloq_lines and all(t.y[0] == t.y[1] == pytest.approx(blood["lloq"].min()) for t in lloq_lines)


def test_subjects_without_dose_level_get_their_own_panel_and_empty_studies_say_so(demo):
    no_level = demo.subjects.loc[demo.subjects["dose_level"].isna(), "subject_id"].tolist()
    with_cells = [s for s in no_level if not _blood(demo, "CAR_CELLS").query("subject_id == @s & value > 0").empty]
    assert with_cells  # the case-report patients (CAR-T outside the trial's dose levels)
    fig = kinetics_spaghetti(demo, "CAR_CELLS", subject_ids=with_cells)
    assert [t.name for t in fig.data if t.mode == "lines+markers"] == ["no dose level"]
    empty = kinetics_spaghetti(demo, "CAR_COPIES", subject_ids=[])
    assert not [t for t in empty.data if t.name.startswith("dose level")]
    assert any("no CAR_COPIES observations" in (a.text or "") for a in empty.layout.annotations)
