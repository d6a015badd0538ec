"""Shared fixtures: small Studies built in code (no database, no files)."""

from __future__ import annotations

import pandas as pd
import pytest

from cd7kit.data import Study


@pytest.fixture
def tiny_study() -> Study:
    subjects = pd.DataFrame(
        {"subject_id": ["S1", "S2"], "age_years": [10.0, 15.0], "sex": ["M", "F"], "weight_kg": [30.0, 50.0], "dose_level": [1, 2]}
    )
    observations = pd.DataFrame(
        {
            "subject_id": ["S1", "S1", "S1", "S2"],
            "day": [-5.0, 1.0, 2.0, 3.0],
            "code": ["TEMP", "TEMP", "ANC", "ANC"],
            "value": [36.8, 39.1, 0.4, 1.2],
            "unit": ["degC", "degC", "10^9/L", "10^9/L"],
        }
    )
    interventions = pd.DataFrame(
        {
            "subject_id": ["S1", "S1", "S1"],
            "start_day": [-4.0, 0.0, 2.25],
            "end_day": [-2.0, None, 4.0],
            "kind": ["lymphodepletion", "car_infusion", "vasopressor"],
            "agent": ["fludarabine", "CD7 CAR-NK", "norepinephrine"],
        }
    )
    events = pd.DataFrame({"subject_id": ["S2"], "day": [28.0], "kind": ["response"], "term": ["CR"]})
    return Study.from_tables(subjects, observations, interventions, events, meta={"study_id": "TINY"})
