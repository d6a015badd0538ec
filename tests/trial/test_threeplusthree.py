"""3+3: rules, exact enumeration, and simulation agreeing with it within Monte-Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cd7kit.errors import InputError
from cd7kit.trial import ThreePlusThree, TrialData


def test_rules():
    t = ThreePlusThree()
    assert t.next_dose(TrialData.of([3, 0], [0, 0], 1)).action == "escalate"
    assert t.next_dose(TrialData.of([3, 0], [1, 0], 1)).action == "stay"
    assert t.next_dose(TrialData.of([6, 0], [1, 0], 1)).value == 2
    s = t.next_dose(TrialData.of([6, 3], [1, 2], 2))
    assert s.stop and s.mtd.mtd == 1
    s = t.next_dose(TrialData.of([3, 0], [2, 0], 1))
    assert s.stop and s.mtd.mtd is None
    top = t.next_dose(TrialData.of([3, 3], [0, 0], 2))
    assert top.stop and top.mtd.mtd == 2
    with pytest.raises(InputError):
        t.next_dose(TrialData.of([4, 0], [0, 0], 1))


def test_deescalation_variant_needs_six_at_mtd():
    t = ThreePlusThree(deescalate=True)
    d = t.next_dose(TrialData.of([3, 3, 3], [0, 0, 2], 3))
    assert d.action == "de-escalate" and d.value == 2
    d = t.next_dose(TrialData.of([3, 6, 3], [0, 1, 2], 2))
    assert d.stop and d.mtd.mtd == 2
    d = t.next_dose(TrialData.of([3, 6, 3], [0, 2, 2], 2))
    assert d.action == "de-escalate" and d.value == 1


def test_exact_one_dose_closed_form():
    p = 0.2
    q = 1 - p
    ex = ThreePlusThree().exact([p], target=0.3)
    p_select = q**3 + 3 * p * q**2 * q**3
    assert ex["selection_pct"][0] == pytest.approx(100 * p_select)
    assert ex["stop_pct"] == pytest.approx(100 * (1 - p_select))
    assert ex["n_mean"] == pytest.approx(3 + 3 * 3 * p * q**2)


@pytest.mark.parametrize("deescalate", [False, True])
def test_exact_probabilities_sum_to_one(deescalate):
    ex = ThreePlusThree(deescalate=deescalate).exact([0.05, 0.15, 0.3, 0.45, 0.6])
    assert ex["selection_pct"].sum() + ex["stop_pct"] == pytest.approx(100)
    assert ex["n_mean"] == pytest.approx(ex["patients_mean"].sum())


@settings(max_examples=4, deadline=None)
@given(p=st.lists(st.floats(0.02, 0.7), min_size=2, max_size=4).map(sorted), deescalate=st.booleans(), seed=st.integers(0, 999))
def test_enumeration_equals_simulation_within_mc_error(p, deescalate, seed):
    t = ThreePlusThree(deescalate=deescalate)
    ex = t.exact(p)
    sim = t.simulate(p, ntrial=1500, seed=seed)
    sel_ex = ex["selection_pct"] / 100
    se = np.sqrt(np.maximum(sel_ex * (1 - sel_ex), 1e-4) / 1500) * 100
    assert np.all(np.abs(sim.selection_pct - ex["selection_pct"]) < 4.5 * se + 1e-9)
    assert abs(sim.n_mean - ex["n_mean"]) < 4.5 * max(sim.se["n_mean"], 0.01)
    assert np.all(np.abs(sim.patients_mean - ex["patients_mean"]) < 4.5 * np.maximum(sim.se["patients_mean"], 0.01))


def test_select_mtd_from_final_data():
    t = ThreePlusThree()
    assert t.select_mtd({"n": [3, 6, 6], "y": [0, 1, 2]}).mtd == 2
    assert t.select_mtd({"n": [3, 3], "y": [2, 0]}).mtd is None
