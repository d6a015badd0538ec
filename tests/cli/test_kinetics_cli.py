"""``cd7kit kinetics`` and ``cd7kit simulate`` on CSV-template folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cd7kit.cli import app
from cd7kit.data import Study
from cd7kit.errors import InputError
from cd7kit.io import read_cd7kit, write_cd7kit
from cd7kit.kinetics.models import stein2019

runner = CliRunner()


def ok(*args: str) -> dict | list:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output + repr(r.exception)
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "cohort"
    s = ok("simulate", "cohort", "--design", "NCT06849401", "--n", "9", "--seed", "1", "--out", str(out), "--json")
    assert s["n_subjects"] == 9 and s["provenance"]["seed"] == 1
    return out


@pytest.fixture(scope="module")
def stein_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    times = np.array([1, 4, 7, 9, 11, 14, 21, 28, 56, 90, 180, 365.0])
    df, _ = stein2019.simulate_population(5, times, seed=3, lloq=10.0)
    obs = df.rename(columns={"time": "day"}).assign(specimen="PB")
    subj = pd.DataFrame({"subject_id": sorted(df["subject_id"].unique())})
    iv = pd.DataFrame({"subject_id": subj["subject_id"], "start_day": 0.0, "kind": "car_infusion", "dose": 1e6, "dose_unit": "cells/kg"})
    st = Study.from_tables(subj, obs.drop(columns=[]), iv, meta={"study_id": "STEIN12"})
    out = tmp_path_factory.mktemp("stein") / "s"
    write_cd7kit(st, out)
    return out


def test_simulate_cohort_writes_a_readable_study(sim_folder: Path) -> None:
    st = read_cd7kit(sim_folder)
    assert len(st.subjects) == 9 and (st.infusions().groupby("subject_id").size() == 6).all()


def test_kinetics_nca_json(sim_folder: Path) -> None:
    d = ok("kinetics", "nca", str(sim_folder), "--code", "CAR_COPIES", "--json")
    assert d["rule"]["system"].startswith("PKNCA")
    first = [r for r in d["value"] if r["details"]["dose_index"] == 1]
    assert len(first) == 9 and all(r["details"]["unit"] == "copies/ug" for r in first)
    assert all(r["value"]["cmax"] > 0 for r in first)
    d2 = ok("kinetics", "nca", str(sim_folder), "--code", "CAR_CELLS", "--json")
    assert d2["value"][0]["details"]["auc_unit"] == "cells/uL*day"


def test_kinetics_fit_individual_and_population(stein_folder: Path) -> None:
    d = ok("kinetics", "fit", str(stein_folder), "--model", "stein2019", "--json")
    assert len(d["value"]) == 5
    tm = np.median([f["value"]["params"]["tmax"] for f in d["value"]])
    assert 5 < tm < 15
    p = ok("kinetics", "fit", str(stein_folder), "--model", "stein2019", "--population", "--iterations", "40,30", "--json")
    assert p["value"]["n_subjects"] == 5 and p["rule"]["options"]["blq"] == "M3 censored likelihood"
    assert 3 < p["value"]["parameters"]["tmax"]["typical"] < 25


def test_kinetics_fit_ck7_on_virtual_car_nk(sim_folder: Path) -> None:
    d = ok("kinetics", "fit", str(sim_folder), "--model", "ck7", "--code", "CAR_CELLS", "--subject", "VP001-009", "--json")
    assert [f["subject_id"] for f in d["value"]] == ["VP001-009"]
    f = d["value"][0]["value"]
    assert f["unit"].startswith("cells/uL") and f["n_obs"] > 10 and f["neg_loglik"] is not None


def test_kinetics_population_fits_of_the_ode_models(sim_folder: Path) -> None:
    """``--population`` for kimmel2021 and ck7: SAEM over the identifiable parameters, the rest fixed, with SEs."""
    k = ok("kinetics", "fit", str(sim_folder), "--model", "kimmel2021", "--population", "--iterations", "60,40", "--json")
    pk = k["value"]["parameters"]
    assert k["value"]["code"] == "CAR_CELLS" and pk["C0"]["fixed"] and pk["C0"]["typical"] == pytest.approx(0.36)
    assert pk["K_C"]["se_mu_transformed"] is not None and not pk["K_C"]["fixed"]
    c = ok("kinetics", "fit", str(sim_folder), "--model", "ck7", "--population", "--iterations", "60,40", "--json")
    pc = c["value"]["parameters"]
    assert c["value"]["n_subjects"] == 9 and pc["A50"]["fixed"] and c["rule"]["options"]["fixed"] == {"A50": 10.0}
    assert all(pc[p]["se_mu_transformed"] is not None for p in ("rho_max", "alpha", "scale"))
    assert 0.1 < pc["rho_max"]["typical"] < 1.0  # the CAR-NK preset's 0.35/d is the truth of the virtual cohort


def test_kinetics_bad_input_is_an_input_error(sim_folder: Path) -> None:
    r = runner.invoke(app, ["kinetics", "fit", str(sim_folder), "--model", "nope", "--json"])
    assert isinstance(r.exception, InputError)
    r = runner.invoke(app, ["kinetics", "fit", str(sim_folder), "--model", "kimmel2021", "--code", "CAR_COPIES", "--population", "--json"])
    assert isinstance(r.exception, InputError)
    r = runner.invoke(app, ["kinetics", "nca", str(sim_folder), "--code", "IL6", "--json"])
    assert isinstance(r.exception, InputError)


def test_simulate_dlt_json() -> None:
    d = ok("simulate", "dlt", "--n-per-dose", "100", "--json")
    assert len(d["value"]) == 3 and all(0 <= p <= 1 for p in d["value"])
