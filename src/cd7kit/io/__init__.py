"""Readers and writers: the cd7kit CSV template, CDISC SDTM (CSV/XPT), REDCap flat exports.

Every reader returns a validated :class:`~cd7kit.data.Study` or raises one
:class:`~cd7kit.errors.InputError` listing every problem (file, row, column, value, expected form).
"""

from .csv_template import read_cd7kit, write_cd7kit

__all__ = ["read_cd7kit", "write_cd7kit"]
