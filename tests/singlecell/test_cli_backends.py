"""``cd7kit singlecell run --backend dask`` gives the in-memory answer; ``--gpu`` without rapids fails clearly."""

from __future__ import annotations

import json
import sys

import pandas as pd
from typer.testing import CliRunner

from cd7kit.cli import app
from cd7kit.errors import Cd7kitError, InputError
from cd7kit.singlecell.pp import GPUUnavailableError

ARGS = ["--patient-key", "patient", "--timepoint-key", "timepoint", "--no-umap", "--no-doublets", "--no-de",
        "--n-top-genes", "300", "--graph-method", "gauss", "--relapse", "P3,P6", "--json"]


def test_run_with_the_dask_backend_matches_memory(tmp_path):
    runner = CliRunner()
    h5 = tmp_path / "sim.h5ad"
    r = runner.invoke(app, ["singlecell", "simulate", "--cells", "1400", "--genes", "400", "--seed", "3",
                            "--out", str(h5), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["mono_loss_patients"] == ["P2", "P5"]
    outs = {}
    for backend in ("memory", "dask"):
        out = tmp_path / backend
        r = runner.invoke(app, ["singlecell", "run", str(h5), "--out", str(out), "--backend", backend,
                                "--chunk-size", "300", *ARGS])
        assert r.exit_code == 0, r.output
        outs[backend] = out
    comp = {b: pd.read_csv(o / "composition.csv") for b, o in outs.items()}
    pd.testing.assert_frame_equal(comp["memory"], comp["dask"])
    obs = {b: pd.read_csv(o / "observations.csv") for b, o in outs.items()}
    pd.testing.assert_frame_equal(obs["memory"], obs["dask"], check_exact=False, rtol=1e-4)
    import anndata as ad

    a = ad.read_h5ad(outs["dask"] / "annotated.h5ad")  # the counts were streamed into the result
    assert a.X.shape[0] == len(a.obs) and a.X.nnz > 0


def test_gpu_flag_without_rapids_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rapids_singlecell", None)
    runner = CliRunner()
    h5 = tmp_path / "sim.h5ad"
    runner.invoke(app, ["singlecell", "simulate", "--cells", "300", "--genes", "300", "--out", str(h5)])
    r = runner.invoke(app, ["singlecell", "run", str(h5), "--out", str(tmp_path / "o"), "--gpu", *ARGS])
    # a Cd7kitError: `cd7kit` (cli.main) prints it and exits 2; CliRunner hands it back as the exception
    assert isinstance(r.exception, GPUUnavailableError) and isinstance(r.exception, Cd7kitError)
    assert "pip install 'cd7kit[gpu-cu12]'" in str(r.exception)
    assert not (tmp_path / "o").exists()  # refused before any work


def test_unknown_backend_is_an_input_error(tmp_path):
    runner = CliRunner()
    h5 = tmp_path / "sim.h5ad"
    runner.invoke(app, ["singlecell", "simulate", "--cells", "300", "--genes", "300", "--out", str(h5)])
    r = runner.invoke(app, ["singlecell", "run", str(h5), "--out", str(tmp_path / "o"), "--backend", "spark", *ARGS])
    assert isinstance(r.exception, InputError) and "backend" in str(r.exception)
