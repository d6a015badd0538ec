"""REDCap flat export + YAML mapping: the shipped sample, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cd7kit.errors import InputError
from cd7kit.io import read_study
from cd7kit.io.redcap import RedcapMapping, read_redcap

DATA = Path(__file__).parent / "data" / "redcap"
EXPORT, MAPPING = DATA / "export.csv", DATA / "mapping.yaml"


def _export(tmp_path: Path, edit=None) -> Path:
    df = pd.read_csv(EXPORT, dtype=str, keep_default_na=False)
    if edit is not None:
        df = edit(df)
    out = tmp_path / "export.csv"
    df.to_csv(out, index=False)
    return out


def _set(row: int, col: str, val: str):
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row - 2, col] = val
        return df

    return edit


def _mapping(tmp_path: Path, old: str, new: str) -> Path:
    text = MAPPING.read_text(encoding="utf-8")
    assert old in text
    out = tmp_path / "mapping.yaml"
    out.write_text(text.replace(old, new), encoding="utf-8")
    return out


def _where(err: InputError) -> set[tuple[str, int | None, str | None]]:
    return {(Path(p.file).name if p.file else "", p.row, p.column) for p in err.problems}


def test_sample_export_imports():
    s = read_study(EXPORT, format="redcap", mapping=MAPPING)
    assert s.study_id == "CD7-REDCAP-DEMO"
    subj = s.subjects.set_index("subject_id")
    assert list(subj.index) == ["101", "102", "103"]
    assert subj.loc["101", "dose_level"] == 2 and subj.loc["101", "diagnosis"] == "T-ALL" and subj.loc["101", "reference_date"] == "2025-05-12"
    assert subj.loc["103", "status"] == "screen_failure"
    obs = s.observations
    temp = obs[(obs["code"] == "TEMP") & (obs["subject_id"] == "101")].sort_values("day")
    assert list(temp["day"]) == pytest.approx([-2 + 8 / 24, 8 + 18 / 24])  # dates + times -> fractional days
    assert temp["value"].iloc[1] == pytest.approx((103.1 - 32) * 5 / 9)  # degF -> degC
    anc = obs[obs["code"] == "ANC"].sort_values("day")
    assert list(anc["value"]) == pytest.approx([2.1, 0.09])  # /uL -> 10^9/L
    il6 = obs[(obs["code"] == "IL6") & (obs["day"] == 9)].iloc[0]
    assert il6["blq"] and il6["lloq"] == 1.5 and il6["uln"] == 7
    loc = obs[obs["code"] == "LOC"].set_index("subject_id")
    assert loc.loc["101", "value"] == 1 and loc.loc["101", "value_text"] == "awakens to voice"
    assert obs[obs["code"] == "CAPD"].iloc[0]["value"] == 11
    assert "record 101" in obs["source"].iloc[0] and "field=vs_temp" in obs["source"].iloc[0]
    iv = s.interventions.set_index("agent")
    assert list(s.infusions("101")["start_day"]) == pytest.approx([10 / 24, 7.0])
    assert iv.loc["tocilizumab", "kind"] == "tocilizumab" and iv.loc["paracetamol", "kind"] == "antipyretic"
    vaso = s.interventions[s.interventions["kind"] == "vasopressor"]
    assert set(vaso["agent"]) == {"norepinephrine", "vasopressin"} and vaso["end_day"].notna().all()
    ox = s.interventions[s.interventions["kind"] == "oxygen"].iloc[0]
    assert (ox["device"], ox["flow_l_min"], ox["indication"]) == ("simple_facemask", 10.0, "hypoxia")
    ev = s.events.set_index("kind")
    assert ev.loc["crs", "grade"] == 3 and ev.loc["crs", "attribution"] == "related" and ev.loc["crs", "end_day"] == 14
    assert ev.loc["neuro", "term"] == "seizure"  # checkbox neuro_signs___1
    assert ev.loc["imaging", "term"] == "focal cerebral oedema" and ev.loc["imaging", "details"] == "MRI"
    assert ev.loc["response", "term"] == "CR" and ev.loc["response", "details"] == "BM"


def test_min_complete_skips_and_counts_unfinished_forms(tmp_path):
    m = _mapping(tmp_path, "min_complete: 0", "min_complete: 2")
    s = read_redcap(EXPORT, m)
    assert s.meta["redcap_skipped_incomplete"] == 1  # the second labs instance is Unverified (1)
    assert (s.observations["code"] == "CRP").sum() == 1


def test_field_not_in_mapping(tmp_path):
    def add(df):
        df["lab_ferritin"] = ""
        df["neuro_signs___9"] = "0"
        return df

    with pytest.raises(InputError) as ei:
        read_redcap(_export(tmp_path, add), MAPPING)
    assert _where(ei.value) == {("export.csv", 1, "lab_ferritin")}  # neuro_signs___9 is a checkbox code: checked per row


def test_ticked_checkbox_code_not_in_mapping(tmp_path):
    def add(df):
        df["neuro_signs___9"] = ""
        df.loc[7, "neuro_signs___9"] = "1"
        return df

    with pytest.raises(InputError) as ei:
        read_redcap(_export(tmp_path, add), MAPPING)
    assert _where(ei.value) == {("export.csv", 9, "neuro_signs___9")}


def test_mapped_field_missing_from_export(tmp_path):
    with pytest.raises(InputError) as ei:
        read_redcap(_export(tmp_path, lambda df: df.drop(columns=["lab_il6"])), MAPPING)
    (p,) = ei.value.problems
    assert (Path(p.file).name, p.column) == ("mapping.yaml", "lab_il6")


@pytest.mark.parametrize(
    ("row", "field", "value", "hint"),
    [
        (14, "o2_device", "9", ("expected", "one of ['1'")),  # a coded value the mapping does not list: the codes it does
        (7, "lab_date", "10/05/2025", ("message", "ISO")),  # a date that is not ISO 8601 (day and month are ambiguous)
    ],
    ids=["coded-value-not-in-mapping", "date-not-iso"],
)
def test_one_bad_cell_is_one_problem_naming_it(tmp_path, row, field, value, hint):
    with pytest.raises(InputError) as ei:
        read_redcap(_export(tmp_path, _set(row, field, value)), MAPPING)
    (p,) = ei.value.problems
    assert (Path(p.file).name, p.row, p.column, p.value) == ("export.csv", row, field, value)
    assert hint[1] in getattr(p, hint[0])


def test_unknown_code_in_mapping(tmp_path):
    m = _mapping(tmp_path, "code: CRP", "code: CRPX")
    with pytest.raises(InputError) as ei:
        RedcapMapping.load(m)
    (p,) = ei.value.problems
    assert p.column == "observations[1].fields.lab_crp.code" and p.value == "CRPX"


def test_unconvertible_unit_in_mapping(tmp_path):
    m = _mapping(tmp_path, "lab_anc: {code: ANC, unit: /uL", "lab_anc: {code: ANC, unit: mmHg")
    with pytest.raises(InputError) as ei:
        read_redcap(EXPORT, m)
    assert _where(ei.value) == {("export.csv", 7, "lab_anc"), ("export.csv", 8, "lab_anc")}


def test_all_problems_of_the_export_together(tmp_path):
    def edits(df):
        df.loc[4, "vs_temp"] = "hot"  # frame index 4 is row 6 of the file
        df.loc[5, "lab_crp"] = "12,4"
        df.loc[13, "ae_grade"] = "7"
        df.loc[2, "sex"] = "1"  # same as before: no problem
        df.loc[16, "sex"] = "9"
        return df

    with pytest.raises(InputError) as ei:
        read_redcap(_export(tmp_path, edits), MAPPING)
    where = _where(ei.value)
    assert {("export.csv", 6, "vs_temp"), ("export.csv", 7, "lab_crp"), ("export.csv", 18, "sex"), ("export.csv", 15, "ae_grade")} <= where
    assert all(p.row and p.column and p.expected for p in ei.value.problems)


def test_redcap_needs_a_mapping():
    with pytest.raises(InputError) as ei:
        read_study(EXPORT, format="redcap")
    assert "mapping" in ei.value.problems[0].message
