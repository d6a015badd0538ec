"""Reports: the subject report shows the engines' grades with evidence; the safety report prints to PDF."""

from __future__ import annotations

import re

import pytest

from cd7kit.data import Study
from cd7kit.datasets.case_reports import CASE1, case_report_tables
from cd7kit.report.build import write_report


@pytest.fixture(scope="module")
def cases() -> Study:
    return Study.from_tables(**case_report_tables(), meta={"study_id": "CASES", "title": "Case reports"})


def test_subject_report_html(cases, tmp_path):
    out = write_report(cases, tmp_path / "case1.html", "html", CASE1)
    html = out.read_text(encoding="utf-8")
    assert "Subject report: PAN-CASE1" in html
    assert re.search(r"<td>crs</td><td>3</td><td>ASTCT CRS", html)  # grade with its rule
    assert re.search(r"<td>icans</td><td>1</td>", html)
    assert html.count("data:image/png;base64,") == 1  # the timeline as a static image


def test_safety_report_pdf(cases, tmp_path):
    out = write_report(cases, tmp_path / "safety.pdf", "pdf")
    data = out.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 20_000
