"""Retake the dashboard screenshots in this folder from the embedded demo study.

    python docs/screenshots/take_screenshots.py [--chromium /usr/bin/chromium]

Starts ``cd7kit serve`` on a throw-away SQLite database (the demo study and a demo account are created at
start; the password is read from ``--json``), logs in with Playwright driving Debian's Chromium, waits for the
plotly figures to draw and writes ``overview.png`` and ``case1-timeline.png`` (case 1 of seed 004, Pan et al.,
a published case report; the rest of the demo cohort is simulated).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=1400)
    a = ap.parse_args()
    from cd7kit.datasets.case_reports import CASE1

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = Path(tempfile.mkdtemp()) / "demo.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "cd7kit", "serve", "--db", str(db), "--port", str(port), "--json"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        text = ""
        while True:  # --json prints one (indented) object before serving
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("cd7kit serve exited before printing its address")
            text += line
            try:
                info = json.loads(text)
                break
            except json.JSONDecodeError:
                continue
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=a.chromium, args=ARGS)
            page = browser.new_context(viewport={"width": a.width, "height": 900}).new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=username]", info["demo_account"]["username"])
            page.fill("input[name=password]", info["demo_account"]["password"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/", timeout=120_000)
            page.wait_for_selector("#swimmer[data-drawn='1'] .main-svg", timeout=60_000)
            page.screenshot(path=str(HERE / "overview.png"), full_page=True)
            page.goto(f"{base}/subjects/{CASE1}")
            page.wait_for_selector("#timeline[data-drawn='1'] .main-svg", timeout=60_000)
            page.screenshot(path=str(HERE / "case1-timeline.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {HERE / 'overview.png'} and {HERE / 'case1-timeline.png'}")


if __name__ == "__main__":
    main()
