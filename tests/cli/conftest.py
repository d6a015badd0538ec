"""Shared helpers of the command-line tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from cd7kit.cli import main


@pytest.fixture
def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[Any, str, str]]:
    """``run_main(*args) -> (exit code, stdout, stderr)`` of the real entry point ``cd7kit.cli:main``
    (in this process: what ``cd7kit ARGS`` does, exit code included)."""

    def run(*args: str) -> tuple[Any, str, str]:
        monkeypatch.setattr(sys, "argv", ["cd7kit", *args])
        with pytest.raises(SystemExit) as ei:
            main()
        out, err = capsys.readouterr()
        return ei.value.code, out, err

    return run
