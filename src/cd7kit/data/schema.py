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
from pandas.api.types import infer_dtype
from pandera.dtypes import immutable
from pandera.engines import pandas_engine

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


@pandas_engine.Engine.register_dtype
@immutable
class Str(pandas_engine.NpString):
    """pandera's ``str`` (NpString) with a vectorised fast path; same checks, same results, same messages.

    pandera coerces and checks a ``str`` column with one Python call per value (``astype(str)`` and
    ``map(isinstance)``), which dominated the validation of large tables (485,000 observations of a
    1,000-patient virtual cohort). When every non-missing value already is a ``str``
    (``pandas.api.types.infer_dtype`` in C), coercion is the identity and the check passes, so both
    return at once; anything else (numbers, bytes, mixed) takes pandera's own path unchanged.
    """

    @staticmethod
    def _all_str(data: object) -> bool:
        return isinstance(data, pd.Series) and data.dtype == object and infer_dtype(data, skipna=True) in ("string", "empty")

    def coerce(self, data_container):  # type: ignore[no-untyped-def]
        if self._all_str(data_container):
            return data_container
        return super().coerce(data_container)

    def check(self, pandera_dtype, data_container=None):  # type: ignore[no-untyped-def]
        if data_container is not None and self._all_str(data_container):
            return True
        return super().check(pandera_dtype, data_container)

    def __str__(self) -> str:
        return "str"


_STR = Str()  # type: ignore[call-arg]  # pandera dtypes take no arguments at run time


def _str(nullable: bool = False, **kw) -> pa.Column:
    return pa.Column(_STR, nullable=nullable, coerce=True, **kw)


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
    df = pd.DataFrame({c: pd.Series(dtype=dtype(table, c)) for c in columns(table)})
    return df


def dtype(table: str, col: str) -> str:
    """The pandas dtype name of a column before validation ("object" for text columns)."""
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
    "dtype",
    "empty",
]
