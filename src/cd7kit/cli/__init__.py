"""The ``cd7kit`` command (typer): one sub-command group per engine.

Each group lives in its own module (``cli/<group>.py``) and is registered below. Errors of the
user's input (:class:`~cd7kit.errors.Cd7kitError`) end with exit code 2 and a message on stderr.
"""

from __future__ import annotations

import json
import sys

import typer

from cd7kit import __version__
from cd7kit.errors import Cd7kitError, InputError

from ._common import err_console

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
    """Console-script entry point."""
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:  # a command's `raise typer.Exit(n)` comes back as a return value
            sys.exit(rc)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except Cd7kitError as exc:
        if "--json" in sys.argv:
            payload = exc.to_dict() if isinstance(exc, InputError) else {"error": type(exc).__name__, "message": str(exc)}
            sys.stderr.write(json.dumps(payload, indent=2, default=str) + "\n")
        else:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(2)
    except Exception as exc:  # click usage errors come as click exceptions
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


__all__ = ["app", "main"]
