"""Studies in the store: exact round trips, versions, conflicts, idempotent ensure, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import pandas as pd
import pytest

from cd7kit.data import TABLES, Study
from cd7kit.errors import ConflictError, InputError, NotFoundError
from cd7kit.store import AuthorizationError, open_store


def assert_same_study(a: Study, b: Study) -> None:
    for t in TABLES:
        pd.testing.assert_frame_equal(getattr(a, t), getattr(b, t), check_exact=True)
    assert dict(a.meta) == dict(b.meta)


def test_round_trip_is_exact_for_all_tables_and_meta(store, study_factory):
    study = study_factory(n_subjects=4, n_obs_per_subject=50, seed=1)
    assert study.observations["blq"].any() and study.observations["value"].isna().any()
    v = store.save_study(study, "alice", "coordinator")
    assert v == 1
    back = store.load_study(study.study_id)
    assert_same_study(back, study)
    # dtypes are exactly those of a validated Study
    assert str(back.subjects["dose_level"].dtype) == "Int64"
    assert str(back.events["grade"].dtype) == "Int64"
    assert back.observations["blq"].dtype == bool
    assert back.subjects.loc[0, "site"] == "Zhengzhou, 河南"


def test_round_trip_of_the_tiny_study_and_an_empty_study(store, tiny_study):
    sid = f"TINY-{uuid.uuid4().hex[:6]}"
    store.save_study(tiny_study, "alice", "coordinator", study_id=sid)
    back = store.load_study(sid)
    for t in TABLES:
        pd.testing.assert_frame_equal(getattr(back, t), getattr(tiny_study, t), check_exact=True)
    assert back.meta["study_id"] == sid
    empty = Study.empty(meta={"study_id": f"EMPTY-{uuid.uuid4().hex[:6]}"})
    store.save_study(empty, "alice", "coordinator")
    assert_same_study(store.load_study(empty.study_id), empty)


def test_existing_study_conflicts_and_corrections_are_new_versions(store, study_factory):
    study = study_factory()
    store.save_study(study, "alice", "coordinator")
    with pytest.raises(ConflictError):
        store.save_study(study, "alice", "coordinator")
    with pytest.raises(InputError, match="reason"):
        store.save_study(study, "alice", "coordinator", new_version=True)
    obs = study.observations.copy()
    obs.loc[0, "value"] = 37.123
    obs.loc[0, "code"] = "TEMP"
    obs.loc[0, "unit"] = "degC"
    corrected = study.replace(observations=obs)
    assert store.save_study(corrected, "bob", "investigator", "transcription error", new_version=True) == 2
    assert_same_study(store.load_study(study.study_id, version=1), study)
    assert_same_study(store.load_study(study.study_id), corrected)
    versions = store.versions(study.study_id)
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["reason"] == "transcription error" and versions[1]["created_by"] == "bob"
    listed = {s["study_id"]: s for s in store.list_studies()}
    assert listed[study.study_id]["version"] == 2 and listed[study.study_id]["n_versions"] == 2
    assert listed[study.study_id]["n_observations"] == len(obs)
    log = store.audit_log(study_id=study.study_id)
    assert [r["action"] for r in log] == ["study.create", "study.new_version"]
    assert log[1]["old"]["version"] == 1 and log[1]["new"]["version"] == 2
    assert log[1]["reason"] == "transcription error"


def test_unchanged_tables_are_shared_between_versions(fresh_store, study_factory):
    from sqlalchemy import func, select

    from cd7kit.store.models import Dataset, ObservationRow

    study = study_factory(n_obs_per_subject=30)
    fresh_store.save_study(study, "alice", "coordinator")
    ev = study.events.copy()
    ev.loc[0, "grade"] = 3
    fresh_store.save_study(study.replace(events=ev), "alice", "investigator", "grade adjudicated", new_version=True)
    with fresh_store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(ObservationRow)).scalar() == len(study.observations)
        assert c.execute(select(func.count()).select_from(Dataset)).scalar() == 5  # 4 tables + the new events


def test_ensure_study_is_idempotent_by_content(fresh_store, study_factory):
    study = study_factory()
    first = fresh_store.ensure_study(study, "cd7kit-demo", "system")
    assert first.written and first.version == 1
    n_audit = len(fresh_store.audit_log())
    again = fresh_store.ensure_study(study, "cd7kit-demo", "system")
    assert not again.written and again.version == 1 and again.content_hash == first.content_hash
    assert len(fresh_store.audit_log()) == n_audit  # nothing written
    changed = study.replace(meta={**study.meta, "title": "changed"})
    with pytest.raises(InputError, match="reason"):
        fresh_store.ensure_study(changed, "cd7kit-demo", "system")
    res = fresh_store.ensure_study(changed, "cd7kit-demo", "system", "demo data updated")
    assert res.written and res.version == 2
    assert fresh_store.load_study(study.study_id).meta["title"] == "changed"


def test_load_missing_study_or_version_raises_not_found(store):
    with pytest.raises(NotFoundError):
        store.load_study("NO-SUCH-STUDY")
    with pytest.raises(NotFoundError):
        store.versions("NO-SUCH-STUDY")


def test_missing_version_raises_not_found(store, study_factory):
    study = study_factory()
    store.save_study(study, "alice", "coordinator")
    with pytest.raises(NotFoundError):
        store.load_study(study.study_id, version=7)


def test_study_id_is_required(store, study_factory):
    study = study_factory()
    with pytest.raises(InputError, match="study_id"):
        store.save_study(dataclasses.replace(study, meta={}), "alice", "coordinator")


@pytest.mark.parametrize(
    ("actor", "role", "error"),
    [
        ("mona", "monitor", AuthorizationError),  # read-only role
        ("stan", "statistician", AuthorizationError),  # de-identified exports only
        ("alice", "superuser", InputError),  # no such role
        (" ", "coordinator", InputError),  # no actor
    ],
    ids=["monitor", "statistician", "unknown-role", "blank-actor"],
)
def test_refused_writers_write_nothing(store, study_factory, actor, role, error):
    study = study_factory()
    with pytest.raises(error):
        store.save_study(study, actor, role)
    with pytest.raises(NotFoundError):
        store.load_study(study.study_id)


def test_a_larger_study_round_trips_exactly(store, study_factory):
    study = study_factory(n_subjects=30, n_obs_per_subject=200, seed=3)  # 6,000 observations
    store.save_study(study, "alice", "coordinator")
    back = store.load_study(study.study_id)
    assert_same_study(back, study)
    assert np.array_equal(back.observations["value"].to_numpy(), study.observations["value"].to_numpy(), equal_nan=True)


def test_reopening_an_existing_database_keeps_everything(store_url, study_factory):
    study = study_factory()
    with open_store(store_url) as s1:
        s1.save_study(study, "alice", "coordinator")
    with open_store(store_url) as s2:
        assert_same_study(s2.load_study(study.study_id), study)


def test_columns_unknown_to_the_database_survive_in_extra(store, study_factory):
    """A newer Study schema may add columns before a migration does: they round-trip through ``extra``."""
    study = study_factory()
    obs = study.observations.copy()
    obs["visit"] = ["V" + str(i % 3) if i % 4 else None for i in range(len(obs))]
    obs["replicate"] = pd.Series(range(len(obs)), dtype="int64")
    obs["conc"] = np.linspace(0, 1, len(obs))
    wide = dataclasses.replace(study, observations=obs)
    store.save_study(wide, "alice", "coordinator")
    back = store.load_study(study.study_id)
    pd.testing.assert_frame_equal(back.observations, obs, check_exact=True)
