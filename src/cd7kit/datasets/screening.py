"""Synthetic screening data of an NCT06849401-like cohort: 12 children screened, 9 enrolled, 3 not.

Everything here is SYNTHETIC (``source`` says so on every row): no real patient is described. The
cohort mirrors the design of NCT06849401 (early phase 1, children 2-18 years with CD7-positive
relapsed/refractory T-ALL, 3 dose levels of 4e7, 1.2e8 and 3.6e8 CAR-NK cells/kg, 9 participants):
12 children are screened (``NCT06849401-01`` .. ``-12``); 9 are enrolled, 3 per dose level, in
screening order; 3 fail screening for one distinct reason each:

* ``-04``: CD7-positive blasts 75 % (inclusion I5 requires > 80 %);
* ``-08``: creatinine 1.9 mg/dL (inclusion I10 requires <= 1.6 mg/dL within a week);
* ``-11``: an active, uncontrolled grade 3 infection at screening (exclusion E11).

:func:`screening_tables` returns the screening-visit data as Study tables (subjects with status and
dose level, observations with units and ULNs, prior-therapy interventions, disposition and infection
events) plus an ``attestations`` table: the investigator's judgements and agreements (I3, I6, I11
where the child has reproductive potential, I13, E7, E18, E20) as they would be recorded through
``cd7kit screen attest``. With those attestations the enrolled children are ELIGIBLE at screening and
the three failures INELIGIBLE for exactly their intended criterion (:data:`INTENDED_VERDICTS`);
without them the enrolled children are PENDING (attestations missing) and the failures still
INELIGIBLE (Dameron's rule).

Days follow cd7kit's convention (day 0 = first infusion). Children never infused keep the day
numbers of the planned schedule (screening about three weeks before day 0). The enrolled children are
re-assessed on day -6, before lymphodepletion (performance scale, dyspnea grade, SpO2, DIC, pregnancy
test where relevant); the attestations hold for every checkpoint. The post-infusion course
of the 9 enrolled children is built elsewhere and merged on ``subject_id``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRIAL = "NCT06849401"
SOURCE = "synthetic (cd7kit.datasets.screening; NCT06849401-like screening cohort, not real patients)"
PRODUCT = "VGO-Cs01p"
DOSE_LEVELS = {1: 4e7, 2: 1.2e8, 3: 3.6e8}
SUBJECT_IDS = tuple(f"{TRIAL}-{i:02d}" for i in range(1, 13))
PRE_LD_DAY = -6.0
SCREEN_FAILURES = {f"{TRIAL}-04": "I5", f"{TRIAL}-08": "I10", f"{TRIAL}-11": "E11"}

#: subject_id -> (intended screening verdict with the attestations applied, deciding criterion id or None)
INTENDED_VERDICTS: dict[str, tuple[str, str | None]] = {
    sid: (("INELIGIBLE", SCREEN_FAILURES[sid]) if sid in SCREEN_FAILURES else ("ELIGIBLE", None)) for sid in SUBJECT_IDS
}

_CHECKLIST_NO = (
    "HX_SEVERE_CNS_DISEASE",
    "DIC_PRESENT",
    "AUTOIMMUNE_IMMUNODEF",
    "SEVERE_COMORBIDITY",
    "GI_ULCER_BLEEDING",
    "ANTICOAGULANT_THERAPY",
    "OTHER_MALIGNANCY_3Y",
    "PRIOR_CELL_GENE_THERAPY",
    "PRODUCT_ALLERGY",
    "VACCINE_SURGERY_4W",
)
_SEROLOGY = ("HBV_DNA_QUAL", "HCV_RNA_QUAL", "HIV_AGAB", "SYPHILIS_AB")


def _weight_height(age: float, rng: np.random.Generator) -> tuple[float, float]:
    """Rough paediatric size for an age (synthetic; about the 50th centile)."""
    height = 75 + 6.2 * age if age < 13 else 155 + 3.0 * (age - 13)
    weight = 9.5 + 2.3 * age if age < 12 else 37 + 4.5 * (age - 12)
    return round(float(weight * rng.uniform(0.9, 1.1)), 1), round(float(height * rng.uniform(0.97, 1.03)), 1)


def screening_tables(seed: int = 2026) -> dict[str, pd.DataFrame]:
    """The synthetic screening data (see the module docstring); same seed, same tables."""
    rng = np.random.default_rng(seed)
    subjects, obs, ivs, evs, atts = [], [], [], [], []
    enrolled_order = [s for s in SUBJECT_IDS if s not in SCREEN_FAILURES]
    dose_level = {sid: 1 + i // 3 for i, sid in enumerate(enrolled_order)}
    # one adolescent girl with reproductive potential, the rest spread over 2-18 years
    ages = np.round(rng.uniform(3.0, 17.5, size=len(SUBJECT_IDS)), 1)
    sexes = rng.choice(["M", "F"], size=len(SUBJECT_IDS), p=[0.65, 0.35])
    ages[5], sexes[5] = 15.6, "F"  # -06: pregnancy test and contraception apply
    ages[0] = 2.4  # -01: near the lower age bound
    for i, sid in enumerate(SUBJECT_IDS):
        age, sex = float(ages[i]), str(sexes[i])
        fail = SCREEN_FAILURES.get(sid)
        s_day = float(-21 + int(rng.integers(-3, 4)))
        weight, height = _weight_height(age, rng)
        cd7 = 75.0 if fail == "I5" else round(float(rng.uniform(86, 99)), 1)
        dl = dose_level.get(sid)
        subjects.append(
            {
                "subject_id": sid,
                "status": "screen_failure" if fail else "enrolled",
                "age_years": age,
                "sex": sex,
                "weight_kg": weight,
                "height_cm": height,
                "diagnosis": "T-ALL",
                "cd7_blast_pct": cd7,
                "dose_level": dl,
                "dose_cells_per_kg": DOSE_LEVELS[dl] if dl else None,
                "product": PRODUCT if dl else None,
                "donor_type": "allogeneic" if dl else None,
                "site": "synthetic site",
                "source": SOURCE,
            }
        )
        refractory = i in (2, 9)  # two primary-refractory children

        def o(code: str, day: float, value: float | None = None, unit: str = "1", text: str | None = None, specimen: str | None = None, uln: float | None = None, lln: float | None = None, _sid: str = sid) -> None:
            obs.append(
                {
                    "subject_id": _sid,
                    "day": day,
                    "code": code,
                    "value": value,
                    "value_text": text,
                    "unit": unit,
                    "specimen": specimen,
                    "lln": lln,
                    "uln": uln,
                    "source": SOURCE,
                }
            )

        d = s_day
        o("RR_STATUS", d, text="primary_refractory" if refractory else "relapsed")
        o("BM_BLASTS", d, round(float(rng.uniform(32, 88)), 1), "%", specimen="BM")
        o("PB_BLASTS", d, round(float(rng.uniform(3, 45)), 1), "%", specimen="PB")
        o("CD7_BLASTS", d, cd7, "%", specimen="BM")
        o("EMD_STATUS", d, text="absent")
        o("CNS_STATUS", d, text="CNS1", specimen="CSF")
        if sex == "M":
            o("TESTIS_STATUS", d, text="absent")
        if age >= 16:
            o("KARNOFSKY", d, float(rng.choice([70, 80, 90])), "score")
        else:
            o("LANSKY", d, float(rng.choice([70, 80, 90])), "score")
        o("LVEF", d - 2, round(float(rng.uniform(56, 70)), 1), "%")
        o("NYHA_CLASS", d - 2, 1.0, "score")
        o("DYSPNEA_GRADE", d, 0.0, "score")
        o("SPO2", d, float(rng.integers(96, 100)), "%")
        o("BILI", d, round(float(rng.uniform(0.3, 1.1)), 2), "mg/dL", specimen="serum", uln=1.2, lln=0.2)
        o("AST", d, round(float(rng.uniform(18, 70))), "U/L", specimen="serum", uln=40.0, lln=10.0)
        o("ALT", d, round(float(rng.uniform(12, 75))), "U/L", specimen="serum", uln=40.0, lln=7.0)
        creat = 1.9 if fail == "I10" else round(float(rng.uniform(0.25, 0.7)), 2)
        o("CREAT", d, creat, "mg/dL", specimen="serum", uln=0.7 if age < 12 else 1.0, lln=0.2)
        o("PLT", d, round(float(rng.uniform(35, 160))), "10^9/L", specimen="PB", uln=450.0, lln=150.0)
        o("ANC", d, round(float(rng.uniform(0.4, 3.0)), 2), "10^9/L", specimen="PB", uln=7.5, lln=1.5)
        o("HGB", d, round(float(rng.uniform(75, 110))), "g/L", specimen="PB", uln=145.0, lln=110.0)
        for code in _SEROLOGY:
            o(code, d, text="negative", specimen="serum")
        for code in _CHECKLIST_NO:
            o(code, d, text="no")
        repro = age >= 13
        o("REPRO_POTENTIAL", d, text="yes" if repro else "no")
        if repro and sex == "F":
            o("PREG_TEST", d, text="negative", specimen="serum")
            o("BREASTFEEDING", d, text="no")
        # prior therapy: one cycle of a salvage regimen as the protocol names it (inclusion I4)
        ivs.append(
            {
                "subject_id": sid,
                "start_day": d - 48,
                "end_day": d - 20,
                "kind": "chemotherapy",
                "agent": "olverembatinib + APG-125" if not refractory else "standard induction (VDLP) then olverembatinib + APG-125",
                "route": "oral",
                "indication": "relapsed/refractory T-ALL" if not refractory else "primary refractory T-ALL",
                "source": SOURCE,
            }
        )
        evs.append({"subject_id": sid, "day": d, "kind": "disposition", "term": "screened", "source": SOURCE})
        evs.append({"subject_id": sid, "day": d, "kind": "disposition", "term": "consented", "details": "informed consent signed by legal guardian", "source": SOURCE})
        if fail == "E11":
            evs.append(
                {
                    "subject_id": sid,
                    "day": d - 6,
                    "kind": "infection",
                    "term": "Invasive pulmonary aspergillosis, uncontrolled",
                    "grade": 3,
                    "details": "active at screening despite voriconazole",
                    "source": SOURCE,
                }
            )
            ivs.append({"subject_id": sid, "start_day": d - 6, "end_day": d + 14, "kind": "antimicrobial", "agent": "voriconazole", "route": "IV", "indication": "invasive aspergillosis", "source": SOURCE})
        if fail:
            evs.append({"subject_id": sid, "day": d + 1, "kind": "disposition", "term": "screen_failure", "details": f"criterion {fail}", "source": SOURCE})
        else:
            evs.append({"subject_id": sid, "day": d + 3, "kind": "disposition", "term": "enrolled", "details": f"dose level {dose_level[sid]}", "source": SOURCE})
        if not fail:
            # re-check before lymphodepletion (day -6): performance, lungs, DIC, pregnancy where relevant
            r = PRE_LD_DAY
            if age >= 16:
                o("KARNOFSKY", r, float(rng.choice([70, 80, 90])), "score")
            else:
                o("LANSKY", r, float(rng.choice([70, 80, 90])), "score")
            o("DYSPNEA_GRADE", r, 0.0, "score")
            o("SPO2", r, float(rng.integers(96, 100)), "%")
            o("DIC_PRESENT", r, text="no")
            if repro and sex == "F":
                o("PREG_TEST", r, text="negative", specimen="serum")
                o("BREASTFEEDING", r, text="no")
        for cid, value in (("I3", True), ("I6", True), ("I13", True), ("E7", False), ("E18", False), ("E20", False)) + ((("I11", True),) if repro else ()):
            atts.append(
                {
                    "trial": TRIAL,
                    "subject_id": sid,
                    "criterion_id": cid,
                    "checkpoint": None,
                    "value": value,
                    "actor": "synthetic investigator",
                    "role": "investigator",
                    "reason": "synthetic demo attestation at the screening visit",
                    "day": d,
                    "source": SOURCE,
                }
            )
    return {
        "subjects": pd.DataFrame(subjects),
        "observations": pd.DataFrame(obs),
        "interventions": pd.DataFrame(ivs),
        "events": pd.DataFrame(evs),
        "attestations": pd.DataFrame(atts),
    }


def screening_attestations(seed: int = 2026) -> list[dict]:
    """The investigator attestations as engine records (for ``screening_flow(..., attestations=)`` or
    ``Study.meta["eligibility_attestations"]``)."""
    return screening_tables(seed)["attestations"].to_dict("records")


def screening_study(seed: int = 2026, with_attestations: bool = True):
    """The screening tables as a :class:`~cd7kit.data.Study` (attestations in ``meta``)."""
    from cd7kit.data import Study

    t = screening_tables(seed)
    meta = {"study_id": f"{TRIAL}-synthetic-screening", "title": "Synthetic NCT06849401-like screening cohort", "synthetic": True}
    if with_attestations:
        meta["eligibility_attestations"] = t["attestations"].to_dict("records")
    return Study.from_tables(t["subjects"], t["observations"], t["interventions"], t["events"], meta=meta)


__all__ = ["screening_tables", "screening_study", "screening_attestations", "INTENDED_VERDICTS", "SUBJECT_IDS", "SCREEN_FAILURES", "TRIAL", "SOURCE"]
