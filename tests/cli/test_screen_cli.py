"""``cd7kit screen``: the issue's exact form, check/log/import-ctgov, and overrides/attestations through the
store's audit service (SQLite file; the store's own tests cover PostgreSQL)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cd7kit.cli import app
from cd7kit.clinical.eligibility import load_criteria
from cd7kit.datasets.screening import screening_study
from cd7kit.errors import InputError
from cd7kit.io import write_cd7kit
from cd7kit.store import open_store

runner = CliRunner()
EXAMPLE = str(resources.files("cd7kit.clinical.eligibility") / "examples" / "patient_NCT06849401.json")
FIXTURE = Path(__file__).parents[1] / "clinical" / "eligibility" / "data" / "NCT06849401_ctgov_v2.json"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def study():
    return screening_study(with_attestations=False)


def test_issue_form_without_subcommand_equals_check():
    a = as_json(invoke("screen", "--trial", "NCT06849401", "--patient", EXAMPLE, "--checkpoint", "screening", "--json"))
    b = as_json(invoke("screen", "check", "--trial", "NCT06849401", "--patient", EXAMPLE, "--json"))
    assert a["verdict"] == b["verdict"] == "ELIGIBLE"
    assert a["criteria"] == b["criteria"]
    i10 = next(c for c in a["criteria"] if c["criterion_id"] == "I10")
    assert i10["value"] == "MET" and {e["what"] for e in i10["evidence"]} == {"BILI", "AST", "ALT", "CREAT"}
    assert i10["rule"]["protocol_version"].endswith("2025-05-15")


def test_pre_infusion_checkpoint_and_human_output():
    d = as_json(invoke("screen", "--patient", EXAMPLE, "--checkpoint", "pre-infusion", "--json"))
    assert d["checkpoint"] == "pre-infusion" and len(d["criteria"]) == 9
    r = invoke("screen", "--patient", EXAMPLE)
    assert r.exit_code == 0 and "verdict" in r.stdout and "ELIGIBLE" in r.stdout


def test_bad_invocations_are_input_errors(tmp_path):
    r = invoke("screen", "check", "--trial", "NCT06849401", "--study", str(tmp_path), "--patient", EXAMPLE)
    assert isinstance(r.exception, InputError)
    r = invoke("screen", "check", "--patient", EXAMPLE, "--checkpoint", "lunch")
    assert isinstance(r.exception, InputError)
    r = invoke("screen")
    assert r.exit_code == 0 and "import-ctgov" in r.stdout


def test_log_of_a_study_folder(tmp_path, study):
    folder = write_cd7kit(study, tmp_path / "scr")
    log = as_json(invoke("screen", "log", "--study", str(folder), "--json"))
    assert log["value"]["screened"] == 12 and log["value"]["enrolled"] == 9
    assert log["value"]["eligible"] == 0  # no attestations: the 9 are pending
    assert sorted(e["subject_id"] for e in log["excluded"] if e["verdict"] == "INELIGIBLE") == ["NCT06849401-04", "NCT06849401-08", "NCT06849401-11"]
    assert {r["subject_id"]: r["reasons"] for r in log["log"]}["NCT06849401-11"] == "E11"
    txt = invoke("screen", "log", "--study", str(folder))
    assert txt.exit_code == 0 and "NCT06849401-08 not eligible: I10" in txt.stdout


def test_import_ctgov_writes_a_loadable_skeleton(tmp_path):
    out = tmp_path / "skeleton.yaml"
    d = as_json(invoke("screen", "import-ctgov", str(FIXTURE), "--out", str(out), "--json"))
    assert (d["n_inclusion"], d["n_exclusion"]) == (15, 20)  # 13 + CTG-AGE + CTG-HV
    cs = load_criteria(out)
    assert cs.get("E17").text == load_criteria("NCT06849401").get("E17").text
    r = invoke("screen", "import-ctgov", str(FIXTURE))
    assert r.exit_code == 0 and r.stdout.startswith("trial: NCT06849401")


def test_attest_and_override_are_stored_with_audit_records(tmp_path):
    # the study carries the synthetic attestations in its metadata, except I6 of the subject checked here
    sid = "NCT06849401-01"
    full = screening_study(with_attestations=True)
    meta = dict(full.meta)
    meta["eligibility_attestations"] = [a for a in meta["eligibility_attestations"] if not (a["subject_id"] == sid and a["criterion_id"] == "I6")]
    db = str(tmp_path / "screen.sqlite")
    with open_store(db) as s:
        s.save_study(full.replace(meta=meta), "tester", "coordinator", study_id="SCREEN-T")
    before = as_json(invoke("screen", "--study", "SCREEN-T", "--subject", sid, "--db", db, "--json"))
    assert before["verdict"] == "PENDING" and before["pending"] == ["I6"]
    rec = as_json(invoke("screen", "attest", "--study", "SCREEN-T", "--subject", sid, "--criterion", "I6", "--value", "--actor", "dr.a", "--db", db, "--json"))
    assert rec["kind"] == "eligibility_attestation" and rec["actor"] == "dr.a" and rec["value"]["value"] is True
    after = as_json(invoke("screen", "--study", "SCREEN-T", "--subject", sid, "--db", db, "--json"))
    assert after["verdict"] == "ELIGIBLE"
    i6 = next(c for c in after["criteria"] if c["criterion_id"] == "I6")
    assert i6["attestation"]["actor"] == "dr.a" and i6["attestation"]["annotation_id"] == rec["id"]

    rec = as_json(
        invoke("screen", "override", "--study", "SCREEN-T", "--subject", sid, "--criterion", "I8", "--result", "NOT_MET", "--checkpoint", "screening",
               "--reason", "echo re-read: LVEF 45%", "--actor", "dr.b", "--db", db, "--json")
    )
    assert rec["value"]["computed"] == "MET" and rec["value"]["result"] == "NOT_MET"
    final = as_json(invoke("screen", "--study", "SCREEN-T", "--subject", sid, "--db", db, "--json"))
    assert final["verdict"] == "INELIGIBLE" and final["computed_verdict"] == "ELIGIBLE"
    i8 = next(c for c in final["criteria"] if c["criterion_id"] == "I8")
    assert (i8["value"], i8["computed"]) == ("NOT_MET", "MET")
    assert i8["override"]["reason"] == "echo re-read: LVEF 45%" and i8["override"]["actor"] == "dr.b"
    with open_store(db) as s:
        audit = [a for a in s.audit_log("SCREEN-T") if a["entity"] == "annotation"]
        assert len(audit) == 2
        last = audit[-1]
        assert last["actor"] == "dr.b" and last["reason"] == "echo re-read: LVEF 45%"
        assert last["new"]["kind"] == "eligibility_override" and last["new"]["value"]["result"] == "NOT_MET"
        assert s.verify_audit().ok  # the hash chain still holds
    # a second override of the same criterion supersedes the first and needs a reason; the first stays readable
    r = invoke("screen", "override", "--study", "SCREEN-T", "--subject", sid, "--criterion", "I8", "--result", "MET", "--checkpoint", "screening",
               "--reason", "cardiology: LVEF 55%", "--actor", "dr.c", "--db", db, "--json")
    assert r.exit_code == 0, r.output
    with open_store(db) as s:
        hist = s.annotations("SCREEN-T", kind="eligibility_override", history=True)
        assert [h["value"]["result"] for h in hist] == ["NOT_MET", "MET"] and hist[0]["current"] is False


def test_override_rejects_unknown_criterion_and_result(tmp_path, study):
    db = str(tmp_path / "o.sqlite")
    with open_store(db) as s:
        s.save_study(study, "tester", "coordinator", study_id="SCREEN-U")
    r = invoke("screen", "override", "--study", "SCREEN-U", "--subject", "NCT06849401-01", "--criterion", "I99", "--result", "maybe", "--reason", "x", "--db", db)
    assert isinstance(r.exception, InputError)
    assert len(r.exception.problems) == 2


def test_sdtm_export_writes_ie_with_the_stored_overrides(tmp_path):
    """`cd7kit export --format sdtm`: IE holds the screen failures, after an override stored with `screen override`."""
    full = screening_study(with_attestations=True)
    db = str(tmp_path / "ie.sqlite")
    with open_store(db) as s:
        s.save_study(full.replace(meta={**full.meta, "trial": "NCT06849401"}), "tester", "coordinator", study_id="SCREEN-IE")

    def exported(name: str) -> list[tuple[str, str]]:
        r = invoke("export", "SCREEN-IE", "--format", "sdtm", "--out", str(tmp_path / name), "--db", db, "--json")
        assert r.exit_code == 0, r.output
        ie = pd.read_csv(tmp_path / name / "ie.csv")
        return sorted(zip(ie["USUBJID"], ie["IETESTCD"], strict=True))

    assert exported("before") == [("NCT06849401-04", "I5"), ("NCT06849401-08", "I10"), ("NCT06849401-11", "E11")]
    r = invoke("screen", "override", "--study", "SCREEN-IE", "--subject", "NCT06849401-04", "--criterion", "I5", "--result", "MET",
               "--checkpoint", "screening", "--reason", "flow re-gated: 82% CD7+", "--db", db, "--json")
    assert r.exit_code == 0, r.output
    assert exported("after") == [("NCT06849401-08", "I10"), ("NCT06849401-11", "E11")]
