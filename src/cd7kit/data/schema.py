"""The four Study tables as pandera schemas (DESIGN.md, "The Study").

Each table has required key columns and optional columns; optional columns are added (as missing)
when a source does not carry them, so engines can rely on every column existing. ``row_id`` is a
stable integer per table: evidence points at rows by it.

Controlled values (intervention and event kinds, sexes, diagnoses) are listed here once and used by
the readers, the store and the engines.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

SEXES = ("M", "F", "U")
DIAGNOSES = ("T-ALL", "T-LBL", "ETP-ALL", "other")
SUBJECT_STATUSES = ("screened", "screen_failure", "enrolled", "withdrawn")
SPECIMENS = ("PB", "BM", "CSF", "serum", "plasma", "urine", "tissue")

INTERVENTION_KINDS = (
    "lymphodepletion",
    "car_infusion",
    "tocilizumab",
    "anti_cytokine",  # siltuximab, anakinra, ...
    "corticosteroid",
    "antipyretic",
    "vasopressor",  # norepinephrine, epinephrine, phenylephrine, dopamine, vasopressin, angiotensin II
    "inotrope",  # dobutamine, milrinone: not counted as vasopressors by default (ASTCT)
    "fluid_bolus",
    "oxygen",  # device + flow_l_min (+ indication)
    "transfusion",  # agent: RBC | platelets | plasma ...
    "chemotherapy",
    "intrathecal",
    "conditioning",
    "hsct",
    "gvhd_prophylaxis",
    "immunosuppressant",
    "antimicrobial",
    "growth_factor",
    "radiotherapy",
    "other",
)

OXYGEN_DEVICES = (
    "room_air",
    "nasal_cannula",
    "blow_by",
    "hfnc",
    "simple_facemask",
    "venturi",
    "non_rebreather",
    "cpap",
    "bipap",
    "invasive_mv",
    "other",
)

EVENT_KINDS = (
    "ae",
    "dlt",
    "crs",
    "icans",
    "neuro",  # seizure, motor weakness, tremor ... (term), for ICANS grading
    "imaging",  # cerebral oedema, PRES, extramedullary disease ... (term)
    "infection",
    "response",  # term: CR, CRi, PR, NR, PD, MLFS; details: site (BM, EMD, CNS, overall)
    "relapse",
    "gvhd",
    "tma",
    "engraftment",  # term: neutrophil | platelet
    "hsct",
    "death",  # details: cause
    "disposition",  # screened, enrolled, lymphodepleted, infused, evaluable, off-study ...
    "other",
)

_opt_str = dict(nullable=True, required=False, coerce=True)


def _str(nullable: bool = False, **kw) -> pa.Column:
    return pa.Column(str, nullable=nullable, coerce=True, **kw)


SUBJECTS = pa.DataFrameSchema(
    {
        "subject_id": _str(unique=True, checks=pa.Check.str_length(min_value=1)),
        "status": _str(checks=pa.Check.isin(SUBJECT_STATUSES)),
        "age_years": pa.Column(float, pa.Check.in_range(0, 120), nullable=True, coerce=True),
        "sex": _str(checks=pa.Check.isin(SEXES)),
        "weight_kg": pa.Column(float, pa.Check.in_range(0.5, 300), nullable=True, coerce=True),
        "height_cm": pa.Column(float, pa.Check.in_range(30, 250), nullable=True, coerce=True),
        "diagnosis": _str(nullable=True, checks=pa.Check.isin(DIAGNOSES)),
        "cd7_blast_pct": pa.Column(float, pa.Check.in_range(0, 100), nullable=True, coerce=True),
        "dose_level": pa.Column("Int64", pa.Check.ge(1), nullable=True, coerce=True),
        "dose_cells_per_kg": pa.Column(float, pa.Check.gt(0), nullable=True, coerce=True),
        "product": _str(nullable=True),
        "donor_type": _str(nullable=True, checks=pa.Check.isin(("autologous", "donor-derived", "allogeneic"))),
        "reference_date": _str(nullable=True),
        "site": _str(nullable=True),
        "source": _str(nullable=True),
    },
    strict=True,
    name="subjects",
)

OBSERVATIONS = pa.DataFrameSchema(
    {
        "row_id": pa.Column("int64", unique=True, coerce=True),
        "subject_id": _str(),
        "day": pa.Column(float, coerce=True),
        "datetime": _str(nullable=True),
        "code": _str(),
        "value": pa.Column(float, nullable=True, coerce=True),
        "value_text": _str(nullable=True),
        "unit": _str(),
        "specimen": _str(nullable=True, checks=pa.Check.isin(SPECIMENS)),
        "lln": pa.Column(float, nullable=True, coerce=True),
        "uln": pa.Column(float, nullable=True, coerce=True),
        "lloq": pa.Column(float, nullable=True, coerce=True),
        "blq": pa.Column(bool, coerce=True),
        "attribution": _str(nullable=True),
        "source": _str(nullable=True),
    },
    strict=True,
    name="observations",
)

INTERVENTIONS = pa.DataFrameSchema(
    {
        "row_id": pa.Column("int64", unique=True, coerce=True),
        "subject_id": _str(),
        "start_day": pa.Column(float, coerce=True),
        "end_day": pa.Column(float, nullable=True, coerce=True),
        "kind": _str(checks=pa.Check.isin(INTERVENTION_KINDS)),
        "agent": _str(nullable=True),
        "dose": pa.Column(float, nullable=True, coerce=True),
        "dose_unit": _str(nullable=True),
        "route": _str(nullable=True),
        "device": _str(nullable=True, checks=pa.Check.isin(OXYGEN_DEVICES)),
        "flow_l_min": pa.Column(float, pa.Check.in_range(0, 80), nullable=True, coerce=True),
        "indication": _str(nullable=True),
        "details": _str(nullable=True),
        "source": _str(nullable=True),
    },
    strict=True,
    name="interventions",
)

EVENTS = pa.DataFrameSchema(
    {
        "row_id": pa.Column("int64", unique=True, coerce=True),
        "subject_id": _str(),
        "day": pa.Column(float, coerce=True),
        "end_day": pa.Column(float, nullable=True, coerce=True),
        "kind": _str(checks=pa.Check.isin(EVENT_KINDS)),
        "term": _str(),
        "grade": pa.Column("Int64", pa.Check.in_range(0, 5), nullable=True, coerce=True),
        "attribution": _str(nullable=True),
        "details": _str(nullable=True),
        "source": _str(nullable=True),
    },
    strict=True,
    name="events",
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "subjects": SUBJECTS,
    "observations": OBSERVATIONS,
    "interventions": INTERVENTIONS,
    "events": EVENTS,
}

#: Columns a source must provide; every other column is optional and filled with missing values.
REQUIRED: dict[str, tuple[str, ...]] = {
    "subjects": ("subject_id",),
    "observations": ("subject_id", "day", "code", "unit"),
    "interventions": ("subject_id", "start_day", "kind"),
    "events": ("subject_id", "day", "kind", "term"),
}

DEFAULTS: dict[str, dict[str, object]] = {
    "subjects": {"status": "enrolled", "sex": "U"},
    "observations": {"blq": False},
}


def columns(table: str) -> list[str]:
    """Column order of a table."""
    return list(SCHEMAS[table].columns)


def empty(table: str) -> pd.DataFrame:
    """An empty, correctly typed table."""
    df = pd.DataFrame({c: pd.Series(dtype=_dtype(table, c)) for c in columns(table)})
    return df


def _dtype(table: str, col: str) -> str:
    t = str(SCHEMAS[table].columns[col].dtype)
    return {"str": "object", "float64": "float64", "Int64": "Int64", "int64": "int64", "bool": "bool"}.get(t, "object")


__all__ = [
    "SCHEMAS",
    "REQUIRED",
    "DEFAULTS",
    "SUBJECTS",
    "OBSERVATIONS",
    "INTERVENTIONS",
    "EVENTS",
    "INTERVENTION_KINDS",
    "EVENT_KINDS",
    "OXYGEN_DEVICES",
    "SEXES",
    "DIAGNOSES",
    "SUBJECT_STATUSES",
    "SPECIMENS",
    "columns",
    "empty",
]
