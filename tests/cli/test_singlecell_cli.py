"""``cd7kit singlecell simulate`` and ``run`` end to end on a small planted data set."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cd7kit.cli import app


def test_simulate_and_run(tmp_path):
    runner = CliRunner()
    h5 = tmp_path / "sim.h5ad"
    r = runner.invoke(app, ["singlecell", "simulate", "--cells", "1000", "--genes", "350", "--seed", "1",
                            "--out", str(h5), "--json"])
    assert r.exit_code == 0, r.output
    assert h5.exists()
    # a stored study with the same patients: the summaries are appended as a new version
    import pandas as pd

    from cd7kit.data import Study
    from cd7kit.store import open_store

    db = str(tmp_path / "store.db")
    subjects = pd.DataFrame({"subject_id": [f"P{i}" for i in range(1, 8)], "status": "enrolled", "sex": "U"})
    store = open_store(db)
    store.save_study(Study.from_tables(subjects=subjects), "tester", "system", study_id="SC1")
    store.close()
    out = tmp_path / "run"
    r = runner.invoke(app, ["singlecell", "run", str(h5), "--patient-key", "patient", "--timepoint-key", "timepoint",
                            "--out", str(out), "--no-umap", "--no-doublets", "--no-de", "--relapse", "P3,P6",
                            "--n-top-genes", "300", "--graph-method", "gauss", "--study", "SC1", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    for f in ("annotated.h5ad", "composition.csv", "monocyte_loss.csv", "observations.csv", "umap_cell_type.png",
              "composition.png", "s100.png", "report.json"):
        assert (out / f).exists(), f
    rep = json.loads((out / "report.json").read_text())
    assert rep["rule"]["system"] == "cd7kit.singlecell"
    assert any(row["code"] == "SC_CD7NEG_T_FRAC" for row in rep["value"]["observations"])
    assert rep["study_write"]["written"] == "store" and rep["study_write"]["version"] == 2
    store = open_store(db)
    try:
        study = store.load_study("SC1")
    finally:
        store.close()
    assert len(study.observations) == len(rep["value"]["observations"]) > 0
    assert set(study.series("P1", "SC_MONO_FRAC")["day"]) == {-5.0, 14.0}


def test_run_bad_key_exits_2(tmp_path):
    runner = CliRunner()
    h5 = tmp_path / "sim.h5ad"
    runner.invoke(app, ["singlecell", "simulate", "--cells", "300", "--genes", "300", "--out", str(h5)])
    r = runner.invoke(app, ["singlecell", "run", str(h5), "--patient-key", "nope", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0
