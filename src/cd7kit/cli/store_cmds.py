"""Store commands: ``cd7kit import``, ``export``, ``study list|show``, ``audit log|verify``, ``users ...``.

Every command has ``--json`` and ``--db`` (a database URL or a SQLite file; default
``$CD7KIT_DATABASE_URL`` else a file in the user data directory). Writes are attributed to ``--actor``
(default: the operating-system user) with ``--role`` (default ``system``: a local operator of the
command line) and land in the audit trail. Bad input exits with code 2 and lists every problem
(file, row, column, value, expected form); an import with any problem writes nothing. ``audit verify``
exits with code 1 when the chain is broken and names the first broken record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from cd7kit.data import jsonable

from ._common import (
    DB_OPTION,
    JSON_OPTION,
    console,
    default_actor,
    eligibility_records,
    emit,
    err_console,
    print_table,
    reports_errors,
    stored,
)

ACTOR_HELP = "Who does this (recorded in the audit trail); default: the operating-system user."
ROLE_HELP = "Role of the actor: admin | investigator | coordinator | monitor | statistician | system."
REASON_HELP = "Why (recorded in the audit trail; required for a new version or any account change)."


# ------------------------------------------------------------------------------------------------
# import / export
# ------------------------------------------------------------------------------------------------
@reports_errors
def import_cmd(
    path: Path = typer.Argument(..., help="The file or folder to import."),
    format: str = typer.Option("cd7kit", "--format", "-f", help="cd7kit (CSV-template folder) | sdtm | redcap."),
    mapping: Path | None = typer.Option(None, "--mapping", help="REDCap field mapping (YAML)."),
    study_id: str | None = typer.Option(None, "--study-id", help="Study id (default: the one the input names)."),
    reason: str | None = typer.Option(None, "--reason", help=REASON_HELP),
    new_version: bool = typer.Option(False, "--new-version", help="Store as a new version of an existing study (needs --reason)."),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
    role: str = typer.Option("system", "--role", help=ROLE_HELP),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Import a study into the database (all-or-nothing: any problem in the input writes nothing)."""
    from cd7kit.io import read_study

    study = read_study(path, format=format, mapping=mapping)
    with stored(db) as store:
        source = f"import {format}: {path}"
        version = store.save_study(
            study, actor or default_actor(), role, reason, new_version=new_version, study_id=study_id, source=source
        )
        sid = study_id or study.study_id
        out = {
            "study_id": sid,
            "version": version,
            "format": format,
            "source": str(path),
            "n_subjects": len(study.subjects),
            "n_observations": len(study.observations),
            "n_interventions": len(study.interventions),
            "n_events": len(study.events),
            "database": store.url,
        }
    emit(out, as_json, lambda o: console.print(
        f"imported [bold]{o['study_id']}[/] version {o['version']}: {o['n_subjects']} subjects, "
        f"{o['n_observations']} observations, {o['n_interventions']} interventions, {o['n_events']} events "
        f"into {o['database']}"
    ))


@reports_errors
def export_cmd(
    study_id: str = typer.Argument(..., help="Stored study id."),
    format: str = typer.Option("cd7kit", "--format", "-f", help="cd7kit | sdtm (CSV) | sdtm-xpt (SAS XPT v5)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    version: int | None = typer.Option(None, "--version", help="Version to export (default: latest)."),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
    role: str = typer.Option("system", "--role", help=ROLE_HELP),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Export a stored study (a data transfer: recorded in the audit trail).

    SDTM exports include the IE domain (criteria not met at screening) from the eligibility engine, with
    the study's attestations and overrides and those stored for it (``cd7kit screen attest|override``).
    """
    from cd7kit.io import write_study

    with stored(db) as store:
        study = store.load_study(study_id, version)
        att, ovr = eligibility_records(store, study_id, study)
        written = write_study(study, out, format=format, attestations=att, overrides=ovr)
        v = version or store.versions(study_id)[-1]["version"]
        store.record_event(
            "study.export", "study", f"{study_id}@{v}", actor or default_actor(), role,
            new={"format": format, "out": str(written)}, study_id=study_id,
        )
    emit({"study_id": study_id, "version": v, "format": format, "out": str(written)}, as_json,
         lambda o: console.print(f"exported {o['study_id']} version {o['version']} as {o['format']} to {o['out']}"))


# ------------------------------------------------------------------------------------------------
# study
# ------------------------------------------------------------------------------------------------
study_app = typer.Typer(help="Stored studies: list them, show one.", no_args_is_help=True)


@study_app.command("list")
@reports_errors
def study_list(
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List the stored studies (latest version of each)."""
    with stored(db) as store:
        rows = store.list_studies()

    def render(rows: list[dict[str, Any]]) -> None:
        print_table(f"studies in {store.url}", ("study", "version", "title", "subjects", "observations", "stored", "by"),
                    ((r["study_id"], str(r["version"]), str(r["title"] or ""), str(r["n_subjects"]), str(r["n_observations"]), r["created_at"], r["created_by"]) for r in rows))

    emit(rows, as_json, render)


@study_app.command("show")
@reports_errors
def study_show(
    study_id: str = typer.Argument(..., help="Stored study id."),
    version: int | None = typer.Option(None, "--version", help="Version (default: latest)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a stored study: its versions, summary and annotations."""
    with stored(db) as store:
        versions = store.versions(study_id)
        study = store.load_study(study_id, version)
        out = {
            "study_id": study_id,
            "version": version or versions[-1]["version"],
            "meta": dict(study.meta),
            "versions": versions,
            "summary": study.summary(),
            "annotations": store.annotations(study_id),
        }

    def render(o: dict[str, Any]) -> None:
        console.print(f"[bold]{o['study_id']}[/] version {o['version']} ({len(o['versions'])} stored)")
        print_table("versions", ("version", "stored", "by", "reason", "subjects", "observations", "hash"),
                    ((str(v["version"]), v["created_at"], v["created_by"], str(v["reason"] or ""), str(v["n_subjects"]), str(v["n_observations"]), v["content_hash"][:12]) for v in o["versions"]))
        console.print_json(json.dumps(jsonable(o["summary"])))
        console.print(f"{len(o['annotations'])} current annotations")

    emit(out, as_json, render)


# ------------------------------------------------------------------------------------------------
# audit
# ------------------------------------------------------------------------------------------------
audit_app = typer.Typer(help="The audit trail: show it, verify its hash chain.", no_args_is_help=True)


@audit_app.command("log")
@reports_errors
def audit_log(
    study: str | None = typer.Option(None, "--study", help="Only records about this study."),
    limit: int | None = typer.Option(None, "--limit", help="Only the most recent N records."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write the records to this CSV file (for review or archiving)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show audit records, oldest first (UTC times)."""
    with stored(db) as store:
        rows = store.audit_log(study, limit)
    if csv_path is not None:
        _write_audit_csv(rows, csv_path)

    def render(rows: list[dict[str, Any]]) -> None:
        print_table("audit trail (UTC)", ("id", "time (UTC)", "actor", "role", "action", "entity", "reason", "hash"),
                    ((str(r["id"]), r["ts_utc"], r["actor"], r["role"], r["action"], f"{r['entity']} {r['entity_id'] or ''}", str(r["reason"] or ""), r["hash"][:12]) for r in rows))

    emit(rows, as_json, render)


def _write_audit_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    cols = ["id", "ts_utc", "actor", "role", "action", "entity", "entity_id", "study_id", "old", "new", "reason", "source", "software_version", "prev_hash", "hash"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: (json.dumps(r[c], sort_keys=True, ensure_ascii=False) if c in ("old", "new") and r[c] is not None else r[c]) for c in cols})


@audit_app.command("verify")
@reports_errors
def audit_verify(
    deep: bool = typer.Option(False, "--deep", help="Also re-hash every stored table against its audit record."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Recompute the audit hash chain; exit code 1 and the first broken record if it does not hold."""
    with stored(db) as store:
        res = store.verify_audit(deep=deep)

    def render(r: Any) -> None:
        if r.ok:
            console.print(f"[green]audit trail intact[/]: {r.n_records} records, head {r.head_hash}")
        else:
            fb = r.first_broken or {}
            err_console.print(f"[bold red]audit trail BROKEN[/] at record {fb.get('id')}: {fb.get('problem')} ({len(r.problems)} problems)")

    emit(res, as_json, render)
    if not res.ok:
        if as_json:
            fb = res.first_broken or {}
            sys.stderr.write(f"audit trail broken at record {fb.get('id')}: {fb.get('problem')}\n")
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------
# users
# ------------------------------------------------------------------------------------------------
users_app = typer.Typer(help="User accounts of the web app (every change is audited).", no_args_is_help=True)


@users_app.command("add")
@reports_errors
def users_add(
    username: str = typer.Argument(..., help="Login name."),
    full_name: str = typer.Option(..., "--full-name", help="Printed name (shown on e-signatures)."),
    role: str = typer.Option(..., "--role", help="admin | investigator | coordinator | monitor | statistician."),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Password (prompted if omitted; at least 8 characters)."),
    reason: str | None = typer.Option(None, "--reason", help=REASON_HELP),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
    actor_role: str = typer.Option("system", "--actor-role", help="Role of the actor (admin or system)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an account (argon2 password hash)."""
    with stored(db) as store:
        uid = store.add_user(username, full_name, role, password, actor or default_actor(), actor_role, reason)
    emit({"id": uid, "username": username, "full_name": full_name, "role": role, "disabled": False}, as_json,
         lambda o: console.print(f"user {o['username']} ({o['role']}) created"))


@users_app.command("list")
@reports_errors
def users_list(
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List accounts."""
    with stored(db) as store:
        rows = store.list_users()

    def render(rows: list[dict[str, Any]]) -> None:
        print_table("users", ("username", "full name", "role", "disabled", "updated (UTC)"),
                    ((r["username"], r["full_name"], r["role"], "yes" if r["disabled"] else "", r["updated_at"]) for r in rows))

    emit(rows, as_json, render)


@users_app.command("disable")
@reports_errors
def users_disable(
    username: str = typer.Argument(..., help="Login name."),
    reason: str = typer.Option(..., "--reason", help=REASON_HELP),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
    actor_role: str = typer.Option("system", "--actor-role", help="Role of the actor (admin or system)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Disable an account (kept, never deleted)."""
    with stored(db) as store:
        store.disable_user(username, actor or default_actor(), actor_role, reason)
    emit({"username": username, "disabled": True}, as_json, lambda o: console.print(f"user {o['username']} disabled"))


@users_app.command("set-role")
@reports_errors
def users_set_role(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., "--role", help="admin | investigator | coordinator | monitor | statistician."),
    reason: str = typer.Option(..., "--reason", help=REASON_HELP),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
    actor_role: str = typer.Option("system", "--actor-role", help="Role of the actor (admin or system)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change an account's role (audited old -> new)."""
    with stored(db) as store:
        store.set_user_role(username, role, actor or default_actor(), actor_role, reason)
    emit({"username": username, "role": role}, as_json, lambda o: console.print(f"user {o['username']} now {o['role']}"))


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
    app.add_typer(study_app, name="study")
    app.add_typer(audit_app, name="audit")
    app.add_typer(users_app, name="users")
