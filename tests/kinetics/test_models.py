"""Mechanistic models: Stein 2019 (analytic), Kimmel 2021 (ODE, ZUMA-1 medians), CK7 (seed findings)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cd7kit.kinetics.models import ck7, kimmel2021, stein2019


def test_stein_typical_shape_and_derived_values() -> None:
    p = stein2019.TYPICAL
    assert stein2019.conc(np.array([0.0]))[0] == pytest.approx(p.cmax / p.foldx)  # R0 = 6.15
    assert stein2019.conc(np.array([p.tmax]))[0] == pytest.approx(p.cmax)
    rho = math.log(p.foldx) / p.tmax
    assert rho == pytest.approx(0.889, abs=1e-3)
    assert math.log(2) / rho == pytest.approx(0.78, abs=0.01)  # doubling time
    late = stein2019.conc(np.array([400.0, 500.0]))
    assert math.log(late[0] / late[1]) / 100 == pytest.approx(p.beta, rel=1e-3)  # terminal phase is beta
    # log-scale evaluation does not overflow for extreme parameters
    lc = stein2019.log_conc(np.array([50.0]), 1e5, 0.5, 1e30, 0.1, 0.01, 0.001)
    assert np.isfinite(lc).all()


def test_kimmel_reproduces_zuma1_median_car_counts() -> None:
    """Spec 3.4: Moffitt ZUMA-1 medians (IQR) at days 7, 14, 28, 90 in CAR+ cells/uL."""
    days = np.array(sorted(kimmel2021.ZUMA1_MEDIANS))
    sim = kimmel2021.simulate(np.concatenate([[0.0], days]))
    assert sim["C_per_uL"].iloc[0] == pytest.approx(0.36)  # Fig. 2b initial condition
    for d, (_med, lo, hi) in kimmel2021.ZUMA1_MEDIANS.items():
        v = float(sim.loc[sim["time"] == d, "C_per_uL"].iloc[0])
        assert lo <= v <= hi, (d, v)
    d7, d14, d28 = (float(sim.loc[sim["time"] == d, "C_per_uL"].iloc[0]) for d in (7, 14, 28))
    assert d7 == pytest.approx(27.5, rel=0.15) and d14 == pytest.approx(9.1, rel=0.15) and d28 == pytest.approx(2.1, rel=0.25)
    # normal T cells reconstitute towards K_N (~500 cells/uL, Fig. 2a)
    assert float(kimmel2021.simulate(np.array([0.0, 200.0]))["N_per_uL"].iloc[1]) == pytest.approx(500, rel=0.01)


def _days(r: dict, key: str, d: int) -> float:
    return float(r[key][0, int(np.flatnonzero(r["time"] == d)[0])])


def test_ck7_car_t_reproduces_seed_findings() -> None:
    r = ck7.simulate(ck7.CAR_T, ck7.CK7Initial(), dose_days=[0], doses_per_kg=1e6, t_end=90)
    # CAR expansion then contraction, peak in the second week
    c = r["C"][0]
    tpk = r["time"][np.argmax(c)]
    assert 6 <= tpk <= 14 and c.max() > 50 * c[0]
    # normal CD7+ T cells gone by about day 11 (< 1 cell/uL, below flow detection) and not before day 5
    assert _days(r, "Np", 11) < 1.0 and _days(r, "Np", 4) > 5.0
    # CD7- T cells expand and dominate the T compartment
    assert _days(r, "Nn", 28) > 100 * _days(r, "Nn", 0)
    assert _days(r, "Nn", 28) / (_days(r, "Nn", 28) + _days(r, "Np", 28)) > 0.99
    # CD7+ NK cells are hit too (on-target, off-tumour)
    assert _days(r, "K", 14) < 0.1 * _days(r, "K", 0)
    # blasts cleared: MRD-negative (< 0.01 %) by day 28, CD7+ blasts extinct
    assert _days(r, "bm_blast_pct", 28) < 0.01 and _days(r, "L", 28) == 0.0
    # without CAR cells the same patient does not clear
    r0 = ck7.simulate(ck7.CAR_T, ck7.CK7Initial(), dose_days=[0], doses_per_kg=0.0, t_end=28)
    assert _days(r0, "bm_blast_pct", 28) > 40 and _days(r0, "Np", 11) > 20


def test_ck7_cd7_negative_relapse_when_escape_blasts_are_seeded() -> None:
    init = ck7.CK7Initial(cd7neg_blast_fraction=1e-4)
    r = ck7.simulate(ck7.CAR_T, init, dose_days=[0], doses_per_kg=1e6, t_end=180)
    assert _days(r, "bm_blast_pct", 28) < 5  # remission first
    relapse = r["time"][(r["time"] > 28) & (r["bm_blast_pct"][0] >= 5)]
    assert len(relapse) and 60 < relapse[0] < 180
    assert _days(r, "L", int(relapse[0])) == 0.0 and _days(r, "Ln", int(relapse[0])) > 0  # the relapse is CD7-negative
    # an antigen-loss escape rate alone (mu > 0, no pre-existing CD7- blasts) also seeds CD7- disease
    r2 = ck7.simulate(ck7.CAR_T.with_(mu=1e-3), ck7.CK7Initial(), dose_days=[0], doses_per_kg=1e6, t_end=60)
    assert _days(r2, "Ln", 60) > 0


def test_ck7_car_nk_six_doses_rejection_and_dose_response() -> None:
    days = [0, 7, 14, 21, 28, 35]
    peaks = []
    for dose in (4e7, 1.2e8, 3.6e8):
        r = ck7.simulate(ck7.CAR_NK, ck7.CK7Initial(), dose_days=days, doses_per_kg=dose, t_end=90)
        peaks.append(r["C"][0].max())
        # each dose adds cells; rejection then removes them: gone weeks after the last dose
        assert _days(r, "C", 60) < 1e-3 * r["C"][0].max()
    assert peaks[0] < peaks[1] < peaks[2]
    # no rejection -> persistence
    r = ck7.simulate(ck7.CAR_NK.with_(k_rej_max=0.0), ck7.CK7Initial(), dose_days=days, doses_per_kg=1.2e8, t_end=60)
    r_rej = ck7.simulate(ck7.CAR_NK, ck7.CK7Initial(), dose_days=days, doses_per_kg=1.2e8, t_end=60)
    assert _days(r, "C", 60) > 10 * _days(r_rej, "C", 60)


def test_ck7_vectorised_over_patients_matches_single_runs() -> None:
    rho = np.array([0.6, 0.9, 1.2])
    rv = ck7.simulate({"rho_max": rho}, ck7.CK7Initial(), dose_days=[0], doses_per_kg=1e6, t_end=30)
    assert rv["C"].shape == (3, 31)
    for i, rh in enumerate(rho):
        r1 = ck7.simulate(ck7.CAR_T.with_(rho_max=float(rh)), ck7.CK7Initial(), dose_days=[0], doses_per_kg=1e6, t_end=30)
        np.testing.assert_allclose(rv["C"][i], r1["C"][0], rtol=1e-12)
    assert rv["C"][0].max() < rv["C"][2].max()


def test_ck7_compiled_and_numpy_engines_agree() -> None:
    kw = dict(dose_days=[0, 7], doses_per_kg=[1e6, 2e6], t_end=30)
    a = ck7.simulate(ck7.CAR_T, ck7.CK7Initial(cd7neg_blast_fraction=1e-3), engine="numba", **kw)
    b = ck7.simulate(ck7.CAR_T, ck7.CK7Initial(cd7neg_blast_fraction=1e-3), engine="numpy", **kw)
    for k in ("C", "Np", "Nn", "K", "L", "Ln"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-12)


def test_stein_compiled_likelihood_matches_reference() -> None:
    from cd7kit.kinetics import mcmc
    from cd7kit.kinetics.fit import m3_loglik

    rng = np.random.default_rng(0)
    t = np.tile(np.array([1.0, 5, 9, 14, 28, 90]), (4, 1))
    phi = stein2019.to_phi(stein2019.TYPICAL.as_array()) + rng.normal(size=(4, 6))
    ly = np.log(stein2019.conc(t[0]))[None, :] + rng.normal(size=t.shape)
    blq = ly < np.log(50.0)
    ll = np.full(t.shape, np.log(50.0))
    mask = np.ones(t.shape, dtype=bool)
    mask[0, -1] = False
    ref = m3_loglik(stein2019.log_pred_phi(phi, t), ly, blq, ll, 0.5, mask).sum(axis=1)
    aux = np.zeros((4, 0))
    np.testing.assert_allclose(mcmc.cond_loglik(0, phi, t, ly, blq, ll, mask, 0.5, aux), ref, rtol=1e-10)
    np.testing.assert_allclose(mcmc.log_pred(0, phi, t, aux), stein2019.log_pred_phi(phi, t), rtol=1e-12)


def test_compiled_ode_predictors_match_the_simulators() -> None:
    """The fits' compiled predictors (adaptive DP5(4) for Kimmel, exact-landing RK4 for CK7) agree with the
    reference simulators (LSODA for Kimmel; the virtual-patient RK4 for CK7)."""
    from cd7kit.kinetics.fit import CK7, KIMMEL

    t = np.array([0.0, 1, 3, 7, 9.5, 14, 21, 28, 60, 90, 180, 365])
    ref = kimmel2021.simulate(t, b_extinct=None, rtol=1e-11)["C_per_uL"].to_numpy()
    np.testing.assert_allclose(KIMMEL.log_pred(KIMMEL.phi0, t)[0], np.log(ref), atol=1e-4)
    # unsorted sample times give the same values
    perm = np.array([5, 0, 11, 3, 1, 2, 4, 6, 7, 8, 9, 10])
    np.testing.assert_allclose(KIMMEL.log_pred(KIMMEL.phi0, t[perm])[0], np.log(ref)[perm], atol=1e-4)
    days = [0.0, 3, 7, 10, 14, 17]
    tc = np.array([1.0, 2, 3, 5, 7, 8, 10, 11, 14, 15, 17, 18, 21, 24, 28, 35, 42, 56, 90])
    sim = ck7.simulate(ck7.CAR_NK, ck7.CK7Initial(), dose_days=days, doses_per_kg=1.2e8, record_times=tc, dt=0.1, t_end=90)["C"][0]
    ctx = {"ck7_params": ck7.CAR_NK, "dose_days": days, "doses_per_kg": 1.2e8}
    phi = np.log([ck7.CAR_NK.rho_max, ck7.CAR_NK.alpha, ck7.CAR_NK.A50, 2.0])
    # the simulator records after a dose, the predictor before it (a pre-dose sample): they differ by the dose
    pre = sim - np.isin(tc, days) * 1.2e8 / ck7.UL_PER_KG
    np.testing.assert_allclose(CK7.log_pred(phi, tc, ctx)[0], np.log(pre) + np.log(2.0), atol=1e-3)
