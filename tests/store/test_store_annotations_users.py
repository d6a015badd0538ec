"""Investigator annotations (append-only, superseded not updated, e-signatures) and user accounts."""

from __future__ import annotations

import pytest

from cd7kit.errors import ConflictError, InputError, NotFoundError
from cd7kit.store import AuthorizationError


def test_annotations_are_append_only_and_corrections_supersede(store, study_factory):
    study = study_factory()
    sid, s1 = study.study_id, study.subject_ids[0]
    store.save_study(study, "alice", "coordinator")
    a1 = store.add_annotation(sid, "eligibility_override", s1, "I3", {"met": True, "note": "ANC repeated"}, "bob", "investigator", "lab error")
    other = store.add_annotation(sid, "eligibility_override", s1, "E2", {"met": False}, "bob", "investigator")
    with pytest.raises(InputError, match="reason"):
        store.add_annotation(sid, "eligibility_override", s1, "I3", {"met": False}, "bob", "investigator")
    a2 = store.add_annotation(sid, "eligibility_override", s1, "I3", {"met": False}, "bob", "investigator", "repeat ANC was low")
    assert a2 > a1
    current = store.annotations(sid, kind="eligibility_override", subject_id=s1)
    assert {a["key"]: a["value"] for a in current} == {"I3": {"met": False}, "E2": {"met": False}}
    hist = store.annotations(sid, kind="eligibility_override", subject_id=s1, history=True)
    by_id = {a["id"]: a for a in hist}
    assert by_id[a1]["value"] == {"met": True, "note": "ANC repeated"} and by_id[a1]["superseded_by"] == a2
    assert by_id[a2]["supersedes"] == a1 and by_id[a2]["reason"] == "repeat ANC was low" and by_id[a2]["current"]
    assert by_id[other]["current"] and by_id[a1]["study_version"] == 1
    log = store.audit_log(study_id=sid)
    assert [r["action"] for r in log] == ["study.create", "annotation.add", "annotation.add", "annotation.supersede"]
    assert log[-1]["old"]["value"] == {"met": True, "note": "ANC repeated"} and log[-1]["new"]["value"] == {"met": False}
    assert store.annotations(sid, kind="dlt_adjudication") == []
    assert store.verify_audit().ok


def test_annotations_check_their_target_and_input(store, study_factory):
    study = study_factory()
    store.save_study(study, "alice", "coordinator")
    with pytest.raises(NotFoundError):
        store.add_annotation("NO-STUDY", "dlt_adjudication", None, "e1", {"dlt": True}, "bob", "investigator")
    with pytest.raises(NotFoundError):
        store.add_annotation(study.study_id, "dlt_adjudication", "NOBODY", "e1", {"dlt": True}, "bob", "investigator")
    with pytest.raises(InputError) as err:
        store.add_annotation(study.study_id, "Bad Kind!", None, "", ["not", "a", "dict"], "bob", "investigator")  # type: ignore[arg-type]
    assert {p.column for p in err.value.problems} == {"kind", "key", "value"}
    with pytest.raises(AuthorizationError):
        store.add_annotation(study.study_id, "dlt_adjudication", None, "e1", {"dlt": True}, "mona", "monitor")
    assert store.annotations(study.study_id, history=True) == []


def test_electronic_signature_needs_reauthentication(store, study_factory):
    study = study_factory()
    sid = study.study_id
    pi = f"pi_{sid.lower()}"
    store.save_study(study, "alice", "coordinator")
    store.add_user(pi, "Dr. Petra Investigator", "investigator", "correct horse", "root", "system")
    with pytest.raises(AuthorizationError):
        store.add_annotation(sid, "escalation_decision", None, "cohort-1", {"decision": "escalate"}, pi, "investigator", signature_meaning="approved", password="wrong password")
    with pytest.raises(AuthorizationError):
        store.add_annotation(sid, "escalation_decision", None, "cohort-1", {"decision": "escalate"}, pi, "coordinator", signature_meaning="approved", password="correct horse")
    assert store.annotations(sid) == []
    aid = store.add_annotation(sid, "escalation_decision", None, "cohort-1", {"decision": "escalate", "next_dose_level": 2}, pi, "investigator", signature_meaning="approved", password="correct horse")
    (a,) = store.annotations(sid, kind="escalation_decision")
    assert a["id"] == aid
    sig = a["signature"]
    assert sig["signed_by"] == pi and sig["printed_name"] == "Dr. Petra Investigator" and sig["meaning"] == "approved"
    assert sig["signed_at"].endswith("Z") and sig["record_hash"] == a["content_hash"]
    rec = store.audit_log(study_id=sid)[-1]
    assert rec["action"] == "annotation.sign"
    assert rec["new"]["study_content_hash"] == store.versions(sid)[-1]["content_hash"]  # linked to the signed version
    assert rec["new"]["signature"]["printed_name"] == "Dr. Petra Investigator"
    store.disable_user(pi, "root", "system", "left the study")
    with pytest.raises(AuthorizationError):
        store.add_annotation(sid, "escalation_decision", None, "cohort-2", {"decision": "stay"}, pi, "investigator", signature_meaning="approved", password="correct horse")


def test_users_are_created_authenticated_disabled_and_audited(store):
    import uuid

    name = f"u_{uuid.uuid4().hex[:8]}"
    uid = store.add_user(name, "Una User", "coordinator", "s3cret-pass", "root", "system", "new coordinator")
    assert isinstance(uid, int)
    users = {u["username"]: u for u in store.list_users()}
    assert users[name] == {**users[name], "full_name": "Una User", "role": "coordinator", "disabled": False}
    assert all("password" not in k for k in users[name])
    with pytest.raises(ConflictError):
        store.add_user(name, "Again", "coordinator", "s3cret-pass", "root", "system")
    with pytest.raises(AuthorizationError):
        store.add_user(name + "x", "X", "admin", "s3cret-pass", name, "coordinator")
    with pytest.raises(InputError) as err:
        store.add_user("bad name", "", "owner", "short", "root", "system")
    assert {p.column for p in err.value.problems} == {"username", "full_name", "role", "password"}
    assert store.authenticate(name, "s3cret-pass")["role"] == "coordinator"
    assert store.authenticate(name, "wrong") is None
    assert store.authenticate("nobody-" + name, "whatever") is None
    with pytest.raises(InputError, match="reason"):
        store.set_user_role(name, "investigator", "root", "system")
    store.set_user_role(name, "investigator", "root", "system", "promoted to sub-investigator")
    with pytest.raises(InputError, match="reason"):
        store.disable_user(name, "root", "system")
    store.disable_user(name, "root", "system", "left the site")
    assert store.authenticate(name, "s3cret-pass") is None
    assert {u["username"]: u for u in store.list_users()}[name]["disabled"] is True
    log = [r for r in store.audit_log(entity="user") if r["entity_id"] == name]
    assert [r["action"] for r in log] == ["user.add", "user.login", "user.login_failed", "user.role", "user.disable", "user.login_failed"]
    assert log[3]["old"] == {"role": "coordinator"} and log[3]["new"] == {"role": "investigator"}
    assert log[3]["reason"] == "promoted to sub-investigator"
    assert log[2]["new"] == {"why": "wrong password"} and log[-1]["new"] == {"why": "account disabled"}
    assert store.verify_audit().ok


def test_record_event_logs_workflow_acts(store):
    rid = store.record_event("study.export", "study", "X@1", "stan", "statistician", new={"format": "sdtm"}, study_id="X")
    rec = store.audit_log(limit=1)[0]
    assert rec["id"] == rid and rec["action"] == "study.export" and rec["role"] == "statistician"
