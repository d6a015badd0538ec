"""``cd7kit screen``: eligibility checks, the screening log, ClinicalTrials.gov import, overrides and attestations.

``cd7kit screen --trial NCT06849401 (--patient FILE.json | --study ID --subject S) [--checkpoint ...] [--json]``
(the same as ``cd7kit screen check ...``) evaluates every criterion that applies at the checkpoint and
prints each result with its evidence and missing data, and the verdict. Attestations and overrides come
from the patient file, from the study's metadata and from the store (annotations
``eligibility_attestation`` / ``eligibility_override``); ``screen attest`` and ``screen override`` write
them through the store's audited service. The engine is :mod:`cd7kit.clinical.eligibility`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Column

from ._common import (
    DB_OPTION,
    JSON_OPTION,
    console,
    default_actor,
    eligibility_records,
    emit,
    open_study,
    print_table,
    stored,
)

if TYPE_CHECKING:
    from cd7kit.data import Study

TRIAL_HELP = "Trial id of a shipped criteria file (e.g. NCT06849401) or a criteria YAML file."
CHECKPOINT_HELP = "screening | pre-lymphodepletion | pre-infusion"

screen_app = typer.Typer(
    help="Eligibility screening: criteria as computable rules, three-valued verdicts, overrides and the screening log.",
    invoke_without_command=True,
)


def _load(study: str, db: str | None) -> tuple[Study, list[dict[str, Any]], list[dict[str, Any]]]:
    """The study, and the attestations and overrides for it: its own, then those stored for it (when it
    is a stored study, or a folder with ``--db``)."""
    from cd7kit.clinical.eligibility.records import study_records

    st = open_study(study, db)
    in_store = not Path(study).is_dir()
    if not (in_store or db):
        return (st, *study_records(st))
    with stored(db) as store:
        return (st, *eligibility_records(store, study if in_store else st.study_id, st))


def _folded(*headers: str) -> list[Column]:
    return [Column(h, overflow="fold") for h in headers]


def _render_report(rep: Any) -> None:
    style = {"MET": "green", "NOT_MET": "red", "UNKNOWN": "yellow"}

    def row(r: Any) -> list[str]:
        res = f"[{style[r.value]}]{r.value}[/]"
        if r.override is not None:
            res += f"\n(computed {r.computed}; overridden by {r.override.get('actor')}: {r.override.get('reason')})"
        if r.attestation is not None:
            res += f"\n(attested {r.attestation.get('value')} by {r.attestation.get('actor')})"
        ev = "; ".join(
            f"{e.what}={e.value}{(' ' + e.unit) if e.unit and e.unit != '1' else ''}" + (f" d{e.day:g}" if e.day is not None else "") + (f" #{e.row_id}" if e.row_id is not None else "")
            for e in r.evidence
        )
        return [r.id, "inc" if r.category == "inclusion" else "exc", res, ev, "; ".join(r.missing)]

    title = f"{rep.trial} ({rep.protocol_version}) - {rep.subject_id} at {rep.checkpoint} (day {rep.checkpoint_day:g})"
    print_table(title, _folded("id", "", "result", "evidence", "missing"), (row(r) for r in rep.results))
    colour = {"ELIGIBLE": "green", "INELIGIBLE": "red", "PENDING": "yellow"}[rep.verdict]
    line = f"verdict: [bold {colour}]{rep.verdict}[/]"
    if rep.verdict != rep.computed_verdict:
        line += f" (computed {rep.computed_verdict}; overrides applied)"
    if rep.reasons:
        line += " - " + ", ".join(f"{r.id} {r.value}" for r in rep.reasons)
    elif rep.pending:
        line += " - unknown: " + ", ".join(r.id for r in rep.pending)
    console.print(line)


def _check(trial: str, patient: Path | None, study: str | None, subject: str | None, checkpoint: str | None, day: float | None, db: str | None, as_json: bool) -> None:
    from cd7kit.clinical.eligibility import load_criteria, read_patient, screen, screen_patient
    from cd7kit.errors import InputError

    if (patient is None) == (study is None):
        raise InputError("give either --patient FILE.json or --study ID --subject S")
    cs = load_criteria(trial)
    if patient is not None:
        rep = screen_patient(read_patient(patient), cs, checkpoint)
    else:
        if not subject:
            raise InputError("--study needs --subject")
        st, att, ovr = _load(str(study), db)
        rep = screen(st, subject, cs, checkpoint or "screening", day=day, attestations=att, overrides=ovr)
    emit(rep, as_json, _render_report)


_TRIAL = typer.Option("NCT06849401", "--trial", help=TRIAL_HELP)
_PATIENT = typer.Option(None, "--patient", help="Single-patient JSON file (format: docs/eligibility.md).")
_STUDY = typer.Option(None, "--study", help="A cd7kit CSV-template folder or a stored study id.")
_SUBJECT = typer.Option(None, "--subject", help="Subject id within --study.")
_CHECKPOINT = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP + " (default: screening, or the patient file's)")
_DAY = typer.Option(None, "--day", help="Evaluate at this study day instead of the checkpoint's recorded day.")


@screen_app.callback(invoke_without_command=True)
def screen_main(
    ctx: typer.Context,
    trial: str = _TRIAL,
    patient: Path | None = _PATIENT,
    study: str | None = _STUDY,
    subject: str | None = _SUBJECT,
    checkpoint: str | None = _CHECKPOINT,
    day: float | None = _DAY,
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a patient's eligibility (same as 'screen check'), or run a sub-command."""
    if ctx.invoked_subcommand is not None:
        return
    if patient is None and study is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    _check(trial, patient, study, subject, checkpoint, day, db, as_json)


@screen_app.command("check")
def check(
    trial: str = _TRIAL,
    patient: Path | None = _PATIENT,
    study: str | None = _STUDY,
    subject: str | None = _SUBJECT,
    checkpoint: str | None = _CHECKPOINT,
    day: float | None = _DAY,
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Each criterion's result (MET / NOT_MET / UNKNOWN) with evidence and missing data, and the verdict."""
    _check(trial, patient, study, subject, checkpoint, day, db, as_json)


@screen_app.command("log")
def log(
    study: str = typer.Option(..., "--study", help="A cd7kit CSV-template folder or a stored study id."),
    trial: str = _TRIAL,
    subjects: str | None = typer.Option(None, "--subjects", help="Only subjects whose id starts with this prefix (default: the trial id when some ids start with it, else all)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Screening log (verdict per subject and checkpoint) and the CONSORT-style flow with reasons."""
    from cd7kit.clinical.eligibility import load_criteria, screening_flow

    cs = load_criteria(trial)
    st, att, ovr = _load(study, db)
    prefix = subjects if subjects is not None else (cs.trial if any(s.startswith(cs.trial) for s in st.subject_ids) else "")
    ids = [s for s in st.subject_ids if s.startswith(prefix)]
    flow = screening_flow(st, cs, att, ovr, subject_ids=ids)

    def render(f: Any) -> None:
        from cd7kit.clinical.eligibility.log import log_frame

        print_table(
            f"Screening log, {f.trial}",
            ("subject", "checkpoint", "day", "verdict", "reasons", "unknown", "overridden"),
            ((r.subject_id, r.checkpoint, f"{r.day:g}", r.verdict, r.reasons, r.pending, r.overridden) for r in log_frame(f.log).itertuples()),
        )
        for line in f.lines():
            console.print(line, markup=False, highlight=False)

    emit(flow, as_json, render)


@screen_app.command("import-ctgov")
def import_ctgov(
    file: Path = typer.Argument(..., help="ClinicalTrials.gov API v2 study JSON (one study)."),
    out: Path | None = typer.Option(None, "--out", help="Write the criteria skeleton YAML here (default: print it)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Turn a ClinicalTrials.gov API v2 study into a criteria skeleton (YAML)."""
    from cd7kit.clinical.eligibility import read_ctgov

    cs = read_ctgov(file)
    text = cs.to_yaml()
    if out is not None:
        out.write_text(text, encoding="utf-8")
    summary = {
        "trial": cs.trial,
        "protocol_version": cs.protocol_version,
        "n_criteria": len(cs),
        "n_inclusion": sum(c.category == "inclusion" for c in cs),
        "n_exclusion": sum(c.category == "exclusion" for c in cs),
        "with_expression": [c.id for c in cs if not c.is_attestation],
        "out": str(out) if out else None,
    }
    if as_json:
        emit({**summary, "criteria": cs.to_dict()}, True)
    elif out is None:
        typer.echo(text, nl=False)
    else:
        console.print(f"wrote {summary['n_criteria']} criteria ({summary['n_inclusion']} inclusion, {summary['n_exclusion']} exclusion) to {out}")


def _store_act(kind: str, study: str, subject: str, key: str, value: dict[str, Any], actor: str, role: str, reason: str | None, db: str | None) -> dict[str, Any]:
    with stored(db) as store:
        ann_id = store.add_annotation(study, kind, subject, key, value, actor, role, reason)
        return next(a for a in store.annotations(study, kind=kind, subject_id=subject) if a["id"] == ann_id)


@screen_app.command("override")
def override(
    study: str = typer.Option(..., "--study", help="Stored study id."),
    subject: str = typer.Option(..., "--subject", help="Subject id."),
    criterion: str = typer.Option(..., "--criterion", help="Criterion id (e.g. I10)."),
    result: str = typer.Option(..., "--result", help="MET | NOT_MET | UNKNOWN"),
    reason: str = typer.Option(..., "--reason", help="Why the computed result is overridden (kept in the audit trail)."),
    trial: str = _TRIAL,
    checkpoint: str | None = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP + " (default: every checkpoint)"),
    actor: str = typer.Option(None, "--actor", help="Who overrides (default: the login name)."),
    role: str = typer.Option("investigator", "--role", help="Role of the actor."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Override a criterion's computed result for a subject (stored with the reason in the audit trail)."""
    from cd7kit.clinical.eligibility import load_criteria, screen
    from cd7kit.clinical.eligibility.records import OVERRIDE_KIND, override_annotation
    from cd7kit.errors import InputError

    if not reason.strip():
        raise InputError("an override needs a reason")
    cs = load_criteria(trial)
    key, value = override_annotation(cs, criterion, result, checkpoint)  # validates first
    computed = None
    st, att, _ = _load(study, db)
    cp = checkpoint or "screening"
    if cs.get(criterion).applies_at(cp):
        try:
            computed = screen(st, subject, cs, cp, attestations=att, overrides=[]).result(criterion).computed
        except InputError:
            computed = None
    value["computed"] = computed
    rec = _store_act(OVERRIDE_KIND, study, subject, key, value, actor or default_actor(), role, reason, db)
    emit(rec, as_json, lambda r: console.print(f"override #{r['id']} stored: {subject} {criterion} -> {value['result']} (computed {computed}); audit record {r['audit_id']}"))


@screen_app.command("attest")
def attest(
    study: str = typer.Option(..., "--study", help="Stored study id."),
    subject: str = typer.Option(..., "--subject", help="Subject id."),
    criterion: str = typer.Option(..., "--criterion", help="Criterion id (e.g. I6)."),
    value: bool = typer.Option(..., "--value/--no-value", help="--value: the statement holds (e.g. consent given; risk judged unacceptable); --no-value: it does not."),
    reason: str | None = typer.Option(None, "--reason", help="Basis of the attestation (required to correct an earlier one)."),
    trial: str = _TRIAL,
    checkpoint: str | None = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP + " (default: every checkpoint)"),
    actor: str = typer.Option(None, "--actor", help="Who attests (default: the login name)."),
    role: str = typer.Option("investigator", "--role", help="Role of the actor."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Record an investigator's attestation of a judgement criterion (stored in the audit trail)."""
    from cd7kit.clinical.eligibility import load_criteria
    from cd7kit.clinical.eligibility.records import ATTESTATION_KIND, attestation_annotation

    cs = load_criteria(trial)
    key, val = attestation_annotation(cs, criterion, value, checkpoint)
    rec = _store_act(ATTESTATION_KIND, study, subject, key, val, actor or default_actor(), role, reason, db)
    emit(rec, as_json, lambda r: console.print(f"attestation #{r['id']} stored: {subject} {criterion} = {value}; audit record {r['audit_id']}"))


@screen_app.command("criteria")
def criteria(
    trial: str = _TRIAL,
    checkpoint: str | None = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP),
    as_json: bool = JSON_OPTION,
) -> None:
    """List a trial's criteria with their expressions (attestation when none)."""
    from cd7kit.clinical.eligibility import load_criteria

    cs = load_criteria(trial)

    def render(_: Any) -> None:
        print_table(
            f"{cs.trial} ({cs.protocol_version})",
            _folded("id", "text", "expression", "checkpoints"),
            ((c.id, c.text, c.expression or "(attestation)", ", ".join(c.checkpoints)) for c in (cs.at(checkpoint) if checkpoint else cs)),
        )

    emit(cs, as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(screen_app, name="screen")


__all__ = ["register", "screen_app"]
