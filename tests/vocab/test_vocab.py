from cd7kit.data.units import parse_unit
from cd7kit.vocab import load_vocabulary

REQUIRED = """TEMP SBP DBP MAP HR RR SPO2 WBC ANC ALC AMC HGB PLT ALT AST BILI CREAT LDH CRP FERRITIN FIBRINOGEN
HAPTOGLOBIN TRIGLYCERIDES IL6 IL10 IFNG MCP1 IL18 SC5B9 UPCR UPROT_DIP SCHISTO BM_BLASTS PB_BLASTS CSF_BLASTS
MRD_FLOW CD7_BLASTS CAR_COPIES CAR_CELLS CAR_PCT_CD3 ICE CAPD LOC EBV_DNA CD3 CD4 CD8 CD7NEG_T NK B_CELLS""".split()


def test_issue_codes_present_and_units_parse():
    v = load_vocabulary()
    for code in REQUIRED:
        assert code in v, code
    for tc in v:
        parse_unit(tc.canonical_unit)  # every canonical unit is understood by pint


def test_plausible_range_catches_fahrenheit():
    tc = load_vocabulary()["TEMP"]
    assert tc.is_plausible(39.5) and not tc.is_plausible(101.0)
