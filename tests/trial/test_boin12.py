"""BOIN12 against Lin et al. 2020 (JCO Precis Oncol 4:1393-1402) and the MD Anderson BOIN12 app.

The published numbers are transcribed from the paper as the R package escalation's tests transcribe them
(brockk/escalation, tests/testthat/test_boin12_rds.R: "Recreate Table 3 of Lin et al."; test_boin12.R:
"p.1396 of Lin et al.", "Section 6 and Figure S2 of Data Supplement", and "matches MDAnderson Shiny app"
for two parameterisations). Outcome strings use escalation's notation: a dose level, then one letter per
patient -- N neither, E response only, T DLT only, B both.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from cd7kit.errors import InputError
from cd7kit.trial import TrialData, get_design
from cd7kit.trial.boin12 import Boin12

PAPER = {"target": 0.35, "phi_e": 0.25, "u2": 40, "u3": 60}  # the paper's example design (5 doses)


def outcomes(text: str, ndose: int = 5) -> TrialData:
    """'1NNN 2ENT' -> per-dose patients, DLTs, responses and both; ``current`` = the last cohort's dose."""
    n, y, e, b = ([0] * ndose for _ in range(4))
    dose = None
    for dose_s, letters in re.findall(r"(\d+)([NETB]+)", text):
        dose = int(dose_s)
        for ch in letters:
            n[dose - 1] += 1
            y[dose - 1] += ch in "TB"
            e[dose - 1] += ch in "EB"
            b[dose - 1] += ch == "B"
    return TrialData.of(n, y, dose, efficacy=e, both=b)


# -- Table 3: rank-based desirability scores ------------------------------------------------------
@pytest.mark.parametrize(
    "n,dlt,response,rds",
    [
        (0, 0, 0, 60),
        (3, 0, 3, 91),
        (6, 1, 5, 87),
        (6, 5, 1, None),  # E: eliminated
        (9, 0, 8, 99),
        (9, 2, 3, 32.5),  # tied with 9/5/5
        (9, 5, 5, 32.5),
        (9, 3, 1, 7),
        (9, 4, 0, None),
        (9, 6, 9, None),
    ],
)
def test_table3_rank_based_desirability_scores(n, dlt, response, rds):
    """Lin et al. 2020 Table 3 (phi_T 0.35, phi_E 0.25, u = 100/40/60/0, n = 0, 3, 6, 9)."""
    rows = {(r["n"], r["dlt"], r["response"]): r for r in Boin12(**PAPER).rds_table([0, 3, 6, 9])}
    row = rows[(n, dlt, response)]
    assert row["rds"] == rds
    assert row["admissible"] == (rds is not None)


def test_rds_table_is_the_default_decision_table_and_needs_marginal_utilities():
    b = Boin12(**PAPER)
    table = b.decision_table()
    assert {r["n"] for r in table} == {0, 3, 6, 9}
    ranks = sorted(r["rds"] for r in table if r["admissible"])
    assert ranks[0] >= 1 and ranks[-1] == len(ranks)  # ranks among the admissible rows
    # ranking by the score is ranking by the desirability probability
    adm = sorted((r for r in table if r["admissible"]), key=lambda r: r["desirability"])
    assert [r["rds"] for r in adm] == sorted(r["rds"] for r in adm)
    assert max(r["n"] for r in b.decision_table(full=True)) == 30
    with pytest.raises(InputError):
        Boin12(target=0.15, phi_e=0.4, u2=50, u3=30).rds_table()  # 100 + 0 != 50 + 30


# -- the paper's trial examples -------------------------------------------------------------------
def test_worked_example_p1396():
    """p. 1396: after 1NNN 2ENT 3ETT 2EEN the next cohort is treated at dose 2."""
    d = Boin12(**PAPER, n_earlystop=12).next_dose(outcomes("1NNN 2ENT 3ETT 2EEN"))
    assert d.value == 2 and not d.stop


def test_figure_s2_trial():
    """Data Supplement section 6 / Figure S2: the dose after each cohort, then the stop at 12 patients on dose 4 (30 in all)."""
    design = Boin12(**PAPER, n_earlystop=12)
    path = "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN 5NBT 4NEN".split()
    expected = [2, 3, 3, 4, 4, 4, 5, 5, 4]
    got = [design.next_dose(outcomes(" ".join(path[: i + 1]))).value for i in range(len(expected))]
    assert got == expected
    last = design.next_dose(outcomes(" ".join(path)))
    assert last.stop and last.mtd is not None and last.mtd.mtd is not None
    assert "n_earlystop" in last.reason or "maximum" in last.reason


SHINY_1 = {  # phi_T 0.35, phi_E 0.25, u2 40, u3 60, c_T 0.95, c_E 0.9 (the app's defaults)
    "1EBB": 1, "1EEB": 1, "1EEE": 1, "1EET": 1, "1ETB": 1, "1ETT": 1, "1NBB": 1, "1NEB": 1, "1NEE": 1, "1NET": 2, "1NNB": 2,
    "1NNE": 2, "1NNN": 2, "1NNT": 2, "1NTB": 1, "1NTT": 1,
    "2BBB": 1, "2EBB": 1, "2EEB": 2, "2EEE": 2, "2EET": 2, "2ETB": 1, "2ETT": 1, "2NBB": 1, "2NEB": 2, "2NEE": 2, "2NET": 3,
    "2NNB": 3, "2NNE": 3, "2NNN": 3, "2NNT": 3, "2NTB": 1, "2NTT": 1, "2TBB": 1, "2TTB": 1, "2TTT": 1,
    "5BBB": 4, "5EBB": 4, "5EEB": 5, "5EEE": 5, "5EET": 5, "5ETB": 4, "5ETT": 4, "5NBB": 4, "5NEB": 5, "5NEE": 5, "5NET": 4,
    "5NNB": 4, "5NNE": 4, "5NNN": 4, "5NNT": 4, "5NTB": 4, "5NTT": 4, "5TBB": 4, "5TTB": 4, "5TTT": 4,
}
SHINY_2 = {  # phi_T 0.15, phi_E 0.4, u2 50, u3 30, c_T 0.9, c_E 0.8 (joint counts matter: 100 + 0 != 50 + 30)
    "1EBB": 1, "1EEB": 1, "1EEE": 1, "1EET": 1, "1ETB": 1, "1ETT": 1, "1NBB": 1, "1NEB": 1, "1NEE": 1, "1NET": 1, "1NNB": 1,
    "1NNE": 2, "1NNN": 2, "1NTB": 1,
    "2BBB": 1, "2EBB": 1, "2EEB": 1, "2EEE": 2, "2EET": 1, "2ETB": 1, "2ETT": 1, "2NBB": 1, "2NEB": 1, "2NEE": 2, "2NET": 1,
    "2NNB": 1, "2NNN": 3, "2NNT": 1, "2NTB": 1, "2NTT": 1, "2TBB": 1, "2TTB": 1, "2TTT": 1,
    "5BBB": 4, "5EBB": 4, "5EEB": 4, "5EEE": 5, "5EET": 4, "5ETB": 4, "5ETT": 4, "5NBB": 4, "5NEB": 4, "5NEE": 5, "5NET": 4,
    "5NNB": 4, "5NNE": 4, "5NNN": 4, "5NNT": 4, "5NTB": 4, "5NTT": 4, "5TBB": 4, "5TTB": 4, "5TTT": 4,
}


@pytest.mark.parametrize(
    "design,expected",
    [
        (Boin12(**PAPER), SHINY_1),
        (Boin12(target=0.15, phi_e=0.4, u2=50, u3=30, c_t=0.9, c_e=0.8), SHINY_2),
    ],
    ids=["defaults", "phiT0.15"],
)
def test_md_anderson_app_decisions_after_one_cohort(design, expected):
    got = {k: design.next_dose(outcomes(k)).value for k in expected}
    assert got == expected


# -- utilities, rules, OBD ------------------------------------------------------------------------
def test_benchmark_utility():
    b = Boin12(**PAPER)
    # u_bar = 100*.25*.65 + 40*.65*.75 + 60*.35*.25 = 41; u_b = 41 + 59/2
    assert b.u_bar == pytest.approx(41.0) and b.u_b == pytest.approx(70.5)
    # untried dose: 100 * P(Beta(1,1) > 0.705)
    r = b.desirability(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([0.0]))
    assert r[0] == pytest.approx(29.5)


def test_rules():
    b = Boin12()
    # 0/3 DLT and 1 response: d+1 untried has higher desirability -> escalate (ties -> higher)
    assert b.next_dose(TrialData.of([3, 0, 0], [0, 0, 0], 1, efficacy=[1, 0, 0], both=[0, 0, 0])).value == 2
    # DLT rate >= lambda_d -> de-escalate
    assert b.next_dose(TrialData.of([3, 3, 0], [0, 2, 0], 2, efficacy=[1, 1, 0], both=[0, 1, 0])).value == 1
    # exploration: 9 patients at dose 1 with acceptable toxicity and dose 2 untried -> escalate; off with n_explore=None
    data = TrialData.of([9, 0], [1, 0], 1, efficacy=[5, 0], both=[0, 0])
    assert b.next_dose(data).value == 2
    assert Boin12(n_explore=None).next_dose(data).value == 1  # dose 1 (5/9 responses) is more desirable than untried dose 2
    # no admissible dose among d-1, d, d+1 (one dose, no response in 9: futile): stop without selecting a dose
    s = b.next_dose(TrialData.of([9], [1], 1, efficacy=[0], both=[0]))
    assert s.stop and s.mtd is None
    with pytest.raises(InputError):
        b.next_dose(TrialData.of([3], [0], 1))


def test_obd_selection():
    b = Boin12()
    s = b.select_mtd(TrialData.of([6, 12, 9], [0, 2, 6], efficacy=[1, 7, 5], both=[0, 1, 2]))
    assert s.details["mtd"] == 2 and s.mtd == 2  # utilities (1+3)/8 = 0.5 < (1+8.2)/14 = 0.66
    s = b.select_mtd(TrialData.of([6, 12, 9], [0, 2, 6], efficacy=[4, 1, 5], both=[0, 0, 2]))
    assert s.details["mtd"] == 2 and s.mtd == 1  # (1+4.8)/8 = 0.725 > (1+4.6)/14 = 0.4


# -- simulation -----------------------------------------------------------------------------------
PT = [0.05, 0.1, 0.2, 0.35, 0.5]
PE = [0.1, 0.2, 0.45, 0.5, 0.5]


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"n_earlystop": 12, "ncohort": 12},
        {"n_explore": None, "startdose": 3, "cohortsize": 2, "ncohort": 9},
        {"target": 0.15, "phi_e": 0.4, "u2": 50, "u3": 30, "c_t": 0.9, "c_e": 0.8, "rng": "r"},
    ],
)
def test_compiled_and_reference_simulation_agree_trial_by_trial(opts):
    opts = dict(opts)
    rng = opts.pop("rng", "numpy")
    d = Boin12(**opts)
    for p_both in (None, [0.01, 0.05, 0.1, 0.2, 0.3]):
        a = d.simulate(PT, PE, ntrial=150, seed=4, rng=rng, p_both=p_both)
        b = d.simulate(PT, PE, ntrial=150, seed=4, rng=rng, p_both=p_both, engine="reference")
        assert np.array_equal(a.N, b.N) and np.array_equal(a.Y, b.Y) and np.array_equal(a.mtd, b.mtd)
        assert np.allclose(a.extra["response_mean"], b.extra["response_mean"])


def test_simulation_summary():
    oc = Boin12().simulate(PT, PE, ntrial=400, seed=2, per_trial=True)
    assert oc.selection_pct.sum() + oc.stop_pct == pytest.approx(100)
    assert np.all(oc.N.sum(axis=1) <= 30) and np.all(oc.N % 3 == 0)
    d = oc.to_dict()
    assert len(d["response_mean"]) == 5 and len(d["per_trial"]) == 400
    with pytest.raises(InputError):
        Boin12().simulate(PT, PE[:3])
    with pytest.raises(InputError):
        Boin12().simulate(PT, PE, p_both=[0.5] * 5)  # P(both) above min(p_true, p_eff)


def test_get_design_boin12():
    d = get_design("boin12", target=0.35, phi_e=0.25, ncohort=10, cohortsize=3, n_earlystop=12)
    assert isinstance(d, Boin12) and d.n_earlystop == 12


def test_cli_table_and_simulate_boin12():
    import json

    from typer.testing import CliRunner

    from cd7kit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["escalate", "table", "--design", "boin12", "--target", "0.35", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    rows = {(r["n"], r["dlt"], r["response"]): r["rds"] for r in d["table"]}
    assert rows[(0, 0, 0)] == 60 and rows[(9, 3, 1)] == 7 and rows[(9, 4, 0)] is None  # Table 3
    res = runner.invoke(app, ["escalate", "table", "--design", "boin12", "--target", "0.35"])
    assert res.exit_code == 0 and "n = 9" in res.output
    res = runner.invoke(app, ["escalate", "simulate", "--design", "boin12", "--target", "0.35", "--p-true", "0.05,0.1,0.2",
                              "--p-eff", "0.1,0.3,0.5", "--ntrial", "50", "--n-earlystop", "12", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rule"]["options"]["n_earlystop"] == 12 and len(out["selection_pct"]) == 3
