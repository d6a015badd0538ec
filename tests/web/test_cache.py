"""Per-version caching in the web app: what a request is served is always computed from the current stored
version, fragments cached across users still carry each user's own CSRF token, and the cache is bounded."""

from __future__ import annotations

import re
import threading
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cd7kit.data import Study
from cd7kit.datasets.case_reports import CASE1, case_report_tables
from cd7kit.store import open_store
from cd7kit.web import create_app
from cd7kit.web.app import CSRF_SLOT, SUBJECTS_PER_PAGE, StudyCache


@pytest.fixture
def store(tmp_path):
    st = open_store(str(tmp_path / "cache.sqlite"))
    study = Study.from_tables(**case_report_tables(), meta={"study_id": "CASES", "title": "Case reports"})
    st.save_study(study, actor="test", role="system")
    for u, role in (("inv", "investigator"), ("adm", "admin")):
        st.add_user(u, f"User {u}", role, f"{u}-password-1", actor="test", actor_role="system")
    return st


def _login(c: TestClient, user: str) -> None:
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"username": user, "password": f"{user}-password-1", "csrf": csrf}, follow_redirects=False).status_code == 303


def test_results_follow_the_stored_version(store):
    cache = StudyCache(store, "CASES")
    calls = []
    assert cache.result("n", lambda st: calls.append(1) or len(st.subjects)) == 2
    assert cache.result("n", lambda st: calls.append(1) or len(st.subjects)) == 2
    assert len(calls) == 1  # computed once per version
    study = store.load_study("CASES")
    store.save_study(study.restrict([CASE1]), actor="test", role="system", reason="drop a subject", new_version=True)
    assert cache.result("n", lambda st: len(st.subjects)) == 1  # a new version is recomputed
    assert cache.version == store.latest_version("CASES") == 2


def test_cache_is_bounded(store):
    cache = StudyCache(store, "CASES", max_results=3)
    for i in range(10):
        cache.result(f"k{i}", lambda st, i=i: i)
    assert len(cache._results) == 3
    assert cache.result("k9", lambda st: "recomputed") == 9  # the most recent survive
    assert cache.result("k0", lambda st: "recomputed") == "recomputed"


def test_concurrent_requests_compute_once(store):
    cache = StudyCache(store, "CASES")
    calls = []

    def slow(st: Study) -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    out: list[int] = []
    threads = [threading.Thread(target=lambda: out.append(cache.result("slow", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [42] * 8 and len(calls) == 1


def test_failed_computation_is_not_cached(store):
    cache = StudyCache(store, "CASES")

    def boom(st: Study) -> int:
        raise RuntimeError("engine failed")

    with pytest.raises(RuntimeError):
        cache.result("x", boom)
    assert cache.result("x", lambda st: 7) == 7


def test_cached_pages_carry_each_sessions_own_csrf_token(store):
    app = create_app(store, "CASES")
    tokens = []
    for user in ("inv", "adm"):
        c = TestClient(app, base_url="https://testserver")
        _login(c, user)
        page = c.get(f"/subjects/{CASE1}").text
        assert CSRF_SLOT not in page
        forms = set(re.findall(r'name="csrf" value="([^"]+)"', page))
        assert len(forms) == 1  # logout and every adjudication form carry the same, per-session token
        tokens.append(forms.pop())
        ev_row = re.search(r'name="event_row" value="(\d+)"', page).group(1)
        r = c.post(f"/subjects/{CASE1}/dlt", data={"event_row": ev_row, "decision": "not_dlt", "reason": f"checked by {user}", "csrf": tokens[-1]}, follow_redirects=False)
        assert r.status_code == 303
        assert f"checked by {user}" in c.get(f"/subjects/{CASE1}").text  # adjudications are not cached
    assert tokens[0] != tokens[1]


def test_subject_table_is_paginated(tmp_path):
    tables = case_report_tables()
    subj = tables["subjects"]
    n = SUBJECTS_PER_PAGE + 5
    extra = pd.DataFrame({"subject_id": [f"X{i:03d}" for i in range(n)], "age_years": 10.0, "sex": "F"})
    tables["subjects"] = pd.concat([subj, extra], ignore_index=True)
    st = open_store(str(tmp_path / "p.sqlite"))
    st.save_study(Study.from_tables(**tables, meta={"study_id": "MANY"}), actor="test", role="system")
    st.add_user("inv", "Inv", "investigator", "inv-password-1", actor="test", actor_role="system")
    c = TestClient(create_app(st, "MANY"), base_url="https://testserver")
    _login(c, "inv")
    first = c.get("/").text
    assert f"page 1 of 2 ({n + 2} subjects)" in first
    rows = lambda html: re.findall(r'<a href="/subjects/([^"]+)">', html)  # noqa: E731
    assert len(rows(first)) == SUBJECTS_PER_PAGE
    second = c.get("/fragments/subjects?page=2").text
    assert second.lstrip().startswith('<div id="subjects-page">') and "<html" not in second
    assert len(rows(second)) == 7 and not set(rows(first)) & set(rows(second))
    assert rows(c.get("/?page=99").text) == rows(c.get("/?page=2").text)  # past the end: the last page
    fig = c.get("/figures/swimmer.json")
    assert fig.status_code == 200 and "data" in fig.json()
