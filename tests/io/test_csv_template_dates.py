"""CSV template: dates must be ISO 8601 (a day-first or month-first date is never guessed)."""

from pathlib import Path

import pytest

from cd7kit.errors import InputError
from cd7kit.io import read_cd7kit


def test_non_iso_dates_are_errors_not_guesses(tmp_path: Path):
    (tmp_path / "subjects.csv").write_text("subject_id,reference_date\nA,2021-05-31\nB,31/05/2021\n", encoding="utf-8")
    (tmp_path / "events.csv").write_text("subject_id,date,kind,term\nA,05/06/2021,ae,nausea\nA,2021-06-05,ae,rash\n", encoding="utf-8")
    with pytest.raises(InputError) as ei:
        read_cd7kit(tmp_path)
    where = {(Path(p.file).name, p.row, p.column) for p in ei.value.problems}
    assert where == {("subjects.csv", 3, "reference_date"), ("events.csv", 2, "date")}
