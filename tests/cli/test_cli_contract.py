"""The command-line contract (DESIGN.md, "Command line") over every command, found by walking the command
tree so that a new command is checked without being listed: each has ``--json``; bad input ends with exit
code 2 and a message on stderr that names what to fix -- through the real entry point ``cd7kit.cli:main``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cd7kit.cli import app

runner = CliRunner()


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every runnable command path: leaves, and groups that run without a sub-command (``cd7kit screen``)."""
    subs = getattr(cmd, "commands", None)
    if subs is None:
        yield path
        return
    if path and getattr(cmd, "invoke_without_command", False):
        yield path
    for name, sub in subs.items():
        yield from _commands(sub, (*path, name))


COMMANDS = sorted(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_group():
    groups = {p[0] for p in COMMANDS}
    assert {"demo", "import", "export", "screen", "grade", "escalate", "kinetics", "simulate", "singlecell", "report", "serve"} <= groups
    assert ("screen",) in COMMANDS and ("study", "show") in COMMANDS and len(COMMANDS) >= 30


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_json(path):
    r = runner.invoke(app, [*path, "--help"])
    assert r.exit_code == 0, r.output
    options = [line.strip("│ ").split()[0] for line in r.stdout.splitlines() if line.strip("│ ").startswith("-")]
    assert "--json" in options, f"cd7kit {' '.join(path)} has no --json option (options: {options})"


#: One bad input per command, and a word of the message that says what to fix. ``{tmp}``: a scratch
#: folder (its ``db.sqlite`` is an empty store; ``missing`` does not exist).
BAD_INPUT: dict[tuple[str, ...], tuple[list[str], str]] = {
    ("demo",): (["--db", "nosuch://x"], "--db"),
    ("import",): (["{tmp}/missing", "--db", "{tmp}/db.sqlite"], "not a folder"),
    ("export",): (["NOPE", "--out", "{tmp}/out", "--db", "{tmp}/db.sqlite"], "NOPE"),
    ("serve",): (["--port", "eighty"], "--port"),
    ("report",): (["NOPE", "--format", "docx", "--out", "{tmp}/r.html", "--db", "{tmp}/db.sqlite"], "--format"),
    ("grade",): (["{tmp}/missing", "--db", "{tmp}/db.sqlite"], "neither a folder nor a stored study"),
    ("study", "list"): (["--db", "nosuch://x"], "--db"),
    ("study", "show"): (["NOPE", "--db", "{tmp}/db.sqlite"], "NOPE"),
    ("audit", "log"): (["--limit", "ten", "--db", "{tmp}/db.sqlite"], "--limit"),
    ("audit", "verify"): (["--db", "postgresql://nobody@127.0.0.1:1/none"], "cannot connect"),
    ("users", "add"): (["u1", "--full-name", "U", "--role", "emperor", "--password", "pass-word-1", "--db", "{tmp}/db.sqlite"], "role"),
    ("users", "list"): (["--db", "nosuch://x"], "--db"),
    ("users", "disable"): (["nobody", "--reason", "left", "--db", "{tmp}/db.sqlite"], "nobody"),
    ("users", "set-role"): (["nobody", "--role", "monitor", "--reason", "x", "--db", "{tmp}/db.sqlite"], "nobody"),
    ("escalate", "boundaries"): (["--target", "1.5"], "target"),
    ("escalate", "simulate"): (["--design", "nope", "--p-true", "0.1,0.2"], "design"),
    ("escalate", "select-mtd"): (["--n", "3,x", "--y", "0,0"], "comma-separated"),
    ("escalate", "next"): ([], "--current"),
    ("escalate", "table"): (["--design", "nope"], "design"),
    ("screen",): (["--patient", "{tmp}/missing.json"], "file not found"),
    ("screen", "check"): (["--trial", "NOPE", "--patient", "{tmp}/missing.json"], "NOPE"),
    ("screen", "log"): (["--study", "{tmp}/missing", "--db", "{tmp}/db.sqlite"], "neither a folder nor a stored study"),
    ("screen", "import-ctgov"): (["{tmp}/missing.json"], "file not found"),
    ("screen", "override"): (["--study", "S", "--subject", "S1", "--criterion", "I99", "--result", "MET", "--reason", "x", "--db", "{tmp}/db.sqlite"], "I99"),
    ("screen", "attest"): (["--study", "S", "--subject", "S1", "--criterion", "I99", "--value", "--db", "{tmp}/db.sqlite"], "I99"),
    ("screen", "criteria"): (["--trial", "NOPE"], "NOPE"),
    ("kinetics", "nca"): (["{tmp}/missing", "--db", "{tmp}/db.sqlite"], "neither a folder nor a stored study"),
    ("kinetics", "fit"): (["{tmp}/missing", "--db", "{tmp}/db.sqlite"], "neither a folder nor a stored study"),
    ("simulate", "cohort"): (["--n", "0"], "--n"),
    ("simulate", "dlt"): (["--design", "NOPE", "--n-per-dose", "10"], "NOPE"),
    ("simulate", "population"): (["--n", "0"], "--n"),
    ("singlecell", "simulate"): (["--cells", "5", "--out", "{tmp}/x.h5ad"], "--cells"),
    ("singlecell", "run"): (["{tmp}/missing.h5ad", "--out", "{tmp}/sc"], "not found"),
}


def test_every_command_has_a_bad_input_case():
    assert sorted(BAD_INPUT) == COMMANDS


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("path", sorted(BAD_INPUT), ids=" ".join)
def test_bad_input_exits_2_and_says_what_to_fix(path, as_json, tmp_path, run_main):
    extra, fragment = BAD_INPUT[path]
    args = [*path, *(a.replace("{tmp}", str(tmp_path)) for a in extra), *(["--json"] if as_json else [])]
    code, out, err = run_main(*args)
    assert code == 2, (args, out, err)
    assert fragment in " ".join(err.split()), err
    assert "Traceback" not in err and out == ""
    if as_json and err.lstrip().startswith("{"):  # a cd7kit error: the JSON lists the problems
        payload = json.loads(err)
        assert payload.get("problems") or payload.get("message")
