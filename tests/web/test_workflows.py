"""Screening, kinetics and signed escalation decisions in the web app (cd7kit.web.workflows), through HTTP.

One SQLite store with the demo study for the module (the engine results are computed once); each test
acts on its own subjects so the order of the tests does not matter. What the pages show is compared with
the engines called directly, never with numbers written here.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from cd7kit.clinical.eligibility import load_criteria, screen
from cd7kit.datasets import DEMO_STUDY_ID, load_demo_study
from cd7kit.datasets.screening import INTENDED_VERDICTS
from cd7kit.kinetics.nca import nca
from cd7kit.report.overview import study_overview
from cd7kit.store import open_store
from cd7kit.store.service import ANNOTATION_ROLES, SIGN_ROLES
from cd7kit.web import create_app
from cd7kit.web.security import IDENTIFYING_COLUMNS, PERMISSIONS, ROLES
from cd7kit.web.workflows import ESCALATION_KIND, SIGNATURE_MEANING, scrub

USERS = {
    "inv": ("Dr Ines Investigator", "investigator", "investigator-pw"),
    "inv2": ("Dr Second Investigator", "investigator", "investigator2-pw"),
    "coord": ("Cora Coordinator", "coordinator", "coordinator-pw"),
    "mon": ("Mo Monitor", "monitor", "monitor-pw-1"),
    "stat": ("Stan Statistician", "statistician", "statistician-pw"),
    "adm": ("Ada Admin", "admin", "admin-password"),
}
HX = {"HX-Request": "true"}
#: A subject that fails screening on one criterion (the demo generator's documented intent).
FAIL_I5 = next(s for s, (v, c) in INTENDED_VERDICTS.items() if c == "I5")
FAIL_I10 = next(s for s, (v, c) in INTENDED_VERDICTS.items() if c == "I10")
ELIGIBLE = [s for s, (v, _) in INTENDED_VERDICTS.items() if v == "ELIGIBLE"]


def _demo_with_site_stamps():
    """The demo study whose attestation records carry the site and local time, as a site's EDC exports
    them: identifying fields that investigators may see and statisticians may not."""
    st = load_demo_study()
    att = [{**a, "site": "synthetic site A", "datetime": "2026-01-05T10:00:00"} for a in st.meta["eligibility_attestations"]]
    return st.replace(meta={**st.meta, "eligibility_attestations": att})


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    store = open_store(str(tmp_path_factory.mktemp("workflows") / "web.sqlite"))
    study = _demo_with_site_stamps()
    store.save_study(study, actor="test", role="system")
    for u, (name, role, pw) in USERS.items():
        store.add_user(u, name, role, pw, actor="test", actor_role="system")
    app = create_app(store, DEMO_STUDY_ID)
    return app, store, study


def _client(app, address: str = "testclient") -> TestClient:
    return TestClient(app, base_url="https://testserver", client=(address, 50000))


def _login(app, user: str, address: str = "testclient") -> TestClient:
    c = _client(app, address)
    page = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"username": user, "password": USERS[user][2], "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def _csrf(c: TestClient) -> str:
    return c.get("/api/csrf").json()["csrf"]


def _errors(html: str) -> list[str]:
    return [m for m in re.findall(r'class="error"[^>]*>([^<]+)<', html) if m.strip()]


def _walk_keys(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _walk_keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _walk_keys(v)}
    return set()


# -- permissions ------------------------------------------------------------------------------------
def test_web_permissions_agree_with_the_store():
    assert PERMISSIONS["sign"] == SIGN_ROLES  # who may sign in the browser may sign in the store
    assert PERMISSIONS["override"] <= PERMISSIONS["attest"] <= ANNOTATION_ROLES
    assert "coordinator" in PERMISSIONS["attest"] and "coordinator" not in PERMISSIONS["override"]
    for p in ("attest", "override", "sign", "adjudicate"):
        assert not PERMISSIONS[p] & {"monitor", "statistician"}
    assert set(ROLES) == PERMISSIONS["view"]


# -- screening --------------------------------------------------------------------------------------
def test_screening_pages_show_the_engine_results_with_evidence(web):
    app, store, study = web
    c = _login(app, "mon")
    cs = load_criteria(study.meta["trial"])
    expected = screen(study, FAIL_I5, cs, "screening")
    assert expected.verdict == "INELIGIBLE" and [r.id for r in expected.reasons] == ["I5"]
    log = c.get("/screening")
    assert log.status_code == 200 and 'id="screening-log"' in log.text
    row = re.search(rf'<a href="/screening/{FAIL_I5}">{FAIL_I5}</a></td><td>screening</td><td>[^<]*</td>\s*<td class="v-(\w+)">', log.text)
    assert row and row.group(1) == expected.verdict
    page = c.get(f"/screening/{FAIL_I5}")
    assert page.status_code == 200
    assert re.search(r'id="verdict-screening"[^>]*>Verdict: <strong class="v-INELIGIBLE">INELIGIBLE</strong>; ineligible by I5', page.text)
    i5 = re.search(r'<tr id="crit-screening-I5".*?</tr>', page.text, re.S).group(0)
    assert 'class="r-NOT_MET"' in i5
    for e in expected.result("I5").evidence:  # every evidence row of the engine is on the page
        assert f"row {e.row_id}" in i5 and str(e.what) in i5
    assert "<form" not in i5  # a monitor gets no write form
    api = c.get(f"/api/screening/{FAIL_I5}").json()
    got = {r["criterion_id"]: r for r in api["checkpoints"][0]["criteria"]}
    assert {k: v["value"] for k, v in got.items()} == {r.id: r.value for r in expected.results}
    assert got["I5"]["evidence"] == [e.to_dict() for e in expected.result("I5").evidence]
    listing = c.get("/api/screening", params={"limit": 3}).json()
    assert listing["n_subjects"] == len(study.meta["trial_subjects"]) and {r["subject_id"] for r in listing["log"]} <= set(study.meta["trial_subjects"][:3])


def test_override_by_investigator_swaps_the_row_and_reaches_the_audit_trail(web):
    app, store, study = web
    c = _login(app, "inv")
    csrf = _csrf(c)
    form = {"csrf": csrf, "checkpoint": "screening", "criterion_id": "I10", "result": "MET"}
    n_before = len(store.annotations(DEMO_STUDY_ID, kind="eligibility_override"))
    excluded = lambda: re.search(r'<ul id="excluded">(.*?)</ul>', c.get("/").text, re.S).group(1)  # noqa: E731
    assert f"{FAIL_I10} (not eligible)" in excluded()
    refused = c.post(f"/screening/{FAIL_I10}/override", data={**form, "reason": "   "}, headers=HX)
    assert refused.status_code == 422 and "needs a reason" in " ".join(_errors(refused.text))
    assert len(store.annotations(DEMO_STUDY_ID, kind="eligibility_override")) == n_before  # nothing written
    reason = "creatinine re-measured 1.4 mg/dL on day -20 (lab error)"
    r = c.post(f"/screening/{FAIL_I10}/override", data={**form, "reason": reason}, headers=HX)
    assert r.status_code == 200 and r.text.lstrip().startswith('<tr id="crit-screening-I10"')
    assert 'class="r-MET"' in r.text and "overridden (computed NOT_MET)" in r.text and reason in r.text
    # the checkpoint's verdict comes back out of band, re-evaluated by the engine
    assert re.search(r'id="verdict-screening"[^>]*hx-swap-oob="true">Verdict: <strong class="v-(\w+)">', r.text).group(1) == "ELIGIBLE"
    api = c.get(f"/api/screening/{FAIL_I10}").json()["checkpoints"][0]
    assert api["verdict"] == "ELIGIBLE" and api["computed_verdict"] == "INELIGIBLE"
    # the overview's flow counts the stored override at once: eligible now, though never enrolled
    assert f"{FAIL_I10} (not eligible)" not in excluded() and f"{FAIL_I10} (not enrolled)" in excluded()
    i10 = next(x for x in api["criteria"] if x["criterion_id"] == "I10")
    assert i10["override"]["reason"] == reason and i10["override"]["computed"] == "NOT_MET" and i10["computed"] == "NOT_MET"
    audit = _login(app, "mon").get("/api/audit").json()
    rec = next(a for a in audit if a["reason"] == reason)
    assert rec["action"] == "annotation.add" and rec["actor"] == "inv" and rec["source"] == "web"


def test_coordinator_attests_but_may_not_override(web):
    app, store, study = web
    sid = ELIGIBLE[0]
    c = _login(app, "coord")
    csrf = _csrf(c)
    page = c.get(f"/screening/{sid}")
    i6 = re.search(r'<tr id="crit-screening-I6".*?</tr>', page.text, re.S).group(0)
    assert 'class="attest"' in i6 and 'class="override"' not in i6
    r = c.post(f"/screening/{sid}/attest", data={"csrf": csrf, "checkpoint": "screening", "criterion_id": "I6", "value": "no"}, headers=HX)
    assert r.status_code == 200 and "attested no by coord" in r.text and 'class="r-NOT_MET"' in r.text
    assert re.search(r'class="v-(\w+)"', r.text.split("<template>")[1]).group(1) == "INELIGIBLE"
    # correcting it needs a reason (the store supersedes, both stay in the trail)
    again = c.post(f"/screening/{sid}/attest", data={"csrf": csrf, "checkpoint": "screening", "criterion_id": "I6", "value": "yes"}, headers=HX)
    assert again.status_code == 422 and "reason" in " ".join(_errors(again.text))
    fixed = c.post(f"/screening/{sid}/attest", data={"csrf": csrf, "checkpoint": "screening", "criterion_id": "I6", "value": "yes", "reason": "consent form found"}, headers=HX)
    assert fixed.status_code == 200 and "attested yes by coord: consent form found" in fixed.text
    hist = store.annotations(DEMO_STUDY_ID, kind="eligibility_attestation", subject_id=sid, history=True)
    assert [a["value"]["value"] for a in hist] == [False, True] and hist[0]["superseded_by"] == hist[1]["id"]
    # a criterion decided from the data cannot be attested
    data_crit = c.post(f"/screening/{sid}/attest", data={"csrf": csrf, "checkpoint": "screening", "criterion_id": "I1", "value": "yes"}, headers=HX)
    assert data_crit.status_code == 422 and "decided from the data" in " ".join(_errors(data_crit.text))
    # a coordinator does not override, in the browser or through the API
    form = {"csrf": csrf, "checkpoint": "screening", "criterion_id": "I1", "result": "NOT_MET", "reason": "x"}
    assert c.post(f"/screening/{sid}/override", data=form).status_code == 403
    body = {"criterion_id": "I1", "checkpoint": "screening", "result": "NOT_MET", "reason": "x"}
    assert c.post(f"/api/screening/{sid}/overrides", json=body, headers={"X-CSRF-Token": csrf}).status_code == 403


@pytest.mark.parametrize("user", ["mon", "stat"])
def test_read_only_roles_cannot_write(web, user):
    app, store, study = web
    sid = ELIGIBLE[1]
    c = _login(app, user)
    csrf = _csrf(c)
    page = c.get(f"/screening/{sid}")
    assert page.status_code == 200 and 'class="attest"' not in page.text and 'class="override"' not in page.text
    assert c.post(f"/screening/{sid}/attest", data={"csrf": csrf, "checkpoint": "screening", "criterion_id": "I6", "value": "no"}).status_code == 403
    assert c.post(f"/screening/{sid}/override", data={"csrf": csrf, "checkpoint": "screening", "criterion_id": "I6", "result": "MET", "reason": "x"}).status_code == 403
    att = {"criterion_id": "I6", "checkpoint": "screening", "value": False}
    assert c.post(f"/api/screening/{sid}/attestations", json=att, headers={"X-CSRF-Token": csrf}).status_code == 403
    esc = c.get("/escalation")
    assert esc.status_code == 200 and 'id="decision-form"' not in esc.text
    assert c.post("/escalation/decisions", data={"csrf": csrf, "decision": "stop", "comment": "x", "password": USERS[user][2]}).status_code == 403
    dec = {"decision": "stop", "comment": "x", "password": USERS[user][2]}
    assert c.post("/api/escalation/decisions", json=dec, headers={"X-CSRF-Token": csrf}).status_code == 403
    assert store.annotations(DEMO_STUDY_ID, subject_id=sid) == []


def test_api_writes_need_the_csrf_header(web):
    app, store, study = web
    sid = ELIGIBLE[2]
    c = _login(app, "inv")
    body = {"criterion_id": "I6", "checkpoint": "screening", "value": True, "reason": "consent on file"}
    assert c.post(f"/api/screening/{sid}/attestations", json=body).status_code == 403
    assert c.post(f"/api/screening/{sid}/attestations", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    r = c.post(f"/api/screening/{sid}/attestations", json=body, headers={"X-CSRF-Token": _csrf(c)})
    assert r.status_code == 201 and r.json()["annotation"]["value"]["value"] is True and r.json()["criterion"]["attestation"]["actor"] == "inv"
    assert _client(app).get("/api/screening").status_code == 401  # not logged in


def test_statistician_sees_no_identifying_fields(web):
    app, store, study = web
    inv, stat = _login(app, "inv"), _login(app, "stat")
    sid = ELIGIBLE[3]
    # positive control: the site's attestation stamps reach the investigator
    assert {"site", "datetime"} <= _walk_keys(inv.get(f"/api/screening/{sid}").json())
    for url in (f"/api/screening/{sid}", "/api/screening", "/api/kinetics/nca", "/api/escalation/decisions"):
        r = stat.get(url)
        assert r.status_code == 200, url
        assert not _walk_keys(r.json()) & set(IDENTIFYING_COLUMNS), url
    for url in (f"/screening/{sid}", "/screening", "/kinetics", "/escalation"):
        html = stat.get(url).text
        assert "synthetic site A" not in html and "2026-01-05T10:00" not in html, url


def test_scrub_drops_identifying_keys_and_evidence_rows():
    data = {"site": "X", "a": [{"what": "reference_date", "value": "2026-01-01"}, {"what": "ANC", "value": 1.0, "datetime": "t"}], "b": {"reference_date": "d", "c": 1}}
    assert scrub(data) == {"a": [{"what": "ANC", "value": 1.0}], "b": {"c": 1}}


# -- kinetics ---------------------------------------------------------------------------------------
def test_kinetics_page_figure_and_nca(web):
    app, store, study = web
    c = _login(app, "stat")
    page = c.get("/kinetics")
    assert page.status_code == 200 and 'data-src="/figures/kinetics.json?code=CAR_COPIES"' in page.text and 'id="nca-summary"' in page.text
    fig = c.get("/figures/kinetics.json", params={"code": "CAR_COPIES"}).json()
    levels = sorted({int(x) for x in study.subjects["dose_level"].dropna()})
    lines = [t for t in fig["data"] if t["name"].startswith("dose level")]
    assert [t["name"] for t in lines] == [f"dose level {v}" for v in levels]
    # every plotted point is a Study row of that dose level's subjects
    obs = study.observations.set_index("row_id")
    for t, lvl in zip(lines, levels, strict=True):
        ids = set(study.subjects.loc[study.subjects["dose_level"] == lvl, "subject_id"])
        pts = [(sid, row) for sid, row in t["customdata"] if row is not None]
        assert pts and all(sid in ids and obs.loc[row, "subject_id"] == sid and obs.loc[row, "code"] == "CAR_COPIES" for sid, row in pts)
    api = c.get("/api/kinetics/nca").json()
    engine = nca(study, "CAR_COPIES").to_frame()
    assert len(api["table"]) == len(engine)
    got = {(r["subject_id"], r["dose_index"]): r["cmax"] for r in api["table"]}
    assert got == {(r.subject_id, r.dose_index): pytest.approx(r.cmax) for r in engine.itertuples()}
    profiled = study.subjects[study.subjects["subject_id"].isin(engine["subject_id"])]["dose_level"]
    assert set(api["by_dose_level"]) == {"no dose level" if lvl is None or lvl != lvl else f"dose level {int(lvl)}" for lvl in profiled.astype(object).where(profiled.notna(), None)}
    assert api["rule"]["system"] and api["summary"]
    assert c.get("/api/kinetics/nca", params={"code": "NOPE"}).status_code == 422
    frag = c.get("/fragments/kinetics/nca", params={"page": 2})
    assert frag.status_code == 200 and 'id="nca-page"' in frag.text


# -- escalation with electronic signatures ----------------------------------------------------------
def test_escalation_page_shows_the_engine_recommendation_and_lazy_evidence(web):
    app, store, study = web
    c = _login(app, "inv")
    rec = study_overview(study).escalation.recommendation
    page = c.get("/escalation")
    assert page.status_code == 200
    shown = re.search(r'id="engine-recommendation"><strong>([^<]+)</strong>', page.text).group(1)
    assert shown == rec.action and rec.reason in page.text
    assert 'hx-get="/fragments/escalation/evidence"' in page.text and f"<q id=\"signature-meaning\">{SIGNATURE_MEANING}</q>" in page.text
    ev = c.get("/fragments/escalation/evidence")
    assert ev.status_code == 200 and all(str(escape(e.note)) in ev.text for e in study_overview(study).escalation.evidence if e.note)


def test_signed_decision_wrong_password_is_refused_and_audited_then_signed(web):
    app, store, study = web
    c = _login(app, "inv")
    csrf = _csrf(c)
    form = {"csrf": csrf, "decision": "stop", "dose_level": "2", "comment": "MTD at dose level 2: 2/3 DLT at level 3"}
    n = len(store.annotations(DEMO_STUDY_ID, kind=ESCALATION_KIND, history=True))
    bad = c.post("/escalation/decisions", data={**form, "password": "not-my-password"}, headers=HX)
    assert bad.status_code == 401 and "Signature refused" in bad.text and 'id="decision-panel"' in bad.text
    assert len(store.annotations(DEMO_STUDY_ID, kind=ESCALATION_KIND, history=True)) == n
    refused = store.audit_log(DEMO_STUDY_ID, action="signature.refused")
    assert refused and refused[-1]["actor"] == "inv" and refused[-1]["new"]["kind"] == ESCALATION_KIND
    ok = c.post("/escalation/decisions", data={**form, "password": USERS["inv"][2]}, headers=HX)
    assert ok.status_code == 200 and 'id="decision-recorded"' in ok.text
    dec = c.get("/api/escalation/decisions").json()[0]
    sig = dec["signature"]
    assert sig["printed_name"] == USERS["inv"][0] and sig["signed_by"] == "inv" and sig["meaning"] == SIGNATURE_MEANING
    assert sig["signed_at"].endswith("Z") and sig["record_hash"] == dec["content_hash"]  # UTC, linked to the record
    assert dec["value"]["decision"] == "stop" and dec["value"]["dose_level"] == 2 and dec["reason"] == form["comment"]
    rec = study_overview(study).escalation.recommendation
    assert dec["value"]["recommendation"]["action"] == rec.action and dec["value"]["recommendation"]["reason"] == rec.reason
    page = c.get("/escalation").text
    assert USERS["inv"][0] in page and form["comment"] in page
    audit = _login(app, "mon").get("/api/audit").json()
    signed = next(a for a in audit if a["action"] == "annotation.sign" and a["reason"] == form["comment"])
    assert signed["new"]["signature"]["meaning"] == SIGNATURE_MEANING
    # a decision needs its comment and a known dose level
    assert c.post("/escalation/decisions", data={**form, "comment": " ", "password": USERS["inv"][2]}).status_code == 422
    assert c.post("/escalation/decisions", data={**form, "decision": "escalate", "dose_level": "9", "password": USERS["inv"][2]}).status_code == 422


def test_wrong_signature_passwords_count_toward_the_login_limit(web):
    app, store, study = web
    address = "10.0.0.77"  # its own client address: the limiter counts per user and per address
    c = _login(app, "inv2", address)
    body = {"decision": "stay", "dose_level": 2, "comment": "stay at 2", "password": "wrong"}
    headers = {"X-CSRF-Token": _csrf(c)}
    codes = [c.post("/api/escalation/decisions", json=body, headers=headers).status_code for _ in range(5)]
    assert codes == [401] * 5
    right = c.post("/api/escalation/decisions", json={**body, "password": USERS["inv2"][2]}, headers=headers)
    assert right.status_code == 429  # even the right password waits
    fresh = _client(app, address)
    csrf = re.search(r'name="csrf" value="([^"]+)"', fresh.get("/login").text).group(1)
    assert fresh.post("/login", data={"username": "inv2", "password": USERS["inv2"][2], "csrf": csrf}).status_code == 429


# -- HTMX and navigation ----------------------------------------------------------------------------
def test_htmx_is_served_locally_with_its_license_and_pages_link_the_new_pages(web):
    app, store, study = web
    c = _login(app, "inv")
    js = c.get("/static/htmx.min.js")
    assert js.status_code == 200 and 'version:"2.' in js.text and "Zero-Clause BSD" in js.text.splitlines()[0]
    static = resources.files("cd7kit.web") / "static"
    assert (static / "htmx.min.js").is_file() and "Zero-Clause BSD" in (static / "htmx.LICENSE.txt").read_text()
    page = c.get("/kinetics").text
    assert '<script src="/static/htmx.min.js"></script>' in page and "hx-headers" in page
    for href in ("/screening", "/escalation", "/kinetics"):
        assert f'<a href="{href}">' in page
    assert c.get("/fragments/screening", params={"page": 1}).status_code == 200


def test_a_study_that_names_no_trial_has_no_screening(tmp_path):
    from cd7kit.data import Study
    from cd7kit.datasets.case_reports import case_report_tables

    store = open_store(str(tmp_path / "cases.sqlite"))
    store.save_study(Study.from_tables(**case_report_tables(), meta={"study_id": "CASES"}), actor="test", role="system")
    store.add_user("inv", *USERS["inv"], actor="test", actor_role="system")
    c = _login(create_app(store, "CASES"), "inv")
    page = c.get("/screening")
    assert page.status_code == 404 and "names no trial" in " ".join(_errors(page.text))
    assert c.get("/api/screening").status_code == 404
    assert c.get("/kinetics").status_code == 200  # the case reports have CAR kinetics
