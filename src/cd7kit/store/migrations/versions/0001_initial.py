"""Initial schema: audit trail, versioned studies, content-addressed table data, annotations, users.

Append-only tables get triggers that abort any UPDATE or DELETE (and TRUNCATE on PostgreSQL), so the
audit trail and the stored record cannot be changed even by SQL that bypasses cd7kit
(21 CFR 11.10(e): "Record changes shall not obscure previously recorded information").

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = (
    "audit_log",
    "study_versions",
    "datasets",
    "subjects",
    "observations",
    "interventions",
    "events",
    "annotations",
)

_F = sa.Float(53)


def _data_table(name: str, *cols: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("pos", sa.Integer(), primary_key=True, autoincrement=False),
        *cols,
        sa.Column("extra", sa.Text(), nullable=True),
    )


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("ts_utc", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("entity", sa.String(60), nullable=False),
        sa.Column("entity_id", sa.String(200), nullable=True),
        sa.Column("study_id", sa.String(200), nullable=True),
        sa.Column("old_json", sa.Text(), nullable=True),
        sa.Column("new_json", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("software_version", sa.String(60), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_study_id", "audit_log", ["study_id"])
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("table_name", sa.String(40), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("columns_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("table_name", "content_hash", name="uq_datasets_table_hash"),
    )
    op.create_table(
        "study_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("meta_json", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("subjects_ds", sa.Integer(), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("observations_ds", sa.Integer(), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("interventions_ds", sa.Integer(), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("events_ds", sa.Integer(), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("audit_id", sa.Integer(), sa.ForeignKey("audit_log.id"), nullable=False),
        sa.UniqueConstraint("study_id", "version", name="uq_study_versions_id_version"),
    )
    op.create_index("ix_study_versions_study_id", "study_versions", ["study_id"])
    _data_table(
        "subjects",
        sa.Column("subject_id", sa.Text()),
        sa.Column("status", sa.Text()),
        sa.Column("age_years", _F),
        sa.Column("sex", sa.Text()),
        sa.Column("weight_kg", _F),
        sa.Column("height_cm", _F),
        sa.Column("diagnosis", sa.Text()),
        sa.Column("cd7_blast_pct", _F),
        sa.Column("dose_level", sa.BigInteger()),
        sa.Column("dose_cells_per_kg", _F),
        sa.Column("product", sa.Text()),
        sa.Column("donor_type", sa.Text()),
        sa.Column("reference_date", sa.Text()),
        sa.Column("site", sa.Text()),
        sa.Column("source", sa.Text()),
    )
    _data_table(
        "observations",
        sa.Column("row_id", sa.BigInteger()),
        sa.Column("subject_id", sa.Text()),
        sa.Column("day", _F),
        sa.Column("datetime", sa.Text()),
        sa.Column("code", sa.Text()),
        sa.Column("value", _F),
        sa.Column("value_text", sa.Text()),
        sa.Column("unit", sa.Text()),
        sa.Column("specimen", sa.Text()),
        sa.Column("lln", _F),
        sa.Column("uln", _F),
        sa.Column("lloq", _F),
        sa.Column("blq", sa.Boolean()),
        sa.Column("attribution", sa.Text()),
        sa.Column("source", sa.Text()),
    )
    _data_table(
        "interventions",
        sa.Column("row_id", sa.BigInteger()),
        sa.Column("subject_id", sa.Text()),
        sa.Column("start_day", _F),
        sa.Column("end_day", _F),
        sa.Column("kind", sa.Text()),
        sa.Column("agent", sa.Text()),
        sa.Column("dose", _F),
        sa.Column("dose_unit", sa.Text()),
        sa.Column("route", sa.Text()),
        sa.Column("device", sa.Text()),
        sa.Column("flow_l_min", _F),
        sa.Column("indication", sa.Text()),
        sa.Column("details", sa.Text()),
        sa.Column("source", sa.Text()),
    )
    _data_table(
        "events",
        sa.Column("row_id", sa.BigInteger()),
        sa.Column("subject_id", sa.Text()),
        sa.Column("day", _F),
        sa.Column("end_day", _F),
        sa.Column("kind", sa.Text()),
        sa.Column("term", sa.Text()),
        sa.Column("grade", sa.BigInteger()),
        sa.Column("attribution", sa.Text()),
        sa.Column("details", sa.Text()),
        sa.Column("source", sa.Text()),
    )
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.String(200), nullable=False),
        sa.Column("study_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), sa.ForeignKey("annotations.id"), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("signed_by", sa.String(200), nullable=True),
        sa.Column("signer_name", sa.String(400), nullable=True),
        sa.Column("signature_meaning", sa.Text(), nullable=True),
        sa.Column("signed_at", sa.String(40), nullable=True),
        sa.Column("audit_id", sa.Integer(), sa.ForeignKey("audit_log.id"), nullable=False),
    )
    op.create_index("ix_annotations_lookup", "annotations", ["study_id", "kind", "subject_id", "key"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("full_name", sa.String(400), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for t in APPEND_ONLY:
            for what in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {t}_no_{what.lower()} BEFORE {what} ON {t} "
                    f"BEGIN SELECT RAISE(ABORT, 'cd7kit: {t} is append-only ({what} refused)'); END"
                )
    elif dialect == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION cd7kit_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'cd7kit: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for t in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION cd7kit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                "FOR EACH STATEMENT EXECUTE FUNCTION cd7kit_append_only()"
            )


def downgrade() -> None:
    raise RuntimeError("cd7kit's store cannot be downgraded: dropping it would destroy the audit trail")
