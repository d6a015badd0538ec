"""Shared pieces of the command line: output (rich or JSON), errors, and opening a study.

Conventions (DESIGN.md): every command has ``--json`` (the result objects serialised, on stdout);
bad input goes to stderr with exit code 2 and says what to fix.
"""

from __future__ import annotations

import functools
import getpass
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Column, Table

from cd7kit.data import Study, jsonable
from cd7kit.errors import Cd7kitError, InputError, NotFoundError

if TYPE_CHECKING:
    from cd7kit.store import EnsureResult, Store

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

JSON_HELP = "Print the result as JSON on stdout."
DB_HELP = "Database URL or SQLite file (default: $CD7KIT_DATABASE_URL, else a file in the user data directory)."
#: The ``--db`` and ``--json`` options every command shares (``db: str | None = DB_OPTION``).
DB_OPTION = typer.Option(None, "--db", help=DB_HELP)
JSON_OPTION = typer.Option(False, "--json", help=JSON_HELP)


def emit(obj: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Print ``obj`` as JSON (exactly the result objects) or through ``render`` with rich."""
    if as_json:
        sys.stdout.write(json.dumps(jsonable(obj), indent=2, ensure_ascii=False) + "\n")
    elif render is not None:
        render(obj)
    else:
        console.print_json(json.dumps(jsonable(obj), ensure_ascii=False))


def print_table(title: str | None, columns: Iterable[str | Column], rows: Iterable[Iterable[str]]) -> None:
    """Print rows of strings as a rich table; a column is its header, or a rich ``Column`` (to justify,
    fold or not wrap it)."""
    t = Table(*columns, title=title)
    for r in rows:
        t.add_row(*r)
    console.print(t)


@contextmanager
def stored(db: str | None) -> Iterator[Store]:
    """The store at ``db`` (see DB_HELP), closed when the block ends."""
    from cd7kit.store import open_store

    store = open_store(db)
    try:
        yield store
    finally:
        store.close()


def report_error(exc: Cd7kitError, as_json: bool) -> None:
    """Print a cd7kit error to stderr: with ``--json`` as JSON (an input error lists every problem:
    file, row, column, value, expected form), else as text."""
    if as_json:
        payload = exc.to_dict() if isinstance(exc, InputError) else {"error": type(exc).__name__, "message": str(exc)}
        sys.stderr.write(json.dumps(jsonable(payload), indent=2, ensure_ascii=False) + "\n")
    else:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)


def reports_errors(fn: F) -> F:
    """Decorate a command so that a cd7kit error ends it with exit code 2 and :func:`report_error`.

    ``cd7kit.cli.main`` does the same for every command; the decorator makes it hold when a command
    is invoked in-process (``typer.testing.CliRunner``) too.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Cd7kitError as exc:
            report_error(exc, bool(kwargs.get("as_json")))
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


def default_actor() -> str:
    """Who runs the command, for the audit trail: the operating-system user."""
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user name in some containers
        return "unknown"


def eligibility_records(store: Store, study_id: str | None, study: Study) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Attestations and overrides for the eligibility engine: the study's own, then those stored for
    ``study_id`` (``cd7kit screen attest`` / ``override``)."""
    from cd7kit.clinical.eligibility.records import ATTESTATION_KIND, OVERRIDE_KIND, study_records

    if study_id is None:
        return study_records(study)
    return study_records(study, store.annotations(study_id, kind=ATTESTATION_KIND), store.annotations(study_id, kind=OVERRIDE_KIND))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error to stderr and return the Exit to raise (``raise fail(...)``)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def open_study(spec: str, db: str | None = None) -> Study:
    """A study given as a cd7kit CSV-template folder, or as the id of a study in the database."""
    path = Path(spec)
    if path.is_dir():
        from cd7kit.io import read_cd7kit

        return read_cd7kit(path)
    with stored(db) as store:
        try:
            return store.load_study(spec)
        except NotFoundError as exc:
            raise InputError(f"{spec!r} is neither a folder nor a stored study ({exc}); see 'cd7kit study list'") from exc


__all__ = [
    "console",
    "default_actor",
    "eligibility_records",
    "err_console",
    "emit",
    "fail",
    "open_study",
    "print_table",
    "report_error",
    "reports_errors",
    "stored",
    "JSON_HELP",
    "DB_HELP",
    "DB_OPTION",
    "JSON_OPTION",
]


def ensure_demo_study(store: Store) -> EnsureResult:
    """Store the embedded demo study unless the same content is already there (idempotent)."""
    from cd7kit.datasets import load_demo_study

    return store.ensure_study(load_demo_study(), actor="cd7kit-demo", role="system", reason="demo data updated", source="cd7kit demo")
