"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no browser download).

A real uvicorn server on a free loopback port, a real SQLite store with the demo study; log in, open the
overview and a subject timeline and check that the plotly figures drew, adjudicate a DLT and find it in the
audit log as a monitor, and be refused as a monitor; override an eligibility criterion (HTMX swaps the row
and the verdict), open the kinetics plot, record a dose-escalation decision with an electronic signature
(a wrong password first), and find both acts in the audit log.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from cd7kit.datasets import DEMO_STUDY_ID, load_demo_study
from cd7kit.datasets.case_reports import CASE1
from cd7kit.datasets.screening import INTENDED_VERDICTS
from cd7kit.store import open_store
from cd7kit.web import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser") / "web.sqlite"
    store = open_store(str(db))
    store.save_study(load_demo_study(), actor="test", role="system")
    store.add_user("inv", "Dr Investigator", "investigator", "investigator-pw", actor="test", actor_role="system")
    store.add_user("mon", "Ms Monitor", "monitor", "monitor-pw-1", actor="test", actor_role="system")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(store, DEMO_STUDY_ID), host="127.0.0.1", port=port, log_level="warning")
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


def test_override_and_signed_decision_reach_the_audit_log(server, browser):
    fail_i5 = next(s for s, (_, c) in INTENDED_VERDICTS.items() if c == "I5")
    page = _login(browser, server, "inv", "investigator-pw")
    page.goto(f"{server}/screening/{fail_i5}")
    assert "INELIGIBLE" in page.locator("#verdict-screening").inner_text()
    row = page.locator("#crit-screening-I5")
    row.locator("form.override select[name=result]").select_option("MET")
    row.locator("form.override input[name=reason]").fill("CD7 re-read centrally: 84% positive blasts")
    row.locator("form.override button").click()
    # HTMX swaps in the re-evaluated row, and the checkpoint verdict out of band
    page.wait_for_selector("#crit-screening-I5 .override-note >> text=CD7 re-read centrally")
    page.wait_for_selector("#verdict-screening >> text=overrides applied")
    assert "ELIGIBLE" in page.locator("#verdict-screening strong").inner_text()

    page.goto(f"{server}/kinetics")
    page.wait_for_selector("#kinetics[data-drawn='1'] .main-svg", timeout=20000)
    assert page.locator("#nca tbody tr").count() > 1

    page.goto(f"{server}/escalation")
    page.click("#evidence-panel summary")
    page.wait_for_selector("#escalation-evidence")  # loaded when the panel is opened
    form = page.locator("#decision-form")
    form.locator("select[name=decision]").select_option("stop")
    form.locator("select[name=dose_level]").select_option("2")
    form.locator("textarea[name=comment]").fill("Stop: MTD dose level 2 (2/3 DLT at level 3)")
    form.locator("input[name=password]").fill("not-the-password")
    form.locator("button").click()
    page.wait_for_selector("#decision-error >> text=Signature refused")
    form = page.locator("#decision-form")  # the panel was swapped; the comment is kept, the password is not
    assert form.locator("textarea[name=comment]").input_value() == "Stop: MTD dose level 2 (2/3 DLT at level 3)"
    form.locator("input[name=password]").fill("investigator-pw")
    form.locator("button").click()
    page.wait_for_selector("#decision-recorded")
    signature = page.locator("#decisions tbody tr").first.locator(".signature").inner_text()
    assert "Dr Investigator" in signature and "I approve this dose-escalation decision" in signature

    mon = _login(browser, server, "mon", "monitor-pw-1")
    mon.goto(f"{server}/audit")
    audit = mon.locator("#audit")
    assert audit.locator("text=CD7 re-read centrally: 84% positive blasts").count() >= 1
    assert audit.locator("tr", has_text="annotation.sign").filter(has_text="Stop: MTD dose level 2").count() == 1
    assert audit.locator("tr", has_text="signature.refused").count() >= 1
    mon.goto(f"{server}/escalation")
    assert mon.locator("#decision-form").count() == 0
