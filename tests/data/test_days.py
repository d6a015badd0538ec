import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cd7kit.data.days import date_from_day, day_from_dates, from_sdtm_dy, sdtm_dy_from_dates, to_sdtm_dy


def test_case1_lymphodepletion_is_day_minus_4():
    # Pan et al. 2025, case 1: FC started 27 May 2021 (day -4); infusion therefore on 31 May 2021
    assert day_from_dates(["2021-05-27"], "2021-05-31")[0] == -4.0
    assert day_from_dates(["2021-05-31"], "2021-05-31")[0] == 0.0
    assert str(day_from_dates(["2021-05-31"], "2021-05-31")[0]) == "0.0"  # no day -0


def test_sdtm_has_no_day_zero():
    assert list(to_sdtm_dy([-2, -1, 0, 1, 27])) == [-2, -1, 1, 2, 28]
    assert list(from_sdtm_dy([-2, -1, 1, 2])) == [-2, -1, 0, 1]
    with pytest.raises(ValueError):
        from_sdtm_dy([0])


def test_time_of_day_is_a_fraction():
    assert day_from_dates(["2021-06-08T06:00"], "2021-05-31")[0] == pytest.approx(8.25)


@given(st.integers(min_value=-3650, max_value=3650))
def test_sdtm_round_trip(d):
    assert from_sdtm_dy(to_sdtm_dy([d]))[0] == d
    assert to_sdtm_dy([d])[0] != 0


@given(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2060, 1, 1)), st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2060, 1, 1)))
def test_dates_round_trip(d, ref):
    day = day_from_dates([d.isoformat()], ref.isoformat())[0]
    assert day == (d - ref).days
    assert date_from_day([day], ref.isoformat())[0].date() == d
    dy = sdtm_dy_from_dates([d.isoformat()], ref.isoformat())[0]
    assert dy == ((d - ref).days + 1 if d >= ref else (d - ref).days)
    assert not np.signbit(day) or day < 0
