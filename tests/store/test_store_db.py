"""Database URLs, the migrations shipped in the package, and the schema they build."""

from __future__ import annotations

from importlib import resources

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cd7kit.store import open_store, resolve_url
from cd7kit.store.db import current_revision
from cd7kit.store.models import Base


def test_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("CD7KIT_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'xdg' / 'cd7kit' / 'cd7kit.sqlite'}"
    assert (tmp_path / "xdg" / "cd7kit").is_dir()
    assert resolve_url(str(tmp_path / "a" / "b.db")) == f"sqlite:///{tmp_path / 'a' / 'b.db'}"
    assert resolve_url("postgresql://u@h:5432/d") == "postgresql+psycopg://u@h:5432/d"
    assert resolve_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert resolve_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    monkeypatch.setenv("CD7KIT_DATABASE_URL", str(tmp_path / "env.sqlite"))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'env.sqlite'}"


def test_default_database_is_created_in_the_user_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CD7KIT_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with open_store() as s:
        assert s.list_studies() == []
    assert (tmp_path / "xdg" / "cd7kit" / "cd7kit.sqlite").is_file()


def test_migrations_ship_inside_the_package():
    mig = resources.files("cd7kit.store") / "migrations"
    assert (mig / "env.py").is_file() and (mig / "script.py.mako").is_file()
    assert any(p.name.endswith(".py") and p.name[0].isdigit() for p in (mig / "versions").iterdir())


def test_migrated_schema_matches_the_models(store_url):
    with open_store(store_url) as s:
        assert current_revision(s.engine) == "0001"
        with s.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    with open_store(store_url) as s:  # opening again is a no-op
        assert current_revision(s.engine) == "0001"


def test_every_study_column_has_a_database_column():
    from cd7kit.data import schema as S
    from cd7kit.store.models import DATA_TABLES

    for table, cls in DATA_TABLES.items():
        db_cols = {c.name for c in cls.__table__.columns}
        assert set(S.columns(table)) <= db_cols, table
