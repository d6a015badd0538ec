"""Readers and writers: the cd7kit CSV template, CDISC SDTM (CSV/XPT), REDCap flat exports.

Every reader returns a validated :class:`~cd7kit.data.Study` or raises one
:class:`~cd7kit.errors.InputError` listing every problem (file, row, column, value, expected form).
:func:`read_study` and :func:`write_study` dispatch on ``format``.
"""

from __future__ import annotations

from pathlib import Path

from cd7kit.data import Study
from cd7kit.errors import InputError, Problem

from .csv_template import read_cd7kit, write_cd7kit

READ_FORMATS = ("cd7kit",)
WRITE_FORMATS = ("cd7kit",)


def read_study(path: str | Path, format: str = "cd7kit", mapping: str | Path | None = None) -> Study:
    """Read a study from ``path`` in one of :data:`READ_FORMATS`."""
    if format == "cd7kit":
        return read_cd7kit(path)
    raise InputError([Problem("unknown format", str(path), value=format, expected=" | ".join(READ_FORMATS))])


def write_study(study: Study, path: str | Path, format: str = "cd7kit") -> Path:
    """Write a study to ``path`` in one of :data:`WRITE_FORMATS`."""
    if format == "cd7kit":
        return write_cd7kit(study, path)
    raise InputError([Problem("unknown format", str(path), value=format, expected=" | ".join(WRITE_FORMATS))])


__all__ = ["read_study", "write_study", "read_cd7kit", "write_cd7kit", "READ_FORMATS", "WRITE_FORMATS"]
