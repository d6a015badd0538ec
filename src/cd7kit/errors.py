"""Errors that name what is wrong with a user's input, and where.

Every reader collects *all* problems of a file into one :class:`InputError` (file, row, column,
value, expected form), so a user fixes a file in one pass; an import with any problem writes nothing.
The CLI turns an :class:`InputError` into exit code 2 and a message on stderr.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one cell (or row, or file) of the input."""

    message: str
    file: str | None = None
    row: int | None = None  # 1-based data row as a spreadsheet user counts it (header is row 1)
    column: str | None = None
    value: Any = None
    expected: str | None = None

    def __str__(self) -> str:
        where = ":".join(
            str(p) for p in (self.file, f"row {self.row}" if self.row is not None else None) if p
        )
        col = f" column '{self.column}'" if self.column else ""
        v = self.value.item() if hasattr(self.value, "item") else self.value
        val = f" value {v!r}" if v is not None else ""
        exp = f" (expected {self.expected})" if self.expected else ""
        return f"{where}{col}{val}: {self.message}{exp}".lstrip(": ")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if hasattr(d["value"], "item"):
            d["value"] = d["value"].item()
        if d["value"] is not None and not isinstance(d["value"], (str, int, float, bool)):
            d["value"] = str(d["value"])
        return d


class Cd7kitError(Exception):
    """Base class of cd7kit's own errors."""


class InputError(Cd7kitError, ValueError):
    """Bad input: carries every :class:`Problem` found, not only the first."""

    def __init__(self, problems: Iterable[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__(self._summary())

    def _summary(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the input"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"error": "input", "problems": [p.to_dict() for p in self.problems]}


class NotFoundError(Cd7kitError, LookupError):
    """A study, subject or record that was asked for does not exist."""


class ConflictError(Cd7kitError):
    """A write would silently overwrite a stored record: corrections must be new versions."""
