"""TITE-BOIN (pending patients, decision table, simulation); BOIN12 is in test_boin12.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cd7kit.errors import InputError
from cd7kit.trial import TrialData, get_design
from cd7kit.trial.tite import TiteBoin, estimate

P5 = [0.05, 0.15, 0.30, 0.45, 0.60]


def test_estimators():
    # ESS: 1 DLT, 2 pending at half their window of 6 patients -> 1 / (6 - 2 + 1)
    assert estimate(6, 1, 2, 1.0, 0.3, "ess") == pytest.approx(1 / 5)
    pi = (1 + 0.15) / (6 - 2 + 1)
    assert estimate(6, 1, 2, 1.0, 0.3, "imputation") == pytest.approx((1 + pi / (1 - pi) * 1.0) / 6)
    assert estimate(3, 0, 3, 0.0, 0.3, "ess") is None  # no one evaluable


def test_tite_without_pending_equals_boin():
    t = TiteBoin(target=0.3, ncohort=10, cohortsize=3)
    b = get_design("boin", target=0.3, ncohort=10, cohortsize=3)
    for n, y in [(3, 0), (3, 1), (3, 2), (6, 1), (6, 2), (6, 3), (9, 2), (9, 4)]:
        data = TrialData.of([3, n, 0], [0, y, 0], 2, [[], [], []])
        assert t.next_dose(data).value == b.next_dose(TrialData.of([3, n, 0], [0, y, 0], 2)).value, (n, y)


def test_tite_pending_rules():
    t = TiteBoin(target=0.3, window=28)
    # 3 patients, 0 DLT, 2 pending: > 50% pending -> suspend
    assert t.next_dose(TrialData.of([3, 0], [0, 0], 1, [[5.0, 10.0], []])).action == "suspend"
    # 6 patients, 1 DLT, 2 pending with long follow-up -> escalate (1/(4 + 1.8) = 0.17 <= 0.236)
    d = t.next_dose(TrialData.of([6, 0], [1, 0], 1, [[25.0, 25.0], []]))
    assert d.action == "escalate" and d.details["stft"] == pytest.approx(50 / 28)
    # same with short follow-up -> stay (1/(4 + 0.14) = 0.24 > 0.236)
    assert t.next_dose(TrialData.of([6, 0], [1, 0], 1, [[2.0, 2.0], []])).action == "stay"
    with pytest.raises(InputError):
        TrialData.of([3, 0], [1, 0], 1, [[1.0, 2.0, 3.0], []])  # more pending than patients without DLT


def test_tite_decision_table_consistent_with_next_dose():
    t = TiteBoin(target=0.3, ncohort=4, cohortsize=3, window=28)
    tab = t.decision_table()
    conduct = TiteBoin(target=0.3, ncohort=10, cohortsize=3, window=28)  # no maximum-sample-size stop at n = 12
    assert tab["lambda_e"] == pytest.approx(0.2364907, abs=1e-7)
    for row in tab["table"]:
        thr = row.get("escalate_if_stft_ge")
        if thr is None or row["pending"] in (None, 0) or not 0 < thr < row["pending"]:
            continue
        n, y, c = row["n"], row["y"], row["pending"]
        for s, expect in ((thr + 0.01, "escalate"), (max(thr - 0.01, 0), "not")):
            fu = [28 * s / c] * c
            dec = conduct.next_dose(TrialData.of([n, 0], [y, 0], 1, [fu, []]))
            assert (dec.action == "escalate") == (expect == "escalate"), (row, s)


def test_tite_simulation_matches_titegboin_reference_within_mc_error():
    """TITEgBOIN: 2,000 trials, window 3, accrual 2/unit -> sel 0.95/26.10/53.15/18.60/1.20, duration 26.4."""
    t = TiteBoin(target=0.3, ncohort=10, cohortsize=3, window=3, accrual=2, estimator="ess")
    oc = t.simulate(P5, ntrial=2000, seed=6)
    ref = np.array([0.95, 26.10, 53.15, 18.60, 1.20])
    se = np.sqrt(np.maximum(ref / 100 * (1 - ref / 100), 1e-3) * 2 / 2000) * 100
    assert np.all(np.abs(oc.selection_pct - ref) < 4 * se)
    assert abs(oc.duration_mean - 26.4) < 1.5
    assert oc.selection_pct.sum() + oc.stop_pct == pytest.approx(100)
    # waiting for full follow-up (BOIN) takes longer: TITE shortens the trial
    assert oc.duration_mean < 39.9


def test_weibull_time_to_dlt():
    t = TiteBoin(window=28, alpha1=0.5)
    k, lam = t.weibull(0.3)
    F = lambda x: 1 - math.exp(-((x / lam) ** k))  # noqa: E731
    assert F(28) == pytest.approx(0.3) and F(14) == pytest.approx(0.15)


@pytest.mark.parametrize(
    "kw",
    [
        {"estimator": "ess", "window": 3, "accrual": 2},
        {"estimator": "imputation", "window": 28, "accrual": 10},
        {"estimator": "ess", "window": 28, "accrual": 0.2, "n_earlystop": 9},
        {"estimator": "imputation", "window": 28, "accrual": 1, "n_earlystop": 6},
    ],
)
def test_tite_kernel_equals_reference_trial_by_trial(kw):
    """The numba kernel and the plain-Python path that calls next_dose for every decision agree exactly."""
    t = TiteBoin(target=0.3, ncohort=6, cohortsize=3, **kw)
    for p in (P5, [0.3, 0.5, 0.7]):
        a = t.simulate(p, ntrial=60, seed=5)
        b = t.simulate(p, ntrial=60, seed=5, engine="reference")
        assert np.array_equal(a.N, b.N) and np.array_equal(a.Y, b.Y) and np.array_equal(a.mtd, b.mtd)
        assert np.allclose(a.duration, b.duration)
