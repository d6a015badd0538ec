"""Controlled vocabulary: every test code cd7kit knows, with its canonical unit and plausible range.

The codes live in data files (``vocab/data/*.csv``), not in code: each row gives the code, its name,
category, canonical unit, value type (numeric, ordinal, categorical), LOINC and SDTM test code where
one exists, the usual specimen, a plausible range that catches unit mistakes (a temperature of 101 is
in degF, not degC), allowed levels for ordinal/categorical codes, and a molar mass where a clinical
unit conversion needs one (creatinine, bilirubin, triglycerides). Several files may be shipped; a code
must be unique across all of them.

LOINC codes are given only where the code's meaning was certain; an empty LOINC means none was assigned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import pandas as pd

from cd7kit.errors import InputError, Problem

VALUE_TYPES = ("numeric", "ordinal", "categorical")


@dataclass(frozen=True)
class TestCode:
    """One entry of the vocabulary."""

    code: str
    name: str
    category: str
    canonical_unit: str
    value_type: str
    loinc: str | None
    sdtm_domain: str | None
    sdtm_testcd: str | None
    specimen: str | None
    plausible_min: float | None
    plausible_max: float | None
    levels: dict[str, float] = field(default_factory=dict)
    molar_mass_g_mol: float | None = None
    description: str = ""

    def is_plausible(self, value: float) -> bool:
        lo = -math.inf if self.plausible_min is None else self.plausible_min
        hi = math.inf if self.plausible_max is None else self.plausible_max
        return lo <= value <= hi


def _opt(x: object) -> str | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    s = str(x).strip()
    return s or None


def _optf(x: object) -> float | None:
    s = _opt(x)
    return None if s is None else float(s)


def _levels(x: object) -> dict[str, float]:
    s = _opt(x)
    if s is None:
        return {}
    out: dict[str, float] = {}
    for part in s.split("|"):
        if "=" in part:
            k, v = part.rsplit("=", 1)
            out[k.strip()] = float(v)
        else:
            out[part.strip()] = math.nan
    return out


class Vocabulary:
    """The set of :class:`TestCode` entries, looked up by code."""

    def __init__(self, codes: dict[str, TestCode]):
        self._codes = dict(codes)

    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def __getitem__(self, code: str) -> TestCode:
        try:
            return self._codes[code]
        except KeyError:
            raise KeyError(f"unknown test code {code!r}; see cd7kit/vocab/data/*.csv") from None

    def __iter__(self):
        return iter(self._codes.values())

    def __len__(self) -> int:
        return len(self._codes)

    def codes(self) -> list[str]:
        return sorted(self._codes)

    def by_sdtm(self, domain: str, testcd: str, specimen: str | None = None) -> TestCode | None:
        """The code for an SDTM domain and test code (specimen breaks ties, e.g. blasts in BM vs PB)."""
        hits = [c for c in self._codes.values() if c.sdtm_domain == domain and c.sdtm_testcd == testcd]
        if specimen is not None and len(hits) > 1:
            narrowed = [c for c in hits if c.specimen == specimen]
            hits = narrowed or hits
        return hits[0] if len(hits) == 1 else None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self._codes.values()])


def _read_vocab_file(name: str, text: str) -> list[TestCode]:
    import io

    df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    problems: list[Problem] = []
    out: list[TestCode] = []
    for i, r in enumerate(df.to_dict("records"), start=2):
        if r["value_type"] not in VALUE_TYPES:
            problems.append(Problem("unknown value_type", name, i, "value_type", r["value_type"], "/".join(VALUE_TYPES)))
            continue
        out.append(
            TestCode(
                code=r["code"],
                name=r["name"],
                category=r["category"],
                canonical_unit=r["canonical_unit"],
                value_type=r["value_type"],
                loinc=_opt(r.get("loinc")),
                sdtm_domain=_opt(r.get("sdtm_domain")),
                sdtm_testcd=_opt(r.get("sdtm_testcd")),
                specimen=_opt(r.get("specimen")),
                plausible_min=_optf(r.get("plausible_min")),
                plausible_max=_optf(r.get("plausible_max")),
                levels=_levels(r.get("levels")),
                molar_mass_g_mol=_optf(r.get("molar_mass_g_mol")),
                description=r.get("description", ""),
            )
        )
    if problems:
        raise InputError(problems)
    return out


@lru_cache(maxsize=1)
def load_vocabulary() -> Vocabulary:
    """Load every shipped vocabulary file (cached)."""
    codes: dict[str, TestCode] = {}
    where: dict[str, str] = {}
    folder = resources.files("cd7kit.vocab") / "data"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".csv"):
            continue
        for tc in _read_vocab_file(entry.name, entry.read_text(encoding="utf-8")):
            if tc.code in codes:
                raise InputError([Problem(f"code defined twice (also in {where[tc.code]})", entry.name, None, "code", tc.code)])
            codes[tc.code] = tc
            where[tc.code] = entry.name
    return Vocabulary(codes)


__all__ = ["TestCode", "Vocabulary", "load_vocabulary", "VALUE_TYPES"]
