"""ClinicalTrials.gov API v2 study JSON -> a criteria skeleton for a new trial.

In API v2 a study's eligibility is ``protocolSection.eligibilityModule`` (field reference:
https://clinicaltrials.gov/data-api/about-api/study-data-structure): ``eligibilityCriteria`` is
markdown free text (``Inclusion Criteria:`` / ``Exclusion Criteria:`` followed by numbered or bulleted
items, with markdown escapes such as ``\\>``), and only ``minimumAge``/``maximumAge`` (text such as
``"2 Years"``), ``sex`` (ALL, FEMALE, MALE) and ``healthyVolunteers`` are structured.

The skeleton keeps that split: the structured fields become criteria with expressions
(``CTG-AGE``, ``CTG-SEX``, ``CTG-HV``); every free-text item becomes a numbered criterion (``I1``..,
``E1``..) with its verbatim text and no expression, i.e. an attestation until an author writes one.
The protocol version is the record's last-update date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cd7kit.errors import InputError, Problem

from .criteria import CHECKPOINTS, CriteriaSet, criteria_from_dict, read_json

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(year|month|week|day|hour|minute)s?\s*$", re.I)
_PER_YEAR = {"year": 1, "month": 12, "week": 52, "day": 365, "hour": 365 * 24, "minute": 365 * 24 * 60}
_HEAD = re.compile(r"^\s*(?:[#*_]+\s*)?(inclusion|exclusion)\s+criteria\s*:?\s*(?:[*_]+)?\s*:?\s*$", re.I)
_ITEM = re.compile(r"^(\s*)(?:\d+[.)]|[*\-+•])\s+(.*)$")


def unescape_markdown(s: str) -> str:
    r"""Remove markdown backslash escapes (``\>`` -> ``>``, ``\~`` -> ``~``)."""
    return re.sub(r"\\([\\`*_{}\[\]()#+\-.!<>~|=])", r"\1", s)


def _age_expression(text: str, op: str, where: str, problems: list[Problem]) -> str | None:
    m = _AGE.match(text or "")
    if not m:
        problems.append(Problem("age not understood", where, None, "minimumAge/maximumAge", text, "'<number> Years|Months|Weeks|Days'"))
        return None
    n, unit = m.group(1), m.group(2).lower()
    n = n[:-2] if n.endswith(".0") else n
    factor = _PER_YEAR[unit]
    base = "age" if factor == 1 else f"age * {factor}"
    return f"floor({base}) {op} {n}"


def split_criteria_text(text: str) -> dict[str, list[str]]:
    """Split the markdown criteria into inclusion and exclusion items (verbatim, escapes removed).

    Lines that continue an item (indented text, nested bullets) are joined to it; text before the
    first heading is ignored unless there is no heading at all (then it is all inclusion).
    """
    out: dict[str, list[str]] = {"inclusion": [], "exclusion": []}
    lines = (text or "").replace("\r\n", "\n").split("\n")
    section: str | None = None if any(_HEAD.match(ln) for ln in lines) else "inclusion"
    top_indent: int | None = None
    for raw in lines:
        if not raw.strip():
            continue
        if _HEAD.match(raw):
            section = str(_HEAD.match(raw).group(1)).lower()  # type: ignore[union-attr]
            top_indent = None
            continue
        if section is None:
            continue
        items = out[section]
        m = _ITEM.match(raw)
        indent = len(raw) - len(raw.lstrip())
        if m and (top_indent is None or indent <= top_indent):
            top_indent = indent if top_indent is None else top_indent
            items.append(m.group(2).strip())
        elif items:
            items[-1] += "\n" + (m.group(2).strip() if m else raw.strip())
        else:
            items.append(raw.strip())
    return {k: [unescape_markdown(s) for s in v] for k, v in out.items()}


def criteria_from_ctgov(study: Mapping[str, Any], file: str = "ctgov.json") -> CriteriaSet:
    """A criteria skeleton from one API v2 study object (``{"protocolSection": ...}``)."""
    problems: list[Problem] = []
    ps = study.get("protocolSection") if isinstance(study, Mapping) else None
    if not isinstance(ps, Mapping):
        raise InputError([Problem("not a ClinicalTrials.gov API v2 study (no protocolSection)", file, None, "protocolSection")])
    ident = ps.get("identificationModule") or {}
    nct = ident.get("nctId")
    if not nct:
        problems.append(Problem("no identificationModule.nctId", file, None, "nctId"))
    elig = ps.get("eligibilityModule")
    if not isinstance(elig, Mapping):
        problems.append(Problem("no eligibilityModule", file, None, "eligibilityModule"))
        raise InputError(problems)
    status = ps.get("statusModule") or {}
    updated = (status.get("lastUpdatePostDateStruct") or {}).get("date") or status.get("lastUpdateSubmitDate")
    criteria: list[dict[str, Any]] = []
    all_cps = list(CHECKPOINTS)
    age_parts = []
    for key, op in (("minimumAge", ">="), ("maximumAge", "<=")):
        if elig.get(key):
            e = _age_expression(str(elig[key]), op, file, problems)
            if e:
                age_parts.append((key, e))
    if age_parts:
        words = " and ".join(f"{'minimum' if k == 'minimumAge' else 'maximum'} age {elig[k]}" for k, _ in age_parts)
        criteria.append(
            {
                "id": "CTG-AGE",
                "category": "inclusion",
                "text": f"ClinicalTrials.gov structured eligibility: {words}",
                "expression": " and ".join(e for _, e in age_parts),
                "checkpoints": ["screening"],
                "note": "Age in completed units, as ClinicalTrials.gov states limits in whole years/months.",
            }
        )
    sex = str(elig.get("sex") or "ALL").upper()
    if sex in ("FEMALE", "MALE"):
        criteria.append(
            {
                "id": "CTG-SEX",
                "category": "inclusion",
                "text": f"ClinicalTrials.gov structured eligibility: sex {sex}",
                "expression": f'sex == "{sex[0]}"',
                "checkpoints": ["screening"],
            }
        )
    elif sex != "ALL":
        problems.append(Problem("unknown sex", file, None, "sex", elig.get("sex"), "ALL|FEMALE|MALE"))
    if elig.get("healthyVolunteers") is False:
        criteria.append(
            {
                "id": "CTG-HV",
                "category": "inclusion",
                "text": "ClinicalTrials.gov structured eligibility: healthy volunteers are not accepted (the participant has a recorded diagnosis)",
                "expression": "known(diagnosis)",
                "checkpoints": ["screening"],
            }
        )
    parts = split_criteria_text(str(elig.get("eligibilityCriteria") or ""))
    if not parts["inclusion"] and not parts["exclusion"]:
        problems.append(Problem("no inclusion or exclusion items found in eligibilityCriteria", file, None, "eligibilityCriteria"))
    for cat, prefix in (("inclusion", "I"), ("exclusion", "E")):
        for n, text in enumerate(parts[cat], start=1):
            criteria.append({"id": f"{prefix}{n}", "category": cat, "text": text, "checkpoints": all_cps})
    if problems:
        raise InputError(problems)
    title = ident.get("officialTitle") or ident.get("briefTitle") or ""
    data = {
        "trial": nct,
        "protocol_version": f"ClinicalTrials.gov record last updated {updated}" if updated else "ClinicalTrials.gov record",
        "title": title,
        "source": f"ClinicalTrials.gov API v2 study {nct}",
        "notes": "Skeleton imported from ClinicalTrials.gov: free-text criteria have no expression yet (attestations until an author writes one); review the checkpoints of each.",
        "criteria": criteria,
    }
    return criteria_from_dict(data, file)


def read_ctgov(path: str | Path) -> CriteriaSet:
    """Read an API v2 study JSON file (a single study, or ``{"studies": [one]}``) into a skeleton."""
    p = Path(path)
    data = read_json(p)
    if isinstance(data, Mapping) and "studies" in data and isinstance(data["studies"], list):
        if len(data["studies"]) != 1:
            raise InputError([Problem(f"expected one study, found {len(data['studies'])}", p.name, None, "studies")])
        data = data["studies"][0]
    return criteria_from_ctgov(data, p.name)


__all__ = ["criteria_from_ctgov", "read_ctgov", "split_criteria_text", "unescape_markdown"]
