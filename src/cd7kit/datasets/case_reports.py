"""The two patients of the seed case report, encoded from its text, row by row, with provenance.

Source: Pan Z, Guo Y, Zhang Y, Chang S, Sun J, Guo Z, Zhang Y. "Different outcomes of two cases of
relapsed/refractory T cell acute lymphoblastic leukemia treated with anti-CD7 chimeric antigen receptor
T cells bridging to allogeneic hematopoietic stem cell transplantation: from curative promise to fatal
risk." Frontiers in Oncology (case report; cd7kit seed 004). Published case reports, no identifying data.

Conventions
- Day 0 is the FIRST CAR-T infusion (DESIGN.md). The paper counts the post-reinfusion course in days after
  the SECOND infusion ("2D" in Figures 2 and 4) and the transplant course in days after HSCT; each row's
  ``source`` quotes the sentence and says how its study day was derived.
- Case 1: lymphodepletion started 27 May 2021 (day -4), so day 0 = 31 May 2021; the second infusion on
  21 June 2021 is day 21 (exact, from the dates).
- Case 2: the paper gives no date or interval for the two infusions; the interval is set to 14 days
  (``CASE2_REINFUSION_DAY``) and labelled an approximation wherever it matters.
- Values shown only in figures are not invented. Where the demo needs a value the text implies but does not
  state (a daily temperature curve, the HSCT day), the row's ``source`` starts with "approximated" and says from
  what. Everything else is a number stated in the text, on the day the text states it.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

CITATION = (
    "Pan Z et al. Different outcomes of two cases of R/R T-ALL treated with anti-CD7 CAR T cells bridging to "
    "allo-HSCT: from curative promise to fatal risk. Front Oncol (case report; cd7kit seed 004)"
)
CASE1 = "PAN-CASE1"
CASE2 = "PAN-CASE2"
CASE1_REINFUSION_DAY = 21  # 31 May -> 21 June 2021
CASE2_REINFUSION_DAY = 14  # approximation: interval not stated
#: Conditioning start taken as HSCT day -7 (BU+CY and TBI-based regimens of Figure 3): an approximation.
CONDITIONING_TO_HSCT_DAYS = 7


class _Rows:
    """Collects rows for one subject with provenance, in the Study's canonical units."""

    def __init__(self, subject_id: str):
        self.sid = subject_id
        self.obs: list[dict[str, Any]] = []
        self.iv: list[dict[str, Any]] = []
        self.ev: list[dict[str, Any]] = []

    def o(self, day: float, code: str, value: float | None, unit: str, source: str, **kw: Any) -> None:
        self.obs.append({"subject_id": self.sid, "day": float(day), "code": code, "value": value, "unit": unit, "source": source, **kw})

    def i(self, start: float, kind: str, source: str, end: float | None = None, **kw: Any) -> None:
        if "details" in kw and isinstance(kw["details"], dict):
            kw["details"] = json.dumps(kw["details"], sort_keys=True)
        self.iv.append({"subject_id": self.sid, "start_day": float(start), "end_day": end, "kind": kind, "source": source, **kw})

    def e(self, day: float, kind: str, term: str, source: str, **kw: Any) -> None:
        if "details" in kw and isinstance(kw["details"], dict):
            kw["details"] = json.dumps(kw["details"], sort_keys=True)
        self.ev.append({"subject_id": self.sid, "day": float(day), "kind": kind, "term": term, "source": source, **kw})


def _case1() -> _Rows:
    r = _Rows(CASE1)
    a = CASE1_REINFUSION_DAY  # study day of the second infusion
    hsct = a + 34 + CONDITIONING_TO_HSCT_DAYS
    q = "Pan et al., case 1: "
    # presentation, December 2019 (the day of the month is not stated: the 1st is used)
    pres = -547.0  # 1 Dec 2019 relative to 31 May 2021
    src = q + "'presented ... in December 2019 ... WBC 84.82 x10^9/L; Hb 74 g/L; Plt 14 x10^9/L' (day of month not stated: 1 December used)"
    r.o(pres, "WBC", 84.82, "10^9/L", src, specimen="PB")
    r.o(pres, "HGB", 74.0, "g/L", src, specimen="PB")
    r.o(pres, "PLT", 14.0, "10^9/L", src, specimen="PB")
    r.o(pres, "BM_BLASTS", 88.5, "%", q + "'BM examination showed blast cells accounting for 88.5%' (December 2019)", specimen="BM")
    r.e(pres, "other", "Diagnosis: T-ALL, high risk (age > 35 years); VDCLP x2 then CR MRD-negative by FCM", q + "diagnosis and induction (December 2019 onwards)")
    r.o(-121.0, "BM_BLASTS", 8.5, "%", q + "'BM morphology revealing 8.5% blasts on 30 January 2021' (day -121 from 31 May 2021)", specimen="BM")
    r.e(-121.0, "relapse", "Relapse after consolidation (BM blasts 8.5%)", q + "'the disease relapsed ... on 30 January 2021'", details={"site": "BM"})
    r.o(-5.0, "BM_BLASTS", 88.0, "%", q + "'88% lymphoblasts detected in the BM' after three salvage courses (date not stated: recorded before lymphodepletion, day -5, approximated)", specimen="BM")
    r.i(-4.0, "lymphodepletion", q + "'fludarabine 30 mg/m2, days -4 to -2' (FC started 27 May 2021, day -4)", end=-2.0, agent="fludarabine", dose=30.0, dose_unit="mg/m2")
    r.i(-3.0, "lymphodepletion", q + "'cyclophosphamide 500 mg/kg, days -3 to -2' (Figure 1 legend: 500 mg/m2 d-3 to -2; the legend's unit is used)", end=-2.0, agent="cyclophosphamide", dose=500.0, dose_unit="mg/m2")
    r.i(0.0, "car_infusion", q + "'On day 0, the patient received an infusion of CD7 CAR T cells at a dose of 1 x10^6 cells/kg'", agent="NS7CAR-T (autologous, humanized, naturally selected anti-CD7)", dose=1e6, dose_unit="cells/kg", details={"infusion_number": 1})
    r.o(18.0, "MRD_FLOW", 95.73, "%", q + "'MRD in the BM increased to 95.73% on day 18 after CAR T-cell infusion'", specimen="BM")
    r.i(18.0, "chemotherapy", q + "'one cycle of cytarabine, idarubicin, and G-CSF (CIG) for tumor reduction' before the re-infusion (start day not stated: day 18 approximated)", agent="CIG (cytarabine, idarubicin, G-CSF)")
    r.i(a, "car_infusion", q + "'second CD7 CAR T-cell infusion on June 21 2021 at a dose of 2 x10^6 cells/kg' (day 21)", agent="NS7CAR-T (autologous, humanized, naturally selected anti-CD7)", dose=2e6, dose_unit="cells/kg", details={"infusion_number": 2})
    s2 = q + "days after the second infusion (2D); study day = 21 + 2D. "
    r.e(a + 2, "ae", "Rash", s2 + "'Scattered rashes appeared on day 2, and the lesions gradually expanded'", attribution="IEC")
    # Fever: onset day 2, peak 39.5 C, one week. Daily maxima are only in Figure 2D.
    fever_curve = [38.4, 38.9, 39.5, 39.2, 39.0, 38.7, 38.3]
    for k, t in enumerate(fever_curve):
        r.o(a + 2 + k, "TEMP", t, "degC", "approximated from Figure 2D and the text ('Fever developed on day 2, peaked at 39.5 C, and persisted for 1 week'); day " + str(2 + k) + " after the second infusion", attribution="IEC")
    r.o(a + 9, "TEMP", 37.0, "degC", "approximated from Figure 2D: afebrile after one week of fever (day 9 after the second infusion)")
    r.e(a + 8, "ae", "Hypotension", s2 + "'On day 8, hypotension occurred, requiring norepinephrine or dopamine for blood pressure support'", end_day=a + 15, attribution="IEC", details={"requires_vasopressor": True})
    r.i(a + 8, "vasopressor", s2 + "'requiring norepinephrine or dopamine' (one vasopressor at a time; stop day not stated: 'By day 15 the patient's vital signs were stable')", end=a + 14, agent="norepinephrine or dopamine", indication="hypotension")
    r.e(a + 8, "ae", "Hypoxia", s2 + "'Low percutaneous oxygen saturation was detected, and oxygen inhalation at 10 L/min via mask was initiated'", end_day=a + 15, attribution="IEC")
    r.i(a + 8, "oxygen", s2 + "'oxygen inhalation at 10 L/min via mask' (stop day not stated: stable by day 15)", end=a + 14, device="simple_facemask", flow_l_min=10.0, indication="hypoxia")
    r.o(a + 10, "IL6_FOLD", 297.0, "1", s2 + "'Peak serum levels of IL-6 (297-fold above the baseline) and MCP-1 were detected on day 10'", specimen="serum")
    r.e(a + 10, "ae", "Organ toxicity: transaminases, creatinine and LDH increased, aPTT prolonged", s2 + "'signs of organ toxicity, including elevated transaminases, serum creatinine, lactate dehydrogenase, and prolonged aPTT' (values only in Supplementary Figure S1; day not stated, reported after the day-10 cytokine peak)")
    ice_src = s2 + "'ICANS, with an ICE score of 8 (the patient was unable to count backward from 100 by 10 or write a standard sentence), was observed on day 13'"
    r.o(a + 13, "ICE", 8.0, "score", ice_src)
    r.o(a + 13, "ICE_ATTENTION", 0.0, "score", ice_src)
    r.o(a + 13, "ICE_WRITING", 0.0, "score", ice_src)
    for code, full in (("ICE_ORIENT", 4.0), ("ICE_NAMING", 3.0), ("ICE_COMMANDS", 1.0)):
        r.o(a + 13, code, full, "score", ice_src + " (items other than counting and writing are full, since the total is 8 of 10)")
    r.e(a + 8, "crs", "Cytokine release syndrome", s2 + "'grade 3 cytokine release syndrome (CRS) ... diagnosed' by the authors (ASTCT); onset taken as the fever on day 2", grade=3, end_day=a + 15, details={"reported_by": "authors", "onset_day_after_second_infusion": 2})
    r.e(a + 13, "icans", "ICANS (reported as CRES)", s2 + "'grade 1 CAR T-cell-related encephalopathy syndrome (CRES) were diagnosed'; resolved by day 15", grade=1, end_day=a + 15, details={"reported_by": "authors"})
    r.i(a + 8, "tocilizumab", s2 + "'tocilizumab 4 mg/kg once daily on days +8 and +14'", agent="tocilizumab", dose=4.0, dose_unit="mg/kg")
    r.i(a + 14, "tocilizumab", s2 + "'tocilizumab 4 mg/kg once daily on days +8 and +14'", agent="tocilizumab", dose=4.0, dose_unit="mg/kg")
    dex = q + "'dexamethasone (10 mg once daily on day +7; 10 mg every 6 h on days +8 to +9; 10 mg every 8 h on day +10; 10 mg every 12 h on day +11; and 10 mg once daily on days +13 to +14)'"
    for start, end, freq in ((7, None, "once daily"), (8, 9, "every 6 h"), (10, None, "every 8 h"), (11, None, "every 12 h"), (13, 14, "once daily")):
        r.i(a + start, "corticosteroid", dex, end=None if end is None else a + end, agent="dexamethasone", dose=10.0, dose_unit="mg", details={"frequency": freq})
    r.o(a + 25, "WBC", None, "10^9/L", s2 + "'On day 25, the patient's WBC count remained close to zero' (no number stated)", value_text="close to zero", specimen="PB")
    r.e(a + 25, "infection", "Skin and soft tissue infection, anterior iliac region", s2 + "'localized skin and soft tissue infection developed in the anterior iliac region (Figure 2F)'")
    r.e(a + 25, "ae", "Severe bone marrow suppression; platelet transfusion refractoriness; transfusion dependence", s2 + "'severe bone marrow suppression, refractoriness to platelet transfusion, dependence on blood transfusions'")
    r.i(a + 34, "conditioning", s2 + "'on day 34 after the second CAR T-cell infusion ... myeloablative busulfan plus cyclophosphamide (BU+CY) conditioning'", end=hsct - 1, agent="busulfan + cyclophosphamide (myeloablative)")
    r.i(a + 34, "gvhd_prophylaxis", s2 + "'ATG (rabbit), cyclosporine A and methotrexate were administered for GVHD prophylaxis'", agent="rATG + cyclosporine A + methotrexate")
    hs = q + "days relative to HSCT; HSCT day approximated as conditioning start (day 34 after the second infusion) + 7. "
    r.o(hsct - 7, "CAR_CELLS", 0.0161, "cells/uL", hs + "'the absolute count of CD7 CAR T cells in the peripheral blood on day -7 was 1.61 x10^4/L' (= 0.0161 cells/uL)", specimen="PB")
    r.e(hsct - 5, "ae", "Neuropsychiatric symptoms (hallucinations, incoherent speech) and cardiac insufficiency", hs + "'New neuropsychiatric symptoms ... as well as cardiac insufficiency, developed from day -5'")
    r.i(hsct, "hsct", hs + "'6/10 HLA-matched related donor, son-to-father transplantation'", agent="allogeneic HSCT (haploidentical, son to father)", details={"donor": "son", "hla_match": "6/10"})
    r.e(hsct, "hsct", "Allogeneic HSCT", hs + "allo-HSCT (6/10 HLA-matched related donor)")
    r.e(hsct, "ae", "Fever on the day of stem cell infusion", hs + "'he developed fever on the first day of stem cell infusion'")
    r.o(hsct + 1, "STOOL_OUTPUT", 2010.0, "g/d", hs + "'diarrhea (up to 2010 g/day) on the second day'")
    r.e(hsct + 1, "gvhd", "Hyperacute gastrointestinal GVHD", hs + "'diarrhea ... which was considered as hyperacute gastrointestinal GVHD'", details={"organ": "GI", "type": "hyperacute"})
    r.i(hsct + 1, "immunosuppressant", hs + "'mycophenolate mofetil (MMF), methylprednisolone, and basiliximab were administered'", agent="MMF + methylprednisolone + basiliximab")
    r.o(hsct + 2, "TEMP", 42.0, "degC", hs + "'persistent fever peaking at 42 C that was unresponsive to antibiotics' (day not stated: day +2 approximated)")
    r.e(hsct + 2, "neuro", "Suspected seizure; coma", hs + "'worsening neuropsychiatric symptoms, including a suspected seizure episode and coma' (day not stated: day +2 approximated)")
    r.o(hsct + 3, "SC5B9", 512.0, "ng/mL", hs + "'On day +3 after allo-HSCT, the serum sC5b-9 level was 512 ng/mL'", specimen="plasma")
    tma = hs + "'Subsequently, red cell fragments were detected on peripheral blood smear. Additional abnormal findings included elevated LDH and serum creatinine, increased requirements for red blood cell transfusion, continued ineffective platelet transfusion refractoriness, and proteinuria (2+)' (day not stated: day +3 approximated; no LDH or creatinine values given)"
    r.o(hsct + 3, "SCHISTO", None, "%", tma, value_text="present", specimen="PB")
    r.o(hsct + 3, "UPROT_DIP", 2.0, "plus", tma, value_text="2+", specimen="urine")
    # each clinician-stated finding of the TA-TMA work-up is its own row (kind "tma": an investigator finding with
    # this quotation as provenance); no value is invented for them -- the text gives none
    r.e(hsct + 3, "tma", "Elevated LDH (no value reported)", tma)
    r.e(hsct + 3, "ae", "Creatinine increased (no value reported)", tma)
    r.e(hsct + 3, "tma", "Increased red blood cell transfusion requirement", tma)
    r.e(hsct + 3, "tma", "Continued platelet transfusion refractoriness", tma)
    r.e(hsct + 3, "tma", "Transplant-associated thrombotic microangiopathy", hs + "'TA-TMA was diagnosed' (by Cho et al. criteria per the Discussion)", details={"criteria": "Cho 2010", "reported_by": "authors"})
    r.i(hsct + 3, "other", hs + "'treated with rituximab, eculizumab and supportive care'", agent="rituximab + eculizumab", indication="TA-TMA")
    r.e(hsct + 6, "ae", "Hemodynamic instability", hs + "'Hemodynamic instability developed on day +6 after transplantation'")
    r.e(hsct + 8, "death", "Death", hs + "'The patient was discharged on day +8 and died on the same day'; the Discussion: 'the patient ultimately died from this complication' (TA-TMA)", details={"cause": "TA-TMA with multiple organ failure"})
    return r


def _case2() -> _Rows:
    r = _Rows(CASE2)
    a = CASE2_REINFUSION_DAY
    q = "Pan et al., case 2: "
    pres_src = q + "'presented with a 10-day history of swollen lymph nodes ... in July 2020. Blood cell counts revealed WBC of 103.34 x10^9/L, Hb of 147 g/L, and Plt of 38 x10^9/L' (day relative to the first infusion not derivable: recorded at day -270, approximated)"
    pres = -270.0
    r.o(pres, "WBC", 103.34, "10^9/L", pres_src, specimen="PB")
    r.o(pres, "HGB", 147.0, "g/L", pres_src, specimen="PB")
    r.o(pres, "PLT", 38.0, "10^9/L", pres_src, specimen="PB")
    r.o(pres, "BM_BLASTS", 97.5, "%", q + "'Bone marrow smears showed lymphoblastic cells accounted for 97.5%' (July 2020; day approximated)", specimen="BM")
    r.e(pres, "other", "Diagnosis: T-ALL, high risk (WBC > 100 x10^9/L), NOTCH1 mutation; CR MRD-positive after VDCLP; CNS leukaemia during consolidation", q + "diagnosis and first-line course (July 2020 onwards)")
    r.o(-30.0, "WBC", 231.0, "10^9/L", q + "'one month after the final consolidation cycle, the patient experienced relapse, with WBC increasing to 231 x10^9/L' (day approximated)", specimen="PB")
    r.o(-30.0, "BM_BLASTS", 87.6, "%", q + "'Leukemic blasts accounted for 87.6% of BM cells' at relapse (day approximated)", specimen="BM")
    r.e(-30.0, "relapse", "Relapse within one year (WBC 231 x10^9/L, BM blasts 87.6%); refractory to CAG", q + "relapse and failed salvage (day approximated)", details={"site": "BM"})
    r.i(-5.0, "lymphodepletion", q + "'After intrathecal injection and FC regimen preconditioning' (Figure 1 legend: fludarabine 30 mg/m2 d-4 to -2, cyclophosphamide 500 mg/m2 d-3 to -2; days taken from that legend)", end=-2.0, agent="fludarabine + cyclophosphamide (FC)")
    r.i(0.0, "car_infusion", q + "'The dose of the effective CD7 CAR T cells in the infusion was 5 x10^5 cells/kg'", agent="NS7CAR-T (autologous, humanized, naturally selected anti-CD7)", dose=5e5, dose_unit="cells/kg", details={"infusion_number": 1})
    r.o(3.0, "WBC", 425.0, "10^9/L", q + "'The WBC count in PB briefly declined and then rapidly increased to 425 x10^9/L soon on day 3 after CAR T-cell infusion'", specimen="PB")
    r.e(3.0, "ae", "Disease progression (hyperleukocytosis)", q + "'indicating ongoing disease progression'")
    r.i(4.0, "chemotherapy", q + "'Cyclophosphamide, dexamethasone, and idarubicin were administered for tumor burden reduction' (CID; start day not stated: day 4 approximated)", end=6.0, agent="CID (cyclophosphamide, idarubicin, dexamethasone)")
    r.i(a, "car_infusion", q + "'the patient received second CD7 CAR T-cell infusion, with an effective dose of 2.5 x10^5 cells/kg' (interval not stated: day 14 approximated)", agent="NS7CAR-T (autologous, humanized, naturally selected anti-CD7)", dose=2.5e5, dose_unit="cells/kg", details={"infusion_number": 2})
    s2 = q + "days after the second infusion (2D); study day = 14 (approximated) + 2D. "
    r.o(a + 7, "TEMP", 38.0, "degC", "approximated: the text states grade 1 CRS 'manifested by fever and muscle aches' without values or days; ASTCT fever (>= 38.0 C) is recorded once, 1 week after the second infusion, when IL-18 and MCP-1 peaked ('approximately 1-2 weeks')", attribution="IEC")
    r.e(a + 7, "ae", "Myalgia", s2 + "'Grade 1 CRS, manifested by fever and muscle aches' (day approximated)", attribution="IEC")
    r.e(a + 7, "crs", "Cytokine release syndrome", s2 + "'Grade 1 cytokine release syndrome (CRS) ... was observed ... and was successfully managed' (day approximated)", grade=1, details={"reported_by": "authors"})
    r.e(a + 7, "icans", "ICANS (reported as CRES): not detected", s2 + "'CAR T-cell-related encephalopathy syndrome (CRES) events were not detected during therapy' (no ICE scores reported)", grade=0, details={"reported_by": "authors"})
    r.e(a + 14, "response", "CR", s2 + "'approximately two weeks later, the absolute number of CAR T cells reached a peak, and the patient achieved complete remission (CR) with MRD negativity in the BM, as verified by FCM'", details={"site": "BM", "mrd": "negative", "method": "FCM"})
    r.o(a + 41, "ANC", 0.5, "10^9/L", s2 + "'Neutrophil counts exceeded 0.5 x10^9/L on day 41' (first day above 0.5; value recorded at the threshold)", value_text="> 0.5 (first day)", specimen="PB")
    r.e(a + 41, "ae", "Red blood cell and platelet transfusion dependence until allo-HSCT", s2 + "'Red blood cell and platelet transfusion dependence persisted prior to allo-HSCT'")
    hsct = a + 78 + CONDITIONING_TO_HSCT_DAYS
    r.i(a + 78, "conditioning", s2 + "'On day 78 after the second CAR T-cell therapy, the patient received myeloablative conditioning consisting of TBI, cytarabine, cladribine, and idarubicin'", end=hsct - 1, agent="TBI + cytarabine + cladribine + idarubicin (myeloablative)")
    r.i(a + 78, "gvhd_prophylaxis", s2 + "'ATG, cyclosporine A and methotrexate were administered for GVHD prophylaxis'", agent="ATG + cyclosporine A + methotrexate")
    hs = q + "days relative to HSCT (6 July 2021, during second CR); HSCT day approximated as conditioning start + 7. "
    r.i(hsct, "hsct", hs + "'infusion of allogeneic hematopoietic stem cells from his father on July 6, 2021 during the second CR'", agent="allogeneic HSCT (father)", details={"donor": "father", "date": "2021-07-06"})
    r.e(hsct, "hsct", "Allogeneic HSCT", hs + "HSCT on 6 July 2021")
    r.e(hsct + 12, "engraftment", "neutrophil", hs + "'Neutrophil and platelet engraftment occurred on days +12 and +13'")
    r.e(hsct + 13, "engraftment", "platelet", hs + "'Neutrophil and platelet engraftment occurred on days +12 and +13'")
    r.o(hsct + 30, "CHIMERISM", 100.0, "%", hs + "'STR analysis ... demonstrated complete donor chimerism on day +30'", specimen="PB")
    ebv = hs + "'On day +37 ... EBV DNA was detected in the PB and CSF at levels of 5.19 x10^5 copies/mL and 2.76 x10^3 copies/mL'"
    r.o(hsct + 37, "EBV_DNA", 5.19e5, "copies/mL", ebv, specimen="PB")
    r.o(hsct + 37, "EBV_DNA", 2.76e3, "copies/mL", ebv, specimen="CSF")
    r.e(hsct + 37, "infection", "EBV disease with EBV encephalitis; probable EBV-PTLD", hs + "'diagnosed with EBV disease, EBV encephalitis, and probable EBV-associated PTLD' (headache, fever, enlarged lymph nodes, MRI periventricular lesions)")
    r.e(hsct + 37, "imaging", "Periventricular T2-hyperintense lesions (right lateral ventricle)", hs + "'Brain MRI revealed small patchy hyperintense lesions near the posterior horn of the right lateral ventricle'")
    r.i(hsct + 37, "other", hs + "'rituximab was administered via intrathecal injection (40 mg, three doses) and intravenous infusion (375 mg/m2 weekly, three doses)'", end=hsct + 51, agent="rituximab", indication="EBV-PTLD")
    r.e(hsct + 97, "gvhd", "Skin rash and diarrhea (acute GVHD)", hs + "'skin rash and diarrhea developed on day +97 after allo-HSCT'", details={"organ": "skin, GI"})
    r.e(hsct + 104, "neuro", "Afebrile convulsions with dizziness and headache", hs + "'On day +104 after allo-HSCT, the patient developed afebrile convulsions'")
    r.o(hsct + 104, "CSA_LEVEL", 406.0, "ng/mL", hs + "'The serum of cyclosporine A at that time was 406 ng/mL'", specimen="serum")
    r.e(hsct + 104, "imaging", "PRES (bilateral frontal and parietal cortical lesions)", hs + "'new patchy lesions in the bilateral frontal and parietal cortices, consistent with reversible posterior encephalopathy syndrome'")
    r.e(hsct + 184, "relapse", "CNS relapse (leukemic cells in CSF)", hs + "'On day +184, CSF analysis revealed leukemic cells, indicating central nervous system leukemia'", details={"site": "CNS"})
    rel = hs + "'on day +388, abnormal T cells accounted for 54.0% in the CSF and 23.0% in the BM'"
    r.o(hsct + 388, "CSF_BLASTS", 54.0, "%", rel, specimen="CSF")
    r.o(hsct + 388, "BM_BLASTS", 23.0, "%", rel, specimen="BM")
    r.e(hsct + 388, "relapse", "Relapse in CSF and BM", rel, details={"site": "CNS and BM"})
    r.e(hsct + 561, "death", "Death", hs + "'the patient eventually died of leukemia on day +561'", details={"cause": "leukemia"})
    return r


def case_report_tables() -> dict[str, pd.DataFrame]:
    """The four Study tables for the two case-report patients."""
    c1, c2 = _case1(), _case2()
    subjects = pd.DataFrame(
        [
            {"subject_id": CASE1, "status": "enrolled", "age_years": 39.0, "sex": "M", "diagnosis": "T-ALL", "product": "CD7 CAR-T (NS7CAR, autologous)", "donor_type": "autologous", "dose_cells_per_kg": 1e6, "reference_date": "2021-05-31", "source": CITATION + ", case 1 (39-year-old man)"},
            {"subject_id": CASE2, "status": "enrolled", "age_years": 17.0, "sex": "M", "diagnosis": "T-ALL", "product": "CD7 CAR-T (NS7CAR, autologous)", "donor_type": "autologous", "dose_cells_per_kg": 5e5, "reference_date": None, "source": CITATION + ", case 2 (17-year-old male); infusion dates not reported"},
        ]
    )
    return {
        "subjects": subjects,
        "observations": pd.DataFrame(c1.obs + c2.obs),
        "interventions": pd.DataFrame(c1.iv + c2.iv),
        "events": pd.DataFrame(c1.ev + c2.ev),
    }


__all__ = ["case_report_tables", "CASE1", "CASE2", "CASE1_REINFUSION_DAY", "CASE2_REINFUSION_DAY", "CONDITIONING_TO_HSCT_DAYS", "CITATION"]
