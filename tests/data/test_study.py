import pandas as pd
import pytest

from cd7kit.data import Study
from cd7kit.errors import InputError


def test_query_helpers(tiny_study):
    s = tiny_study
    assert list(s.series("S1", "TEMP")["value"]) == [36.8, 39.1]
    assert s.baseline("S1", "TEMP")["value"] == 36.8
    assert s.baseline("S1", "TEMP", before_day=-5) is None
    assert s.baseline("S1", "TEMP", before_day=5, lookback_days=4)["value"] == 39.1
    assert s.baseline("S1", "TEMP", before_day=5, lookback_days=2) is None
    on3 = s.interventions_on("S1", 3.0)
    assert list(on3["kind"]) == ["vasopressor"]
    assert list(s.interventions_on("S1", 0.5)["kind"]) == ["car_infusion"]
    assert s.interventions_on("S1", 5.0).empty
    assert s.lymphodepletion_start("S1") == -4.0
    assert s.subject("S2").subject_ids == ["S2"]


def test_tables_are_copies(tiny_study):
    obs = tiny_study.table("observations")
    obs.loc[:, "value"] = 0
    assert tiny_study.observations["value"].iloc[0] == 36.8


def test_all_problems_reported_together():
    with pytest.raises(InputError) as ei:
        Study.from_tables(
            subjects=pd.DataFrame({"subject_id": ["A"], "sex": ["X"]}),
            observations=pd.DataFrame(
                {"subject_id": ["A", "B"], "day": [1.0, 2.0], "code": ["TEMP", "NOPE"], "value": [101.0, 1.0], "unit": ["degC", "x"]}
            ),
        )
    msgs = [str(p) for p in ei.value.problems]
    assert any("sex" in m for m in msgs)
    err = ei.value
    # the sex error stops validation of dependent checks only after pandera: fix it and see the rest
    with pytest.raises(InputError) as ei2:
        Study.from_tables(
            subjects=pd.DataFrame({"subject_id": ["A"], "sex": ["M"]}),
            observations=pd.DataFrame(
                {"subject_id": ["A", "B"], "day": [1.0, 2.0], "code": ["TEMP", "NOPE"], "value": [101.0, 1.0], "unit": ["degC", "x"]}
            ),
        )
    probs = ei2.value.problems
    cols = {(p.row, p.column) for p in probs}
    assert (2, "value") in cols  # 101 degC is implausible
    assert (3, "code") in cols  # unknown code
    assert (3, "subject_id") in cols  # subject B not in subjects
    assert err.to_dict()["error"] == "input"


def test_end_before_start_rejected():
    with pytest.raises(InputError, match="end_day"):
        Study.from_tables(
            subjects=pd.DataFrame({"subject_id": ["A"]}),
            interventions=pd.DataFrame({"subject_id": ["A"], "start_day": [3.0], "end_day": [1.0], "kind": ["oxygen"]}),
        )
