"""Shared pieces of the command line: output (rich or JSON), errors, and opening a study.

Conventions (DESIGN.md): every command has ``--json`` (the result objects serialised, on stdout);
bad input goes to stderr with exit code 2 and says what to fix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from cd7kit.data import Study, jsonable
from cd7kit.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from cd7kit.store import EnsureResult, Store

console = Console()
err_console = Console(stderr=True)

JSON_HELP = "Print the result as JSON on stdout."
DB_HELP = "Database URL or SQLite file (default: $CD7KIT_DATABASE_URL, else a file in the user data directory)."


def emit(obj: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Print ``obj`` as JSON (exactly the result objects) or through ``render`` with rich."""
    if as_json:
        sys.stdout.write(json.dumps(jsonable(obj), indent=2, ensure_ascii=False) + "\n")
    elif render is not None:
        render(obj)
    else:
        console.print_json(json.dumps(jsonable(obj), ensure_ascii=False))


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
    from cd7kit.store import open_store

    store = open_store(db)
    try:
        return store.load_study(spec)
    except NotFoundError as exc:
        raise InputError(f"{spec!r} is neither a folder nor a stored study ({exc}); see 'cd7kit study list'") from exc


__all__ = ["console", "err_console", "emit", "fail", "open_study", "JSON_HELP", "DB_HELP"]


def ensure_demo_study(store: Store) -> EnsureResult:
    """Store the embedded demo study unless the same content is already there (idempotent)."""
    from cd7kit.datasets import load_demo_study

    return store.ensure_study(load_demo_study(), actor="cd7kit-demo", role="system", reason="demo data updated", source="cd7kit demo")
