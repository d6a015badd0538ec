"""Unit parsing and conversion to each test code's canonical unit, with pint.

Clinical laboratories write units many ways (``x10^9/L``, ``10*9/L``, ``G/L``, ``/µL``, ``°F``,
``µmol/L``). :func:`parse_unit` normalises the spelling and lets pint parse it; :func:`to_canonical`
converts a vector of values for one code. Conversions between amount and mass concentration use the
molar mass recorded in the vocabulary (creatinine 113.12 g/mol: 88.4 µmol/L = 1 mg/dL; bilirubin
584.66 g/mol: 17.1 µmol/L = 1 mg/dL; triglycerides as triolein 885.7 g/mol). Nothing is guessed: a unit
that cannot be converted to the canonical one raises :class:`UnitError`.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pint

from cd7kit.vocab import TestCode, load_vocabulary

ureg: pint.UnitRegistry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
# Counted things are dimensionless counts; naming them keeps "cells/uL" and "copies/ug" readable.
ureg.define("cell = count = cells")
ureg.define("copies = count = copy")
ureg.define("score = count")
ureg.define("plus = count")
ureg.define("HPF = count = hpf")
ureg.define("international_unit_enzyme = enzyme_unit = IU_enzyme")

_ALIASES: list[tuple[str, str]] = [
    (r"[µμ]", "u"),
    (r"¹²", "^12"),
    (r"⁹", "^9"),
    (r"⁶", "^6"),
    (r"³", "^3"),
    (r"°\s*C\b|\bdeg\s*C\b|\bCel\b|\bcelsius\b", "degC"),
    (r"°\s*F\b|\bdeg\s*F\b|\[degF\]|\bfahrenheit\b", "degF"),
    (r"^\s*C\s*$", "degC"),
    (r"^\s*F\s*$", "degF"),
    (r"(?:x|×|\*)?\s*10\s*(?:\^|\*\*|\*|E|e)\s*(\d+)", r"1e\1 "),
    (r"\bG/L\b", "1e9/L"),
    (r"\bT/L\b", "1e12/L"),
    (r"%", "percent"),
    (r"\bbpm\b|\bbeats?/min\b|\bbreaths?/min\b", "1/min"),
    (r"\bmm\s*Hg\b", "mmHg"),
    (r"\bIU/L\b", "U/L"),
    (r"\bmcg\b", "ug"),
    (r"\bcopies/ug\s*g?DNA\b", "copies/ug"),
    (r"\bsec\b", "s"),
    (r"\bratio\b|\bindex\b|\bfold\b", "1"),
]


class UnitError(ValueError):
    """A unit that cannot be parsed, or not converted to the canonical unit of a code."""


def _normalise(unit: str) -> str:
    s = unit.strip()
    for pat, rep in _ALIASES:
        s = re.sub(pat, rep, s)
    s = re.sub(r"^\s*/", "1/", s)  # "/uL" -> "1/uL"
    s = re.sub(r"\s+", " ", s).strip()
    return s or "1"


@lru_cache(maxsize=512)
def parse_unit(unit: str) -> pint.Quantity:
    """Parse a clinical unit string into a pint quantity (magnitude carries any 10^n factor)."""
    if unit is None:
        raise UnitError("no unit given")
    s = _normalise(str(unit))
    try:
        q = ureg.Quantity(s) if s in ("degC", "degF", "kelvin", "K") else ureg.parse_expression(s)
    except Exception as exc:  # pint raises several error types for unparsable text
        raise UnitError(f"cannot parse unit {unit!r}") from exc
    if not isinstance(q, pint.Quantity):  # a bare number such as "1"
        q = ureg.Quantity(float(q), "dimensionless")
    return q


def _is_offset(q: pint.Quantity) -> bool:
    return str(q.units) in ("degree_Celsius", "degree_Fahrenheit")


@lru_cache(maxsize=2048)
def conversion(from_unit: str, to_unit: str, molar_mass_g_mol: float | None = None) -> tuple[float, float]:
    """(scale, offset) such that ``to = from * scale + offset``; raises :class:`UnitError` if impossible."""
    a, b = parse_unit(from_unit), parse_unit(to_unit)
    if _is_offset(a) or _is_offset(b):
        try:
            f = lambda v: ureg.Quantity(v, a.units).to(b.units).magnitude  # noqa: E731
            y0, y1 = f(0.0), f(1.0)
        except pint.DimensionalityError as exc:
            raise UnitError(f"cannot convert {from_unit!r} to {to_unit!r}") from exc
        return float(y1 - y0), float(y0)
    try:
        return float((a / b).to("dimensionless").magnitude), 0.0
    except pint.DimensionalityError:
        pass
    if molar_mass_g_mol is not None:
        mm = ureg.Quantity(molar_mass_g_mol, "g/mol")
        for candidate in (a * mm / b, a / mm / b):
            try:
                return float(candidate.to("dimensionless").magnitude), 0.0
            except pint.DimensionalityError:
                continue
    raise UnitError(f"cannot convert {from_unit!r} to {to_unit!r}")


def to_canonical(values, unit: str, code: str | TestCode) -> np.ndarray:
    """Convert values measured in ``unit`` to the canonical unit of ``code`` (vectorised)."""
    tc = load_vocabulary()[code] if isinstance(code, str) else code
    scale, offset = conversion(unit, tc.canonical_unit, tc.molar_mass_g_mol)
    return np.asarray(values, dtype=float) * scale + offset


def convert(values, from_unit: str, to_unit: str, molar_mass_g_mol: float | None = None) -> np.ndarray:
    """Convert values between two units (vectorised)."""
    scale, offset = conversion(from_unit, to_unit, molar_mass_g_mol)
    return np.asarray(values, dtype=float) * scale + offset


__all__ = ["ureg", "UnitError", "parse_unit", "conversion", "to_canonical", "convert"]
