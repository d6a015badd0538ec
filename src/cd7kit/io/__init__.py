"""Readers and writers: the cd7kit CSV template, CDISC SDTM (CSV/XPT), REDCap flat exports.

Every reader returns a validated :class:`~cd7kit.data.Study` or raises one
:class:`~cd7kit.errors.InputError` listing every problem (file, row, column, value, expected form).
:func:`read_study` and :func:`write_study` dispatch on ``format``. Formats are documented in
``docs/data-format.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cd7kit.data import Study
from cd7kit.errors import InputError, Problem

from .csv_template import read_cd7kit, write_cd7kit
from .redcap import RedcapMapping, read_redcap
from .sdtm import SdtmOptions, read_sdtm, write_sdtm

READ_FORMATS = ("cd7kit", "sdtm", "redcap")
WRITE_FORMATS = ("cd7kit", "sdtm", "sdtm-xpt")


def read_study(path: str | Path, format: str = "cd7kit", mapping: str | Path | None = None) -> Study:
    """Read a study from ``path`` in one of :data:`READ_FORMATS`.

    ``cd7kit``: a CSV-template folder. ``sdtm``: a folder of SDTM domain files (CSV or XPT);
    ``mapping`` is an optional YAML of :class:`SdtmOptions`. ``redcap``: a REDCap flat CSV export;
    ``mapping`` (required) is the YAML field mapping.
    """
    if format == "cd7kit":
        return read_cd7kit(path)
    if format == "sdtm":
        return read_sdtm(path, SdtmOptions.from_yaml(mapping))
    if format == "redcap":
        if mapping is None:
            raise InputError([Problem("a REDCap import needs a mapping file", str(path), column="--mapping", expected="a YAML mapping from REDCap fields to cd7kit codes (docs/data-format.md)")])
        return read_redcap(path, mapping)
    raise InputError([Problem("unknown format", str(path), value=format, expected=" | ".join(READ_FORMATS))])


def write_study(
    study: Study,
    path: str | Path,
    format: str = "cd7kit",
    *,
    attestations: Iterable[Mapping[str, Any]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Write a study to ``path`` in one of :data:`WRITE_FORMATS` (``sdtm``: CSV, ``sdtm-xpt``: SAS XPT v5).

    ``attestations`` / ``overrides`` (eligibility records beyond the study's own ``meta``, e.g. those
    stored with ``cd7kit screen attest``) feed the SDTM IE domain (:func:`cd7kit.io.sdtm.ie_records`).
    """
    if format == "cd7kit":
        return write_cd7kit(study, path)
    if format in ("sdtm", "sdtm-xpt"):
        return write_sdtm(study, path, "csv" if format == "sdtm" else "xpt", attestations=attestations, overrides=overrides)
    raise InputError([Problem("unknown format", str(path), value=format, expected=" | ".join(WRITE_FORMATS))])


__all__ = [
    "read_study",
    "write_study",
    "read_cd7kit",
    "write_cd7kit",
    "read_sdtm",
    "write_sdtm",
    "SdtmOptions",
    "read_redcap",
    "RedcapMapping",
    "READ_FORMATS",
    "WRITE_FORMATS",
]
