"""docs/data-format.md documents every column, kind and code, and its CSV examples are valid input."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pandas as pd

from cd7kit.data import schema as S
from cd7kit.io import read_cd7kit
from cd7kit.io.csv_template import DATE_COLUMNS
from cd7kit.vocab import load_vocabulary

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-format.md"


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_template_column_is_documented():
    text = _text()
    for table in ("subjects", "observations", "interventions", "events"):
        section = text.split(f"### `{table}.csv`", 1)[1].split("\n### ", 1)[0]
        documented = set(re.findall(r"^\| `([a-z0-9_]+)`", section, flags=re.M))
        documented |= {c for line in re.findall(r"^\| (`[a-z0-9_]+`(?:, `[a-z0-9_]+`)+) \|", section, flags=re.M) for c in re.findall(r"`([a-z0-9_]+)`", line)}
        expected = (set(S.columns(table)) - {"row_id"}) | set(DATE_COLUMNS.get(table, {}))
        assert expected <= documented, (table, sorted(expected - documented))


def test_every_kind_device_and_code_is_listed():
    text = _text()
    for value in (*S.INTERVENTION_KINDS, *S.EVENT_KINDS, *S.OXYGEN_DEVICES, *S.SPECIMENS, *S.SUBJECT_STATUSES):
        assert f"`{value}`" in text, value
    missing = [c for c in load_vocabulary().codes() if f"| `{c}` |" not in text]
    assert not missing, f"run `python -m cd7kit.io.vocab_doc` to list {missing}"


def test_csv_examples_of_the_recipes_are_valid_input(tmp_path):
    recipes = _text().split("## How to express each input", 1)[1].split("\n## CDISC SDTM", 1)[0]
    blocks = re.findall(r"```csv\n(.*?)```", recipes, flags=re.S)
    assert len(blocks) >= 8
    parts: dict[str, list[pd.DataFrame]] = {"observations": [], "interventions": [], "events": []}
    for b in blocks:
        df = pd.read_csv(StringIO(b), dtype=str, keep_default_na=False)
        table = "observations" if "code" in df.columns else "interventions" if "start_day" in df.columns else "events"
        parts[table].append(df)
    ids = sorted({s for dfs in parts.values() for df in dfs for s in df["subject_id"]})
    pd.DataFrame({"subject_id": ids, "age_years": [10] * len(ids)}).to_csv(tmp_path / "subjects.csv", index=False)
    for table, dfs in parts.items():
        pd.concat(dfs, ignore_index=True).fillna("").to_csv(tmp_path / f"{table}.csv", index=False)
    study = read_cd7kit(tmp_path)
    obs = study.observations
    assert obs.loc[obs["code"] == "TEMP", "value"].max() > 39  # 102.9 degF
    assert set(study.interventions["kind"]) >= {"vasopressor", "oxygen", "antipyretic", "tocilizumab", "corticosteroid", "inotrope"}
    assert set(study.events["kind"]) >= {"ae", "neuro", "imaging", "icans"}
    assert obs.loc[obs["code"] == "CAR_COPIES", "blq"].all()
