"""Database URLs, engines and migrations.

* :func:`resolve_url` -- ``None`` -> ``$CD7KIT_DATABASE_URL`` -> one SQLite file in the user data directory
  (``platformdirs.user_data_dir("cd7kit")/cd7kit.sqlite``); a plain file path means SQLite at that path;
  ``postgresql://`` / ``postgres://`` URLs use the psycopg 3 driver.
* :func:`make_engine` -- SQLite gets foreign keys, WAL, a busy timeout and ``BEGIN IMMEDIATE`` for
  write transactions (so the audit chain is extended by one writer at a time); every engine gets the
  append-only guard of :mod:`cd7kit.store.guard`.
* :func:`migrate` -- runs the Alembic migrations shipped in ``cd7kit/store/migrations`` up to head,
  programmatically (``alembic.command.upgrade``), with no ``alembic.ini``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from .guard import install_statement_guard

ENV_VAR = "CD7KIT_DATABASE_URL"
MIGRATIONS = Path(__file__).with_name("migrations")


def default_sqlite_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("cd7kit")) / "cd7kit.sqlite"


def resolve_url(url: str | os.PathLike[str] | None = None) -> str:
    """The SQLAlchemy URL for ``url`` (see module docstring)."""
    if url is None or str(url) == "":
        url = os.environ.get(ENV_VAR) or None
    if url is None:
        path = default_sqlite_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    s = str(url)
    if "://" not in s:
        path = Path(s).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    for prefix in ("postgresql://", "postgres://"):
        if s.startswith(prefix):
            return "postgresql+psycopg://" + s[len(prefix):]
    if s.startswith("sqlite:///") and not s.startswith("sqlite:///:memory:"):
        u = make_url(s)
        if u.database:
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return s


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine for a resolved URL, with cd7kit's SQLite settings and the append-only guard."""
    u = make_url(url)
    kwargs: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _sqlite_settings(engine)
    install_statement_guard(engine)
    return engine


def _sqlite_settings(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event below emit BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except Exception:  # pragma: no cover - e.g. read-only media
            pass
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("cd7kit_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrate(engine: Engine) -> str | None:
    """Upgrade the database to the newest schema; return the revision now current."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return current
    with engine.connect().execution_options(cd7kit_write=True) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return MigrationContext.configure(conn).get_current_revision()


__all__ = ["ENV_VAR", "resolve_url", "redact", "make_engine", "migrate", "current_revision", "default_sqlite_path"]
