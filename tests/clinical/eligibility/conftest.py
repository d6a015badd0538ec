"""Fixtures for the eligibility tests: one validated, fully eligible patient and fast variants of it.

Variants are built with the ``Study`` constructor from the validated base tables (changing one value
keeps every column's type), so hundreds of boundary cases cost no re-validation.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cd7kit.clinical.eligibility import load_criteria, patient_to_study, screen
from cd7kit.data import Study

EXAMPLE = resources.files("cd7kit.clinical.eligibility") / "examples" / "patient_NCT06849401.json"


def example_dict() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def criteria():
    return load_criteria("NCT06849401")


@pytest.fixture(scope="session")
def base_study() -> Study:
    return patient_to_study(example_dict(), "patient_NCT06849401.json")


class Variant:
    """Build changed copies of a one-subject Study without re-validating it."""

    def __init__(self, study: Study):
        self.s = study
        self.sid = study.subject_ids[0]
        self.subjects = study.subjects.copy()
        self.obs = study.observations.copy()
        self.iv = study.interventions.copy()
        self.ev = study.events.copy()
        self.meta = dict(study.meta)

    def subject(self, **kw: Any) -> Variant:
        for k, v in kw.items():
            self.subjects[k] = self.subjects[k].astype(object) if v is None else self.subjects[k]
            self.subjects.loc[0, k] = v
        return self

    def drop(self, code: str) -> Variant:
        self.obs = self.obs[self.obs["code"] != code]
        return self

    def obs_(self, code: str, value: float | None = None, text: str | None = None, day: float = 0.0, uln: float | None = None, unit: str | None = None) -> Variant:
        """Replace every observation of ``code`` by one row."""
        old = self.s.observations[self.s.observations["code"] == code]
        unit = unit or (str(old["unit"].iloc[0]) if len(old) else "1")
        if uln is None and len(old):
            uln = old["uln"].iloc[-1]
        self.drop(code)
        row = {
            "row_id": int(max(self.obs["row_id"].max(), 0)) + 1000,
            "subject_id": self.sid,
            "day": float(day),
            "datetime": None,
            "code": code,
            "value": np.nan if value is None else float(value),
            "value_text": text,
            "unit": unit,
            "specimen": None,
            "lln": np.nan,
            "uln": np.nan if uln is None else float(uln),
            "lloq": np.nan,
            "blq": False,
            "attribution": None,
            "source": "test",
        }
        self.obs = pd.concat([self.obs, pd.DataFrame([row])], ignore_index=True)
        return self

    def iv_(self, kind: str, start: float, end: float | None = None, agent: str | None = None, route: str | None = None, device: str | None = None) -> Variant:
        row = {c: None for c in self.iv.columns}
        row.update(
            row_id=int(self.iv["row_id"].max() if len(self.iv) else 0) + 1000 + len(self.iv),
            subject_id=self.sid,
            start_day=float(start),
            end_day=np.nan if end is None else float(end),
            kind=kind,
            agent=agent,
            route=route,
            device=device,
        )
        self.iv = pd.concat([self.iv, pd.DataFrame([row])], ignore_index=True)
        return self

    def ev_(self, kind: str, term: str, day: float, end: float | None = None, grade: int | None = None) -> Variant:
        row = {c: None for c in self.ev.columns}
        row.update(
            row_id=int(self.ev["row_id"].max() if len(self.ev) else 0) + 1000 + len(self.ev),
            subject_id=self.sid,
            day=float(day),
            end_day=np.nan if end is None else float(end),
            kind=kind,
            term=term,
            grade=pd.NA if grade is None else grade,
        )
        ev = pd.concat([self.ev, pd.DataFrame([row])], ignore_index=True)
        ev["grade"] = ev["grade"].astype("Int64")
        self.ev = ev
        return self

    def attest(self, criterion_id: str, value: bool | None) -> Variant:
        att = [a for a in self.meta.get("eligibility_attestations", []) if a["criterion_id"] != criterion_id]
        if value is not None:
            att.append({"subject_id": self.sid, "criterion_id": criterion_id, "value": value, "actor": "test"})
        self.meta["eligibility_attestations"] = att
        return self

    def build(self) -> Study:
        return Study(self.subjects, self.obs, self.iv, self.ev, self.meta)

    def result(self, criterion_id: str, checkpoint: str = "screening") -> str:
        st = self.build()
        rep = screen(st, self.sid, "NCT06849401", checkpoint, day=0.0)
        return rep.result(criterion_id).value

    def report(self, checkpoint: str = "screening"):
        return screen(self.build(), self.sid, "NCT06849401", checkpoint, day=0.0)


@pytest.fixture
def v(base_study: Study):
    return lambda: Variant(base_study)


@pytest.fixture
def example_json():
    """A fresh dict of the example patient file on each call."""
    return example_dict


@pytest.fixture
def example_path() -> str:
    return str(EXAMPLE)
