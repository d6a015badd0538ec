"""ASTCT 2019 CRS grading: the seed case report, the spec's edge rules E1-E10, footnotes and options."""

from __future__ import annotations

import json

import pytest
from _grading_build import ev, iv, obs, study, temps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cd7kit.clinical.grading.crs import grade_crs
from cd7kit.errors import InputError


def one(s, **options):
    (r,) = grade_crs(s, options=options or None)
    return r


def day_grades(r) -> dict[int, int]:
    d = r.details["days"]
    return dict(zip(d["day"].astype(int), d["grade"].astype(int), strict=True))


# -- the seed case report (Pan et al., Front Oncol; seed 004), encoded from its text -------------------------
def case1_rows():
    """Case 1 after the second infusion (day 0 here): 'Fever developed on day 2, peaked at 39.5 C, and persisted
    for 1 week. On day 8, hypotension occurred, requiring norepinephrine or dopamine ... oxygen inhalation at
    10 L/min via mask ... tocilizumab on days +8 and +14, dexamethasone days +7 to +14 ... ICE score of 8 on day 13'."""
    S = "CASE1"
    o = [obs(S, d, "TEMP", t, attribution="IEC") for d, t in zip(range(2, 9), [38.4, 38.9, 39.5, 39.2, 39.0, 38.7, 38.3], strict=True)]
    o += [obs(S, d, "TEMP", 37.0) for d in range(9, 16)]
    o += [obs(S, 13, "ICE", 8.0), obs(S, 12, "ICE", 10.0), obs(S, 15, "ICE", 10.0)]
    i = [
        iv(S, -4, "lymphodepletion", -2, agent="fludarabine"),
        iv(S, 0, "car_infusion", agent="NS7CAR-T"),
        iv(S, 8, "vasopressor", 14, agent="norepinephrine or dopamine", indication="hypotension"),
        iv(S, 8, "oxygen", 14, device="simple_facemask", flow_l_min=10.0, indication="hypoxia"),
        iv(S, 8, "tocilizumab", agent="tocilizumab"),
        iv(S, 14, "tocilizumab", agent="tocilizumab"),
        iv(S, 7, "corticosteroid", 14, agent="dexamethasone"),
    ]
    e = [ev(S, 8, "ae", "Hypotension", end_day=14.0, attribution="IEC")]
    return o, i, e


def case2_rows():
    """Case 2: 'Grade 1 CRS, manifested by fever and muscle aches ... CRES events were not detected'."""
    S = "CASE2"
    o = [obs(S, 7, "TEMP", 38.3, attribution="IEC"), obs(S, 8, "TEMP", 37.2)]
    o += [obs(S, d, "ICE", 10.0) for d in (7, 10, 14)]
    i = [iv(S, -4, "lymphodepletion", -2), iv(S, 0, "car_infusion")]
    e = [ev(S, 7, "ae", "Myalgia", attribution="IEC")]
    return o, i, e


def seed_study():
    o1, i1, e1 = case1_rows()
    o2, i2, e2 = case2_rows()
    return study(o1 + o2, i1 + i2, e1 + e2, ages={"CASE1": 39.0, "CASE2": 17.0})


def test_seed_case1_is_grade3_and_case2_grade1():
    res = {r.subject_id: r for r in grade_crs(seed_study())}
    c1, c2 = res["CASE1"], res["CASE2"]
    assert c1.value == 3 and c2.value == 1
    (epi,) = c1.details["episodes"]
    assert epi["onset_day"] == 2 and epi["max_grade"] == 3 and epi["max_grade_day"] == 8
    g = day_grades(c1)
    assert [g[d] for d in range(2, 8)] == [1] * 6
    # afebrile from day 9 but masked by tocilizumab / dexamethasone: still grade 3 while on the vasopressor (F2)
    assert g[9] == 3 and g[14] == 3
    assert g[15] == 0  # no fever, no vasopressor, no oxygen, no therapy: resolution
    assert epi["resolution_day"] == 15 and epi["duration_days"] == 13
    kinds = {(e.table, e.what.split(" ")[0]) for e in c1.evidence}
    assert ("interventions", "vasopressor") in kinds and ("interventions", "oxygen") in kinds
    assert c1.rule.system == "ASTCT CRS" and c1.rule.version == "2019" and "Lee" in c1.rule.source


def test_seed_cases_from_the_shipped_dataset():
    from cd7kit.clinical.grading.icans import grade_icans
    from cd7kit.data import Study
    from cd7kit.datasets import case_reports as datasets

    s = Study.from_tables(**datasets.case_report_tables())
    crs = {r.subject_id: r.value for r in grade_crs(s)}
    icans = {r.subject_id: r for r in grade_icans(s)}
    assert crs == {datasets.CASE1: 3, datasets.CASE2: 1}
    assert icans[datasets.CASE1].value == 1 and icans[datasets.CASE1].details["basis"] == "assessments"
    # case 2: no ICE score was recorded, but the authors state "CRES events were not detected during therapy":
    # grade 0 on that statement (the event row is the evidence), the missing assessment still listed
    c2 = icans[datasets.CASE2]
    assert c2.value == 0 and c2.details["basis"] == "clinician-reported absence"
    assert [e.what for e in c2.evidence] == ["icans"] and "not detected" in str(c2.evidence[0].value)
    assert c2.missing and "clinician" in c2.missing[0]
    # without that rule the same record is NA, never a silent 0
    (na,) = [r for r in grade_icans(s, options={"accept_reported_absence": False}) if r.subject_id == datasets.CASE2]
    assert na.value is None and na.missing


# -- edge rules (spec 1.5): one subject per case, one Study, graded once ----------------------------------
def _edge_rows():
    o, i, e = [], [], []
    T = lambda sid, day=1, t=38.5, **kw: o.append(obs(sid, day, "TEMP", t, **kw))  # noqa: E731
    # E1: afebrile, hypotensive on a vasopressor
    o.extend([obs("E1", 1, "TEMP", 37.2), obs("E1", 1, "SBP", 70.0)])
    i.append(iv("E1", 1, "vasopressor", 2, agent="norepinephrine"))
    # E2: fever only, tocilizumab for persistent fever
    o.extend(temps("E2", [1, 2, 3], 39.0) + [obs("E2", 4, "TEMP", 37.0)])
    i.append(iv("E2", 2, "tocilizumab"))
    # E3: afebrile after tocilizumab on one vasopressor; E3n the same without tocilizumab
    for sid, toci in (("E3", True), ("E3n", False)):
        o.extend([obs(sid, 1, "TEMP", 39.0), obs(sid, 2, "TEMP", 37.0)])
        i.append(iv(sid, 2, "vasopressor", agent="norepinephrine"))
        if toci:
            i.append(iv(sid, 1, "tocilizumab"))
    # E4: nasal cannula flow boundary; no flow recorded
    for sid, flow in (("E4_2", 2.0), ("E4_6", 6.0), ("E4_6.5", 6.5), ("E4_15", 15.0), ("E4_none", None)):
        T(sid)
        i.append(iv(sid, 1, "oxygen", device="nasal_cannula", flow_l_min=flow))
    # E5 and the device table
    for dev in ("simple_facemask", "blow_by", "venturi", "non_rebreather", "hfnc", "bipap", "invasive_mv", "room_air"):
        T("DEV_" + dev)
        i.append(iv("DEV_" + dev, 1, "oxygen", device=dev, flow_l_min=5.0))
    # E6: vasopressin alone
    T("E6")
    i.append(iv("E6", 1, "vasopressor", agent="vasopressin"))
    # E7: NE + vasopressin; NE + phenylephrine concurrently; a switch within the day
    for sid, other in (("E7_vaso", "vasopressin"), ("E7_phe", "phenylephrine")):
        T(sid)
        T(sid, 2)
        i.extend([iv(sid, 1, "vasopressor", 2, agent="norepinephrine"), iv(sid, 2, "vasopressor", 2, agent=other)])
    T("E7_switch")
    i.extend([iv("E7_switch", 1.0, "vasopressor", 1.4, agent="norepinephrine"), iv("E7_switch", 1.5, "vasopressor", 1.9, agent="phenylephrine")])
    # E8: grade-4 transaminitis with fever only
    T("E8", t=38.6)
    o.append(obs("E8", 1, "ALT", 900.0, uln=40.0))
    # E9: home CPAP for sleep apnoea; F6: intubation for airway protection
    T("E9")
    i.append(iv("E9", 0, "oxygen", 3, device="cpap", indication="home CPAP for OSA"))
    T("F6")
    i.append(iv("F6", 1, "oxygen", device="invasive_mv", indication="airway protection (ICANS)"))
    # E10: biphasic CRS
    o.extend([obs("E10", d, "TEMP", t) for d, t in ((1, 38.5), (2, 38.9), (3, 37.0), (6, 39.0), (7, 37.0))])
    i.append(iv("E10", 6, "oxygen", device="nasal_cannula", flow_l_min=3.0))
    # F3: febrile, one vasopressor and low-flow nasal cannula = grade 3
    T("F3")
    i.extend([iv("F3", 1, "vasopressor", agent="norepinephrine"), iv("F3", 1, "oxygen", device="nasal_cannula", flow_l_min=2.0)])
    # A5: prophylactic steroid before onset, never febrile
    o.append(obs("A5", 1, "TEMP", 37.0))
    i.extend([iv("A5", -1, "corticosteroid", 1, agent="dexamethasone"), iv("A5", 1, "vasopressor", agent="norepinephrine")])
    # A2: norepinephrine + dobutamine
    T("A2")
    i.extend([iv("A2", 1, "vasopressor", agent="norepinephrine"), iv("A2", 1, "inotrope", agent="dobutamine")])
    # F1: fever attributed to infection
    T("F1", t=39.2, attribution="infection")
    # A1: numeric hypotension by age
    for sid, sbp in (("A1_5y_79", 79.0), ("A1_5y_80", 80.0), ("A1_6mo_69", 69.0), ("A1_15y_89", 89.0), ("A1_15y_90", 90.0)):
        T(sid)
        o.append(obs(sid, 1, "SBP", sbp))
    # investigator hypotension flag without a vasopressor
    T("FLAG")
    e.append(ev("FLAG", 1, "ae", "Hypotension responding to fluids"))
    # grade 5
    for sid, cause in (("G5", "CRS"), ("G5n", "sepsis")):
        T(sid, t=39.0)
        e.append(ev(sid, 3, "death", "Death", details=json.dumps({"cause": cause})))
    # no temperature at all
    o.append(obs("NOTEMP", 1, "SBP", 120.0))
    # fever after conditioning
    o.extend([obs("COND", 1, "TEMP", 37.0), obs("COND", 40, "TEMP", 40.0)])
    i.extend([iv("COND", 35, "conditioning", 39), iv("COND", 40, "vasopressor", agent="norepinephrine")])
    return o, i, e


AGES = {"A1_5y_79": 5.0, "A1_5y_80": 5.0, "A1_6mo_69": 0.5, "A1_15y_89": 15.0, "A1_15y_90": 15.0}


@pytest.fixture(scope="module")
def edge():
    o, i, e = _edge_rows()
    s = study(o, i, e, ages={**{r["subject_id"]: 40.0 for r in o + i + e}, **AGES})
    return s, {r.subject_id: r for r in grade_crs(s)}


def test_E1_afebrile_hypotension_is_not_crs(edge):
    assert edge[1]["E1"].value == 0


def test_E2_tocilizumab_for_fever_only_stays_grade1(edge):
    assert edge[1]["E2"].value == 1


def test_E3_afebrile_after_tocilizumab_on_one_vasopressor_is_grade3(edge):
    r = edge[1]["E3"]
    assert day_grades(r)[2] == 3 and r.details["days"]["masked"].iloc[-1]
    # without masking therapy the afebrile day ends the episode
    assert day_grades(edge[1]["E3n"])[2] == 0


@pytest.mark.parametrize(("sid", "grade"), [("E4_2", 2), ("E4_6", 2), ("E4_6.5", 3), ("E4_15", 3), ("E4_none", 2)])
def test_E4_nasal_cannula_flow_boundary(edge, sid, grade):
    assert edge[1][sid].value == grade


def test_nasal_cannula_without_flow_says_so(edge):
    assert any("flow" in m for m in edge[1]["E4_none"].missing)


@pytest.mark.parametrize(("device", "grade"), [("simple_facemask", 3), ("blow_by", 2), ("venturi", 3), ("non_rebreather", 3), ("hfnc", 3), ("bipap", 4), ("invasive_mv", 4), ("room_air", 1)])
def test_E5_device_defines_grade(edge, device, grade):
    assert edge[1]["DEV_" + device].value == grade


def test_E6_vasopressin_alone_and_its_option(edge):
    s, res = edge
    assert res["E6"].value == 3
    assert grade_crs(s, "E6", {"vasopressin_alone_grade": 2})[0].value == 2


def test_E7_concurrent_and_sequential_vasopressors(edge):
    res = edge[1]
    assert res["E7_vaso"].value == 3
    assert res["E7_phe"].value == 4
    assert res["E7_switch"].value == 3 and res["E7_switch"].details["days"]["vasopressors"].max() == 1


def test_E8_transaminitis_does_not_raise_crs(edge):
    from cd7kit.clinical.grading.ctcae import grade_ctcae

    s, res = edge
    assert res["E8"].value == 1
    alt = [r for r in grade_ctcae(s, "E8") if r.name == "ctcae:alanine_aminotransferase_increased"][0]
    assert alt.value == 4


def test_E9_home_cpap_for_sleep_apnoea_is_not_counted_and_is_reported(edge):
    r = edge[1]["E9"]
    assert r.value == 1
    assert any(e["table"] == "interventions" and "another indication" in e["reason"] for e in r.details["excluded"])


def test_F6_intubation_for_airway_protection_is_not_grade4(edge):
    assert edge[1]["F6"].value == 1


def test_E10_biphasic_crs_gives_two_episodes(edge):
    r = edge[1]["E10"]
    eps = r.details["episodes"]
    assert [(e["onset_day"], e["resolution_day"], e["max_grade"]) for e in eps] == [(1, 3, 1), (6, 7, 2)]
    assert r.value == 2


def test_F3_more_severe_of_hypotension_and_hypoxia(edge):
    assert edge[1]["F3"].value == 3


def test_A5_prophylactic_steroid_before_onset_does_not_start_crs(edge):
    assert edge[1]["A5"].value == 0


def test_A2_inotropes_not_counted_unless_asked(edge):
    s, res = edge
    assert res["A2"].value == 3 and any("inotrope" in e["reason"] for e in res["A2"].details["excluded"])
    assert grade_crs(s, "A2", {"crs.include_inotropes": "true"})[0].value == 4


def test_F1_fever_attributed_to_infection_is_excluded_and_reported(edge):
    r = edge[1]["F1"]
    assert r.value == 0 and r.details["excluded"][0]["reason"].startswith("fever attributed")


@pytest.mark.parametrize(("sid", "hypo"), [("A1_5y_79", True), ("A1_5y_80", False), ("A1_6mo_69", True), ("A1_15y_89", True), ("A1_15y_90", False)])
def test_A1_numeric_hypotension_by_age(edge, sid, hypo):
    s, res = edge
    assert res[sid].value == (2 if hypo else 1)


def test_A1_flag_only_option_ignores_sbp(edge):
    s, _ = edge
    flag_only = {r.subject_id: r.value for r in grade_crs(s, options={"hypotension": "flag"})}
    assert flag_only["A1_5y_79"] == 1 and flag_only["FLAG"] == 2


def test_investigator_hypotension_flag_without_pressor_is_grade2(edge):
    s, res = edge
    assert res["FLAG"].value == 2
    assert grade_crs(s, "FLAG", {"hypotension": "numeric"})[0].value == 1


def test_grade5_only_when_death_is_due_to_crs(edge):
    res = edge[1]
    assert res["G5"].value == 5 and res["G5"].details["grade5"]
    assert res["G5n"].value == 1


def test_no_temperature_is_na_with_reason(edge):
    r = edge[1]["NOTEMP"]
    assert r.value is None and "temperature" in r.missing[0]


def test_fever_after_conditioning_is_censored(edge):
    s, res = edge
    assert res["COND"].value == 0
    assert grade_crs(s, "COND", {"censor_kinds": []})[0].value == 3


def test_unknown_option_is_an_input_error():
    with pytest.raises(InputError, match="unknown crs option"):
        grade_crs(study([obs("A", 1, "TEMP", 38.0)]), options={"nonsense": 1})
    with pytest.raises(InputError):
        grade_crs(study([obs("A", 1, "TEMP", 38.0)]), options={"crs.hypotension": "maybe"})


def test_to_dict_is_json_ready():
    d = one(seed_study().subject("CASE1")).to_dict()
    text = json.dumps(d)
    assert d["value"] == 3 and d["rule"]["system"] == "ASTCT CRS" and '"episodes"' in text


# -- hypothesis: making a finding worse never lowers the grade ------------------------------------------------
DEVICES = ["room_air", "nasal_cannula", "simple_facemask", "bipap"]
day_st = st.tuples(
    st.floats(36.0, 40.5),  # temperature
    st.integers(0, 2),  # vasopressors
    st.integers(0, 3),  # device index
    st.booleans(),  # masking therapy
)


def _rows(sid, days):
    o, i = [], []
    for d, (t, npress, dev, ther) in enumerate(days, start=1):
        o.append(obs(sid, d, "TEMP", round(t, 1)))
        for k in range(npress):
            i.append(iv(sid, d, "vasopressor", agent=["norepinephrine", "phenylephrine"][k]))
        if dev:
            i.append(iv(sid, d, "oxygen", device=DEVICES[dev], flow_l_min=4.0))
        if ther:
            i.append(iv(sid, d, "tocilizumab"))
    return o, i


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days=st.lists(day_st, min_size=2, max_size=6), which=st.integers(0, 5), what=st.sampled_from(["temp", "press", "device"]))
def test_worse_finding_never_lowers_grade(days, which, what):
    which %= len(days)
    worse = list(days)
    t, npress, dev, ther = worse[which]
    if what == "temp":
        worse[which] = (max(t, 38.0) + 0.5, npress, dev, ther)
    elif what == "press":
        worse[which] = (t, min(npress + 1, 2), dev, ther)
    else:
        worse[which] = (t, npress, min(dev + 1, 3), ther)
    o1, i1 = _rows("BEFORE", days)
    o2, i2 = _rows("AFTER", worse)
    res = {r.subject_id: r for r in grade_crs(study(o1 + o2, i1 + i2))}
    before, after = res["BEFORE"], res["AFTER"]
    assert after.value >= before.value
    gb, ga = day_grades(before), day_grades(after)
    assert all(ga.get(d, 0) >= g for d, g in gb.items())
