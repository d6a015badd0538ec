"""The fixed JSON contract of ``cd7kit escalate`` (issue 3, section 5): keys, 1-based doses, JSON on stdout."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cd7kit.cli import app

runner = CliRunner()


def run(*args: str) -> dict:
    res = runner.invoke(app, ["escalate", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_boundaries_contract():
    d = run("boundaries", "--target", "0.3", "--ncohort", "10", "--cohortsize", "3", "--json")
    assert round(d["lambda_e"], 4) == 0.2365 and round(d["lambda_d"], 4) == 0.3585
    assert len(d["table"]) == 30
    assert d["table"][0] == {"n": 1, "escalate_max": 0, "deescalate_min": 1, "eliminate_min": None}
    row3 = d["table"][2]
    assert row3 == {"n": 3, "escalate_max": 0, "deescalate_min": 2, "eliminate_min": 3}
    e = run("boundaries", "--target", "0.3", "--ncohort", "4", "--cohortsize", "3", "--extrasafe", "--cutoff-eli", "0.95", "--offset", "0.05",
            "--n-earlystop", "100", "--json")
    assert [r["stop_min"] for r in e["table"]][2:] == [2, 3, 3, 4, 4, 4, 5, 5, 6, 6]


def test_simulate_contract_reproduces_get_oc():
    d = run("simulate", "--design", "boin", "--target", "0.3", "--p-true", "0.05,0.15,0.3,0.45,0.6", "--ncohort", "20", "--cohortsize", "3",
            "--ntrial", "1000", "--seed", "6", "--rng", "r", "--json")
    for k in ("selection_pct", "patients_mean", "dlt_mean", "stop_pct", "n_mean", "dlt_total_mean", "overdose60_pct", "overdose80_pct"):
        assert k in d
    assert [round(v, 1) for v in d["selection_pct"]] == [1.1, 23.5, 65.0, 10.1, 0.2]
    assert round(d["n_mean"], 3) == 59.943 and round(d["stop_pct"], 1) == 0.1
    assert "per_trial" not in d


def test_simulate_per_trial_and_options():
    d = run("simulate", "--design", "boin", "--target", "0.3", "--p-true", "0.05,0.15,0.3,0.45,0.6", "--ncohort", "10", "--cohortsize", "3",
            "--ntrial", "20", "--seed", "6", "--rng", "r", "--n-earlystop", "12", "--startdose", "2", "--titration", "--extrasafe", "--offset", "0.05",
            "--boundmtd", "--cutoff-eli", "0.95", "--p-saf", "0.18", "--p-tox", "0.42", "--per-trial", "--json")
    assert len(d["per_trial"]) == 20
    rec = d["per_trial"][0]
    assert set(rec) >= {"n", "y", "mtd"} and len(rec["n"]) == 5
    assert rec["mtd"] is None or 1 <= rec["mtd"] <= 5


def test_simulate_other_designs():
    e = run("simulate", "--design", "3+3", "--p-true", "0.05,0.15,0.3,0.45,0.6", "--json")
    assert e["method"] == "exact enumeration" and abs(sum(e["selection_pct"]) + e["stop_pct"] - 100) < 1e-9
    c = run("simulate", "--design", "crm", "--target", "0.25", "--p-true", "0.1,0.2,0.3,0.5", "--skeleton", "0.1,0.18,0.25,0.35", "--ntrial", "50",
            "--ncohort", "4", "--rng", "numpy", "--json")
    assert len(c["selection_pct"]) == 4
    t = run("simulate", "--design", "tite-boin", "--p-true", "0.05,0.15,0.3", "--ntrial", "50", "--window", "3", "--accrual", "2", "--json")
    assert t["duration_mean"] > 0


def test_select_mtd_contract():
    d = run("select-mtd", "--target", "0.3", "--n", "3,6,18,3,0", "--y", "0,1,5,3,0", "--json")
    assert d["mtd"] == 3
    assert d["phat"][4] is None and round(d["phat"][2], 2) == 0.28
    assert {"value", "evidence", "rule", "missing"} <= set(d)


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["--design", "boin", "--target", "0.3", "--n", "3,3,0", "--y", "0,2,0", "--current", "2"], {"next_dose": 1, "action": "de-escalate", "value": 1}),
        (["--design", "3+3", "--n", "3,0", "--y", "1,0", "--current", "1"], {"next_dose": 1, "action": "stay"}),
        (["--design", "tite-boin", "--n", "6,0", "--y", "1,0", "--current", "1", "--pending", "25,25;"], {"action": "escalate"}),
    ],
    ids=["boin", "3+3", "tite-boin"],
)
def test_next_contract(args, want):
    d = run("next", *args, "--json")
    assert {k: d[k] for k in want} == want


def test_next_with_study_folder(tmp_path):
    from cd7kit.data import Study
    from cd7kit.io import write_cd7kit

    ids = ["A1", "A2", "A3"]
    st = Study.from_tables(
        pd.DataFrame({"subject_id": ids, "dose_level": [1, 1, 1]}),
        None,
        pd.DataFrame({"subject_id": ids, "start_day": [0.0] * 3, "end_day": [30.0] * 3, "kind": ["car_infusion"] * 3}),
        pd.DataFrame({"subject_id": ["A2"], "day": [9.0], "kind": ["dlt"], "term": ["grade 4 neutropenia > 14 days"], "grade": [4]}),
        meta={"study_id": "S"},
    )
    write_cd7kit(st, tmp_path / "s")
    d = run("next", "--study", str(tmp_path / "s"), "--json")
    assert d["n"] == [1 * 3] and d["y"] == [1]
    assert d["recommendation"]["action"] == "stay"
    assert any(e["subject_id"] == "A2" and e["table"] == "events" for e in d["evidence"])


def test_table_command():
    d = run("table", "--design", "boin", "--json")
    assert [r["n"] for r in d["table"]] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    d = run("table", "--design", "3+3", "--json")
    assert d["design"] == "3+3" and len(d["table"]) == 5
    d = run("table", "--design", "tite-boin", "--ncohort", "2", "--json")
    assert d["design"] == "tite-boin" and d["table"]
    res = runner.invoke(app, ["escalate", "table", "--design", "boin"])
    assert res.exit_code == 0 and "Eliminate if # of DLT" in res.stdout


def test_bad_input_exits_2_with_problems_on_stderr(run_main):
    code, _, err = run_main("escalate", "select-mtd", "--n", "3,3", "--y", "4,0", "--json")
    assert code == 2
    problems = json.loads(err)["problems"]
    assert problems and "DLTs must be between 0 and n" in problems[0]["message"]
