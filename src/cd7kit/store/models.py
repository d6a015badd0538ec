"""The store's tables as SQLAlchemy 2 typed ORM classes.

The schema is created by the Alembic migrations in :mod:`cd7kit.store.migrations` (never by
``create_all``); a test compares these classes with the migrated database so the two cannot drift.

Tables
------
``audit_log``        the append-only, hash-chained audit trail (21 CFR 11.10(e); ICH E6(R3) 4.2).
``study_versions``   one row per stored version of a study; versions are never changed, a correction is
                     a new version (ALCOA+ "original", "complete").
``datasets``         content-addressed table data: one row per distinct (table, content hash); a new version
                     that leaves a table unchanged points at the same dataset instead of copying it.
``subjects`` / ``observations`` / ``interventions`` / ``events``
                     the four Study tables (DESIGN.md), one row per table row, keyed by
                     (``dataset_id``, ``pos``). Columns not known to this schema version travel in ``extra``
                     (JSON) so a newer Study schema never loses data.
``annotations``      investigator acts (eligibility overrides and attestations, DLT adjudications,
                     escalation decisions), append-only; a correction supersedes, never updates.
``users``            accounts for the web app (argon2 hashes); every change is audited.

Rows of ``audit_log``, ``study_versions``, ``datasets``, the four data tables and ``annotations`` are
immutable: the ORM refuses updates and deletes (:mod:`cd7kit.store.guard`) and database triggers
created by the migration abort them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AuditRecord(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts_utc: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str | None] = mapped_column(String(200))
    study_id: Mapped[str | None] = mapped_column(String(200), index=True)
    old_json: Mapped[str | None] = mapped_column(Text)
    new_json: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    software_version: Mapped[str] = mapped_column(String(60))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("table_name", "content_hash", name="uq_datasets_table_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(Integer)
    columns_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(40))


class StudyVersion(Base):
    __tablename__ = "study_versions"
    __table_args__ = (UniqueConstraint("study_id", "version", name="uq_study_versions_id_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(Text)
    meta_json: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    subjects_ds: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    observations_ds: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    interventions_ds: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    events_ds: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    created_at: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id"))


class SubjectRow(Base):
    __tablename__ = "subjects"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    subject_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    age_years: Mapped[float | None] = mapped_column(Float(53))
    sex: Mapped[str | None] = mapped_column(Text)
    weight_kg: Mapped[float | None] = mapped_column(Float(53))
    height_cm: Mapped[float | None] = mapped_column(Float(53))
    diagnosis: Mapped[str | None] = mapped_column(Text)
    cd7_blast_pct: Mapped[float | None] = mapped_column(Float(53))
    dose_level: Mapped[int | None] = mapped_column(BigInteger)
    dose_cells_per_kg: Mapped[float | None] = mapped_column(Float(53))
    product: Mapped[str | None] = mapped_column(Text)
    donor_type: Mapped[str | None] = mapped_column(Text)
    reference_date: Mapped[str | None] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)


class ObservationRow(Base):
    __tablename__ = "observations"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    row_id: Mapped[int | None] = mapped_column(BigInteger)
    subject_id: Mapped[str | None] = mapped_column(Text)
    day: Mapped[float | None] = mapped_column(Float(53))
    datetime: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float(53))
    value_text: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(Text)
    specimen: Mapped[str | None] = mapped_column(Text)
    lln: Mapped[float | None] = mapped_column(Float(53))
    uln: Mapped[float | None] = mapped_column(Float(53))
    lloq: Mapped[float | None] = mapped_column(Float(53))
    blq: Mapped[bool | None] = mapped_column(Boolean)
    attribution: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)


class InterventionRow(Base):
    __tablename__ = "interventions"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    row_id: Mapped[int | None] = mapped_column(BigInteger)
    subject_id: Mapped[str | None] = mapped_column(Text)
    start_day: Mapped[float | None] = mapped_column(Float(53))
    end_day: Mapped[float | None] = mapped_column(Float(53))
    kind: Mapped[str | None] = mapped_column(Text)
    agent: Mapped[str | None] = mapped_column(Text)
    dose: Mapped[float | None] = mapped_column(Float(53))
    dose_unit: Mapped[str | None] = mapped_column(Text)
    route: Mapped[str | None] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(Text)
    flow_l_min: Mapped[float | None] = mapped_column(Float(53))
    indication: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)


class EventRow(Base):
    __tablename__ = "events"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    row_id: Mapped[int | None] = mapped_column(BigInteger)
    subject_id: Mapped[str | None] = mapped_column(Text)
    day: Mapped[float | None] = mapped_column(Float(53))
    end_day: Mapped[float | None] = mapped_column(Float(53))
    kind: Mapped[str | None] = mapped_column(Text)
    term: Mapped[str | None] = mapped_column(Text)
    grade: Mapped[int | None] = mapped_column(BigInteger)
    attribution: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_lookup", "study_id", "kind", "subject_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(200))
    study_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str | None] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    value_json: Mapped[str] = mapped_column(Text)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"))
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(64))
    signed_by: Mapped[str | None] = mapped_column(String(200))
    signer_name: Mapped[str | None] = mapped_column(String(400))
    signature_meaning: Mapped[str | None] = mapped_column(Text)
    signed_at: Mapped[str | None] = mapped_column(String(40))
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id"))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    full_name: Mapped[str] = mapped_column(String(400))
    role: Mapped[str] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[str] = mapped_column(String(40))


#: Tables whose rows may only ever be inserted.
APPEND_ONLY_TABLES: tuple[str, ...] = (
    "audit_log",
    "study_versions",
    "datasets",
    "subjects",
    "observations",
    "interventions",
    "events",
    "annotations",
)

#: ORM class of each Study table.
DATA_TABLES: dict[str, type[Base]] = {
    "subjects": SubjectRow,
    "observations": ObservationRow,
    "interventions": InterventionRow,
    "events": EventRow,
}

__all__ = [
    "Base",
    "AuditRecord",
    "Dataset",
    "StudyVersion",
    "SubjectRow",
    "ObservationRow",
    "InterventionRow",
    "EventRow",
    "Annotation",
    "User",
    "APPEND_ONLY_TABLES",
    "DATA_TABLES",
]
