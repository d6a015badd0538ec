"""The ``cd7kit`` command (typer): one sub-command group per engine.

Each group lives in its own module (``cli/<group>.py``) and is registered below. Errors of the
user's input (:class:`~cd7kit.errors.Cd7kitError`) end with exit code 2 and a message on stderr.
"""

from __future__ import annotations

import sys

import typer

from cd7kit import __version__
from cd7kit.errors import Cd7kitError

from ._common import report_error

app = typer.Typer(
    name="cd7kit",
    help="cd7kit: trial data, grading, dose escalation, kinetics and immune reconstitution for CD7 CAR-T / CAR-NK therapy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Show the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


#: Command-group modules of this package; each has ``register(app)``. One name per line.
_GROUPS: tuple[str, ...] = (
    "demo",
    "store_cmds",
    "serve",
    "report",
    "escalate",
    "screen",
    "kinetics",
    "simulate",
    "grade",
    "singlecell",
)


def _register() -> None:
    import importlib

    for name in _GROUPS:
        importlib.import_module(f"cd7kit.cli.{name}").register(app)


_register()


def main() -> None:
    """Console-script entry point: usage errors (click's) and input errors (cd7kit's) end with exit code 2."""
    try:
        app()  # standalone: typer prints usage errors and exits 2; typer.Exit(n) exits n
    except Cd7kitError as exc:
        report_error(exc, "--json" in sys.argv)
        sys.exit(2)


__all__ = ["app", "main"]
