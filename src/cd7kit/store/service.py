"""The store: versioned studies, annotations and users, every write audited by one service.

All writes happen inside :meth:`Store._write`, which (1) checks the actor's role against the roles
allowed for the act, (2) opens one transaction holding the store's write lock (SQLite
``BEGIN IMMEDIATE``; PostgreSQL ``pg_advisory_xact_lock``), and (3) hands out a :class:`_Writer` whose
:meth:`_Writer.audit` appends the hash-chained audit record. Inserting any row through the writer before
an audit record was appended in the same transaction raises, so no write escapes the trail. Nothing is
ever updated or deleted except the mutable columns of ``users`` (whose every change is audited with
old -> new).

Regulatory basis (``specs/data-and-platform.md`` §5): 21 CFR 11.10(e) computer-generated, time-stamped
audit trails that do not obscure earlier records; 11.50/11.70/11.200 e-signatures (printed name, UTC time,
meaning, linked to the signed record, re-authentication by ID + password); ICH E6(R3) §4.2 (user-account
and role changes logged, reason for changes, UTC time stamps); ALCOA+ (original records kept: corrections
are new versions).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, func, insert, select, text, update
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from cd7kit import __version__
from cd7kit.data import Study
from cd7kit.data import schema as S
from cd7kit.data.study import TABLES
from cd7kit.errors import Cd7kitError, ConflictError, InputError, NotFoundError, Problem

from . import hashing as H
from .db import ENV_VAR, make_engine, migrate, redact, resolve_url
from .models import DATA_TABLES, Annotation, AuditRecord, Dataset, StudyVersion, User

#: Roles of user accounts (DESIGN.md "Storage, security and scale").
ROLES: tuple[str, ...] = ("admin", "investigator", "coordinator", "monitor", "statistician")
#: The role of acts done by cd7kit itself or by a local operator of the command line.
SYSTEM_ROLE = "system"
AUDIT_ROLES: tuple[str, ...] = (*ROLES, SYSTEM_ROLE)
#: Who may store studies and new versions (monitors are read-only, statisticians export de-identified data).
STUDY_WRITE_ROLES = frozenset({"admin", "investigator", "coordinator", SYSTEM_ROLE})
#: Who may record annotations (investigator acts; coordinators may prepare them unsigned).
ANNOTATION_ROLES = frozenset({"admin", "investigator", "coordinator", SYSTEM_ROLE})
#: Who may sign an annotation electronically.
SIGN_ROLES = frozenset({"admin", "investigator"})
#: Who may manage user accounts.
USER_ADMIN_ROLES = frozenset({"admin", SYSTEM_ROLE})

T_AUDIT = cast(Table, AuditRecord.__table__)
T_DATASETS = cast(Table, Dataset.__table__)
T_VERSIONS = cast(Table, StudyVersion.__table__)
T_ANNOTATIONS = cast(Table, Annotation.__table__)
T_USERS = cast(Table, User.__table__)

_PG_LOCK_KEY = 0x0CD7_0A0D
_NAME = re.compile(r"^[A-Za-z0-9_.@:+-]{1,200}$")
_KIND = re.compile(r"^[a-z][a-z0-9_.:-]{0,59}$")


class AuthorizationError(Cd7kitError):
    """The actor's role does not allow the act, or a re-authentication for a signature failed."""


class IntegrityError(Cd7kitError):
    """Stored content does not match its recorded hash (the database was changed outside cd7kit)."""


def utcnow() -> str:
    """The current time in UTC, ISO 8601 with microseconds and a ``Z``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# -------------------------------------------------------------------------------------------------
# result objects
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnsureResult:
    """What :meth:`Store.ensure_study` did: the current version and whether it wrote one."""

    study_id: str
    version: int
    written: bool
    content_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"study_id": self.study_id, "version": self.version, "written": self.written, "content_hash": self.content_hash}


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of :meth:`Store.verify_audit`: ``ok``, how much was checked, the first broken record."""

    ok: bool
    n_records: int
    head_hash: str
    first_broken: dict[str, Any] | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    deep: bool = False
    n_datasets_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_records": self.n_records,
            "head_hash": self.head_hash,
            "first_broken": self.first_broken,
            "problems": self.problems,
            "deep": self.deep,
            "n_datasets_checked": self.n_datasets_checked,
        }


# -------------------------------------------------------------------------------------------------
# the single write service
# -------------------------------------------------------------------------------------------------
_AUDIT_FIELDS = (
    "id",
    "ts_utc",
    "actor",
    "role",
    "action",
    "entity",
    "entity_id",
    "study_id",
    "old_json",
    "new_json",
    "reason",
    "source",
    "software_version",
    "prev_hash",
)


def _audit_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in _AUDIT_FIELDS}


class _Writer:
    """One write transaction: appends audit records and inserts rows (only after an audit record)."""

    def __init__(self, conn: Connection, actor: str, role: str, source: str | None):
        self.conn = conn
        self.actor = actor
        self.role = role
        self.source = source
        self.audit_ids: list[int] = []

    def audit(
        self,
        action: str,
        entity: str,
        entity_id: str | None,
        *,
        old: Any = None,
        new: Any = None,
        reason: str | None = None,
        study_id: str | None = None,
    ) -> int:
        """Append one hash-chained audit record; return its id."""
        t = T_AUDIT
        last = self.conn.execute(select(t.c.id, t.c.hash).order_by(t.c.id.desc()).limit(1)).first()
        rec = {
            "id": (int(last.id) + 1) if last else 1,
            "ts_utc": utcnow(),
            "actor": self.actor,
            "role": self.role,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "study_id": study_id,
            "old_json": None if old is None else H.canonical_json(old),
            "new_json": None if new is None else H.canonical_json(new),
            "reason": reason,
            "source": self.source,
            "software_version": __version__,
            "prev_hash": last.hash if last else H.GENESIS_HASH,
        }
        rec["hash"] = H.record_hash(rec)
        self.conn.execute(insert(t), [rec])
        rid = int(rec["id"])  # type: ignore[arg-type]
        self.audit_ids.append(rid)
        return rid

    def _require_audit(self) -> None:
        if not self.audit_ids:
            raise RuntimeError("cd7kit store: a write was attempted before its audit record was appended")

    def insert(self, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        self._require_audit()
        if rows:
            self.conn.execute(insert(table), list(rows))

    def update_user(self, user_id: int, values: Mapping[str, Any]) -> None:
        self._require_audit()
        self.conn.execute(update(T_USERS).where(T_USERS.c.id == user_id).values(**values))

    def bulk(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Fast insert of many rows (PostgreSQL COPY; SQLite executemany)."""
        self._require_audit()
        if not rows:
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.conn.dialect.name == "postgresql":
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as cp:  # type: ignore[union-attr]
                for r in rows:
                    cp.write_row(r)
        else:
            marks = ", ".join("?" for _ in columns)
            self.conn.exec_driver_sql(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)  # type: ignore[arg-type]

    def next_id(self, table: Any) -> int:
        """The next id of a table (safe: writes hold the store's write lock)."""
        n = self.conn.execute(select(func.max(table.c.id))).scalar()
        return int(n or 0) + 1


def _check_actor(actor: str, role: str, allowed: frozenset[str] | None, act: str) -> None:
    problems = []
    if not isinstance(actor, str) or not actor.strip():
        problems.append(Problem("an actor (who does this) is required", column="actor", value=actor, expected="a user name"))
    if role not in AUDIT_ROLES:
        problems.append(Problem("unknown role", column="role", value=role, expected=" | ".join(AUDIT_ROLES)))
    if problems:
        raise InputError(problems)
    if allowed is not None and role not in allowed:
        raise AuthorizationError(f"role {role!r} may not {act} (allowed: {', '.join(sorted(allowed))})")


def _need_reason(reason: str | None, what: str) -> str:
    if reason is None or not str(reason).strip():
        raise InputError([Problem(f"a reason is required to {what}", column="reason", value=reason, expected="a non-empty reason")])
    return str(reason).strip()


# -------------------------------------------------------------------------------------------------
# tables <-> rows
# -------------------------------------------------------------------------------------------------
def _db_columns(table: str) -> list[str]:
    return [c.name for c in DATA_TABLES[table].__table__.columns if c.name not in ("dataset_id", "pos", "extra")]


def _pylist(s: pd.Series) -> list[Any]:
    """Plain Python values of a column, missing values as ``None`` (vectorised: this runs on 1e6 rows)."""
    dtype = str(s.dtype)
    if dtype in ("bool", "int64"):
        return s.tolist()
    if dtype == "float64":
        a = s.to_numpy(dtype="float64")
        nan = np.isnan(a)
        if not nan.any():
            return a.tolist()
        o = a.astype(object)
        o[nan] = None
        return o.tolist()
    o = s.to_numpy(dtype=object, copy=True)
    o[pd.isna(o)] = None
    if dtype == "Int64":
        return [None if v is None else int(v) for v in o.tolist()]
    return o.tolist()


def _rows(df: pd.DataFrame, table: str, dataset_id: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and row tuples to insert; columns that are missing in every row are left out (NULL)."""
    known = [c for c in _db_columns(table) if c in df.columns]
    extra = [c for c in df.columns if c not in known]
    n = len(df)
    cols: list[list[Any]] = [[dataset_id] * n, list(range(n))]
    names = ["dataset_id", "pos"]
    for c in known:
        if df[c].dtype == object and n and df[c].isna().all():
            continue
        if df[c].dtype == "float64" and n and np.isnan(df[c].to_numpy()).all():
            continue
        names.append(c)
        cols.append(_pylist(df[c]))
    if extra:
        values = {c: _pylist(df[c]) for c in extra}
        cols.append([H.canonical_json({c: values[c][i] for c in extra}) for i in range(n)])
        names.append("extra")
    return names, list(zip(*cols, strict=True))


def _frame(table: str, columns: list[str], rows: list[tuple[Any, ...]], dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rebuild a Study table (exact dtypes of the schema) from stored rows in ``pos`` order."""
    db_cols = [*_db_columns(table), "extra"]
    empty = S.empty(table)
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype=(str(empty[c].dtype) if c in empty.columns else (dtypes or {}).get(c, "object"))) for c in columns}
        )
    A = np.array(rows, dtype=object)  # one C-level conversion; columns are then sliced, not rebuilt row by row
    pos = {c: j for j, c in enumerate(db_cols)}
    out: dict[str, pd.Series] = {}
    extras: list[dict[str, Any]] | None = None
    for c in columns:
        if c in pos:
            col = A[:, pos[c]]
            dtype = str(empty[c].dtype) if c in empty.columns else "object"
            if dtype == "float64":
                out[c] = pd.Series(col.astype("float64"))  # None -> NaN
            elif dtype == "Int64":
                out[c] = pd.Series(pd.array(col, dtype="Int64"))
            elif dtype == "int64":
                out[c] = pd.Series(col.astype("int64"))
            elif dtype == "bool":
                out[c] = pd.Series(col.astype(bool))
            else:
                out[c] = pd.Series(col.copy(), dtype="object")
        else:
            if extras is None:
                extras = [json.loads(e) if e else {} for e in A[:, pos["extra"]]]
            ecol = pd.Series([e.get(c) for e in extras], dtype="object")
            want = (dtypes or {}).get(c, "object")
            if want != "object":
                try:
                    ecol = ecol.astype(want)
                except (TypeError, ValueError):
                    pass
            out[c] = ecol
    return pd.DataFrame(out, columns=columns)


@dataclass
class _Prepared:
    study_id: str
    meta: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    table_hashes: dict[str, str]
    content_hash: str


def _prepare(study: Study, study_id: str | None) -> _Prepared:
    sid = study_id or study.study_id
    if not sid or not str(sid).strip():
        raise InputError([Problem("the study has no study_id", column="study_id", expected="meta['study_id'] or --study-id ID")])
    sid = str(sid).strip()
    if not _NAME.match(sid):
        raise InputError([Problem("study_id has characters that are not allowed", column="study_id", value=sid, expected="letters, digits and _ . @ : + -")])
    meta = json.loads(H.canonical_json({**dict(study.meta), "study_id": sid}))
    tables = {t: getattr(study, t).reset_index(drop=True) for t in TABLES}
    hashes = {t: H.table_hash(tables[t]) for t in TABLES}
    return _Prepared(sid, meta, tables, hashes, H.study_hash(hashes, meta))


def _version_dict(v: StudyVersion, counts: Mapping[int, int]) -> dict[str, Any]:
    meta = json.loads(v.meta_json)
    return {
        "study_id": v.study_id,
        "version": v.version,
        "title": v.title,
        "synthetic": meta.get("synthetic"),
        "content_hash": v.content_hash,
        "created_at": v.created_at,
        "created_by": v.created_by,
        "reason": v.reason,
        "audit_id": v.audit_id,
        "n_subjects": counts.get(v.subjects_ds, 0),
        "n_observations": counts.get(v.observations_ds, 0),
        "n_interventions": counts.get(v.interventions_ds, 0),
        "n_events": counts.get(v.events_ds, 0),
    }


def _annotation_dict(a: Annotation, superseded_by: int | None) -> dict[str, Any]:
    signature = None
    if a.signed_by:
        signature = {
            "signed_by": a.signed_by,
            "printed_name": a.signer_name,
            "meaning": a.signature_meaning,
            "signed_at": a.signed_at,
            "record_hash": a.content_hash,
        }
    return {
        "id": a.id,
        "study_id": a.study_id,
        "study_version": a.study_version,
        "kind": a.kind,
        "subject_id": a.subject_id,
        "key": a.key,
        "value": json.loads(a.value_json),
        "actor": a.actor,
        "role": a.role,
        "reason": a.reason,
        "created_at": a.created_at,
        "supersedes": a.supersedes_id,
        "superseded_by": superseded_by,
        "current": superseded_by is None,
        "content_hash": a.content_hash,
        "signature": signature,
        "audit_id": a.audit_id,
    }


def _audit_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "ts_utc": r.ts_utc,
        "actor": r.actor,
        "role": r.role,
        "action": r.action,
        "entity": r.entity,
        "entity_id": r.entity_id,
        "study_id": r.study_id,
        "old": None if r.old_json is None else json.loads(r.old_json),
        "new": None if r.new_json is None else json.loads(r.new_json),
        "reason": r.reason,
        "source": r.source,
        "software_version": r.software_version,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }


# -------------------------------------------------------------------------------------------------
# the store
# -------------------------------------------------------------------------------------------------
class Store:
    """A cd7kit database (SQLite file or PostgreSQL). Open it with :func:`open_store`."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = redact(url)

    # -- life cycle --------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def _write(self, actor: str, role: str, allowed: frozenset[str] | None, act: str, source: str | None = None) -> Iterator[_Writer]:
        """THE write service: role check, one locked transaction, audit records before any row."""
        _check_actor(actor, role, allowed, act)
        with self.engine.connect().execution_options(cd7kit_write=True) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            w = _Writer(conn, actor.strip(), role, source)
            yield w

    # -- studies -----------------------------------------------------------------------------
    def _latest(self, conn: Connection, study_id: str) -> StudyVersion | None:
        with Session(bind=conn) as s:
            return s.scalars(
                select(StudyVersion).where(StudyVersion.study_id == study_id).order_by(StudyVersion.version.desc()).limit(1)
            ).first()

    def _store_version(self, w: _Writer, p: _Prepared, latest: StudyVersion | None, reason: str | None, action: str) -> int:
        version = (latest.version + 1) if latest else 1
        counts = {t: len(p.tables[t]) for t in TABLES}
        new = {
            "study_id": p.study_id,
            "version": version,
            "content_hash": p.content_hash,
            "tables": p.table_hashes,
            "n_rows": counts,
            "meta": p.meta,
        }
        old = None
        if latest is not None:
            old = {"study_id": latest.study_id, "version": latest.version, "content_hash": latest.content_hash}
        audit_id = w.audit(action, "study", f"{p.study_id}@{version}", old=old, new=new, reason=reason, study_id=p.study_id)
        ds_ids: dict[str, int] = {}
        dt_ = T_DATASETS
        for t in TABLES:
            found = w.conn.execute(
                select(dt_.c.id).where(dt_.c.table_name == t, dt_.c.content_hash == p.table_hashes[t])
            ).scalar()
            if found is not None:
                ds_ids[t] = int(found)
                continue
            ds_id = w.next_id(dt_)
            w.insert(
                dt_,
                [{"id": ds_id, "table_name": t, "content_hash": p.table_hashes[t], "n_rows": counts[t], "columns_json": json.dumps({"columns": [str(c) for c in p.tables[t].columns], "dtypes": {str(c): str(d) for c, d in p.tables[t].dtypes.items()}}), "created_at": utcnow()}],
            )
            names, rows = _rows(p.tables[t], t, ds_id)
            w.bulk(t, names, rows)
            ds_ids[t] = ds_id
        sv = T_VERSIONS
        w.insert(
            sv,
            [
                {
                    "id": w.next_id(sv),
                    "study_id": p.study_id,
                    "version": version,
                    "title": p.meta.get("title"),
                    "meta_json": H.canonical_json(p.meta),
                    "content_hash": p.content_hash,
                    "subjects_ds": ds_ids["subjects"],
                    "observations_ds": ds_ids["observations"],
                    "interventions_ds": ds_ids["interventions"],
                    "events_ds": ds_ids["events"],
                    "created_at": utcnow(),
                    "created_by": w.actor,
                    "reason": reason,
                    "audit_id": audit_id,
                }
            ],
        )
        return version

    def save_study(
        self,
        study: Study,
        actor: str,
        role: str,
        reason: str | None = None,
        *,
        new_version: bool = False,
        study_id: str | None = None,
        source: str | None = None,
    ) -> int:
        """Store a study; return its version number (1 for a new study).

        A ``study_id`` already stored raises :class:`ConflictError` unless ``new_version=True`` with a
        ``reason``: then a new version is written and the old ones stay readable. ``study_id`` overrides
        ``study.meta['study_id']``; ``source`` (e.g. the imported file) goes into the audit record.
        """
        p = _prepare(study, study_id)
        if new_version:
            reason = _need_reason(reason, "store a new version of a study")
        with self._write(actor, role, STUDY_WRITE_ROLES, "store studies", source) as w:
            latest = self._latest(w.conn, p.study_id)
            if latest is not None and not new_version:
                raise ConflictError(
                    f"study {p.study_id!r} is already stored (version {latest.version}); a correction must be stored "
                    "as a new version with a reason (new_version=True / --new-version --reason TEXT)"
                )
            return self._store_version(w, p, latest, reason, "study.create" if latest is None else "study.new_version")

    def ensure_study(
        self,
        study: Study,
        actor: str,
        role: str,
        reason: str | None = None,
        *,
        study_id: str | None = None,
        source: str | None = None,
    ) -> EnsureResult:
        """Store ``study`` unless its latest stored version has the same content (idempotent by hash).

        Same content -> nothing is written; new study -> version 1; changed content -> a new version
        (``reason`` is then required).
        """
        p = _prepare(study, study_id)
        with self.engine.connect() as conn:
            latest = self._latest(conn, p.study_id)
        if latest is not None and latest.content_hash == p.content_hash:
            return EnsureResult(p.study_id, latest.version, False, p.content_hash)
        if latest is not None:
            reason = _need_reason(reason, "store a changed study as a new version")
        with self._write(actor, role, STUDY_WRITE_ROLES, "store studies", source) as w:
            latest = self._latest(w.conn, p.study_id)
            if latest is not None and latest.content_hash == p.content_hash:
                return EnsureResult(p.study_id, latest.version, False, p.content_hash)
            v = self._store_version(w, p, latest, reason, "study.create" if latest is None else "study.new_version")
        return EnsureResult(p.study_id, v, True, p.content_hash)

    def _version_row(self, conn: Connection, study_id: str, version: int | None) -> StudyVersion:
        with Session(bind=conn) as s:
            q = select(StudyVersion).where(StudyVersion.study_id == study_id)
            if version is None:
                q = q.order_by(StudyVersion.version.desc()).limit(1)
            else:
                q = q.where(StudyVersion.version == int(version))
            v = s.scalars(q).first()
        if v is None:
            what = f"study {study_id!r}" + ("" if version is None else f" version {version}")
            raise NotFoundError(f"{what} is not stored in {self.url}")
        return v

    def _read_dataset(self, conn: Connection, table: str, ds_id: int) -> pd.DataFrame:
        ds = conn.execute(select(T_DATASETS).where(T_DATASETS.c.id == ds_id)).one()
        cols = [*_db_columns(table), "extra"]
        sel = ", ".join(f'"{c}"' for c in cols)
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        raw = conn.connection.driver_connection
        cur = raw.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(f'SELECT {sel} FROM "{table}" WHERE dataset_id = {mark} ORDER BY pos', (ds_id,))
            rows = cur.fetchall()
        finally:
            cur.close()
        spec = json.loads(ds.columns_json)
        return _frame(table, spec["columns"], rows, spec.get("dtypes", {}))

    def load_study(self, study_id: str, version: int | None = None, *, verify: bool = True) -> Study:
        """The stored study (latest version unless ``version``); :class:`NotFoundError` if absent.

        With ``verify`` (default) the content is re-hashed and compared with the hash recorded when it was
        stored; a mismatch (the database was edited outside cd7kit) raises :class:`IntegrityError`.
        """
        with self.engine.connect() as conn, conn.begin():
            v = self._version_row(conn, study_id, version)
            ids = {"subjects": v.subjects_ds, "observations": v.observations_ds, "interventions": v.interventions_ds, "events": v.events_ds}
            tables = {t: self._read_dataset(conn, t, ids[t]) for t in TABLES}
        meta = json.loads(v.meta_json)
        if verify:
            got = H.study_hash({t: H.table_hash(tables[t]) for t in TABLES}, meta)
            if got != v.content_hash:
                raise IntegrityError(
                    f"study {study_id!r} version {v.version}: stored content does not match its recorded hash "
                    f"({got[:12]} != {v.content_hash[:12]}); run 'cd7kit audit verify --deep'"
                )
        return Study(tables["subjects"], tables["observations"], tables["interventions"], tables["events"], meta)

    def _counts(self, conn: Connection) -> dict[int, int]:
        d = T_DATASETS
        return {int(r.id): int(r.n_rows) for r in conn.execute(select(d.c.id, d.c.n_rows))}

    def list_studies(self) -> list[dict[str, Any]]:
        """One dict per stored study: its latest version's details and ``n_versions``."""
        with self.engine.connect() as conn, Session(bind=conn) as s:
            counts = self._counts(conn)
            nver = dict(
                (str(sid), int(n))
                for sid, n in s.execute(select(StudyVersion.study_id, func.count()).group_by(StudyVersion.study_id))
            )
            sub = select(StudyVersion.study_id, func.max(StudyVersion.version).label("v")).group_by(StudyVersion.study_id).subquery()
            latest = s.scalars(
                select(StudyVersion)
                .join(sub, (StudyVersion.study_id == sub.c.study_id) & (StudyVersion.version == sub.c.v))
                .order_by(StudyVersion.study_id)
            ).all()
            return [{**_version_dict(v, counts), "n_versions": nver[v.study_id]} for v in latest]

    def versions(self, study_id: str) -> list[dict[str, Any]]:
        """Every stored version of a study, oldest first (:class:`NotFoundError` if none)."""
        with self.engine.connect() as conn, Session(bind=conn) as s:
            counts = self._counts(conn)
            rows = s.scalars(select(StudyVersion).where(StudyVersion.study_id == study_id).order_by(StudyVersion.version)).all()
            if not rows:
                raise NotFoundError(f"study {study_id!r} is not stored in {self.url}")
            return [_version_dict(v, counts) for v in rows]

    def latest_version(self, study_id: str) -> int:
        """The number of a study's latest stored version (:class:`NotFoundError` if none): one indexed query,
        cheap enough to ask on every web request to know whether cached results are still current."""
        with self.engine.connect() as conn:
            v = conn.execute(select(func.max(StudyVersion.version)).where(StudyVersion.study_id == study_id)).scalar()
        if v is None:
            raise NotFoundError(f"study {study_id!r} is not stored in {self.url}")
        return int(v)

    # -- annotations -------------------------------------------------------------------------
    def add_annotation(
        self,
        study_id: str,
        kind: str,
        subject_id: str | None,
        key: str,
        value: Mapping[str, Any],
        actor: str,
        role: str,
        reason: str | None = None,
        *,
        signature_meaning: str | None = None,
        password: str | None = None,
        source: str | None = None,
    ) -> int:
        """Record an investigator act about a study (or one subject); return the annotation's id.

        ``kind`` names the act (e.g. ``eligibility_override``, ``eligibility_attestation``,
        ``dlt_adjudication``, ``escalation_decision``); ``key`` what it is about (e.g. a criterion id,
        an event row id, a cohort). Annotations are append-only: adding one with the same
        (study, kind, subject, key) as a current one supersedes it (``reason`` is then required) and both
        stay readable. With ``signature_meaning`` (e.g. "approved", "reviewed") the act is signed
        electronically: the actor must be an enabled user with role investigator or admin and re-enter
        ``password`` (21 CFR 11.200); the printed name, UTC time and meaning are stored with the hash of
        the signed content, which includes the study version's content hash (11.50, 11.70).
        """
        problems = []
        if not isinstance(kind, str) or not _KIND.match(kind):
            problems.append(Problem("invalid annotation kind", column="kind", value=kind, expected="lower-case name, e.g. eligibility_override"))
        if not isinstance(key, str) or not key.strip() or len(key) > 200:
            problems.append(Problem("an annotation key is required", column="key", value=key, expected="a non-empty text up to 200 characters"))
        if not isinstance(value, Mapping):
            problems.append(Problem("annotation value must be a mapping", column="value", value=repr(value)[:80], expected="a dict"))
        else:
            try:
                value_json = H.canonical_json(dict(value))
            except (TypeError, ValueError) as exc:
                problems.append(Problem(f"annotation value is not JSON-serialisable ({exc})", column="value", expected="JSON values"))
        if signature_meaning is not None and not str(signature_meaning).strip():
            problems.append(Problem("a signature needs its meaning", column="signature_meaning", value=signature_meaning, expected="e.g. 'approved'"))
        if problems:
            raise InputError(problems)
        if signature_meaning is not None and role not in SIGN_ROLES:
            raise AuthorizationError(f"role {role!r} may not sign (allowed: {', '.join(sorted(SIGN_ROLES))})")
        with self._write(actor, role, ANNOTATION_ROLES, "record annotations", source) as w:
            v = self._version_row(w.conn, study_id, None)
            if subject_id is not None:
                subj = self._subject_ids(w.conn, v.subjects_ds)
                if subject_id not in subj:
                    raise NotFoundError(f"subject {subject_id!r} is not in study {study_id!r} (version {v.version})")
            a = T_ANNOTATIONS
            cond = (a.c.study_id == study_id) & (a.c.kind == kind) & (a.c.key == key)
            cond &= a.c.subject_id.is_(None) if subject_id is None else (a.c.subject_id == subject_id)
            superseded = select(a.c.supersedes_id).where(a.c.supersedes_id.is_not(None))
            prev = w.conn.execute(select(a).where(cond, a.c.id.not_in(superseded)).order_by(a.c.id.desc()).limit(1)).first()
            if prev is not None:
                reason = _need_reason(reason, "correct (supersede) an annotation")
            signer: dict[str, Any] | None = None
            if signature_meaning is not None:
                signer = self._reauthenticate(w.conn, actor, password)
            ann_id = w.next_id(a)
            content = {
                "id": ann_id,
                "study_id": study_id,
                "study_version": v.version,
                "study_content_hash": v.content_hash,
                "kind": kind,
                "subject_id": subject_id,
                "key": key,
                "value": json.loads(value_json),
                "supersedes": None if prev is None else prev.id,
            }
            chash = H.sha256_text(H.canonical_json(content))
            now = utcnow()
            sig = None
            if signer is not None:
                sig = {"signed_by": signer["username"], "printed_name": signer["full_name"], "meaning": str(signature_meaning).strip(), "signed_at": now}
            new = {**content, "content_hash": chash, "signature": sig}
            old = None if prev is None else {"id": prev.id, "value": json.loads(prev.value_json), "content_hash": prev.content_hash}
            action = "annotation.sign" if sig else ("annotation.supersede" if prev is not None else "annotation.add")
            audit_id = w.audit(action, "annotation", str(ann_id), old=old, new=new, reason=reason, study_id=study_id)
            w.insert(
                a,
                [
                    {
                        "id": ann_id,
                        "study_id": study_id,
                        "study_version": v.version,
                        "kind": kind,
                        "subject_id": subject_id,
                        "key": key,
                        "value_json": value_json,
                        "supersedes_id": None if prev is None else prev.id,
                        "actor": w.actor,
                        "role": role,
                        "reason": reason,
                        "created_at": now,
                        "content_hash": chash,
                        "signed_by": sig["signed_by"] if sig else None,
                        "signer_name": sig["printed_name"] if sig else None,
                        "signature_meaning": sig["meaning"] if sig else None,
                        "signed_at": now if sig else None,
                        "audit_id": audit_id,
                    }
                ],
            )
            return ann_id

    def _subject_ids(self, conn: Connection, ds_id: int) -> set[str]:
        t = cast(Table, DATA_TABLES["subjects"].__table__)
        return {str(r[0]) for r in conn.execute(select(t.c.subject_id).where(t.c.dataset_id == ds_id))}

    def annotations(
        self,
        study_id: str,
        kind: str | None = None,
        subject_id: str | None = None,
        *,
        key: str | None = None,
        history: bool = False,
    ) -> list[dict[str, Any]]:
        """Annotations of a study, oldest first: only current ones unless ``history`` (then superseded ones
        too, each with ``superseded_by``)."""
        with self.engine.connect() as conn, Session(bind=conn) as s:
            q = select(Annotation).where(Annotation.study_id == study_id)
            if kind is not None:
                q = q.where(Annotation.kind == kind)
            if subject_id is not None:
                q = q.where(Annotation.subject_id == subject_id)
            if key is not None:
                q = q.where(Annotation.key == key)
            rows = s.scalars(q.order_by(Annotation.id)).all()
            a = T_ANNOTATIONS
            sup = {
                int(r.supersedes_id): int(r.id)
                for r in conn.execute(select(a.c.id, a.c.supersedes_id).where(a.c.study_id == study_id, a.c.supersedes_id.is_not(None)))
            }
            out = [_annotation_dict(r, sup.get(r.id)) for r in rows]
        return out if history else [d for d in out if d["current"]]

    # -- audit -------------------------------------------------------------------------------
    def record_event(
        self,
        action: str,
        entity: str,
        entity_id: str | None,
        actor: str,
        role: str,
        *,
        old: Any = None,
        new: Any = None,
        reason: str | None = None,
        study_id: str | None = None,
        source: str | None = None,
    ) -> int:
        """Append an audit record for a workflow act that changes no stored data (an export, a report
        issued, a page of identifiable data viewed); return its id. ICH E6(R3) 4.2: record workflow
        actions, not only data."""
        if not isinstance(action, str) or not _KIND.match(action) or not isinstance(entity, str) or not entity.strip():
            raise InputError([Problem("invalid audit action or entity", column="action", value=action, expected="e.g. study.export")])
        with self._write(actor, role, None, "record events", source) as w:
            return w.audit(action, entity, entity_id, old=old, new=new, reason=reason, study_id=study_id)

    def audit_log(
        self, study_id: str | None = None, limit: int | None = None, *, action: str | None = None, entity: str | None = None
    ) -> list[dict[str, Any]]:
        """Audit records, oldest first (with ``limit``: the most recent ``limit`` records)."""
        with self.engine.connect() as conn:
            t = T_AUDIT
            q = select(t)
            if study_id is not None:
                q = q.where(t.c.study_id == study_id)
            if action is not None:
                q = q.where(t.c.action == action)
            if entity is not None:
                q = q.where(t.c.entity == entity)
            q = q.order_by(t.c.id.desc())
            if limit is not None:
                q = q.limit(int(limit))
            rows = [_audit_dict(r) for r in conn.execute(q)]
        return rows[::-1]

    def verify_audit(self, deep: bool = False) -> AuditVerification:
        """Recompute the audit hash chain; cross-check stored versions and annotations against it.

        ``deep`` also re-hashes every stored table and compares it with the hash its audit record holds.
        The result names the first broken record. Note: the chain proves that no record was changed,
        inserted or removed before the head; keep ``head_hash`` elsewhere to detect a truncated tail.
        """
        problems: list[dict[str, Any]] = []
        n = 0
        prev = H.GENESIS_HASH
        expected_id = 1
        t = T_AUDIT
        audit_new: dict[int, dict[str, Any]] = {}
        n_ds = 0
        with self.engine.connect() as conn, conn.begin():
            for r in conn.execution_options(yield_per=5000).execute(select(t).order_by(t.c.id)):
                n += 1
                row = r._mapping
                if r.id != expected_id:
                    problems.append({"id": r.id, "problem": f"record id {expected_id} is missing (gap or reordering before id {r.id})"})
                expected_id = r.id + 1
                if r.prev_hash != prev:
                    problems.append({"id": r.id, "problem": "prev_hash does not match the previous record's hash (a record was removed, inserted or altered)"})
                try:
                    h = H.record_hash(_audit_fields(dict(row)))
                except (TypeError, ValueError):
                    h = ""
                if h != r.hash:
                    problems.append({"id": r.id, "problem": "hash mismatch: the record was altered after it was written", "stored_hash": r.hash, "recomputed_hash": h})
                prev = r.hash
                if r.entity in ("study", "annotation") and r.new_json:
                    try:
                        audit_new[int(r.id)] = json.loads(r.new_json)
                    except ValueError:
                        problems.append({"id": r.id, "problem": "new value is not valid JSON"})
            with Session(bind=conn) as s:
                for v in s.scalars(select(StudyVersion).order_by(StudyVersion.id)):
                    rec = audit_new.get(v.audit_id)
                    if rec is None or rec.get("content_hash") != v.content_hash or rec.get("version") != v.version or rec.get("study_id") != v.study_id:
                        problems.append({"id": v.audit_id, "problem": f"study {v.study_id} version {v.version} does not match its audit record"})
                        continue
                    if H.study_hash(rec.get("tables", {}), json.loads(v.meta_json)) != v.content_hash:
                        problems.append({"id": v.audit_id, "problem": f"study {v.study_id} version {v.version}: meta does not match its recorded hash"})
                    if deep:
                        ids = {"subjects": v.subjects_ds, "observations": v.observations_ds, "interventions": v.interventions_ds, "events": v.events_ds}
                        for tname, ds_id in ids.items():
                            got = H.table_hash(self._read_dataset(conn, tname, ds_id))
                            n_ds += 1
                            if got != rec["tables"].get(tname):
                                problems.append({"id": v.audit_id, "problem": f"study {v.study_id} version {v.version}: table {tname} was changed after it was stored"})
                for a in s.scalars(select(Annotation).order_by(Annotation.id)):
                    rec = audit_new.get(a.audit_id)
                    if rec is None or rec.get("content_hash") != a.content_hash or H.canonical_json(rec.get("value")) != a.value_json:
                        problems.append({"id": a.audit_id, "problem": f"annotation {a.id} does not match its audit record"})
        problems.sort(key=lambda p: p["id"])
        return AuditVerification(ok=not problems, n_records=n, head_hash=prev, first_broken=problems[0] if problems else None, problems=problems, deep=deep, n_datasets_checked=n_ds)

    # -- users -------------------------------------------------------------------------------
    #: argon2 hasher for new passwords (argon2-cffi defaults, RFC 9106 low-memory profile). A hash carries
    #: its own parameters, so changing this never invalidates stored passwords.
    password_hasher: Any = None

    def _hasher(self) -> Any:
        if self.password_hasher is None:
            from argon2 import PasswordHasher

            self.password_hasher = PasswordHasher()
        return self.password_hasher

    def _user(self, conn: Connection, username: str) -> Any:
        u = T_USERS
        return conn.execute(select(u).where(u.c.username == username)).first()

    def add_user(
        self, username: str, full_name: str, role: str, password: str, actor: str, actor_role: str, reason: str | None = None
    ) -> int:
        """Create an account (argon2 password hash); return its id. Only admins (or the system) may."""
        problems = []
        if not isinstance(username, str) or not _NAME.match(username):
            problems.append(Problem("invalid user name", column="username", value=username, expected="letters, digits and _ . @ : + - (1-200)"))
        if not isinstance(full_name, str) or not full_name.strip():
            problems.append(Problem("the full (printed) name is required", column="full_name", value=full_name, expected="e.g. 'Dr. A. Smith'"))
        if role not in ROLES:
            problems.append(Problem("unknown role", column="role", value=role, expected=" | ".join(ROLES)))
        if not isinstance(password, str) or len(password) < 8:
            problems.append(Problem("password too short", column="password", expected="at least 8 characters"))
        if problems:
            raise InputError(problems)
        pw_hash = self._hasher().hash(password)
        with self._write(actor, actor_role, USER_ADMIN_ROLES, "manage users") as w:
            if self._user(w.conn, username) is not None:
                raise ConflictError(f"user {username!r} already exists")
            uid = w.next_id(T_USERS)
            w.audit("user.add", "user", username, new={"username": username, "full_name": full_name.strip(), "role": role, "disabled": False}, reason=reason)
            now = utcnow()
            w.insert(
                T_USERS,
                [{"id": uid, "username": username, "full_name": full_name.strip(), "role": role, "password_hash": pw_hash, "disabled": False, "created_at": now, "updated_at": now}],
            )
            return uid

    def list_users(self) -> list[dict[str, Any]]:
        """Accounts (never their password hashes)."""
        with self.engine.connect() as conn, Session(bind=conn) as s:
            return [
                {"id": u.id, "username": u.username, "full_name": u.full_name, "role": u.role, "disabled": bool(u.disabled), "created_at": u.created_at, "updated_at": u.updated_at}
                for u in s.scalars(select(User).order_by(User.username))
            ]

    def _change_user(self, username: str, changes: dict[str, Any], shown: dict[str, Any], actor: str, actor_role: str, reason: str | None, action: str) -> None:
        reason = _need_reason(reason, "change a user account")
        with self._write(actor, actor_role, USER_ADMIN_ROLES, "manage users") as w:
            u = self._user(w.conn, username)
            if u is None:
                raise NotFoundError(f"no user {username!r}")
            old = {k: (bool(u.disabled) if k == "disabled" else getattr(u, k)) for k in shown}
            w.audit(action, "user", username, old=old, new=shown, reason=reason)
            w.update_user(int(u.id), {**changes, "updated_at": utcnow()})

    def disable_user(self, username: str, actor: str, actor_role: str, reason: str | None = None) -> None:
        """Disable an account (it is kept, never deleted); reason required."""
        self._change_user(username, {"disabled": True}, {"disabled": True}, actor, actor_role, reason, "user.disable")

    def enable_user(self, username: str, actor: str, actor_role: str, reason: str | None = None) -> None:
        self._change_user(username, {"disabled": False}, {"disabled": False}, actor, actor_role, reason, "user.enable")

    def set_user_role(self, username: str, role: str, actor: str, actor_role: str, reason: str | None = None) -> None:
        """Change an account's role (audited old -> new); reason required."""
        if role not in ROLES:
            raise InputError([Problem("unknown role", column="role", value=role, expected=" | ".join(ROLES))])
        self._change_user(username, {"role": role}, {"role": role}, actor, actor_role, reason, "user.role")

    def set_password(self, username: str, password: str, actor: str, actor_role: str, reason: str | None = None) -> None:
        if not isinstance(password, str) or len(password) < 8:
            raise InputError([Problem("password too short", column="password", expected="at least 8 characters")])
        pw_hash = self._hasher().hash(password)
        reason = reason or "password change"
        with self._write(actor, actor_role, None if actor == username else USER_ADMIN_ROLES, "manage users") as w:
            u = self._user(w.conn, username)
            if u is None:
                raise NotFoundError(f"no user {username!r}")
            w.audit("user.password", "user", username, new={"password": "changed"}, reason=reason)
            w.update_user(int(u.id), {"password_hash": pw_hash, "updated_at": utcnow()})

    def _check_password(self, u: Any, password: str | None) -> bool:
        if u is None or password is None or bool(u.disabled):
            return False
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return bool(self._hasher().verify(u.password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    def _reauthenticate(self, conn: Connection, username: str, password: str | None) -> dict[str, Any]:
        u = self._user(conn, username)
        if not self._check_password(u, password):
            raise AuthorizationError(f"signature refused: {username!r} could not be re-authenticated (user name and password)")
        if u.role not in SIGN_ROLES:
            raise AuthorizationError(f"signature refused: account {username!r} has role {u.role!r}")
        return {"username": u.username, "full_name": u.full_name, "role": u.role}

    def authenticate(self, username: str, password: str, *, source: str | None = None) -> dict[str, Any] | None:
        """The account (without hash) if the password is right and the account enabled, else ``None``.

        Every attempt is audited (``user.login`` / ``user.login_failed``; ICH E6(R3) logs of user access).
        """
        with self.engine.connect() as conn:
            u = self._user(conn, username)
        ok = self._check_password(u, password)
        role = u.role if u is not None else SYSTEM_ROLE
        why = None if ok else ("unknown user" if u is None else ("account disabled" if u.disabled else "wrong password"))
        with self._write(str(username) or "?", role, None, "log in", source) as w:
            w.audit("user.login" if ok else "user.login_failed", "user", str(username), new=None if ok else {"why": why})
        if not ok:
            return None
        return {"id": u.id, "username": u.username, "full_name": u.full_name, "role": u.role, "disabled": bool(u.disabled)}


def open_store(url: str | None = None) -> Store:
    """Open (creating and migrating as needed) the cd7kit database at ``url``.

    ``None`` -> ``$CD7KIT_DATABASE_URL`` -> a SQLite file in the user data directory; a plain path is a
    SQLite file; ``postgresql://...`` uses psycopg 3.
    """
    try:
        resolved = resolve_url(url)
    except OSError as exc:  # the folder of a SQLite file cannot be made
        raise InputError([Problem(f"cannot create the database file's folder ({exc.strerror})", column="--db", value=str(url or os.environ.get(ENV_VAR, "")), expected=URL_FORMS)]) from None
    try:
        engine = make_engine(resolved)
    except ArgumentError as exc:  # an unknown scheme or driver, or a malformed URL
        raise InputError([Problem(f"not a database URL cd7kit can open ({exc})", column="--db", value=_shown_url(resolved), expected=URL_FORMS)]) from None
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        engine.dispose()
        reason = " ".join(str(exc.orig).split())
        raise InputError([Problem(f"cannot connect to the database ({reason})", column="--db", value=_shown_url(resolved), expected=URL_FORMS)]) from None
    migrate(engine)
    return Store(engine, resolved)


#: What ``--db`` / ``open_store`` accept (named in the error for a URL that cannot be used).
URL_FORMS = "a SQLite file path, sqlite:///FILE, or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE of a reachable server"


def _shown_url(url: str) -> str:
    """``url`` with any password hidden (only the scheme when it cannot even be parsed)."""
    try:
        return redact(url)
    except ArgumentError:
        return url.split("://", 1)[0] + "://..."


__all__ = [
    "Store",
    "open_store",
    "EnsureResult",
    "AuditVerification",
    "AuthorizationError",
    "IntegrityError",
    "ROLES",
    "SYSTEM_ROLE",
    "utcnow",
]
