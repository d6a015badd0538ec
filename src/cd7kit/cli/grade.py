"""``cd7kit grade``: grade toxicities (and, when present, scores, response, TA-TMA) of a study.

``cd7kit grade STUDY [--subject S] [--system crs|icans|ctcae|icaht|dlt|response|tma|scores|all]
[--option NAME=VALUE ...] [--db URL] [--json]``. STUDY is a cd7kit CSV-template folder or the id of a stored
study; grading itself needs no database. ``--json`` prints, per subject, every system's results exactly as
:meth:`cd7kit.data.Result.to_dict` gives them (value, evidence rows, rule with options, missing inputs,
per-day grades and episodes in ``details``).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import typer

from ._common import DB_OPTION, JSON_OPTION, emit, open_study, print_table

_GRADERS = ("crs", "icans", "ctcae", "icaht")
_OTHERS = {"response": "cd7kit.clinical.response", "tma": "cd7kit.clinical.tma", "scores": "cd7kit.clinical.scores"}
SYSTEM_CHOICES = ("crs", "icans", "ctcae", "icaht", "dlt", "response", "tma", "scores", "all")


def _available_others() -> list[str]:
    return [k for k, mod in _OTHERS.items() if importlib.util.find_spec(mod) is not None]


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` strings -> a mapping (values stay text; each system converts its own)."""
    from cd7kit.errors import InputError, Problem

    out: dict[str, str] = {}
    problems = []
    for p in pairs:
        if "=" not in p:
            problems.append(Problem("an option must be NAME=VALUE", column="--option", value=p, expected="e.g. crs.include_inotropes=true"))
            continue
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    if problems:
        raise InputError(problems)
    return out


def grade_study(study: Any, subject: str | None, system: str, options: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready grading report of a study (what ``--json`` prints)."""
    from cd7kit.clinical import grade_all
    from cd7kit.errors import InputError, Problem

    if system not in SYSTEM_CHOICES:
        raise InputError([Problem("unknown grading system", column="--system", value=system, expected="|".join(SYSTEM_CHOICES))])
    systems = [*_GRADERS, *_available_others()] if system == "all" else [system]
    if system in _OTHERS and system not in _available_others():
        raise InputError([Problem(f"the {system} engine is not installed in this build", column="--system", value=system)])
    results = grade_all(study, subject_id=subject, systems=systems, options=options)
    subjects: dict[str, dict[str, Any]] = {}
    order = [subject] if subject else [str(s) for s in study.subjects["subject_id"]]
    for sid in order:
        subjects[sid] = {"subject_id": sid}
    for name, res in results.items():
        for r in res:
            sid = str(r.subject_id)
            if sid not in subjects:
                continue
            d = r.to_dict()
            if name in ("crs", "icans", "dlt"):
                subjects[sid][name] = d
            else:
                subjects[sid].setdefault(name, []).append(d)
    return {"study_id": study.study_id, "systems": systems, "options": options, "subjects": list(subjects.values())}


def _render(report: dict[str, Any]) -> None:
    rows = []
    for subj in report["subjects"]:
        first = True
        for key, val in subj.items():
            if key == "subject_id":
                continue
            for r in val if isinstance(val, list) else [val]:
                if r["value"] is None and not r["missing"]:
                    continue
                rows.append((subj["subject_id"] if first else "", r["name"], "NA" if r["value"] is None else str(r["value"]), "" if r["day"] is None else f"{r['day']:g}", "; ".join(r["missing"])[:80]))
                first = False
    print_table(f"Grades - study {report['study_id'] or ''} ({', '.join(report['systems'])})", ("subject", "result", "value", "day", "missing / note"), rows)


def grade(
    study: str = typer.Argument(..., help="A cd7kit CSV-template folder or the id of a stored study."),
    subject: str | None = typer.Option(None, "--subject", help="Grade one subject only."),
    system: str = typer.Option("all", "--system", help="crs | icans | ctcae | icaht | dlt | response | tma | scores | all."),
    option: list[str] = typer.Option([], "--option", help="NAME=VALUE, repeatable; prefix with the system when several run (crs.include_inotropes=true, ctcae.version=6.0)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Grade CRS and ICANS (ASTCT 2019), CTCAE laboratory terms, ICAHT, DLTs and more, with evidence."""
    st = open_study(study, db)
    report = grade_study(st, subject, system, parse_options(option))
    emit(report, as_json, _render)


def register(app: typer.Typer) -> None:
    app.command("grade")(grade)
