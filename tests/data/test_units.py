import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cd7kit.data.units import UnitError, convert, parse_unit, to_canonical


@pytest.mark.parametrize(
    ("value", "unit", "code", "expected"),
    [
        (88.4, "µmol/L", "CREAT", 1.0),  # creatinine 88.4 umol/L = 1 mg/dL
        (17.1, "umol/L", "BILI", 1.0),  # bilirubin 17.1 umol/L = 1 mg/dL
        (10.0, "mg/dL", "CRP", 100.0),  # canonical CRP is mg/L
        (101.3, "°F", "TEMP", 38.5),
        (1500, "/uL", "ANC", 1.5),
        (1500, "cells/µL", "ANC", 1.5),
        (2.5, "x10^9/L", "PLT", 2.5),
        (25, "10*3/uL", "PLT", 25),
        (12.0, "g/dL", "HGB", 120.0),
        (265.7, "mg/dL", "TRIGLYCERIDES", 3.0),
        (150, "mg/dL", "FIBRINOGEN", 1.5),
        (0.5, "x10⁹/L", "WBC", 0.5),
    ],
)
def test_clinical_conversions(value, unit, code, expected):
    assert to_canonical([value], unit, code)[0] == pytest.approx(expected, rel=2e-3)


def test_impossible_conversion_raises():
    with pytest.raises(UnitError):
        to_canonical([1.0], "mmHg", "CREAT")
    with pytest.raises(UnitError):
        parse_unit("blorbs per wibble")


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_round_trip_mass_molar(x):
    back = convert(convert([x], "mg/dL", "umol/L", 113.12), "umol/L", "mg/dL", 113.12)
    assert back[0] == pytest.approx(x, rel=1e-9, abs=1e-9)


@given(st.floats(min_value=-100, max_value=200, allow_nan=False))
def test_temperature_round_trip(x):
    f = convert([x], "degC", "degF")
    assert f[0] == pytest.approx(x * 9 / 5 + 32, abs=1e-9)
    assert convert(f, "degF", "degC")[0] == pytest.approx(x, abs=1e-9)


@given(st.floats(min_value=0, max_value=1e5, allow_nan=False), st.sampled_from(["cells/uL", "/uL", "10^9/L", "G/L", "10^3/uL"]))
def test_counts_are_consistent(x, unit):
    # every spelling of a count agrees with cells/uL via the canonical 10^9/L
    via = to_canonical([x], unit, "ANC")[0]
    direct = convert([x], unit, "cells/uL")[0] / 1000.0
    assert np.isclose(via, direct)
