"""Individual MLE with the M3 BLQ likelihood; population SAEM; GOF and VPC data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cd7kit.kinetics import diagnostics, sse
from cd7kit.kinetics.fit import CK7, KIMMEL, fit_individual, m3_loglik
from cd7kit.kinetics.models import ck7, kimmel2021, stein2019
from cd7kit.kinetics.saem import saem
from cd7kit.kinetics.sse import DESIGN_TIMES, START_OFFSET


def test_m3_likelihood_values() -> None:
    ll = m3_loglik(np.array([0.0, 0.0]), np.array([math.log(2.0), 0.0]), np.array([False, True]), np.array([0.0, 0.0]), 1.0)
    assert ll[0] == pytest.approx(-0.5 * math.log(2.0) ** 2)
    assert ll[1] == pytest.approx(math.log(0.5))  # P(y < LLOQ) when the prediction sits at the LLOQ


def test_individual_mle_recovers_parameters_and_uses_blq() -> None:
    p = stein2019.TYPICAL
    t = np.array([0.5, 1, 2, 4, 7, 9, 10, 12, 14, 21, 28, 42, 56, 84, 120, 180, 270, 365.0])
    rng = np.random.default_rng(3)
    y = stein2019.conc(t) * np.exp(rng.normal(size=len(t)) * 0.1)
    lloq = 50.0
    blq = y < lloq
    f = fit_individual(t, np.where(blq, np.nan, y), blq, lloq, model="stein2019")
    assert f.n_blq == int(blq.sum()) and f.n_blq >= 1
    for name in ("cmax", "tmax", "alpha"):
        assert f.params[name] == pytest.approx(getattr(p, name), rel=0.15)
    assert f.sigma == pytest.approx(0.1, rel=0.5)
    assert np.isfinite(f.se_phi).sum() >= 4
    # M3 matters: dropping the BLQ rows (M1) throws away the early-growth information
    f_m1 = fit_individual(t[~blq], y[~blq], model="stein2019")
    assert f.n_obs > f_m1.n_obs
    d = f.to_dict()
    assert d["rule"]["system"].startswith("maximum likelihood") and d["value"]["unit"] == "copies/ug"


def test_kimmel_individual_fit_to_zuma1_medians() -> None:
    days = np.array([0.0, 7, 14, 28, 90])
    med = np.array([0.36] + [kimmel2021.ZUMA1_MEDIANS[d][0] for d in (7, 14, 28, 90)])
    f = fit_individual(days, med, model="kimmel2021", sigma=0.3, fixed={"C0": 0.36})
    pred = f.predict(days)
    assert np.all(np.abs(np.log(pred[1:]) - np.log(med[1:])) < 0.6)
    assert f.params["K_C"] == pytest.approx(139.2, rel=0.5)  # 6.96e10 cells / 5e8


def test_saem_single_replicate_stein_with_blq() -> None:
    """One simulated Stein population (60 x 12, BLQ below 10 copies/ug), started away from the truth.

    Per replicate the honest criterion is the confidence interval: every fixed effect lies within 3 standard
    errors of its design value (a 20 % window is not a per-replicate property: see cd7kit.kinetics.sse).
    """
    df, truth_i = stein2019.simulate_population(60, np.array(DESIGN_TIMES), seed=2, lloq=10.0)
    assert df["blq"].sum() > 0
    design = stein2019.to_phi(stein2019.TYPICAL.as_array())
    r = saem(df, "stein2019", seed=2, mu0=design + START_OFFSET)
    z = (r.mu - design) / r.se_mu
    assert np.all(np.isfinite(r.se_mu)) and np.all(np.abs(z) < 3), z
    assert r.sigma == pytest.approx(stein2019.SIGMA_LOG, rel=0.15)
    assert np.all(np.abs(r.mu - r.trace[-1, :6]) < 1e-12) and r.trace.shape == (250, 13)
    d = r.to_dict()
    assert d["value"]["n_blq"] == int(df["blq"].sum()) and d["rule"]["options"]["blq"] == "M3 censored likelihood"
    # deterministic by seed
    r2 = saem(df, "stein2019", seed=2, mu0=design + START_OFFSET)
    np.testing.assert_array_equal(r.mu, r2.mu)
    # GOF: individual predictions track observations better than population ones
    g = diagnostics.gof(r, df)
    q = g[~g["blq"]]
    err_i = np.abs(np.log(q["dv"]) - np.log(q["ipred"])).mean()
    err_p = np.abs(np.log(q["dv"]) - np.log(q["pred"])).mean()
    assert err_i < err_p
    # VPC on NCA metrics: observed median Cmax inside the simulated band
    v = diagnostics.vpc_nca(r, df, n_rep=20)
    c = v["metrics"]["cmax"]
    assert c["simulated_lo"][1] <= c["observed"][1] <= c["simulated_hi"][1]


def test_saem_recovers_stein_fixed_effects_over_replicates() -> None:
    """Acceptance (issue 6): simulation and re-estimation, Stein model, 60 subjects x 12 samples, BLQ.

    Over 20 replicates the relative bias of every fixed effect is within 20 % of its design value (it is
    within about 12 %), the 95 % confidence intervals cover the design value in most replicates, and the
    fit gets as close to the design value as the realised sample allows for the well-determined parameters.
    """
    res = sse.stein_sse(n_rep=20)
    s = res.summary
    assert (s["relative_bias"].abs() < 0.20).all(), s["relative_bias"]
    assert (s["ci95_coverage"] >= 0.7).all(), s["ci95_coverage"]
    # the estimator's own error (against the realised population) is small next to the sampling noise
    assert (s.loc[["cmax", "tmax", "alpha"], "rmse_log_vs_realised"] < 0.1).all()
    assert (s["rmse_log_vs_realised"] < 0.25).all()
    # every fixed effect is within 20 % of the design value in most replicates
    assert (s["within_20pct"] >= 0.5).all(), s["within_20pct"]


def test_saem_kimmel_population_recovers_its_free_parameters() -> None:
    """Kimmel 2021 population fit (ODE): K_C, rho_C and b with random effects, C0 fixed at 0.36 cells/uL."""
    rng = np.random.default_rng(3)
    n, t = 30, np.array([1, 4, 7, 10, 14, 21, 28, 60, 90.0])
    mu = KIMMEL.phi0.copy()
    phi = mu + rng.normal(size=(n, 4)) * np.sqrt(np.array([0.3, 0.3, 0.2, 0.0]))
    lp = KIMMEL.log_pred(phi, np.tile(t, (n, 1)))
    y = np.exp(lp + rng.normal(size=lp.shape) * 0.4)
    blq = y < 0.05
    df = pd.DataFrame({"subject_id": np.repeat([f"K{i:02d}" for i in range(n)], len(t)), "time": np.tile(t, n), "value": np.where(blq, np.nan, y).ravel(), "blq": blq.ravel(), "lloq": 0.05})
    r = saem(df, "kimmel2021", seed=1, mu0=mu + np.array([0.5, -0.5, 0.3, 0.0]))
    assert r.fixed == {"C0": pytest.approx(0.36)} and r.mu[3] == pytest.approx(math.log(0.36)) and r.omega2[3] == 0.0
    real = phi.mean(axis=0)
    assert np.all(np.abs(r.mu[:3] - real[:3]) < 3 * r.se_mu[:3]), (r.mu - real, r.se_mu)
    assert np.all(np.abs(np.exp(r.mu[:3] - mu[:3]) - 1) < 0.25)
    assert r.sigma == pytest.approx(0.4, rel=0.2)
    assert r.to_dict()["value"]["parameters"]["C0"]["fixed"] is True


def test_saem_ck7_population_on_car_nk_doses() -> None:
    """CK7 population fit (ODE, six CAR-NK doses per subject): rho_max, alpha, scale free, A50 fixed."""
    rng = np.random.default_rng(5)
    n = 12
    t = np.array([1, 2, 3, 5, 7, 8, 10, 11, 14, 15, 17, 18, 21, 24, 28, 35, 42, 56.0])
    days = [0.0, 3, 7, 10, 14, 17]
    doses = np.array([4e7, 1.2e8, 3.6e8])[np.arange(n) % 3]
    nk = ck7.CAR_NK
    mu = np.log([nk.rho_max, nk.alpha, nk.A50, 1.0])
    phi = mu + rng.normal(size=(n, 4)) * np.sqrt(np.array([0.1, 0.1, 0.0, 0.1]))
    sctx = {f"S{i:02d}": {"ck7_params": nk, "dose_days": days, "doses_per_kg": doses[i]} for i in range(n)}
    aux = np.stack([CK7.aux(sctx[f"S{i:02d}"]) for i in range(n)])
    lp = CK7.log_pred(phi, np.tile(t, (n, 1)), aux=aux)
    y = np.exp(lp + rng.normal(size=lp.shape) * 0.3)
    blq = y < 0.1
    df = pd.DataFrame({"subject_id": np.repeat(list(sctx), len(t)), "time": np.tile(t, n), "value": np.where(blq, np.nan, y).ravel(), "blq": blq.ravel(), "lloq": 0.1})
    r = saem(df, "ck7", seed=1, subject_context=sctx, mu0=np.log([ck7.CAR_T.rho_max, ck7.CAR_T.alpha, nk.A50, 1.0]))
    free = np.array([0, 1, 3])
    real = phi.mean(axis=0)
    assert np.all(np.isfinite(r.se_mu[free])) and np.all(np.abs(r.mu[free] - real[free]) < 3 * r.se_mu[free])
    assert r.typical()["rho_max"] == pytest.approx(nk.rho_max, rel=0.3)  # from the CAR-T start (0.9/d)
    assert r.sigma == pytest.approx(0.3, rel=0.2)
    # predictions use each subject's own doses: GOF runs on the fit
    g = diagnostics.gof(r, df)
    assert len(g) == int((~blq).sum() + blq.sum()) and g["ipred"].gt(0).all()


def test_pl_figures_are_built_from_engine_tables() -> None:
    from cd7kit.kinetics import pl

    tab = __import__("pandas").DataFrame({"time": [1.0, 2.0], "dv": [10.0, 20.0], "blq": [False, False], "pred": [12.0, 18.0], "ipred": [11.0, 19.0], "iwres": [0.1, -0.1]})
    fig = pl.gof(tab)
    assert len(fig.data) == 5 and list(fig.data[0].y) == [10.0, 20.0]
