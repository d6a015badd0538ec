"""NCT06849401: every criterion at and around its bounds, as the protocol writes them (strict vs inclusive).

The base patient (``examples/patient_NCT06849401.json``) is ELIGIBLE; each case changes one fact and
checks one criterion's result. Day 0 is the checkpoint.
"""

from __future__ import annotations

import pytest

from cd7kit.clinical.eligibility import ELIGIBLE, INELIGIBLE, MET, NOT_MET, PENDING, UNKNOWN


def test_base_patient_is_eligible_with_every_criterion_decided(v):
    rep = v().report()
    assert rep.verdict == ELIGIBLE
    assert len(rep.results) == 33
    assert all(r.value in (MET, NOT_MET) for r in rep.results)
    assert {r.id for r in rep.results if r.value == MET} == {f"I{i}" for i in range(1, 14)}


@pytest.mark.parametrize(
    "age, expected",
    [(1.99, NOT_MET), (2.0, MET), (2.01, MET), (17.99, MET), (18.0, MET), (18.99, MET), (19.0, NOT_MET), (None, UNKNOWN)],
)
def test_I1_age_2_to_18_completed_years(v, age, expected):
    assert v().subject(age_years=age).result("I1") == expected


def test_I1_sex_unknown_is_unknown(v):
    assert v().subject(sex="U").result("I1") == UNKNOWN


@pytest.mark.parametrize(
    "diagnosis, status, expected",
    [("T-ALL", "relapsed", MET), ("ETP-ALL", "primary_refractory", MET), ("T-LBL", "relapsed", NOT_MET), ("T-ALL", "not_relapsed_refractory", NOT_MET)],
)
def test_I2_relapsed_refractory_t_all(v, diagnosis, status, expected):
    assert v().subject(diagnosis=diagnosis).obs_("RR_STATUS", text=status).result("I2") == expected


def test_I2_missing_status_is_unknown(v):
    r = v().drop("RR_STATUS").report().result("I2")
    assert r.value == UNKNOWN
    assert any("RR_STATUS" in m for m in r.missing)


@pytest.mark.parametrize("bm, pb, expected", [(25.0, 25.0, NOT_MET), (25.1, 10.0, MET), (10.0, 25.1, MET), (25.0, None, UNKNOWN)])
def test_I3_relapse_blasts_strictly_above_25(v, bm, pb, expected):
    x = v().obs_("BM_BLASTS", bm).obs_("EMD_STATUS", text="absent")
    x = x.obs_("PB_BLASTS", pb) if pb is not None else x.drop("PB_BLASTS")
    assert x.result("I3") == expected


def test_I3_extramedullary_relapse_counts(v):
    assert v().obs_("BM_BLASTS", 10.0).obs_("PB_BLASTS", 2.0).obs_("EMD_STATUS", text="present").result("I3") == MET


@pytest.mark.parametrize("bm, expected", [(4.9, NOT_MET), (5.0, MET)])
def test_I3_primary_refractory_blasts_at_least_5(v, bm, expected):
    assert v().obs_("RR_STATUS", text="primary_refractory").obs_("BM_BLASTS", bm).result("I3") == expected


@pytest.mark.parametrize("att, expected", [(None, UNKNOWN), (True, MET), (False, NOT_MET)])
def test_I3_judgement_part_is_an_attestation(v, att, expected):
    assert v().attest("I3", att).result("I3") == expected


@pytest.mark.parametrize("bm, expected", [(4.9, NOT_MET), (5.0, MET), (5.1, MET)])
def test_I4_blasts_remain_at_least_5_after_other_treatment(v, bm, expected):
    assert v().obs_("BM_BLASTS", bm).result("I4") == expected


def test_I4_without_prior_treatment_is_not_met(v):
    x = v()
    x.iv = x.iv[x.iv["kind"] != "chemotherapy"]
    assert x.result("I4") == NOT_MET


@pytest.mark.parametrize("cd7, expected", [(79.9, NOT_MET), (80.0, NOT_MET), (80.1, MET), (100.0, MET)])
def test_I5_cd7_blasts_strictly_above_80(v, cd7, expected):
    assert v().obs_("CD7_BLASTS", cd7).result("I5") == expected


def test_I5_falls_back_to_the_subjects_table_then_unknown(v):
    assert v().drop("CD7_BLASTS").subject(cd7_blast_pct=92.0).result("I5") == MET
    assert v().drop("CD7_BLASTS").subject(cd7_blast_pct=80.0).result("I5") == NOT_MET
    assert v().drop("CD7_BLASTS").result("I5") == UNKNOWN


@pytest.mark.parametrize("cid", ["I6", "I13", "E18", "E20"])
def test_pure_attestations_are_unknown_until_attested(v, cid):
    assert v().attest(cid, None).result(cid) == UNKNOWN
    assert v().attest(cid, True).result(cid) == MET
    assert v().attest(cid, False).result(cid) == NOT_MET


@pytest.mark.parametrize(
    "code, value, expected",
    [("LANSKY", 60, NOT_MET), ("LANSKY", 61, MET), ("KARNOFSKY", 60, NOT_MET), ("KARNOFSKY", 70, MET), ("ECOG", 1, MET), ("ECOG", 2, NOT_MET)],
)
def test_I7_ecog_at_most_1_or_kps_above_60(v, code, value, expected):
    assert v().drop("LANSKY").obs_(code, value, unit="score").result("I7") == expected


def test_I7_no_scale_or_stale_scale_is_unknown(v):
    assert v().drop("LANSKY").result("I7") == UNKNOWN
    assert v().obs_("LANSKY", 90, day=-15).result("I7") == UNKNOWN  # look-back 14 days
    assert v().obs_("LANSKY", 90, day=-14).result("I7") == MET


@pytest.mark.parametrize("lvef, expected", [(49.9, NOT_MET), (50.0, MET), (50.1, MET)])
def test_I8_lvef_at_least_50(v, lvef, expected):
    assert v().obs_("LVEF", lvef).result("I8") == expected


@pytest.mark.parametrize("grade, spo2, expected", [(1, 95, MET), (2, 98, NOT_MET), (0, 94, NOT_MET), (0, 95, MET)])
def test_I9_dyspnea_and_oxygen_saturation(v, grade, spo2, expected):
    assert v().obs_("DYSPNEA_GRADE", grade).obs_("SPO2", spo2).result("I9") == expected


def test_I9_supplemental_oxygen_fails_room_air_does_not(v):
    assert v().iv_("oxygen", -1, 1, device="nasal_cannula").result("I9") == NOT_MET
    assert v().iv_("oxygen", -1, 1, device="room_air").result("I9") == MET
    assert v().iv_("oxygen", -5, -2, device="nasal_cannula").result("I9") == MET  # stopped before


@pytest.mark.parametrize(
    "code, value, uln, expected",
    [
        ("BILI", 3.6, 1.2, MET),  # 3 x ULN exactly (floating 3*1.2 = 3.5999...)
        ("BILI", 3.61, 1.2, NOT_MET),
        ("AST", 200, 40, MET),
        ("AST", 201, 40, NOT_MET),
        ("ALT", 200, 40, MET),
        ("ALT", 200.5, 40, NOT_MET),
        ("CREAT", 1.6, 1.0, MET),
        ("CREAT", 1.61, 1.0, NOT_MET),
    ],
)
def test_I10_organ_function_bounds(v, code, value, uln, expected):
    assert v().obs_(code, value, uln=uln).result("I10") == expected


def test_I10_needs_uln_and_labs_within_one_week(v):
    assert v().obs_("AST", 30, uln=None).obs_("AST", 30).result("I10") == MET
    x = v()
    x.obs.loc[x.obs["code"] == "BILI", "uln"] = float("nan")
    r = x.report().result("I10")
    assert r.value == UNKNOWN and any("ULN of BILI" in m for m in r.missing)
    assert v().obs_("CREAT", 0.5, day=-7).result("I10") == MET
    assert v().obs_("CREAT", 0.5, day=-8).result("I10") == UNKNOWN


def test_I10_bad_lab_decides_even_when_another_is_missing(v):
    # Kleene 'and': one false operand decides whatever is unknown
    assert v().drop("AST").obs_("CREAT", 1.9).result("I10") == NOT_MET
    assert v().drop("AST").result("I10") == UNKNOWN


def test_I11_fertility_pregnancy_test_and_contraception(v):
    assert v().obs_("REPRO_POTENTIAL", text="no").result("I11") == MET
    girl = v().subject(sex="F").obs_("REPRO_POTENTIAL", text="yes").attest("I11", True)
    assert girl.obs_("PREG_TEST", text="negative").result("I11") == MET
    assert v().subject(sex="F").obs_("REPRO_POTENTIAL", text="yes").attest("I11", True).obs_("PREG_TEST", text="positive").result("I11") == NOT_MET
    assert v().subject(sex="F").obs_("REPRO_POTENTIAL", text="yes").attest("I11", True).result("I11") == UNKNOWN  # no test
    assert v().subject(sex="F").obs_("REPRO_POTENTIAL", text="yes").obs_("PREG_TEST", text="negative").result("I11") == UNKNOWN  # no agreement
    assert v().obs_("REPRO_POTENTIAL", text="yes").attest("I11", True).result("I11") == MET  # fertile boy
    assert v().drop("REPRO_POTENTIAL").result("I11") == UNKNOWN


def test_I12_consent_recorded_or_attested(v):
    x = v()
    x.ev = x.ev[x.ev["term"] != "consented"]
    assert x.result("I12") == UNKNOWN
    assert x.attest("I12", True).result("I12") == MET


@pytest.mark.parametrize("cns, expected", [("CNS1", NOT_MET), ("CNS2", MET), ("CNS3", MET)])
def test_E1_cns_involvement(v, cns, expected):
    assert v().obs_("CNS_STATUS", text=cns).result("E1") == expected


def test_E1_testicular_involvement_only_asked_of_boys(v):
    assert v().obs_("TESTIS_STATUS", text="present").result("E1") == MET
    assert v().subject(sex="F").drop("TESTIS_STATUS").result("E1") == NOT_MET
    assert v().drop("TESTIS_STATUS").result("E1") == UNKNOWN


@pytest.mark.parametrize(
    "cid, code",
    [
        ("E2", "HX_SEVERE_CNS_DISEASE"),
        ("E4", "DIC_PRESENT"),
        ("E5", "AUTOIMMUNE_IMMUNODEF"),
        ("E7", "SEVERE_COMORBIDITY"),
        ("E7", "GI_ULCER_BLEEDING"),
        ("E7", "ANTICOAGULANT_THERAPY"),
        ("E9", "OTHER_MALIGNANCY_3Y"),
        ("E15", "PRIOR_CELL_GENE_THERAPY"),
        ("E16", "PRODUCT_ALLERGY"),
        ("E17", "VACCINE_SURGERY_4W"),
    ],
)
def test_checklist_exclusions(v, cid, code):
    assert v().result(cid) == NOT_MET
    assert v().obs_(code, text="yes").result(cid) == MET
    assert v().drop(code).result(cid) == UNKNOWN


@pytest.mark.parametrize("code", ["HBV_DNA_QUAL", "HCV_RNA_QUAL", "HIV_AGAB", "SYPHILIS_AB"])
def test_E10_any_positive_serology(v, code):
    assert v().obs_(code, text="positive").result("E10") == MET
    assert v().drop(code).result("E10") == UNKNOWN


@pytest.mark.parametrize("nyha, expected", [(2, NOT_MET), (3, MET), (4, MET)])
def test_E3_nyha_class_iii_or_iv(v, nyha, expected):
    assert v().obs_("NYHA_CLASS", nyha, unit="score").result("E3") == expected


def test_E6_active_gvhd_on_systemic_treatment(v):
    assert v().ev_("gvhd", "chronic GVHD", -30).iv_("corticosteroid", -30, 5, agent="methylprednisolone", route="IV").result("E6") == MET
    assert v().ev_("gvhd", "chronic GVHD", -30).iv_("corticosteroid", -30, 5, agent="budesonide", route="inhaled").result("E6") == NOT_MET
    assert v().ev_("gvhd", "chronic GVHD", -30, end=-10).iv_("immunosuppressant", -30, 5, agent="ruxolitinib").result("E6") == NOT_MET


def test_E7_investigator_judgement(v):
    assert v().attest("E7", True).result("E7") == MET
    assert v().attest("E7", None).result("E7") == UNKNOWN


def test_E8_systemic_steroids_needing_long_term_use(v):
    on = v().iv_("corticosteroid", -10, 10, agent="prednisone", route="oral")
    assert on.attest("E8", None).result("E8") == UNKNOWN
    assert v().iv_("corticosteroid", -10, 10, agent="prednisone", route="oral").attest("E8", True).result("E8") == MET
    assert v().iv_("corticosteroid", -10, 10, agent="prednisone", route="oral").attest("E8", False).result("E8") == NOT_MET
    assert v().attest("E8", None).result("E8") == NOT_MET  # not on steroids: no judgement needed


@pytest.mark.parametrize("grade, end, expected", [(3, None, MET), (4, 5.0, MET), (2, None, NOT_MET), (3, -1.0, NOT_MET), (None, None, UNKNOWN)])
def test_E11_active_severe_infection(v, grade, end, expected):
    assert v().ev_("infection", "pneumonia", -5, end=end, grade=grade).result("E11") == expected


@pytest.mark.parametrize("grade, expected", [(1, NOT_MET), (2, MET)])
def test_E12_unresolved_adverse_events(v, grade, expected):
    assert v().ev_("ae", "peripheral neuropathy", -20, grade=grade).result("E12") == expected


@pytest.mark.parametrize("plt, expected", [(9.9, MET), (10.0, NOT_MET), (54.0, NOT_MET)])
def test_E13_platelets_below_transfusion_threshold(v, plt, expected):
    assert v().obs_("PLT", plt).result("E13") == expected


@pytest.mark.parametrize("stopped, expected", [(-13.0, MET), (-14.0, NOT_MET), (-30.0, NOT_MET)])
def test_E14_immunosuppressants_stopped_less_than_2_weeks(v, stopped, expected):
    x = v()
    x.iv = x.iv[x.iv["kind"] != "corticosteroid"]
    assert x.iv_("immunosuppressant", -60, stopped, agent="cyclosporine", route="oral").result("E14") == expected


def test_E14_ongoing_and_local_use(v):
    assert v().iv_("immunosuppressant", -60, 3, agent="tacrolimus").result("E14") == MET
    assert v().iv_("corticosteroid", -3, -1, agent="budesonide", route="inhaled").result("E14") == NOT_MET


def test_E15_prior_car_t_from_interventions(v):
    assert v().iv_("car_infusion", -400, agent="CD19 CAR-T").result("E15") == MET


@pytest.mark.parametrize("days_before, expected", [(27, MET), (28, NOT_MET)])
def test_E17_vaccination_within_4_weeks(v, days_before, expected):
    assert v().iv_("other", -days_before, agent="influenza vaccine").result("E17") == expected


def test_E19_pregnant_or_breastfeeding(v):
    girl = lambda: v().subject(sex="F").obs_("REPRO_POTENTIAL", text="yes")  # noqa: E731
    assert girl().obs_("PREG_TEST", text="positive").obs_("BREASTFEEDING", text="no").result("E19") == MET
    assert girl().obs_("PREG_TEST", text="negative").obs_("BREASTFEEDING", text="yes").result("E19") == MET
    assert girl().obs_("PREG_TEST", text="negative").obs_("BREASTFEEDING", text="no").result("E19") == NOT_MET
    assert girl().obs_("PREG_TEST", text="negative").result("E19") == UNKNOWN
    assert v().result("E19") == NOT_MET  # a boy


def test_not_met_inclusion_makes_ineligible_whatever_else_is_unknown(v):
    x = v().obs_("CD7_BLASTS", 60.0)
    for code in ("LVEF", "BILI", "HIV_AGAB", "DIC_PRESENT", "CNS_STATUS"):
        x = x.drop(code)
    x.meta["eligibility_attestations"] = []
    rep = x.report()
    assert sum(r.value == UNKNOWN for r in rep.results) >= 8
    assert rep.verdict == INELIGIBLE
    assert [r.id for r in rep.reasons] == ["I5"]


def test_unknown_exclusion_is_pending_never_eligible(v):
    rep = v().drop("HIV_AGAB").report()
    assert rep.result("E10").value == UNKNOWN
    assert rep.verdict == PENDING
    assert any(m.startswith("E10: HIV_AGAB") for m in rep.missing)


def test_met_exclusion_makes_ineligible_with_unknowns(v):
    rep = v().drop("LVEF").obs_("SYPHILIS_AB", text="positive").report()
    assert rep.result("I8").value == UNKNOWN
    assert rep.verdict == INELIGIBLE and [r.id for r in rep.reasons] == ["E10"]


def test_checkpoints_select_criteria(v):
    ids = {r.id for r in v().report("pre-infusion").results}
    assert ids == {"I7", "I9", "I10", "I11", "E4", "E6", "E11", "E14", "E19"}


def test_deciding_evidence_is_the_failing_part(v):
    r = v().obs_("CREAT", 1.9).report().result("I10")
    assert r.value == NOT_MET
    assert {e.what for e in r.evidence} == {"BILI", "AST", "ALT", "CREAT"}
    assert [e.what for e in r.deciding] == ["CREAT"]
    r = v().obs_("HIV_AGAB", text="positive").report().result("E10")
    assert [e.what for e in r.deciding] == ["HIV_AGAB"]
