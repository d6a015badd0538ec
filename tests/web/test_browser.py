"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no browser download).

A real uvicorn server on a free loopback port, a real SQLite store; log in, open the overview and a
subject timeline and check that the plotly figures drew, adjudicate a DLT and find it in the audit log as
a monitor, and be refused as a monitor.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from cd7kit.data import Study
from cd7kit.datasets.case_reports import CASE1, case_report_tables
from cd7kit.store import open_store
from cd7kit.web import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser") / "web.sqlite"
    store = open_store(str(db))
    store.save_study(Study.from_tables(**case_report_tables(), meta={"study_id": "CASES", "title": "Case reports"}), actor="test", role="system")
    store.add_user("inv", "Dr Investigator", "investigator", "investigator-pw", actor="test", actor_role="system")
    store.add_user("mon", "Ms Monitor", "monitor", "monitor-pw-1", actor="test", actor_role="system")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(store, "CASES"), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(browser, base: str, user: str, password: str):
    page = browser.new_context().new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_investigator_flow_and_monitor_refusal(server, browser):
    page = _login(browser, server, "inv", "investigator-pw")
    assert "Swimmer plot" in page.content()
    page.wait_for_selector("#swimmer[data-drawn='1'] .main-svg", timeout=20000)
    page.click(f"#subjects a:has-text(\"{CASE1}\")")
    page.wait_for_selector("#timeline[data-drawn='1'] .main-svg", timeout=20000)
    assert page.locator("#timeline .trace").count() > 5  # CAR, temperature, treatments ... drew
    form = page.locator("form.adjudicate").first
    form.locator("select[name=decision]").select_option("dlt")
    form.locator("input[name=reason]").fill("grade 3 CRS not improving within 72 h")
    form.locator("button").click()
    page.wait_for_selector("#adjudications >> text=grade 3 CRS not improving within 72 h")

    mon = _login(browser, server, "mon", "monitor-pw-1")
    mon.goto(f"{server}/audit")
    assert "intact" in mon.locator("#verification").inner_text()
    assert mon.locator("#audit >> text=grade 3 CRS not improving within 72 h").count() >= 1
    mon.goto(f"{server}/subjects/{CASE1}")
    assert mon.locator("form.adjudicate").count() == 0  # no write form for a monitor
    # a forged write (the monitor's own session and CSRF token) is refused by the server
    token = mon.locator("input[name=csrf]").first.get_attribute("value")
    resp = mon.request.post(f"{server}/subjects/{CASE1}/dlt", form={"event_row": "1", "decision": "dlt", "reason": "x", "csrf": token})
    assert resp.status == 403
