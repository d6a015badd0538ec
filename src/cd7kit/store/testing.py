"""Helpers for tests against a real PostgreSQL server (no mocked databases).

:func:`temporary_postgres_database` creates a uniquely named database through an autocommit connection
to an existing one (``test`` by default), yields its URL, and drops it afterwards. The admin URL comes
from ``$CD7KIT_TEST_POSTGRES_URL`` or defaults to ``postgresql+psycopg://postgres@127.0.0.1:5432/test``
(trust authentication, as on the CI machine). If the server is down this raises: tests that use it fail,
they are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


__all__ = ["temporary_postgres_database", "admin_url", "DEFAULT_ADMIN_URL"]
