"""SDTM reader/writer: the shipped sample (CSV and XPT), round trips, and every kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cd7kit.data import Study
from cd7kit.errors import InputError
from cd7kit.io import read_study, write_study
from cd7kit.io.sdtm import SdtmOptions, read_sdtm, sdtm_tables, uncarried, write_sdtm

SDTM_CSV = Path(__file__).parent / "data" / "sdtm"

KEYS = {
    "subjects": ["subject_id"],
    "observations": ["subject_id", "day", "code"],
    "interventions": ["subject_id", "start_day", "kind"],
    "events": ["subject_id", "day", "kind"],
}


def _comparable(study: Study, table: str) -> pd.DataFrame:
    df = study.table(table).drop(columns=["row_id"], errors="ignore")
    if table == "observations":
        df = df.drop(columns=["datetime"])  # filled from --DTC on reading (see docs)
    df = df.sort_values(KEYS[table], kind="stable").reset_index(drop=True)
    return df.astype(object).where(df.notna(), None)


def assert_same_study(a: Study, b: Study) -> None:
    for t in KEYS:
        pd.testing.assert_frame_equal(_comparable(a, t), _comparable(b, t), check_dtype=False, obj=t)


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "sdtm"
    shutil.copytree(SDTM_CSV, dst)
    return dst


def _edit(folder: Path, name: str, row: int, column: str, value: str) -> None:
    """Set a cell; ``row`` counts as a spreadsheet does (header is row 1)."""
    df = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    df.loc[row - 2, column] = value
    df.to_csv(folder / name, index=False)


def _where(err: InputError) -> set[tuple[str, int | None, str | None]]:
    return {(Path(p.file).name if p.file else "", p.row, p.column) for p in err.problems}


# --- the sample --------------------------------------------------------------------------------


def test_sample_csv_maps_every_domain():
    s = read_study(SDTM_CSV, format="sdtm")
    subj = s.subjects.set_index("subject_id")
    assert s.study_id == "CD7NK-01"
    assert subj.loc["CD7NK-01-001", "dose_level"] == 1 and subj.loc["CD7NK-01-002", "dose_level"] == 2
    assert subj.loc["CD7NK-01-001", "dose_cells_per_kg"] == 4e7
    assert subj.loc["CD7NK-01-002", "age_years"] == pytest.approx(15.5)  # 186 MONTHS
    assert subj.loc["CD7NK-01-003", "status"] == "screen_failure" and pd.isna(subj.loc["CD7NK-01-003", "dose_level"])
    # day 0 is the first CAR infusion from EX, not RFXSTDTC (the lymphodepletion start)
    assert subj.loc["CD7NK-01-001", "reference_date"] == "2025-03-10"
    obs = s.observations
    one = obs[obs["subject_id"] == "CD7NK-01-001"]

    def row(code: str, day: float) -> pd.Series:
        r = one[(one["code"] == code) & (one["day"] == day)]
        assert len(r) == 1, (code, day)
        return r.iloc[0]

    # VSDY 6 without VSDTC, RFSTDTC 2025-03-05: SDTM day 6 = 2025-03-10 = cd7kit day 0 (no copy of DY)
    assert row("HR", 0.0)["value"] == 150
    assert row("TEMP", 1.3125)["value"] == pytest.approx((102.9 - 32) * 5 / 9)  # ORRES in F, 07:30
    creat = row("CREAT", -6.0)
    assert creat["value"] == pytest.approx(44 / 88.42, rel=1e-3) and creat["uln"] == pytest.approx(62 / 88.42, rel=1e-3)
    crp = row("CRP", 2.0)
    assert crp["value"] == pytest.approx(85.0) and crp["uln"] == pytest.approx(5.0)  # mg/dL -> mg/L
    assert row("BM_BLASTS", -9.0)["value"] == 82 and row("PB_BLASTS", -9.0)["value"] == 0  # LBSPEC breaks the tie
    dip = row("UPROT_DIP", 10.0)
    assert dip["value"] == 2 and dip["value_text"] == "2+"
    car = one[one["code"] == "CAR_COPIES"].sort_values("day")
    assert list(car["blq"]) == [True, False, True] and list(car["lloq"]) == [50.0, 50.0, 50.0]
    assert row("CAR_CELLS", 7.0)["value"] == pytest.approx(35.2)
    assert row("CD7_BLASTS", -9.0)["specimen"] == "BM"
    iv = s.interventions[s.interventions["subject_id"] == "CD7NK-01-001"].set_index("agent")
    assert iv.loc["FLUDARABINE", "kind"] == "lymphodepletion" and iv.loc["FLUDARABINE", "start_day"] == -5
    assert iv.loc["ACTEMRA", "kind"] == "tocilizumab"  # by CMDECOD
    assert iv.loc["NORADRENALINE", "kind"] == "vasopressor"
    assert iv.loc["NORADRENALINE", "start_day"] == pytest.approx(3.25) and iv.loc["NORADRENALINE", "end_day"] == pytest.approx(4.75)
    assert iv.loc["ACETAMINOPHEN", "kind"] == "antipyretic" and iv.loc["DEXAMETHASONE", "kind"] == "corticosteroid"
    ox = iv.loc["OXYGEN"]
    assert ox["kind"] == "oxygen" and ox["flow_l_min"] == 10 and ox["device"] == "simple_facemask" and ox["indication"] == "HYPOXIA"
    assert iv.loc["ONDANSETRON", "kind"] == "other"
    assert len(s.infusions("CD7NK-01-001")) == 2
    assert s.interventions.set_index("agent").loc["PACKED RED BLOOD CELLS", "kind"] == "transfusion"  # CMCAT
    ev = s.events.set_index(["subject_id", "kind"])
    crs = ev.loc[("CD7NK-01-001", "crs")]
    assert crs["grade"] == 3 and crs["day"] == 1 and crs["end_day"] == 6 and crs["attribution"] == "RELATED"
    assert ev.loc[("CD7NK-01-001", "icans"), "grade"] == 1
    assert ev.loc[("CD7NK-01-001", "infection"), "term"] == "Cytomegalovirus viraemia"
    assert ev.loc[("CD7NK-01-001", "neuro"), "term"] == "Seizure"  # AECAT NEURO
    assert ev.loc[("CD7NK-01-002", "ae"), "day"] == -4
    resp = ev.loc[("CD7NK-01-001", "response")]
    assert resp["term"] == "CR" and resp["details"] == "NCCN ALL" and resp["day"] == 28


def test_sample_xpt_gives_the_same_study(sdtm_xpt):
    assert sorted(p.suffix for p in sdtm_xpt.iterdir()) == [".xpt"] * len(list(SDTM_CSV.glob("*.csv")))
    from_xpt = read_sdtm(sdtm_xpt)
    from_csv = read_sdtm(SDTM_CSV)
    assert_same_study(from_csv, from_xpt)
    assert len(from_xpt.observations) == 21


def test_dose_level_pattern_is_configurable(tmp_path):
    folder = _copy(tmp_path)
    for col, val in (("ARMCD", "COHORT-3"), ("ACTARMCD", "COHORT-3"), ("ARM", "Cohort three"), ("ACTARM", "Cohort three")):
        _edit(folder, "dm.csv", 2, col, val)
    assert pd.isna(read_sdtm(folder).subjects.set_index("subject_id").loc["CD7NK-01-001", "dose_level"])
    mapping = tmp_path / "map.yaml"
    mapping.write_text("sdtm:\n  dose_level_pattern: 'COHORT-(?P<level>\\d+)'\n  dose_level_columns: [ARMCD]\n", encoding="utf-8")
    levels = read_study(folder, "sdtm", mapping).subjects.set_index("subject_id")["dose_level"]
    assert levels["CD7NK-01-001"] == 3 and pd.isna(levels["CD7NK-01-002"])  # DL2 does not match this pattern
    _edit(folder, "dm.csv", 2, "ARMCD", "COHORT-X")
    with pytest.raises(InputError) as ei:
        read_sdtm(folder, SdtmOptions(dose_level_pattern=r"COHORT-(?P<level>\w+)", dose_level_columns=("ARMCD",)))
    assert _where(ei.value) == {("dm.csv", 2, "ARMCD")}
    mapping.write_text("dose_levels: 1\n", encoding="utf-8")
    with pytest.raises(InputError) as ei:
        SdtmOptions.from_yaml(mapping)
    assert ei.value.problems[0].column == "dose_levels"
    with pytest.raises(InputError):
        read_study(folder, "sdtm", tmp_path / "no-such-mapping.yaml")


def test_sponsor_test_codes_by_mapping(tmp_path):
    folder = _copy(tmp_path)
    _edit(folder, "lb.csv", 4, "LBTESTCD", "IL6X")
    with pytest.raises(InputError):
        read_sdtm(folder)
    s = read_sdtm(folder, SdtmOptions(tests={"LB.IL6X": "IL6"}))
    assert (s.observations["code"] == "IL6").sum() == 2


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xpt"])
def test_round_trip_study_sdtm_study(tmp_path, rich_study, fmt):
    write_sdtm(rich_study, tmp_path / fmt, fmt)
    assert (tmp_path / fmt / f"dm.{fmt}").exists() and (tmp_path / fmt / f"suppdm.{fmt}").exists()
    back = read_sdtm(tmp_path / fmt)
    assert back.study_id == "RT"
    assert_same_study(rich_study, back)


def test_round_trip_through_read_and_write_study(tmp_path, rich_study):
    write_study(rich_study, tmp_path / "x", format="sdtm-xpt")
    assert_same_study(rich_study, read_study(tmp_path / "x", format="sdtm"))


def test_round_trip_without_dates_uses_study_days(tmp_path, tiny_study):
    """No reference dates: --DY carries the days (shifted: no day 0), fractions of a day are lost."""
    write_sdtm(tiny_study, tmp_path / "t")
    vs = pd.read_csv(tmp_path / "t" / "vs.csv")
    assert list(vs["VSDY"]) == [-5, 2]  # cd7kit days -5 and 1
    assert vs["VSDTC"].isna().all()
    back = read_sdtm(tmp_path / "t")
    for t in ("subjects", "observations", "events"):
        pd.testing.assert_frame_equal(_comparable(tiny_study, t), _comparable(back, t), check_dtype=False, obj=t)
    iv = back.interventions.sort_values("start_day")
    assert list(iv["start_day"]) == [-4.0, 0.0, 2.0]  # 2.25 -> SDTM day 3 -> day 2: DY has no time


def test_writer_dy_has_no_day_zero_and_follows_rfstdtc(rich_study):
    t = sdtm_tables(rich_study)
    dm = t["DM"].set_index("USUBJID")
    assert dm.loc["S1", "RFSTDTC"] == "2021-05-27"  # lymphodepletion start, day -4
    assert dm.loc["S3", "ARMNRS"] == "SCREEN FAILURE" and pd.isna(dm.loc["S3", "ARMCD"])
    vs = t["VS"]
    assert 0 not in set(vs["VSDY"])
    first = vs[vs["USUBJID"] == "S1"].iloc[0]
    assert first["VSDTC"] == "2021-05-26" and first["VSDY"] == -1  # day -5 is the day before RFSTDTC
    assert vs[vs["USUBJID"] == "S1"].iloc[1]["VSDTC"] == "2021-06-01T06:00"
    pc = t["PC"].iloc[0]
    assert pc["PCORRES"] == "<50" and pd.isna(pc["PCSTRESN"]) and pc["PCLLOQ"] == 50
    assert set(t["SUPPCM"]["QNAM"]) >= {"DEVICE"}


def test_uncarried_lists_codes_without_an_sdtm_findings_domain(tiny_study):
    obs = tiny_study.observations.copy()
    extra = pd.DataFrame({"subject_id": ["S1"], "day": [5.0], "code": ["EMD_STATUS"], "value_text": ["present"], "unit": ["1"]})
    s = tiny_study.replace(observations=pd.concat([obs, extra], ignore_index=True))
    assert uncarried(s) == {"observations": [int(s.observations["row_id"].max())]}
    assert uncarried(tiny_study) == {}


# --- bad input: every problem names file, row, column; all problems come together -------------------


@pytest.mark.parametrize(
    ("file", "row", "column", "value", "where", "hint"),
    [
        ("lb.csv", 3, "LBTESTCD", "NOSUCH", ("lb.csv", 3, "LBTESTCD"), ("expected", "CRP")),  # the known codes are listed
        ("ae.csv", 2, "AESTDTC", "11/03/2025", ("ae.csv", 2, "AESTDTC"), ("expected", "ISO 8601")),
        ("vs.csv", 6, "VSDY", "0", ("vs.csv", 6, "VSDY"), ("message", "day 0")),  # SDTM --DY has no day 0
        ("lb.csv", 3, "LBDY", "9", ("lb.csv", 3, "LBDY"), ("expected", "8")),  # contradicts LBDTC and RFSTDTC
        ("cm.csv", 4, "USUBJID", "CD7NK-01-999", ("cm.csv", 4, "USUBJID"), ("expected", "DM")),  # not in DM
        ("cm.csv", 6, "CMDOSE", "100", ("cm.csv", 6, "CMDOSE"), ("expected", "80")),  # 100 L/min O2: a schema problem, traced back
    ],
    ids=["unknown-test-code", "date-not-iso", "sdtm-day-zero", "dy-contradicts-date", "subject-not-in-dm", "schema-problem"],
)
def test_one_bad_cell_is_one_problem_naming_it(tmp_path, file, row, column, value, where, hint):
    folder = _copy(tmp_path)
    _edit(folder, file, row, column, value)
    with pytest.raises(InputError) as ei:
        read_sdtm(folder)
    (p,) = ei.value.problems
    assert (Path(p.file).name, p.row, p.column) == where
    assert str(p.value) == value or p.value == pytest.approx(float(value))  # the value as written (a number once parsed)
    assert hint[1] in (getattr(p, hint[0]) or "")


@pytest.mark.parametrize(
    ("file", "row", "column", "value", "where", "expected"),
    [
        ("lb.csv", 3, "LBSTRESU", "mmHg", ("lb.csv", 3, "LBSTRESU"), "mg/L"),  # unconvertible unit
        ("vs.csv", 7, "VSSTRESU", "F", ("vs.csv", 7, "VSSTRESN"), ".."),  # 38.4 read as degF is 3.6 degC: implausible value
    ],
    ids=["unconvertible-unit", "implausible-value"],
)
def test_unit_problems_name_the_source_column(tmp_path, file, row, column, value, where, expected):
    folder = _copy(tmp_path)
    _edit(folder, file, row, column, value)
    with pytest.raises(InputError) as ei:
        read_sdtm(folder)
    assert where in _where(ei.value)
    assert any(expected in (p.expected or "") for p in ei.value.problems if (Path(p.file).name, p.row, p.column) == where)


def test_missing_required_column(tmp_path):
    folder = _copy(tmp_path)
    df = pd.read_csv(folder / "ae.csv", dtype=str).drop(columns=["AEDECOD"])
    df.to_csv(folder / "ae.csv", index=False)
    with pytest.raises(InputError) as ei:
        read_sdtm(folder)
    assert _where(ei.value) == {("ae.csv", 1, "AEDECOD")}


def test_unknown_ex_category_and_grade(tmp_path):
    folder = _copy(tmp_path)
    _edit(folder, "ex.csv", 2, "EXCAT", "SOMETHING")
    _edit(folder, "ex.csv", 2, "EXTRT", "STUDY DRUG")
    _edit(folder, "ae.csv", 3, "AETOXGR", "7")
    with pytest.raises(InputError) as ei:
        read_sdtm(folder)
    assert _where(ei.value) == {("ex.csv", 2, "EXCAT"), ("ae.csv", 3, "AETOXGR")}


def test_all_problems_of_all_files_together(tmp_path):
    folder = _copy(tmp_path)
    _edit(folder, "lb.csv", 2, "LBTESTCD", "NOSUCH")
    _edit(folder, "lb.csv", 3, "LBSTRESU", "mmHg")
    _edit(folder, "lb.csv", 5, "LBDTC", "2025/03/12")
    _edit(folder, "lb.csv", 6, "LBSTRESN", "high")
    _edit(folder, "vs.csv", 6, "VSDY", "0")
    _edit(folder, "dm.csv", 3, "SEX", "X")
    with pytest.raises(InputError) as ei:
        read_sdtm(folder)
    where = _where(ei.value)
    assert {("lb.csv", 2, "LBTESTCD"), ("lb.csv", 3, "LBSTRESU"), ("lb.csv", 5, "LBDTC"), ("lb.csv", 6, "LBSTRESN")} <= where
    assert ("vs.csv", 6, "VSDY") in where and ("dm.csv", 3, "SEX") in where
    assert all(p.file and p.row and p.column and p.expected for p in ei.value.problems)


def test_xpt_problems_name_the_record(tmp_path, sdtm_xpt):
    folder = tmp_path / "x"
    shutil.copytree(sdtm_xpt, folder)
    import pyreadstat

    df, _ = pyreadstat.read_xport(str(folder / "vs.xpt"))
    df.loc[4, "VSDY"] = 0.0
    pyreadstat.write_xport(df, str(folder / "vs.xpt"), table_name="VS", file_format_version=5)
    with pytest.raises(InputError) as ei:
        read_sdtm(folder)
    assert _where(ei.value) == {("vs.xpt", 5, "VSDY")}  # XPT rows are records 1, 2, ...


def test_missing_dm_and_duplicate_domain(tmp_path):
    folder = _copy(tmp_path)
    (folder / "dm.csv").unlink()
    (folder / "rs.xpt").write_bytes(b"")
    with pytest.raises(InputError) as ei:
        read_sdtm(folder)
    msgs = [p.message for p in ei.value.problems]
    assert any("DM is missing" in m for m in msgs) and any("given twice" in m for m in msgs)


def test_dates_absent_day_zero_from_the_infusion_study_day(tmp_path):
    """Only --DY: day 0 is the first CAR infusion's EXSTDY, whatever RFSTDTC was (lymphodepletion start)."""
    folder = _copy(tmp_path)
    for name in ("dm.csv", "ex.csv", "vs.csv", "lb.csv", "pc.csv", "cp.csv", "cm.csv", "ae.csv", "rs.csv"):
        df = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        df = df.drop(columns=[c for c in df.columns if c.endswith("DTC")])
        df.to_csv(folder / name, index=False)
    cm = pd.read_csv(folder / "cm.csv", dtype=str, keep_default_na=False)
    cm["CMSTDY"] = ["7", "8", "9", "9", "9", "1", "20"]
    cm.to_csv(folder / "cm.csv", index=False)
    s = read_sdtm(folder)
    assert s.subjects["reference_date"].isna().all()
    one = s.observations[s.observations["subject_id"] == "CD7NK-01-001"]
    assert one.loc[one["code"] == "HR", "day"].item() == 0.0  # VSDY 6 = EXSTDY of the first infusion
    assert one.loc[one["code"] == "TEMP", "day"].tolist() == [-7.0, 1.0]  # VSDY -2 and 7
    assert s.infusions("CD7NK-01-001")["start_day"].tolist() == [0.0, 7.0]
    iv = s.interventions[s.interventions["subject_id"] == "CD7NK-01-001"].set_index("agent")
    assert iv.loc["FLUDARABINE", "start_day"] == -5.0 and iv.loc["NORADRENALINE", "start_day"] == 3.0


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "xpt"])
def test_demo_study_round_trip(tmp_path, fmt):
    """The whole demo study (case reports + synthetic trial) through SDTM and back, less what SDTM cannot carry."""
    from cd7kit.datasets import load_demo_study

    study = load_demo_study()
    skip = set(uncarried(study).get("observations", []))
    write_sdtm(study, tmp_path / fmt, fmt)
    back = read_sdtm(tmp_path / fmt)
    assert_same_study(study.replace(observations=study.observations[~study.observations["row_id"].isin(skip)]), back)


# --- IE: inclusion/exclusion criteria not met (SDTMIG v3.4 section 6.3.4), from the eligibility engine ----


@pytest.fixture(scope="module")
def demo_study() -> Study:
    from cd7kit.datasets import load_demo_study

    return load_demo_study()


def _ie(study: Study, tmp_path: Path, fmt: str = "sdtm", **kw) -> pd.DataFrame | None:
    out = write_study(study, tmp_path / fmt, format=fmt, **kw)
    path = out / ("ie.csv" if fmt == "sdtm" else "ie.xpt")
    if not path.exists():
        return None
    if fmt == "sdtm":
        return pd.read_csv(path, dtype={"IESEQ": int}, keep_default_na=False)
    import pyreadstat

    return pyreadstat.read_xport(str(path))[0]


@pytest.mark.parametrize("fmt", ["sdtm", "sdtm-xpt"])
def test_ie_has_exactly_the_demo_screen_failures(tmp_path, demo_study, fmt):
    """The demo's three screen failures (-04 I5, -08 I10, -11 E11), one record each; the enrolled children
    (eligible with the study's attestations) and the case-report patients (not trial subjects) have none."""
    from cd7kit.clinical.eligibility import load_criteria
    from cd7kit.datasets.screening import SCREEN_FAILURES

    criteria = load_criteria(demo_study.meta["trial"])
    ie = _ie(demo_study, tmp_path, fmt)
    assert ie is not None
    got = {(r.USUBJID, r.IETESTCD, r.IECAT, r.IEORRES, r.IESTRESC) for r in ie.itertuples()}
    want = set()
    for sid, cid in SCREEN_FAILURES.items():
        cat = criteria.get(cid).category
        yn = "N" if cat == "inclusion" else "Y"  # an inclusion criterion not met / an exclusion criterion met
        want.add((sid, cid, cat.upper(), yn, yn))
    assert got == want and len(ie) == 3
    assert {("NCT06849401-04", "N"), ("NCT06849401-11", "Y")} <= {(r.USUBJID, r.IEORRES) for r in ie.itertuples()}
    assert (ie["STUDYID"] == demo_study.study_id).all() and (ie["DOMAIN"] == "IE").all() and list(ie["IESEQ"]) == [1, 1, 1]
    texts = {r.IETESTCD: r.IETEST for r in ie.itertuples()}
    assert texts["E11"] == " ".join(criteria.get("E11").text.split()) and all(len(t) <= 200 for t in texts.values())
    assert all(d != 0 and d == int(d) for d in ie["IEDY"])  # SDTM study days: integers, no day 0


def test_no_trial_no_ie_domain(tmp_path, demo_study, rich_study):
    no_trial = demo_study.replace(meta={k: v for k, v in demo_study.meta.items() if k != "trial"})
    assert _ie(no_trial, tmp_path / "demo") is None
    assert "IE" not in sdtm_tables(rich_study)


def test_ie_follows_attestations_and_overrides(tmp_path, demo_study):
    """An override of a failed criterion removes its record; an attested exclusion adds one."""
    att = [*demo_study.meta["eligibility_attestations"], {"trial": "NCT06849401", "subject_id": "NCT06849401-01", "criterion_id": "E7", "value": True}]
    ovr = [{"trial": "NCT06849401", "subject_id": "NCT06849401-04", "criterion_id": "I5", "checkpoint": "screening", "result": "MET", "reason": "re-read"}]
    ie = _ie(demo_study, tmp_path, attestations=att, overrides=ovr)
    assert ie is not None
    assert sorted((r.USUBJID, r.IETESTCD, r.IEORRES) for r in ie.itertuples()) == [
        ("NCT06849401-01", "E7", "Y"),
        ("NCT06849401-08", "I10", "N"),
        ("NCT06849401-11", "E11", "Y"),
    ]


def _criteria_file(tmp_path: Path, cid: str, text: str) -> str:
    import yaml

    doc = {"trial": "T-IE", "protocol_version": "1", "criteria": [{"id": cid, "category": "inclusion", "text": text, "expression": "age >= 12"}]}
    path = tmp_path / f"{cid}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def test_ie_codes_and_long_texts_follow_the_ig(tmp_path, tiny_study):
    """IETESTCD: letters, digits, '_' (a '-' becomes '_'); IETEST: at most 200 characters, cut at a word."""
    text = "Age at least 12 years at screening, " + "as documented by a birth certificate or an equivalent record " * 6
    meta = {"study_id": "TINY", "trial": _criteria_file(tmp_path, "CTG-AGE", text), "checkpoint_days": {"S1": {"screening": -20.0}, "S2": {"screening": -20.0}}}
    ie = sdtm_tables(tiny_study.replace(meta=meta))["IE"]
    (row,) = ie.itertuples()  # S1 is 10 years old, S2 15
    assert (row.USUBJID, row.IETESTCD, row.IEORRES) == ("S1", "CTG_AGE", "N")
    assert len(row.IETEST.encode()) <= 200 and row.IETEST.endswith("...") and text.startswith(row.IETEST[:-3])
    assert row.IEDY == -20  # no dates: the cd7kit day as an SDTM day (negative days are the same)


def test_a_criterion_id_that_is_no_ietestcd_writes_nothing(tmp_path, tiny_study):
    meta = {"study_id": "TINY", "trial": _criteria_file(tmp_path, "INCL-AGE-12", "Age at least 12"), "checkpoint_days": {"S1": {"screening": -20.0}}}
    with pytest.raises(InputError) as ei:
        write_sdtm(tiny_study.replace(meta=meta), tmp_path / "out")
    (p,) = ei.value.problems
    assert (p.column, p.value) == ("id", "INCL-AGE-12") and "8" in p.expected
    assert not (tmp_path / "out").exists()
