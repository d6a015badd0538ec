"""Helpers for tests against a real PostgreSQL server (no mocked databases).

:func:`temporary_postgres_database` creates a uniquely named database through an autocommit connection
to an existing one (``test`` by default), yields its URL, and drops it afterwards. The admin URL comes
from ``$CD7KIT_TEST_POSTGRES_URL`` or defaults to ``postgresql+psycopg://postgres@127.0.0.1:5432/test``
(trust authentication, as on the CI machine). If the server is down this raises: tests that use it fail,
they are never skipped.

:func:`raw_connection` and :func:`tamper` act as someone with direct database access would -- past cd7kit
and, for :func:`tamper`, past the append-only triggers of migration 0001 -- so that tests can show that
the audit chain still exposes the change.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return os.environ.get("CD7KIT_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


@contextmanager
def temporary_postgres_database(base_url: str | None = None, prefix: str = "cd7kit_test") -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL, drop it at the end."""
    base = make_url(base_url or admin_url())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def raw_connection(url: str) -> Any:
    """An autocommit DB-API connection to the store at ``url`` (a SQLite file path or a PostgreSQL URL)
    that bypasses cd7kit entirely."""
    if "://" not in url:
        import sqlite3

        return sqlite3.connect(url, isolation_level=None)
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def tamper(url: str, table: str, statement: str, params: Sequence[Any] = ()) -> None:
    """Drop ``table``'s append-only triggers and run ``statement`` on it through :func:`raw_connection`
    (placeholders: ``?`` for SQLite, ``%s`` for PostgreSQL)."""
    conn = raw_connection(url)
    try:
        if "://" not in url:
            conn.execute(f"DROP TRIGGER {table}_no_update")
            conn.execute(f"DROP TRIGGER {table}_no_delete")
        else:
            conn.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        conn.execute(statement, tuple(params))
    finally:
        conn.close()


__all__ = ["temporary_postgres_database", "admin_url", "DEFAULT_ADMIN_URL", "raw_connection", "tamper"]
