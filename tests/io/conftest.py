"""Fixtures for the io tests: the shipped SDTM sample as XPT files, and a Study with every kind of row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cd7kit.data import Study

DATA = Path(__file__).parent / "data"
SDTM_CSV = DATA / "sdtm"
_NUMERIC = ("SEQ", "AGE", "DOSE", "STRESN", "STNRLO", "STNRHI", "LLOQ", "DY", "STDY", "ENDY")


@pytest.fixture(scope="session")
def sdtm_xpt(tmp_path_factory) -> Path:
    """The CSV sample written as SAS XPT v5 files with pyreadstat (numeric variables as numbers)."""
    import pyreadstat

    out = tmp_path_factory.mktemp("sdtm_xpt")
    for csv in sorted(SDTM_CSV.glob("*.csv")):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        for c in df.columns:
            if c.endswith(_NUMERIC) or c == "AGE":
                df[c] = pd.to_numeric(df[c].replace("", np.nan))
        pyreadstat.write_xport(df, str(out / f"{csv.stem}.xpt"), table_name=csv.stem.upper(), file_format_version=5)
    return out


@pytest.fixture
def rich_study() -> Study:
    """Three subjects (enrolled, withdrawn, screen failure) with dates, BLQ, ordinal, oxygen, events."""
    subjects = pd.DataFrame(
        {
            "subject_id": ["S1", "S2", "S3"],
            "age_years": [10.0, 15.5, 8.0],
            "sex": ["M", "F", "U"],
            "weight_kg": [30.0, 50.0, None],
            "dose_level": [1, 2, None],
            "status": ["enrolled", "withdrawn", "screen_failure"],
            "reference_date": ["2021-05-31", "2021-06-10", None],
            "diagnosis": ["T-ALL", "T-LBL", None],
            "cd7_blast_pct": [96.0, 88.5, 70.0],
            "dose_cells_per_kg": [4e7, 1.2e8, None],
            "product": ["CD7 CAR-NK", "CD7 CAR-NK", None],
            "site": ["01", "02", "01"],
            "source": ["case report, paragraph 2", None, None],
        }
    )
    obs = pd.DataFrame(
        {
            "subject_id": ["S1", "S1", "S1", "S1", "S2", "S2", "S1", "S1", "S1"],
            "day": [-5.0, 1.25, 2.0, 3.0, 3.0, 4.0, 13.0, 13.5, -10.0],
            "code": ["TEMP", "TEMP", "ANC", "CAR_COPIES", "CRP", "LOC", "ICE", "ICE_ORIENT", "RR_STATUS"],
            "value": [36.8, 39.1, 0.4, np.nan, 12.0, 1.0, 8.0, 3.0, np.nan],
            "value_text": [None, None, None, None, None, "awakens to voice", None, None, "relapsed"],
            "unit": ["degC", "degC", "10^9/L", "copies/ug", "mg/L", "1", "score", "score", "1"],
            "blq": [False, False, False, True, False, False, False, False, False],
            "lloq": [None, None, None, 50.0, None, None, None, None, None],
            "lln": [None, None, 1.5, None, None, None, None, None, None],
            "uln": [None, None, 7.0, None, 5.0, None, None, None, None],
            "specimen": [None, None, "PB", "PB", "serum", None, None, None, None],
            "attribution": [None, "CRS", None, None, None, None, None, None, None],
        }
    )
    iv = pd.DataFrame(
        {
            "subject_id": ["S1", "S1", "S1", "S1", "S1", "S2", "S2"],
            "start_day": [-4.0, 0.0, 2.25, 3.0, 2.5, 0.0, 5.0],
            "end_day": [-2.0, None, 4.0, 5.5, None, None, None],
            "kind": ["lymphodepletion", "car_infusion", "vasopressor", "oxygen", "tocilizumab", "car_infusion", "transfusion"],
            "agent": ["fludarabine", "CD7 CAR-NK", "norepinephrine", None, "tocilizumab", "CD7 CAR-NK", "platelets"],
            "dose": [30.0, 4e7, None, None, 8.0, 1.2e8, None],
            "dose_unit": ["mg/m2", "cells/kg", None, None, "mg/kg", "cells/kg", None],
            "route": [None, "IV", None, None, "IV", "IV", None],
            "device": [None, None, None, "simple_facemask", None, None, None],
            "flow_l_min": [None, None, None, 10.0, None, None, None],
            "indication": [None, None, "hypotension", "hypoxia", "CRS", None, None],
            "details": [None, "lot A1", None, None, None, None, "irradiated"],
        }
    )
    ev = pd.DataFrame(
        {
            "subject_id": ["S2", "S1", "S1", "S1", "S1"],
            "day": [28.0, 1.0, 13.0, 13.0, 14.0],
            "end_day": [None, 6.0, None, None, None],
            "kind": ["response", "crs", "icans", "neuro", "imaging"],
            "term": ["CR", "Cytokine release syndrome", "ICANS", "seizure", "cerebral oedema"],
            "grade": [None, 3, 1, None, None],
            "attribution": [None, "CAR-NK", None, None, None],
            "details": ["BM", None, None, "focal", "focal, MRI"],
        }
    )
    return Study.from_tables(subjects, obs, iv, ev, meta={"study_id": "RT"})
