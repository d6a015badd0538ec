"""The web app through its HTTP interface (FastAPI TestClient), on a real SQLite store."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cd7kit.data import Study
from cd7kit.datasets.case_reports import CASE1, case_report_tables
from cd7kit.store import open_store
from cd7kit.web import create_app

PASSWORDS = {"inv": "investigator-pw", "mon": "monitor-pw-1", "stat": "statistician-pw", "adm": "admin-password"}
ROLES = {"inv": "investigator", "mon": "monitor", "stat": "statistician", "adm": "admin"}


@pytest.fixture
def app(tmp_path):
    store = open_store(str(tmp_path / "web.sqlite"))
    study = Study.from_tables(**case_report_tables(), meta={"study_id": "CASES", "title": "Case reports"})
    store.save_study(study, actor="test", role="system")
    for u, pw in PASSWORDS.items():
        store.add_user(u, f"User {u}", ROLES[u], pw, actor="test", actor_role="system")
    return create_app(store, "CASES")


def _client(app) -> TestClient:
    return TestClient(app, base_url="https://testserver")  # secure cookies need https


def _login(client: TestClient, user: str, password: str | None = None):
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": user, "password": password or PASSWORDS[user], "csrf": csrf}, follow_redirects=False)


def test_pages_need_login(app):
    c = _client(app)
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.get("/api/study").status_code == 401


def test_login_sets_secure_httponly_samesite_cookie_and_overview_renders(app):
    c = _client(app)
    r = _login(c, "inv")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    page = c.get("/")
    assert page.status_code == 200 and "Swimmer plot" in page.text and CASE1 in page.text
    assert 'id="escalation"' in page.text and 'id="max-grades"' in page.text
    assert c.get("/api/study").json()["n_subjects"] == 2


def test_login_without_csrf_is_refused(app):
    c = _client(app)
    c.get("/login")
    r = c.post("/login", data={"username": "inv", "password": PASSWORDS["inv"], "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403


def test_login_attempts_are_rate_limited(app):
    c = _client(app)
    codes = [_login(c, "inv", "wrong-password").status_code for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    assert _login(c, "inv").status_code == 429  # even the right password waits


def test_timeline_and_adjudication_reach_the_audit_log(app):
    c = _client(app)
    _login(c, "inv")
    page = c.get(f"/subjects/{CASE1}")
    assert page.status_code == 200 and 'id="timeline"' in page.text
    # the grading engine's result and its evidence are on the page (case 1: ASTCT CRS 3, ICANS 1)
    assert re.search(r"CRS</strong>: maximum grade 3", page.text) and re.search(r"ICANS</strong>: maximum grade 1", page.text)
    grades = c.get(f"/api/subjects/{CASE1}/grades").json()
    assert grades["crs"][0]["value"] == 3 and grades["crs"][0]["evidence"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    row = int(re.search(r'name="event_row" value="(\d+)"', page.text).group(1))
    r = c.post(f"/subjects/{CASE1}/dlt", data={"event_row": row, "decision": "dlt", "reason": "grade 3 CRS beyond 72 h", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert "grade 3 CRS beyond 72 h" in c.get(f"/subjects/{CASE1}").text
    # the same form posted by HTMX gets the updated adjudication list back instead of a redirect
    r = c.post(f"/subjects/{CASE1}/dlt", data={"event_row": row, "decision": "not_dlt", "reason": "improved to grade 2 within 72 h", "csrf": csrf},
               headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 200 and r.text.count('<ul id="adjudications"') == 1 and "<html" not in r.text
    assert "not_dlt" in r.text and "improved to grade 2 within 72 h" in r.text
    m = _client(app)
    _login(m, "mon")
    audit = m.get("/api/audit").json()
    assert any(rec.get("reason") == "grade 3 CRS beyond 72 h" for rec in audit)
    assert "intact" in m.get("/audit").text


def test_monitor_cannot_write_and_cannot_forge(app):
    c = _client(app)
    _login(c, "mon")
    page = c.get(f"/subjects/{CASE1}")
    assert "Record</button>" not in page.text  # no adjudication form for a monitor
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post(f"/subjects/{CASE1}/dlt", data={"event_row": 1, "decision": "dlt", "reason": "x", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 403


def test_investigator_cannot_read_audit_and_statistician_sees_no_dates(app):
    c = _client(app)
    _login(c, "inv")
    assert c.get("/api/audit").status_code == 403
    s = _client(app)
    _login(s, "stat")
    subjects = s.get("/api/subjects").json()
    assert subjects and all("reference_date" not in r for r in subjects)
    inv_subjects = c.get("/api/subjects").json()
    assert any(r.get("reference_date") for r in inv_subjects)


def test_plotly_is_served_locally(app):
    c = _client(app)
    r = c.get("/static/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000


def test_outcomes_page_and_api(app):
    c = _client(app)
    _login(c, "stat")
    assert c.get("/outcomes").status_code == 200
    os_ = c.get("/api/outcomes/os").json()
    assert os_["value"]["n"] == 2 and os_["value"]["n_events"] == 2
    assert {e["reason"] for e in os_["evidence"]} == {"death"}
    assert c.get("/api/outcomes/xyz").status_code == 404
