"""The Study data model: validated tables, unit conversion and day numbering.

See DESIGN.md ("The Study") and ``docs/data-format.md``. Engines take a :class:`Study` (or its tables)
and return :class:`Result` objects carrying their evidence.
"""

from .days import date_from_day, day_from_dates, from_sdtm_dy, sdtm_dy_from_dates, to_sdtm_dy
from .result import Evidence, Result, Rule, jsonable
from .study import TABLES, Study, concat, validate_tables
from .units import UnitError, convert, parse_unit, to_canonical

__all__ = [
    "Study",
    "TABLES",
    "concat",
    "validate_tables",
    "Result",
    "Rule",
    "Evidence",
    "jsonable",
    "day_from_dates",
    "date_from_day",
    "to_sdtm_dy",
    "from_sdtm_dy",
    "sdtm_dy_from_dates",
    "convert",
    "to_canonical",
    "parse_unit",
    "UnitError",
]
