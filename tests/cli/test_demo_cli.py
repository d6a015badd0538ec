"""`cd7kit demo`: loads the demo study idempotently and lists its 14 subjects with every engine's summary."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cd7kit.cli import app


def test_demo_json_lists_14_subjects_and_is_idempotent(tmp_path):
    db = str(tmp_path / "demo.sqlite")
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--db", db, "--json"])
    assert first.exit_code == 0, first.output
    d = json.loads(first.stdout)
    assert d["load"]["written"] is True
    subjects = {s["subject_id"]: s for s in d["subjects"]}
    assert len(subjects) == 14
    assert sum(s["source"] == "synthetic" for s in subjects.values()) == 12
    assert all(s["n_observations"] > 0 for s in subjects.values())
    assert d["summary"]["subjects_by_dose_level"] == {"1": 3, "2": 3, "3": 3, "none": 5}
    # each engine's summary is there
    assert d["screening"]["value"]["screened"] == 12 and d["screening"]["value"]["enrolled"] == 9
    assert len(d["screening"]["excluded"]) == 3
    assert d["escalation"]["n"] == [3, 3, 3] and d["escalation"]["recommendation"]["action"]
    assert d["grading"]["PAN-CASE1"]["max_crs"] == 3 and d["grading"]["PAN-CASE1"]["max_icans"] == 1
    assert d["grading"]["PAN-CASE2"]["max_crs"] == 1
    kin = {k["subject_id"]: k for k in d["kinetics"]}
    assert kin["NCT06849401-01"]["cmax"] > 0 and kin["PAN-CASE1"]["cmax"] is None
    second = runner.invoke(app, ["demo", "--db", db, "--json"])
    assert second.exit_code == 0 and json.loads(second.stdout)["load"]["written"] is False
