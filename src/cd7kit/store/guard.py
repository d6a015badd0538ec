"""Code-level enforcement that append-only tables are never updated or deleted.

Two layers below the database triggers created by the migration:

* ORM: ``before_update`` / ``before_delete`` mapper events on every append-only class raise
  :class:`AppendOnlyError`.
* SQL: a ``before_cursor_execute`` engine event refuses any ``UPDATE``, ``DELETE`` or ``TRUNCATE``
  statement that targets an append-only table, whatever issued it (Core, ORM bulk, or raw SQL through
  the engine).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, event

from cd7kit.errors import Cd7kitError

from .models import APPEND_ONLY_TABLES, DATA_TABLES, Annotation, AuditRecord, Dataset, StudyVersion


class AppendOnlyError(Cd7kitError):
    """An attempt to change or delete a row of an append-only table (audit trail, stored versions)."""


_TABLES = "|".join(APPEND_ONLY_TABLES)
_PATTERN = re.compile(
    rf"^\s*(?:UPDATE\s+(?:ONLY\s+)?|DELETE\s+FROM\s+(?:ONLY\s+)?|TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?)"
    rf"[\"`\[]?(?:{_TABLES})\b",
    re.IGNORECASE,
)


def _refuse(_mapper: Any, _conn: Any, target: Any) -> None:
    raise AppendOnlyError(f"{type(target).__tablename__} is append-only: corrections are new records, never updates")


for _cls in (AuditRecord, StudyVersion, Dataset, Annotation, *DATA_TABLES.values()):
    event.listen(_cls, "before_update", _refuse)
    event.listen(_cls, "before_delete", _refuse)


def install_statement_guard(engine: Engine) -> None:
    """Refuse UPDATE/DELETE/TRUNCATE statements on append-only tables sent through ``engine``."""

    @event.listens_for(engine, "before_cursor_execute")
    def _check(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if _PATTERN.match(statement):
            raise AppendOnlyError(f"refused: {statement.split()[0].upper()} on an append-only table ({statement[:80]!r})")


__all__ = ["AppendOnlyError", "install_statement_guard"]
