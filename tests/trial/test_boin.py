"""BOIN against R BOIN 2.7.2 and the published tables (spec escalation.md §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cd7kit.errors import InputError
from cd7kit.trial import Boin, TrialData, boundaries, lambdas, select_mtd
from cd7kit.trial import boin as B
from cd7kit.trial.rng import RStream

P5 = [0.05, 0.15, 0.30, 0.45, 0.60]


# -- boundaries ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target,le,ld",
    [(0.15, 0.118, 0.179), (0.20, 0.157, 0.238), (0.25, 0.197, 0.298), (0.30, 0.236, 0.359), (0.35, 0.276, 0.419), (0.40, 0.316, 0.480)],
)
def test_published_lambda_table(target, le, ld):
    """Yuan et al. 2016 CCR Table 1 (3 d.p.)."""
    lam_e, lam_d = lambdas(target)
    assert round(lam_e, 3) == le
    assert round(lam_d, 3) == ld


@pytest.mark.parametrize(
    "target,le,ld",
    [(0.3, 0.2364907, 0.3585195), (0.25, 0.196801, 0.298392), (0.33, 0.260377, 0.394716), (0.2, 0.157242, 0.238462),
     (0.15, 0.117797, 0.178686), (0.35, 0.276334, 0.418908), (0.4, 0.316360, 0.479650)],
)
def test_lambda_full_precision_as_r(target, le, ld):
    lam_e, lam_d = lambdas(target)
    digits = 7 if target == 0.3 else 6
    assert round(lam_e, digits) == pytest.approx(le, abs=10 ** -digits)
    assert round(lam_d, digits) == pytest.approx(ld, abs=10 ** -digits)


def test_md_anderson_decision_table_target_03():
    b = boundaries(0.3, 10, 3)
    rows = b.rows(full=False)
    assert [r["n"] for r in rows] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert [r["escalate_max"] for r in rows] == [0, 1, 2, 2, 3, 4, 4, 5, 6, 7]
    assert [r["deescalate_min"] for r in rows] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert [r["eliminate_min"] for r in rows] == [3, 4, 5, 7, 8, 9, 10, 11, 12, 14]


@pytest.mark.parametrize(
    "target,esc,de,el",
    [
        (0.3, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5], [None, None, 3, 3, 4, 4, 5, 5, 5, 6, 6, 7]),
        (0.25, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2], [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4], [None, None, 3, 3, 3, 4, 4, 4, 5, 5, 6, 6]),
        (0.33, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3], [1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5], [None, None, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]),
    ],
)
def test_full_boundary_n1_to_12(target, esc, de, el):
    rows = boundaries(target, 4, 3).rows(full=True)
    assert [r["escalate_max"] for r in rows] == esc
    assert [r["deescalate_min"] for r in rows] == de
    assert [r["eliminate_min"] for r in rows] == el


def test_extrasafe_stop_boundary():
    rows = boundaries(0.3, 4, 3, extrasafe=True).rows(full=True)
    assert [r["stop_min"] for r in rows][2:] == [2, 3, 3, 4, 4, 4, 5, 5, 6, 6]


def test_deescalation_integer_tolerance_rule_272():
    # lambda_d * n exactly (or within 1e-12 of) an integer k: de-escalate only for y > k, i.e. y >= k+1
    assert B.deescalate_min_raw(4, 0.25) == 2
    assert B.deescalate_min_raw(3, 1 / 3) == 2  # 1/3*3 = 1 (floating) -> threshold 2
    assert B.deescalate_min_raw(20, 0.35) == 8  # 0.35*20 = 7.000000000000001
    assert B.deescalate_min_raw(5, 0.3585) == 2  # plain ceiling otherwise


def test_input_checks_list_every_problem():
    with pytest.raises(InputError) as e:
        boundaries(0.7, 10, 3, p_saf=0.69, offset=0.6)
    msgs = " ".join(p.message for p in e.value.problems)
    assert "too high" in msgs and "offset" in msgs and "safe" in msgs


@settings(max_examples=40, deadline=None)
@given(target=st.floats(0.1, 0.5), ncohort=st.integers(1, 12), cohortsize=st.integers(1, 4))
def test_boundaries_monotone_in_n(target, ncohort, cohortsize):
    b = boundaries(target, ncohort, cohortsize)
    assert np.all(np.diff(b.escalate_max) >= 0)
    assert np.all(np.diff(b.deescalate_min) >= 0)
    assert np.all(b.escalate_max < b.deescalate_min)
    el = b.eliminate_min[b.eliminate_min != B.NA]
    assert np.all(np.diff(el) >= 0)
    has = b.eliminate_min != B.NA
    assert np.all(b.deescalate_min[has] <= b.eliminate_min[has])


# -- select.mtd ---------------------------------------------------------------------------------
def test_select_mtd_reference_example():
    m = select_mtd(0.3, [3, 6, 18, 3, 0], [0, 1, 5, 3, 0])
    assert m.mtd == 3
    assert [round(v, 2) for v in m.phat[:4]] == [0.02, 0.17, 0.28, 0.98]
    assert m.phat[4] is None
    assert m.eliminated == [4, 5]  # 3/3 at dose 4 is eliminated
    d = m.to_dict()
    assert d["mtd"] == 3 and d["value"] == 3 and d["rule"]["system"] == "BOIN" and d["evidence"]


def test_select_mtd_ties_below_target_go_to_higher_dose():
    assert select_mtd(0.3, [3, 3, 0], [0, 0, 0]).mtd == 2
    # pooled by PAVA (1/3 then 0/3): equal estimates below target -> the higher dose
    m = select_mtd(0.3, [3, 3], [1, 0])
    assert m.phat[0] == pytest.approx(m.phat[1])
    assert m.phat[0] < 0.3 and m.mtd == 2


def test_select_mtd_ties_above_target_go_to_lower_dose():
    m = select_mtd(0.3, [3, 3], [2, 2])
    assert not m.eliminated
    assert m.mtd == 1


def test_select_mtd_no_mtd_conventions():
    assert select_mtd(0.3, [3, 0, 0], [3, 0, 0]).mtd is None  # dose 1 eliminated (R: 99)
    assert select_mtd(0.3, [0, 0], [0, 0]).mtd is None
    # extrasafe: 2/3 at dose 1 gives P(p1 > 0.3) = 0.916 > 0.90
    assert select_mtd(0.3, [3, 3], [2, 0]).mtd is not None
    assert select_mtd(0.3, [3, 3], [2, 0], extrasafe=True).mtd is None
    # boundMTD: every estimate above lambda_d -> none; otherwise only doses with estimate <= lambda_d
    assert select_mtd(0.3, [6, 6], [3, 3], boundmtd=True).mtd is None
    assert select_mtd(0.3, [6, 6], [3, 3]).mtd == 1


def test_pava_merges_to_weighted_means():
    out = B.pava([0.5, 0.1, 0.3], [1.0, 3.0, 1.0])
    assert out[0] == pytest.approx(out[1]) == pytest.approx((0.5 + 0.3) / 4)
    assert np.all(np.diff(out) >= 0)


def test_interval_contains_estimate():
    m = select_mtd(0.3, [3, 6, 9], [0, 1, 3])
    for lo, ph, hi in zip(m.ci_lower, m.phat, m.ci_upper, strict=True):
        assert lo < ph < hi


# -- trial conduct ------------------------------------------------------------------------------
def test_worked_boin_path():
    path = [(1, "NNN"), (2, "NNN"), (3, "NTT"), (2, "NTN"), (3, "NNN"), (3, "NNN"), (4, "TTT"), (3, "NTN"), (3, "NNT"), (3, "TNN")]
    design = Boin(target=0.3, ncohort=10, cohortsize=3)
    n, y, nxt = [0] * 5, [0] * 5, []
    for dose, cohort in path:
        n[dose - 1] += 3
        y[dose - 1] += cohort.count("T")
        nxt.append(design.next_dose(TrialData.of(n, y, dose)).value)
    assert nxt[:-1] == [2, 3, 2, 3, 3, 4, 3, 3, 3]
    last = design.next_dose(TrialData.of(n, y, 3))
    assert last.stop and last.mtd is not None and last.mtd.mtd == 3  # 30 patients: stop, MTD 3
    assert B.next_dose(0.3, TrialData.of(n, y, 3)).value == 3  # without a maximum: stay at 3
    assert design.select_mtd({"n": n, "y": y}).mtd == 3


def test_next_dose_rules():
    nd = B.next_dose
    assert nd(0.3, {"n": [3, 3, 0], "y": [0, 3, 0], "current": 1}).action == "stay"  # dose 2 eliminated
    d = nd(0.3, {"n": [3, 3, 0], "y": [0, 3, 0], "current": 2})
    assert d.action == "de-escalate" and d.value == 1 and d.eliminated == [2, 3]
    assert nd(0.3, {"n": [3, 0], "y": [2, 0], "current": 1}).action == "stay"  # de-escalation at the lowest dose
    s = nd(0.3, {"n": [3, 0], "y": [3, 0], "current": 1})
    assert s.stop and s.value is None and s.mtd is None  # lowest dose eliminated
    e = nd(0.3, {"n": [3, 9, 0], "y": [0, 3, 0], "current": 2}, n_earlystop=9)
    assert e.stop and e.mtd.mtd == 2  # 9 at the dose and 3/9 -> stay -> stop ("with stay")
    assert not nd(0.3, {"n": [3, 9, 0], "y": [0, 2, 0], "current": 2}, n_earlystop=9).stop  # 2/9 escalates
    with pytest.raises(InputError):
        nd(0.3, {"n": [3, 0], "y": [4, 0], "current": 1})
    dd = nd(0.3, {"n": [3, 3], "y": [0, 1], "current": 2}).to_dict()
    assert {"value", "evidence", "rule", "missing"} <= set(dd)


# -- R's random stream and get.oc -------------------------------------------------------------------
def test_compiled_mersenne_twister_equals_numpy_mt19937_with_r_key():
    a, b = RStream(2024), RStream(2024, engine="numpy")
    x = np.concatenate([a.runif(7), a.runif(624), a.runif(2000)])  # crosses several 624-word blocks
    assert np.array_equal(x, b.runif(len(x)))


def test_r_runif_stream():
    assert np.allclose(RStream(123).runif(3), [0.2875775201, 0.7883051354, 0.4089769218], atol=1e-10)
    assert np.allclose(RStream(6).runif(3), [0.6062683, 0.9376420, 0.2643521], atol=5e-8)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_get_oc_documentation_example_exactly(engine):
    oc = B.simulate(0.3, P5, ncohort=20, cohortsize=3, ntrial=1000, seed=6, rng="r", engine=engine)
    assert list(np.round(oc.selection_pct, 1)) == [1.1, 23.5, 65.0, 10.1, 0.2]
    assert list(np.round(oc.patients_mean, 3)) == [4.611, 17.733, 27.753, 8.778, 1.068]
    assert round(oc.n_mean, 3) == 59.943
    assert round(oc.stop_pct, 1) == 0.1
    assert oc.selection_pct.sum() + oc.stop_pct == pytest.approx(100)


def test_get_oc_titration_example_exactly():
    oc = B.simulate(0.3, P5, ncohort=20, cohortsize=3, ntrial=1000, titration=True)
    assert list(np.round(oc.selection_pct, 1)) == [0.8, 21.6, 67.9, 9.7, 0.0]


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"extrasafe": True, "p": [0.3, 0.45, 0.6, 0.7]},
        {"n_earlystop": 9, "boundmtd": True},
        {"titration": True, "startdose": 2},
        {"startdose": 3, "cohortsize": 2, "ncohort": 7},
        {"rng": "numpy", "cutoff_eli": 0.9, "p_saf": 0.15, "p_tox": 0.45},
        {"rng": "numpy", "titration": True, "extrasafe": True, "n_earlystop": 9},
        {"rng": "numpy", "startdose": 2, "cohortsize": 4, "ncohort": 7, "boundmtd": True},
    ],
)
def test_fast_and_reference_agree_trial_by_trial(opts):
    opts = dict(opts)
    p = opts.pop("p", P5)
    kw = {"ncohort": 10, "cohortsize": 3, "ntrial": 300, "seed": 11, **opts}
    a = B.simulate(0.3, p, engine="fast", **kw)
    b = B.simulate(0.3, p, engine="reference", **kw)
    assert np.array_equal(a.N, b.N) and np.array_equal(a.Y, b.Y) and np.array_equal(a.mtd, b.mtd)


def test_binomial_inversion_gives_the_binomial_distribution():
    """Fast mode: one uniform per cohort -> DLT count by inverting the Binomial(m, p) CDF (exact frequencies on a grid)."""
    from scipy import stats

    from cd7kit.trial._kernels import binomial_cdf_table, binomial_inverse

    p = np.array([0.05, 0.3, 0.6, 1.0, 0.0])
    cdf = binomial_cdf_table(p, 4)
    K = 200_000
    v = (np.arange(K) + 0.5) / K
    for d in range(len(p)):
        for m in range(5):
            k = np.array([binomial_inverse(x, cdf, d, m) for x in v[::50]] + [binomial_inverse(v[-1], cdf, d, m)])
            freq = np.bincount(k, minlength=m + 1)[: m + 1] / len(k)
            assert np.allclose(freq, stats.binom.pmf(np.arange(m + 1), m, p[d]), atol=2 / len(k))
            assert k.max() <= m


@pytest.mark.parametrize("opts", [{}, {"titration": True}, {"n_earlystop": 9, "extrasafe": True}, {"cohortsize": 4, "ncohort": 8}])
def test_fast_mode_agrees_with_r_compatible_mode_in_distribution(opts):
    """rng='numpy' (PCG64, one uniform per cohort) vs rng='r' (R's stream, one per patient): 20,000 trials each."""
    kw = {"ncohort": 10, "cohortsize": 3, "ntrial": 20_000, **opts}
    a = B.simulate(0.3, P5, rng="r", seed=6, **kw)
    b = B.simulate(0.3, P5, rng="numpy", seed=6, **kw)
    for key in ("selection_pct", "patients_mean", "dlt_mean"):
        se = np.hypot(a.se[key], b.se[key])
        assert np.all(np.abs(getattr(a, key) - getattr(b, key)) <= 4 * se + 1e-12), key
    for key in ("stop_pct", "n_mean", "overdose60_pct"):
        assert abs(getattr(a, key) - getattr(b, key)) <= 4 * np.hypot(a.se[key], b.se[key]) + 1e-12, key


def test_overdose_for_any_scenario_and_per_trial():
    oc = Boin(target=0.3, ncohort=10, cohortsize=3).simulate([0.1, 0.25, 0.5, 0.7], ntrial=400, per_trial=True)
    over = oc.N[:, 2:].sum(axis=1)
    assert oc.overdose60_pct == pytest.approx(100 * np.mean(over > 18))
    d = oc.to_dict()
    assert len(d["per_trial"]) == 400
    rec = d["per_trial"][0]
    assert sum(rec["n"]) == oc.N[0].sum() and (rec["mtd"] is None or 1 <= rec["mtd"] <= 4)
    assert d["se"]["selection_pct"][0] >= 0


@settings(max_examples=15, deadline=None)
@given(
    p=st.lists(st.floats(0.0, 0.9), min_size=2, max_size=6).map(sorted),
    seed=st.integers(0, 10_000),
    extrasafe=st.booleans(),
)
def test_selection_plus_stop_is_100(p, seed, extrasafe):
    oc = B.simulate(0.3, p, 6, 3, ntrial=50, seed=seed, rng="numpy", extrasafe=extrasafe)
    assert oc.selection_pct.sum() + oc.stop_pct == pytest.approx(100)
    assert np.all(oc.N.sum(axis=1) <= 18)
    assert math.isclose(oc.n_mean, oc.patients_mean.sum())


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=6),
    extrasafe=st.booleans(),
    boundmtd=st.booleans(),
)
def test_compiled_select_mtd_equals_public_select_mtd(data, extrasafe, boundmtd):
    from cd7kit.trial._boin_fast import select_mtd_kernel

    n = np.array([a for a, _ in data], dtype=np.int64)
    y = np.array([min(b, a) for a, b in data], dtype=np.int64)
    b = boundaries(0.3, 4, 3, extrasafe=True)
    t = B._sim_tables(b)
    got = select_mtd_kernel(n, y, t.el, t.stop, 0.3, extrasafe, boundmtd, t.lam_d)
    ref = select_mtd(0.3, n.tolist(), y.tolist(), extrasafe=extrasafe, boundmtd=boundmtd).mtd
    assert got == (0 if ref is None else ref)
