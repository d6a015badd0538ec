"""The case-report patients carry every number the text states, on the day it states it."""

import pandas as pd
import pytest

from cd7kit.data import Study
from cd7kit.datasets.case_reports import (
    CASE1,
    CASE1_REINFUSION_DAY,
    CASE2,
    CONDITIONING_TO_HSCT_DAYS,
    case_report_tables,
)


@pytest.fixture(scope="module")
def cases() -> Study:
    return Study.from_tables(**case_report_tables(), meta={"study_id": "CASES"})


def _obs(s: Study, sid: str, code: str, specimen: str | None = None) -> pd.DataFrame:
    return s.series(sid, code, specimen=specimen)


def test_case1_stated_numbers(cases):
    a = CASE1_REINFUSION_DAY
    assert a == 21  # 31 May -> 21 June 2021
    infusions = cases.infusions(CASE1)
    assert list(infusions["start_day"]) == [0.0, 21.0]
    assert list(infusions["dose"]) == [1e6, 2e6]
    assert cases.lymphodepletion_start(CASE1) == -4.0
    mrd = _obs(cases, CASE1, "MRD_FLOW")
    assert (mrd["day"].tolist(), mrd["value"].tolist()) == ([18.0], [95.73])
    temp = _obs(cases, CASE1, "TEMP")
    post = temp[(temp["day"] >= a) & (temp["day"] < a + 30)]
    assert post["value"].max() == 39.5
    fever_days = post.loc[post["value"] >= 38.0, "day"] - a
    assert fever_days.min() == 2 and len(fever_days) == 7  # fever from day 2, for one week
    il6 = _obs(cases, CASE1, "IL6_FOLD")
    assert (il6["day"].item(), il6["value"].item()) == (a + 10, 297.0)
    ice = _obs(cases, CASE1, "ICE")
    assert (ice["day"].item(), ice["value"].item()) == (a + 13, 8.0)
    ox = cases.interventions_on(CASE1, a + 8, "oxygen")
    assert ox["flow_l_min"].item() == 10.0 and ox["device"].item() == "simple_facemask"
    assert not cases.interventions_on(CASE1, a + 8, "vasopressor").empty
    assert cases.interventions_on(CASE1, a + 7, "vasopressor").empty  # hypotension from day 8
    toci = cases.interventions[(cases.interventions["subject_id"] == CASE1) & (cases.interventions["kind"] == "tocilizumab")]
    assert sorted(toci["start_day"] - a) == [8.0, 14.0]
    hsct = a + 34 + CONDITIONING_TO_HSCT_DAYS
    sc5b9 = _obs(cases, CASE1, "SC5B9")
    assert (sc5b9["day"].item(), sc5b9["value"].item()) == (hsct + 3, 512.0)
    death = cases.events[(cases.events["subject_id"] == CASE1) & (cases.events["kind"] == "death")]
    assert death["day"].item() == hsct + 8


def test_case2_stated_numbers(cases):
    assert list(cases.infusions(CASE2)["dose"]) == [5e5, 2.5e5]
    wbc = _obs(cases, CASE2, "WBC")
    assert 425.0 in wbc["value"].tolist() and wbc.loc[wbc["value"] == 425.0, "day"].item() == 3.0
    ebv = _obs(cases, CASE2, "EBV_DNA")
    assert sorted(ebv["value"]) == [2.76e3, 5.19e5]
    assert set(ebv["specimen"]) == {"PB", "CSF"}
    ev = cases.events[cases.events["subject_id"] == CASE2]
    hsct = ev.loc[ev["kind"] == "hsct", "day"].item()
    assert ev.loc[ev["kind"] == "death", "day"].item() - hsct == 561
    eng = ev[ev["kind"] == "engraftment"].set_index("term")["day"] - hsct
    assert eng.to_dict() == {"neutrophil": 12.0, "platelet": 13.0}


def test_every_row_has_provenance_and_approximations_say_so(cases):
    for t in ("observations", "interventions", "events"):
        df = cases.table(t)
        assert df["source"].notna().all() and (df["source"].str.len() > 20).all(), t
    # the daily temperature curve of case 1 is not in the text: it must be labelled as an approximation
    temp = _obs(cases, CASE1, "TEMP")
    assert temp[temp["value"].isin([38.4, 38.9])]["source"].str.startswith("approximated").all()
