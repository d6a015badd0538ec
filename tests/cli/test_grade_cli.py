"""``cd7kit grade``: JSON per subject from a CSV-template folder, options, errors (exit code 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cd7kit.cli import app
from cd7kit.data import Study
from cd7kit.io import write_cd7kit


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    subjects = pd.DataFrame({"subject_id": ["P1", "P2"], "age_years": [39.0, 17.0]})
    obs = pd.DataFrame(
        {
            "subject_id": ["P1"] * 4 + ["P2"] * 2,
            "day": [2.0, 8.0, 9.0, 13.0, 7.0, 7.0],
            "code": ["TEMP", "TEMP", "TEMP", "ICE", "TEMP", "ICE"],
            "value": [39.5, 38.3, 37.0, 8.0, 38.3, 10.0],
            "unit": ["degC", "degC", "degC", "score", "degC", "score"],
        }
    )
    iv = pd.DataFrame(
        {
            "subject_id": ["P1", "P1", "P1", "P1", "P2"],
            "start_day": [0.0, 8.0, 8.0, 8.0, 0.0],
            "end_day": [None, 10.0, 10.0, None, None],
            "kind": ["car_infusion", "vasopressor", "oxygen", "tocilizumab", "car_infusion"],
            "agent": ["CAR-T", "norepinephrine", None, "tocilizumab", "CAR-T"],
            "device": [None, None, "simple_facemask", None, None],
            "flow_l_min": [None, None, 10.0, None, None],
        }
    )
    st = Study.from_tables(subjects, obs, iv, meta={"study_id": "CLI"})
    return write_cd7kit(st, tmp_path_factory.mktemp("study") / "cli")


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_grade_crs_icans_json(folder):
    r = run("grade", str(folder), "--system", "crs", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    by = {s["subject_id"]: s for s in d["subjects"]}
    assert by["P1"]["crs"]["value"] == 3 and by["P2"]["crs"]["value"] == 1
    p1 = by["P1"]["crs"]
    assert p1["rule"]["system"] == "ASTCT CRS" and p1["details"]["episodes"][0]["onset_day"] == 2
    assert {row["day"] for row in p1["details"]["days"]} >= {2, 8, 9}
    assert any(e["table"] == "interventions" for e in p1["evidence"])
    r = run("grade", str(folder), "--system", "icans", "--subject", "P1", "--json")
    d = json.loads(r.stdout)
    assert [s["subject_id"] for s in d["subjects"]] == ["P1"] and d["subjects"][0]["icans"]["value"] == 1


def test_grade_options_and_ctcae_version(folder):
    r = run("grade", str(folder), "--system", "crs", "--option", "vasopressor_implies_hypotension=false", "--option", "hypotension=flag", "--json")
    d = json.loads(r.stdout)
    assert {s["subject_id"]: s["crs"]["value"] for s in d["subjects"]}["P1"] == 3  # facemask still grade 3
    r = run("grade", str(folder), "--system", "ctcae", "--option", "version=6.0", "--json")
    d = json.loads(r.stdout)
    versions = {x["rule"]["version"] for s in d["subjects"] for x in s["ctcae"]}
    assert versions == {"6.0"}


def test_grade_dlt(folder):
    r = run("grade", str(folder), "--system", "dlt", "--json")
    d = json.loads(r.stdout)
    assert {s["subject_id"]: s["dlt"]["value"] for s in d["subjects"]} == {"P1": False, "P2": False}


@pytest.mark.parametrize(
    "extra",
    [["--system", "crs", "--option", "nonsense=1"], ["--system", "nope"], ["--option", "novalue"], ["--subject", "NOBODY", "--system", "crs"]],
)
def test_bad_input_exit_code_2(folder, run_main, extra):
    code, _, err = run_main("grade", str(folder), *extra, "--json")
    assert code == 2
    assert json.loads(err)["error"] == "input"
