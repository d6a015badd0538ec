"""grade_all routing of options, grading_overview for the demo, and docs listing every option."""

from __future__ import annotations

from pathlib import Path

import pytest
from _grading_build import iv, obs, study

from cd7kit.clinical import grade_all, grading_overview, split_options
from cd7kit.clinical.grading._common import option_specs
from cd7kit.errors import InputError


@pytest.fixture(scope="module")
def small():
    o = [obs("A", 1, "TEMP", 38.6), obs("A", 2, "ICE", 8.0), obs("A", 5, "ANC", 0.4), obs("A", 5, "PLT", 40.0), obs("A", 5, "HGB", 90.0, lln=130.0)]
    o += [obs("B", 1, "TEMP", 37.0), obs("B", 5, "ANC", 2.5, lln=1.8)]
    return study(o, [iv("A", 0, "car_infusion"), iv("A", 1, "vasopressor", agent="norepinephrine"), iv("B", 0, "car_infusion")])


def test_grading_overview(small):
    ov = grading_overview(small)
    assert ov["A"]["max_crs"] == 3 and ov["A"]["max_icans"] == 1
    assert ov["A"]["worst_cytopenia"]["neutrophil_count_decreased"] == 4
    assert ov["A"]["worst_cytopenia"]["platelet_count_decreased"] == 3
    assert ov["A"]["worst_cytopenia"]["anemia"] == 2
    assert ov["B"]["max_crs"] == 0 and ov["B"]["max_icans"] is None
    assert ov["B"]["worst_cytopenia"]["neutrophil_count_decreased"] == 0


def test_grade_all_routes_prefixed_options(small):
    res = grade_all(small, systems=["crs", "ctcae"], options={"crs.include_inotropes": "true", "ctcae.version": "6.0", "icans.capd_age_rule": "le12"})
    assert {r.rule.version for r in res["ctcae"]} == {"6.0"}
    assert res["crs"][0].rule.options["include_inotropes"] is True
    # a bare option owned by exactly one of the systems asked for is routed to it
    assert split_options({"version": "6.0"}, ["crs", "ctcae"])["ctcae"] == {"ctcae.version": "6.0"}
    with pytest.raises(InputError):
        split_options({"attributable": "IEC"}, ["crs", "icans"])  # ambiguous
    with pytest.raises(InputError):
        grade_all(small, systems=["crs"], subject_id="NOBODY")


def test_docs_name_every_option():
    text = (Path(__file__).resolve().parents[2] / "docs" / "grading.md").read_text(encoding="utf-8")
    for f in ("astct_crs", "astct_icans", "ctcae_options", "icaht", "dlt"):
        for name in option_specs(f):
            assert f"`{name}`" in text, (f, name)
