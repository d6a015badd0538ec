"""The audit trail: every write recorded and hash-chained, append-only in code and by triggers, tampering
detected -- on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cd7kit import __version__
from cd7kit.store import AppendOnlyError, IntegrityError, open_store
from cd7kit.store.hashing import GENESIS_HASH, record_hash
from cd7kit.store.models import AuditRecord
from cd7kit.store.testing import raw_connection, tamper

UTC_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_every_write_appends_a_chained_record(fresh_store, study_factory):
    study = study_factory()
    fresh_store.save_study(study, "alice", "coordinator", source="import cd7kit: x/")
    fresh_store.add_annotation(study.study_id, "eligibility_override", study.subject_ids[0], "I3", {"met": True}, "bob", "investigator", "lab error")
    fresh_store.add_user("carol", "Carol C", "monitor", "longpassword", "root", "system")
    log = fresh_store.audit_log()
    assert [r["action"] for r in log] == ["study.create", "annotation.add", "user.add"]
    assert [r["id"] for r in log] == [1, 2, 3]
    assert log[0]["prev_hash"] == GENESIS_HASH
    for prev, rec in zip(log, log[1:], strict=False):
        assert rec["prev_hash"] == prev["hash"]
    for r in log:
        assert UTC_ISO.match(r["ts_utc"]), r["ts_utc"]
        assert r["software_version"] == __version__
    assert log[0]["actor"] == "alice" and log[0]["role"] == "coordinator" and log[0]["source"] == "import cd7kit: x/"
    assert log[0]["new"]["content_hash"] == fresh_store.versions(study.study_id)[0]["content_hash"]
    assert "password" not in str(log[2]["new"]).lower()
    assert fresh_store.audit_log(limit=1)[0]["action"] == "user.add"
    assert len(fresh_store.audit_log(study_id=study.study_id)) == 2
    res = fresh_store.verify_audit(deep=True)
    assert res.ok and res.n_records == 3 and res.head_hash == log[-1]["hash"] and res.n_datasets_checked == 4


def test_record_hash_covers_every_field(fresh_store, study_factory):
    fresh_store.save_study(study_factory(), "alice", "coordinator", "first import")
    rec = fresh_store.audit_log()[0]
    fields = {k: rec[k] for k in ("id", "ts_utc", "actor", "role", "action", "entity", "entity_id", "study_id", "reason", "source", "software_version", "prev_hash")}
    with fresh_store.engine.connect() as c:
        row = c.execute(sa.select(AuditRecord.__table__)).one()._mapping
    fields["old_json"], fields["new_json"] = row["old_json"], row["new_json"]
    assert record_hash(fields) == rec["hash"]
    for k in fields:
        changed = dict(fields, **{k: "x" if k != "id" else 99})
        assert record_hash(changed) != rec["hash"], k


def test_code_refuses_updates_and_deletes(store, study_factory):
    store.save_study(study_factory(), "alice", "coordinator")
    with Session(store.engine) as s:
        rec = s.scalars(sa.select(AuditRecord).limit(1)).one()
        rec.actor = "mallory"
        with pytest.raises(AppendOnlyError):
            s.flush()
        s.rollback()
        rec = s.scalars(sa.select(AuditRecord).limit(1)).one()
        s.delete(rec)
        with pytest.raises(AppendOnlyError):
            s.flush()
        s.rollback()
    for stmt in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "delete from observations", "TRUNCATE audit_log"):
        with pytest.raises(AppendOnlyError), store.engine.begin() as c:
            c.execute(sa.text(stmt))
    with pytest.raises(AppendOnlyError), store.engine.begin() as c:
        c.execute(sa.update(AuditRecord.__table__).values(reason="x"))
    assert store.verify_audit().ok


def test_database_triggers_refuse_updates_and_deletes(store_url, study_factory):
    study = study_factory()
    with open_store(store_url) as s:
        s.save_study(study, "alice", "coordinator")
        s.add_annotation(study.study_id, "note", None, "k", {"x": 1}, "bob", "investigator")
    conn = raw_connection(store_url)
    try:
        for stmt in (
            "UPDATE audit_log SET actor = 'mallory'",
            "DELETE FROM audit_log",
            "UPDATE observations SET value = 1",
            "DELETE FROM study_versions",
            "UPDATE annotations SET reason = 'x'",
        ):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(stmt)
        if "://" in store_url:
            with pytest.raises(Exception, match="append-only"):
                conn.execute("TRUNCATE audit_log CASCADE")
    finally:
        conn.close()


def test_tampering_with_a_record_is_detected(fresh_url, study_factory):
    with open_store(fresh_url) as s:
        study = study_factory()
        s.save_study(study, "alice", "coordinator")
        s.add_user("dave", "Dave D", "coordinator", "longpassword", "root", "system")
        s.add_annotation(study.study_id, "dlt_adjudication", study.subject_ids[0], "event-1", {"dlt": False}, "bob", "investigator")
        assert s.verify_audit().ok
    tamper(fresh_url, "audit_log", "UPDATE audit_log SET reason = 'nothing to see' WHERE id = 2")
    with open_store(fresh_url) as s:
        res = s.verify_audit()
    assert not res.ok
    assert res.first_broken["id"] == 2 and "hash mismatch" in res.first_broken["problem"]


def test_deleting_a_record_breaks_the_chain(fresh_url):
    with open_store(fresh_url) as s:
        for name in ("u1", "u2", "u3"):
            s.add_user(name, name.upper(), "coordinator", "longpassword", "root", "system")
    tamper(fresh_url, "audit_log", "DELETE FROM audit_log WHERE id = 2")
    with open_store(fresh_url) as s:
        res = s.verify_audit()
    assert not res.ok and res.first_broken["id"] == 3
    assert "missing" in res.first_broken["problem"]


def test_rehashing_an_edited_record_still_breaks_the_link_to_the_next(fresh_url):
    with open_store(fresh_url) as s:
        for name in ("u1", "u2"):
            s.add_user(name, name.upper(), "coordinator", "longpassword", "root", "system")
        rec = s.audit_log()[0]
    fields = {k: rec[k] for k in ("id", "ts_utc", "actor", "role", "action", "entity", "entity_id", "study_id", "reason", "source", "software_version", "prev_hash")}
    fields["old_json"] = None
    fields["new_json"] = '{"disabled":false,"full_name":"U1","role":"admin","username":"u1"}'  # escalate u1 to admin
    h = record_hash(fields)
    p = "?" if "://" not in fresh_url else "%s"
    tamper(fresh_url, "audit_log", f"UPDATE audit_log SET new_json = {p}, hash = {p} WHERE id = 1", (fields["new_json"], h))
    with open_store(fresh_url) as s:
        res = s.verify_audit()
    assert not res.ok and res.first_broken["id"] == 2 and "prev_hash" in res.first_broken["problem"]


def test_tampering_with_stored_data_is_detected(fresh_url, study_factory):
    study = study_factory()
    with open_store(fresh_url) as s:
        s.save_study(study, "alice", "coordinator")
    tamper(fresh_url, "observations", "UPDATE observations SET value = 35.0 WHERE pos = 3")
    with open_store(fresh_url) as s:
        with pytest.raises(IntegrityError):
            s.load_study(study.study_id)
        assert s.verify_audit().ok  # the chain itself is intact ...
        deep = s.verify_audit(deep=True)  # ... but the data no longer matches what it recorded
    assert not deep.ok and deep.first_broken["id"] == 1 and "observations" in deep.first_broken["problem"]


def test_concurrent_writers_keep_one_unbroken_chain(store_url, study_factory):
    """Writers in parallel (own engines, as separate processes would have) are serialised by the write lock."""
    from concurrent.futures import ThreadPoolExecutor

    study = study_factory()
    with open_store(store_url) as s:
        s.save_study(study, "alice", "coordinator")

    def work(k: int) -> list[int]:
        with open_store(store_url) as s:
            return [s.add_annotation(study.study_id, "note", None, f"w{k}-{i}", {"i": i}, f"user{k}", "coordinator") for i in range(5)]

    with ThreadPoolExecutor(4) as ex:
        ids = [i for part in ex.map(work, range(4)) for i in part]
    assert len(set(ids)) == 20
    with open_store(store_url) as s:
        assert len(s.annotations(study.study_id)) == 20
        log = s.audit_log()
        assert [r["id"] for r in log] == list(range(1, len(log) + 1))
        assert s.verify_audit().ok
