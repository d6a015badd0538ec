"""The store commands end to end: import (all-or-nothing), export, study list/show, audit log/verify
(including tamper detection through the real ``cd7kit`` entry point), users -- on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cd7kit.cli import app
from cd7kit.data import TABLES
from cd7kit.io import read_cd7kit, write_cd7kit
from cd7kit.store import open_store
from cd7kit.store.models import AuditRecord, ObservationRow, StudyVersion
from cd7kit.store.testing import raw_connection, tamper, temporary_postgres_database

runner = CliRunner()


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    with temporary_postgres_database(prefix="cd7kit_cli") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "cli.sqlite")
    return request.getfixturevalue("pg_module_url")


@pytest.fixture
def folder(tmp_path: Path, tiny_study) -> Path:
    import uuid

    sid = f"CLI-{uuid.uuid4().hex[:8]}"
    study = tiny_study.replace(meta={"study_id": sid, "title": "CLI test"})
    return write_cd7kit(study, tmp_path / "tiny")


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def counts(db: str) -> dict[str, int]:
    with open_store(db) as s, s.engine.connect() as c:
        return {
            "audit": c.execute(select(func.count()).select_from(AuditRecord)).scalar() or 0,
            "versions": c.execute(select(func.count()).select_from(StudyVersion)).scalar() or 0,
            "observations": c.execute(select(func.count()).select_from(ObservationRow)).scalar() or 0,
        }


def test_import_list_show_export_round_trip(db, folder, tmp_path):
    sid = read_cd7kit(folder).study_id
    r = invoke("import", str(folder), "--format", "cd7kit", "--db", db, "--actor", "alice", "--role", "coordinator", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["study_id"] == sid and out["version"] == 1 and out["n_observations"] == 4
    r = invoke("study", "list", "--db", db, "--json")
    assert r.exit_code == 0
    assert sid in {s["study_id"] for s in json.loads(r.stdout)}
    r = invoke("study", "show", sid, "--db", db, "--json")
    assert r.exit_code == 0
    shown = json.loads(r.stdout)
    assert shown["summary"]["n_subjects"] == 2 and shown["versions"][0]["created_by"] == "alice"
    r = invoke("export", sid, "--format", "cd7kit", "--out", str(tmp_path / "out"), "--db", db, "--json")
    assert r.exit_code == 0, r.output
    back = read_cd7kit(tmp_path / "out")
    orig = read_cd7kit(folder)
    for t in TABLES:
        pd.testing.assert_frame_equal(getattr(back, t), getattr(orig, t))
    r = invoke("audit", "log", "--study", sid, "--db", db, "--json")
    actions = [x["action"] for x in json.loads(r.stdout)]
    assert actions == ["study.create", "study.export"]
    r = invoke("audit", "log", "--study", sid, "--csv", str(tmp_path / "audit.csv"), "--db", db, "--json")
    assert r.exit_code == 0
    audit_csv = pd.read_csv(tmp_path / "audit.csv")
    assert list(audit_csv["action"]) == actions and audit_csv["hash"].str.len().eq(64).all()
    assert invoke("study", "list", "--db", db).exit_code == 0  # rich output too
    assert invoke("audit", "log", "--db", db).exit_code == 0


def test_reimport_conflicts_and_new_version_needs_a_reason(db, folder):
    assert invoke("import", str(folder), "--db", db).exit_code == 0
    before = counts(db)
    r = invoke("import", str(folder), "--db", db, "--json")
    assert r.exit_code == 2 and "already stored" in json.loads(r.stderr)["message"]
    r = invoke("import", str(folder), "--db", db, "--new-version")
    assert r.exit_code == 2 and "reason" in r.stderr
    assert counts(db) == before
    r = invoke("import", str(folder), "--db", db, "--new-version", "--reason", "re-sent by site", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["version"] == 2


def test_bad_input_lists_every_problem_and_writes_nothing(db, tmp_path, folder):
    assert invoke("import", str(folder), "--db", db).exit_code == 0  # something already stored
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "subjects.csv").write_text("subject_id,age_years,sex\nB1,10,M\nB2,abc,F\n")
    (bad / "observations.csv").write_text(
        "subject_id,day,code,value,unit\nB1,1,TEMP,39.0,degC\nB1,2,NOSUCHCODE,1,mg/L\nB2,x,ANC,1.0,10^9/L\n"
    )
    before = counts(db)
    r = invoke("import", str(bad), "--format", "cd7kit", "--study-id", "BAD", "--db", db, "--json")
    assert r.exit_code == 2
    problems = json.loads(r.stderr)["problems"]
    cells = {(Path(p["file"]).name, p["row"], p["column"], str(p["value"])) for p in problems}
    assert ("subjects.csv", 3, "age_years", "abc") in cells
    assert ("observations.csv", 4, "day", "x") in cells
    assert all(p["expected"] for p in problems)
    assert counts(db) == before
    r = invoke("import", str(bad), "--study-id", "BAD", "--db", db)
    assert r.exit_code == 2 and "age_years" in r.stderr and "abc" in r.stderr
    r = invoke("import", str(tmp_path / "missing"), "--db", db)
    assert r.exit_code == 2
    r = invoke("import", str(folder), "--format", "nope", "--db", db)
    assert r.exit_code == 2 and "format" in r.stderr
    assert counts(db) == before


def test_unknown_study_is_exit_code_2(db):
    for args in (("study", "show", "NOPE"), ("export", "NOPE", "--out", "x")):
        r = invoke(*args, "--db", db, "--json")
        assert r.exit_code == 2 and json.loads(r.stderr)["error"] == "NotFoundError"


def test_users_commands(db):
    import uuid

    name = f"cli_{uuid.uuid4().hex[:6]}"
    r = invoke("users", "add", name, "--full-name", "Dr. C. Li", "--role", "investigator", "--db", db, "--json", input="pass-word-1\npass-word-1\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):])["role"] == "investigator"
    r = invoke("users", "list", "--db", db, "--json")
    row = {u["username"]: u for u in json.loads(r.stdout)}[name]
    assert row["full_name"] == "Dr. C. Li" and not row["disabled"]
    r = invoke("users", "add", name + "2", "--full-name", "X", "--role", "emperor", "--password", "pass-word-1", "--db", db, "--json")
    assert r.exit_code == 2 and json.loads(r.stderr)["problems"][0]["column"] == "role"
    r = invoke("users", "set-role", name, "--role", "monitor", "--reason", "moved to monitoring", "--db", db, "--json")
    assert r.exit_code == 0
    r = invoke("users", "disable", name, "--reason", "left", "--db", db, "--json")
    assert r.exit_code == 0
    r = invoke("users", "list", "--db", db, "--json")
    row = {u["username"]: u for u in json.loads(r.stdout)}[name]
    assert row["disabled"] and row["role"] == "monitor"
    r = invoke("audit", "log", "--db", db, "--json")
    mine = [x for x in json.loads(r.stdout) if x["entity_id"] == name]
    assert [x["action"] for x in mine] == ["user.add", "user.role", "user.disable"]
    assert invoke("users", "list", "--db", db).exit_code == 0


def _cd7kit(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point (``cd7kit.cli:main``) in a fresh process."""
    return subprocess.run([sys.executable, "-c", "from cd7kit.cli import main; main()", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_audit_verify_detects_a_row_edited_in_the_database(backend, tmp_path, folder):
    with temporary_postgres_database(prefix="cd7kit_tamper") if backend == "postgresql" else nullcontext(str(tmp_path / "tamper.sqlite")) as dbu:
        assert invoke("import", str(folder), "--db", dbu).exit_code == 0
        assert invoke("users", "add", "eve", "--full-name", "Eve", "--role", "coordinator", "--password", "pass-word-1", "--db", dbu).exit_code == 0
        ok = invoke("audit", "verify", "--db", dbu, "--json")
        assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
        # an attacker with database access is refused by the triggers, removes them and rewrites history
        conn = raw_connection(dbu)
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            conn.execute("UPDATE audit_log SET role = 'admin' WHERE id = 2")
        conn.close()
        tamper(dbu, "audit_log", "UPDATE audit_log SET role = 'admin' WHERE id = 2")
        bad = _cd7kit("audit", "verify", "--db", dbu, "--json")  # the real entry point, in a new process
        assert bad.returncode == 1
        assert "broken at record 2" in bad.stderr
        res = json.loads(bad.stdout)
        assert res["ok"] is False and res["first_broken"]["id"] == 2
        r = invoke("audit", "verify", "--db", dbu)
        assert r.exit_code == 1 and "record 2" in r.stderr and "BROKEN" in r.stderr
