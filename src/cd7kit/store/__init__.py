"""Persistence: versioned studies, investigator annotations, users and an append-only audit trail.

SQLAlchemy 2 (typed ORM, Core bulk inserts) with Alembic migrations shipped in this package. One SQLite
file by default (user data directory), PostgreSQL by URL (``postgresql+psycopg://``); see
:mod:`cd7kit.store.db`. Every write goes through one audited service (:mod:`cd7kit.store.service`);
audit rows are hash-chained and protected from UPDATE/DELETE in code and by database triggers.

Public API::

    store = open_store(url=None)
    store.save_study(study, actor, role, reason=None, *, new_version=False, study_id=None, source=None) -> int
    store.ensure_study(study, actor, role, reason=None, *, study_id=None, source=None) -> EnsureResult
    store.load_study(study_id, version=None, *, verify=True) -> Study
    store.list_studies() -> list[dict];  store.versions(study_id) -> list[dict]
    store.add_annotation(study_id, kind, subject_id, key, value, actor, role, reason=None,
                         *, signature_meaning=None, password=None, source=None) -> int
    store.annotations(study_id, kind=None, subject_id=None, *, key=None, history=False) -> list[dict]
    store.record_event(action, entity, entity_id, actor, role, *, old=None, new=None, reason=None,
                       study_id=None, source=None) -> int       # workflow acts (exports, ...)
    store.audit_log(study_id=None, limit=None, *, action=None, entity=None) -> list[dict]
    store.verify_audit(deep=False) -> AuditVerification
    store.add_user / list_users / disable_user / enable_user / set_user_role / set_password / authenticate
"""

from .db import ENV_VAR, resolve_url
from .guard import AppendOnlyError
from .service import (
    ROLES,
    SYSTEM_ROLE,
    AuditVerification,
    AuthorizationError,
    EnsureResult,
    IntegrityError,
    Store,
    open_store,
    utcnow,
)

__all__ = [
    "open_store",
    "Store",
    "EnsureResult",
    "AuditVerification",
    "AuthorizationError",
    "IntegrityError",
    "AppendOnlyError",
    "ROLES",
    "SYSTEM_ROLE",
    "ENV_VAR",
    "resolve_url",
    "utcnow",
]
