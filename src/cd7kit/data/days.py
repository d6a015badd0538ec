"""Day numbering: cd7kit study days (day 0 = first infusion) and SDTM study days.

Convention (DESIGN.md; Lee et al. and every CAR-T protocol): day 0 is the calendar day of the first
CAR-T/CAR-NK infusion; days before it are negative; there is no day -0. SDTM ``--DY`` (SDTMIG 3.4,
section 4.4.4) has *no* day 0: on or after the reference date ``DY = date - RFSTDTC + 1``, before it
``DY = date - RFSTDTC``. Converting between the two is a shift on the non-negative side only, never a copy.
Fractional days (a time of day) are kept: 8.25 is 06:00 on day 8.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd


def day_from_dates(dates, reference) -> np.ndarray:
    """cd7kit day (float, fractional for times) of each date relative to the first-infusion date."""
    ref = pd.Timestamp(reference)
    ts = pd.to_datetime(pd.Series(dates), errors="raise")
    # whole calendar days for date-only values; a time of day adds the fraction
    ref_midnight = ref.normalize()
    delta = (ts - ref_midnight) / pd.Timedelta(days=1)
    out = delta.to_numpy(dtype=float)
    return out + 0.0  # turns -0.0 into 0.0: there is no day -0


def date_from_day(days, reference) -> pd.Series:
    """Calendar timestamp of each cd7kit day (inverse of :func:`day_from_dates`)."""
    ref = pd.Timestamp(reference).normalize()
    return ref + pd.to_timedelta(np.asarray(days, dtype=float), unit="D")


def to_sdtm_dy(days) -> np.ndarray:
    """SDTM study day (integer, no day 0) of each cd7kit day (calendar part only)."""
    d = np.floor(np.asarray(days, dtype=float))
    return np.where(d >= 0, d + 1, d).astype(np.int64)


def from_sdtm_dy(dy) -> np.ndarray:
    """cd7kit day of each SDTM study day; SDTM day 0 does not exist and raises ``ValueError``."""
    a = np.asarray(dy, dtype=float)
    if np.any(a == 0):
        raise ValueError("SDTM study day 0 does not exist (SDTMIG 3.4 section 4.4.4)")
    return np.where(a > 0, a - 1, a) + 0.0


def sdtm_dy_from_dates(dates, reference) -> np.ndarray:
    """SDTM ``--DY`` from dates and the reference start date (RFSTDTC)."""
    return to_sdtm_dy(day_from_dates(dates, reference))


def parse_iso_date(value: str) -> dt.date | None:
    """A complete ISO 8601 date (or date-time) as a date; partial dates (``2021-05``) give ``None``."""
    s = str(value).strip()
    if len(s) < 10:
        return None
    return dt.date.fromisoformat(s[:10])


__all__ = ["day_from_dates", "date_from_day", "to_sdtm_dy", "from_sdtm_dy", "sdtm_dy_from_dates", "parse_iso_date"]
