"""Fixtures for store tests: a real SQLite file and a real PostgreSQL database (never mocked).

The PostgreSQL database is created fresh for the test session (CREATE DATABASE through an autocommit
connection to ``test`` on 127.0.0.1:5432) and dropped at the end. If the server is down the fixture
raises, so the tests FAIL rather than skip.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from cd7kit.data import Study
from cd7kit.store import Store, open_store
from cd7kit.store.testing import temporary_postgres_database


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    with temporary_postgres_database(prefix="cd7kit_store") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "cd7kit.sqlite")
    return request.getfixturevalue("pg_session_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database of its own (for tests that tamper with it or count every audit record)."""
    if request.param == "sqlite":
        yield str(tmp_path / "fresh.sqlite")
    else:
        with temporary_postgres_database(prefix="cd7kit_fresh") as url:
            yield url


def cheap_hashing(s: Store) -> Store:
    """Fast argon2 parameters for tests (hashes carry their parameters; production keeps the defaults)."""
    from argon2 import PasswordHasher

    s.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return s


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield cheap_hashing(s)


@pytest.fixture
def fresh_store(fresh_url: str) -> Iterator[Store]:
    with open_store(fresh_url) as s:
        yield cheap_hashing(s)


def make_study(study_id: str | None = None, n_subjects: int = 3, n_obs_per_subject: int = 20, seed: int = 0) -> Study:
    """A study using every column of every table (NaN, missing integers, booleans, unicode text), with a
    fresh unique study id unless one is given (validated once per shape, then only the id changes)."""
    base = _base_study(n_subjects, n_obs_per_subject, seed)
    sid = study_id or f"ST-{uuid.uuid4().hex[:8]}"
    return dataclasses.replace(base, meta={**base.meta, "study_id": sid})


@functools.lru_cache(maxsize=8)
def _base_study(n_subjects: int, n_obs_per_subject: int, seed: int) -> Study:
    rng = np.random.default_rng(seed)
    sid = "BASE"
    ids = [f"S{seed}-{i:03d}" for i in range(1, n_subjects + 1)]
    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "status": ["enrolled"] * (n_subjects - 1) + ["screen_failure"],
            "age_years": rng.uniform(2, 18, n_subjects).round(1),
            "sex": (["M", "F"] * n_subjects)[:n_subjects],
            "weight_kg": [12.5] + [np.nan] * (n_subjects - 1),
            "height_cm": rng.uniform(80, 180, n_subjects),
            "diagnosis": ["T-ALL"] * (n_subjects - 1) + [None],
            "cd7_blast_pct": rng.uniform(0, 100, n_subjects),
            "dose_level": [1] * (n_subjects - 1) + [None],
            "dose_cells_per_kg": [4e7] * (n_subjects - 1) + [np.nan],
            "product": ["CD7 CAR-NK"] * n_subjects,
            "donor_type": ["donor-derived"] * n_subjects,
            "reference_date": ["2025-01-0" + str(i % 9 + 1) for i in range(n_subjects)],
            "site": ["Zhengzhou, 河南"] * n_subjects,
            "source": ['row "quoted", with comma\nand newline'] * n_subjects,
        }
    )
    n = n_subjects * n_obs_per_subject
    codes = np.array(["TEMP", "ANC", "IL6"])[rng.integers(0, 3, n)]
    units = {"TEMP": "degC", "ANC": "10^9/L", "IL6": "pg/mL"}
    value = np.where(codes == "TEMP", rng.uniform(36, 40.5, n), rng.uniform(0.01, 9.0, n))
    blq = rng.random(n) < 0.05
    value[blq] = np.nan
    observations = pd.DataFrame(
        {
            "subject_id": np.repeat(ids, n_obs_per_subject),
            "day": np.tile(np.arange(-7, -7 + n_obs_per_subject) + 0.25, n_subjects),
            "datetime": [None] * n,
            "code": codes,
            "value": value,
            "value_text": [None] * n,
            "unit": [units[c] for c in codes],
            "specimen": ["PB"] * n,
            "lln": np.nan,
            "uln": np.where(codes == "IL6", 7.0, np.nan),
            "lloq": np.where(codes == "IL6", 0.01, np.nan),
            "blq": blq,
            "source": "synthetic",
        }
    )
    interventions = pd.DataFrame(
        {
            "subject_id": [ids[0], ids[0], ids[0], ids[1]],
            "start_day": [-5.0, 0.0, 3.5, 0.0],
            "end_day": [-3.0, None, 6.0, None],
            "kind": ["lymphodepletion", "car_infusion", "oxygen", "car_infusion"],
            "agent": ["fludarabine", "CD7 CAR-NK", "oxygen", "CD7 CAR-NK"],
            "dose": [30.0, 4e7, None, 4e7],
            "dose_unit": ["mg/m2", "cells/kg", None, "cells/kg"],
            "device": [None, None, "simple_facemask", None],
            "flow_l_min": [None, None, 10.0, None],
        }
    )
    events = pd.DataFrame(
        {
            "subject_id": [ids[0], ids[1]],
            "day": [7.0, 28.0],
            "end_day": [9.0, None],
            "kind": ["crs", "response"],
            "term": ["CRS", "CR"],
            "grade": [2, None],
            "details": ['{"site": "BM"}', None],
        }
    )
    meta = {"study_id": sid, "title": "store test study", "synthetic": True, "dose_levels": [4e7, 1.2e8], "nested": {"a": 1}}
    return Study.from_tables(subjects, observations, interventions, events, meta=meta)


@pytest.fixture
def study_factory():
    """``study_factory(study_id=None, n_subjects=3, n_obs_per_subject=20, seed=0) -> Study``."""
    return make_study
