from pathlib import Path

import pytest

from cd7kit.errors import InputError
from cd7kit.io import read_cd7kit, write_cd7kit


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_units_and_dates_on_import(tmp_path):
    _write(tmp_path, "subjects.csv", "subject_id,age_years,sex,reference_date\nA,10,M,2021-05-31\n")
    _write(
        tmp_path,
        "observations.csv",
        "subject_id,day,datetime,code,value,unit\nA,1,,TEMP,101.3,°F\nA,,2021-06-02,CREAT,141.4,umol/L\nA,3,,UPROT_DIP,2+,\nA,4,,CAR_COPIES,<50,copies/ug\n",
    )
    s = read_cd7kit(tmp_path)
    obs = s.observations.set_index("code")
    assert obs.loc["TEMP", "value"] == pytest.approx(38.5)
    assert obs.loc["CREAT", "day"] == 2.0
    assert obs.loc["CREAT", "value"] == pytest.approx(1.6, abs=1e-3)
    assert obs.loc["UPROT_DIP", "value"] == 2.0
    assert bool(obs.loc["CAR_COPIES", "blq"]) and obs.loc["CAR_COPIES", "lloq"] == 50.0


def test_round_trip(tmp_path, tiny_study):
    write_cd7kit(tiny_study, tmp_path / "out")
    back = read_cd7kit(tmp_path / "out")
    for t in ("subjects", "observations", "interventions", "events"):
        a, b = getattr(tiny_study, t), getattr(back, t)
        assert a.shape == b.shape, t
    assert back.meta["study_id"] == "TINY"
    assert list(back.observations["value"]) == list(tiny_study.observations["value"])


def test_every_error_named(tmp_path):
    _write(tmp_path, "subjects.csv", "subject_id,age_years\nA,ten\n")
    _write(tmp_path, "observations.csv", "subject_id,day,code,value,unit,colour\nA,x,ANC,1,g/L,red\n")
    with pytest.raises(InputError) as ei:
        read_cd7kit(tmp_path)
    probs = ei.value.problems
    where = {(Path(p.file).name, p.row, p.column) for p in probs}
    assert ("subjects.csv", 2, "age_years") in where
    assert ("observations.csv", 1, "colour") in where
    assert ("observations.csv", 2, "day") in where


def test_unconvertible_unit_and_implausible_value(tmp_path):
    _write(tmp_path, "subjects.csv", "subject_id\nA\n")
    _write(tmp_path, "observations.csv", "subject_id,day,code,value,unit\nA,1,TEMP,101,degC\nA,1,ANC,1,mmHg\n")
    with pytest.raises(InputError) as ei:
        read_cd7kit(tmp_path)
    msgs = " | ".join(str(p) for p in ei.value.problems)
    assert "row 2" in msgs and "plausible" in msgs
    assert "row 3" in msgs and "mmHg" in msgs
