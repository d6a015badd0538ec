"""REDCap flat CSV export + a YAML mapping -> a :class:`Study`.

A REDCap "flat" record export (API ``type=flat``, ``rawOrLabel=raw``) has one row per record x event x
repeat instance: ``record_id, redcap_event_name, redcap_repeat_instrument, redcap_repeat_instance,
<fields...>, <checkbox>___<code>, <form>_complete`` (0 Incomplete, 1 Unverified, 2 Complete) -- see
``shared/specs/data-and-platform.md`` section 2.1 and the PyCap ``export_records`` documentation.

REDCap field names are a project's own, so a YAML mapping (format in ``docs/data-format.md``,
"REDCap mapping"; example ``tests/io/data/redcap/mapping.yaml``) says which fields are subject
attributes, which rows of which instrument become observations (field -> cd7kit code and the unit
the field is recorded in), interventions and events, and how coded choices (``1 = tocilizumab``)
and checkboxes (``neuro_signs___1``) translate. Every export column must be mapped or listed under
``ignore``; every problem names the export file, row, column, value and the expected form, and all
problems are raised together as one :class:`~cd7kit.errors.InputError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cd7kit.data import Study
from cd7kit.data import schema as S
from cd7kit.errors import InputError, Problem
from cd7kit.vocab import load_vocabulary

from .convert import canonicalise_observations
from .sdtm import _days_between, _Tables

SYSTEM_COLUMNS = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance", "redcap_data_access_group", "redcap_survey_identifier")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?$")
_NUMERIC_COLUMNS = {
    "subjects": ("age_years", "weight_kg", "height_cm", "cd7_blast_pct", "dose_level", "dose_cells_per_kg"),
    "interventions": ("dose", "flow_l_min"),
    "events": ("grade",),
}
_BLOCK_KEYS = {"form", "event", "date", "day", "end_date", "end_day", "start_date", "start_day", "fields", "columns", "checkbox", "specimen"}
_TOP_KEYS = {"study_id", "title", "record_id", "min_complete", "ignore", "subjects", "observations", "interventions", "events"}


@dataclass(frozen=True)
class _Col:
    """How one cd7kit column is filled: from a field (optionally through a value map) or a constant."""

    field: str | None = None
    values: dict[str, Any] | None = None
    const: Any = None


@dataclass(frozen=True)
class _Block:
    table: str
    index: int
    form: str | None
    event: str | None
    date: str | None
    day: str | None
    end_date: str | None
    end_day: str | None
    fields: dict[str, dict[str, Any]]  # observations: field -> {code, unit, ...}
    columns: dict[str, _Col]
    checkbox: dict[str, Any] | None
    specimen: str | None

    def source_fields(self) -> list[str]:
        out = [f for f in (self.date, self.day, self.end_date, self.end_day) if f]
        out += list(self.fields)
        out += [c.field for c in self.columns.values() if c.field]
        return out


@dataclass(frozen=True)
class RedcapMapping:
    """A parsed REDCap mapping file (see ``docs/data-format.md``)."""

    path: str
    record_id: str = "record_id"
    study_id: str | None = None
    title: str | None = None
    min_complete: int = 0
    ignore: tuple[str, ...] = ()
    subjects: dict[str, _Col] = field(default_factory=dict)
    blocks: tuple[_Block, ...] = ()

    def mapped_fields(self) -> set[str]:
        out = {self.record_id, *self.ignore}
        out |= {c.field for c in self.subjects.values() if c.field}
        for b in self.blocks:
            out |= set(b.source_fields())
        return out

    def checkbox_fields(self) -> set[str]:
        return {str(b.checkbox["field"]) for b in self.blocks if b.checkbox}

    @classmethod
    def load(cls, path: str | Path) -> RedcapMapping:
        """Parse and check a mapping file; every problem of the file is raised together."""
        path = Path(path)
        where = str(path)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError([Problem(f"cannot read the mapping ({exc.__class__.__name__})", where, expected="a YAML file as in docs/data-format.md")]) from None
        problems: list[Problem] = []
        if not isinstance(doc, dict):
            raise InputError([Problem("the mapping is not a YAML mapping", where, expected="keys record_id, subjects, observations, ...")])
        for k in doc:
            if k not in _TOP_KEYS:
                problems.append(Problem("unknown key in the mapping", where, None, str(k), None, ", ".join(sorted(_TOP_KEYS))))
        subjects = {}
        for col, spec in (doc.get("subjects") or {}).items():
            if col not in S.columns("subjects") or col == "subject_id":
                problems.append(Problem("not a subjects column", where, None, f"subjects.{col}", None, ", ".join(c for c in S.columns("subjects") if c != "subject_id")))
                continue
            c = _col(spec, f"subjects.{col}", where, problems)
            if c is not None:
                subjects[col] = c
        vocab = load_vocabulary()
        blocks: list[_Block] = []
        for table in ("observations", "interventions", "events"):
            for n, spec in enumerate(doc.get(table) or []):
                key = f"{table}[{n}]"
                if not isinstance(spec, dict):
                    problems.append(Problem("a block must be a mapping", where, None, key, spec, "form, date, fields/columns"))
                    continue
                for k in spec:
                    if k not in _BLOCK_KEYS:
                        problems.append(Problem("unknown key in a block", where, None, f"{key}.{k}", None, ", ".join(sorted(_BLOCK_KEYS))))
                start_date = spec.get("date") or spec.get("start_date")
                start_day = spec.get("day") or spec.get("start_day")
                if not start_date and not start_day:
                    problems.append(Problem("a block needs a date or day field", where, None, f"{key}.date", None, "date: <REDCap date field> or day: <study-day field>"))
                fields: dict[str, dict[str, Any]] = {}
                if table == "observations":
                    for fname, fspec in (spec.get("fields") or {}).items():
                        fspec = {"code": fspec} if isinstance(fspec, str) else dict(fspec or {})
                        code = fspec.get("code")
                        if code not in vocab:
                            problems.append(Problem("unknown test code", where, None, f"{key}.fields.{fname}.code", code, "a code of cd7kit's vocabulary (docs/data-format.md)"))
                            continue
                        spec_sp = fspec.get("specimen", spec.get("specimen"))
                        if spec_sp is not None and spec_sp not in S.SPECIMENS:
                            problems.append(Problem("unknown specimen", where, None, f"{key}.fields.{fname}.specimen", spec_sp, ", ".join(S.SPECIMENS)))
                        fields[str(fname)] = fspec
                    if not fields:
                        problems.append(Problem("an observations block needs fields", where, None, f"{key}.fields", None, "<field>: {code: CODE, unit: UNIT}"))
                columns: dict[str, _Col] = {}
                for col, cspec in (spec.get("columns") or {}).items():
                    if col not in S.columns(table) or col in ("row_id", "subject_id", "day", "start_day", "end_day"):
                        problems.append(Problem(f"not a column of {table} a block can fill", where, None, f"{key}.columns.{col}", None, ", ".join(c for c in S.columns(table) if c not in ("row_id", "subject_id", "day", "start_day", "end_day"))))
                        continue
                    c = _col(cspec, f"{key}.columns.{col}", where, problems)
                    if c is not None:
                        columns[col] = c
                cb = spec.get("checkbox")
                if cb is not None and (not isinstance(cb, dict) or "field" not in cb or "column" not in cb or not isinstance(cb.get("values"), dict)):
                    problems.append(Problem("a checkbox needs field, column and values", where, None, f"{key}.checkbox", cb, "{field: neuro_signs, column: term, values: {'1': seizure}}"))
                    cb = None
                if table == "interventions" and "kind" not in columns:
                    problems.append(Problem("an interventions block needs a kind", where, None, f"{key}.columns.kind", None, "kind: {value: oxygen} or {field: f, values: {...}}"))
                if table == "events" and "kind" not in columns:
                    problems.append(Problem("an events block needs a kind", where, None, f"{key}.columns.kind", None, "kind: {value: crs} or {field: f, values: {...}}"))
                if table == "events" and "term" not in columns and not (cb and cb.get("column") == "term"):
                    problems.append(Problem("an events block needs a term", where, None, f"{key}.columns.term", None, "term: <field> or a checkbox with column: term"))
                blocks.append(
                    _Block(
                        table=table,
                        index=n,
                        form=spec.get("form"),
                        event=spec.get("event"),
                        date=start_date,
                        day=start_day,
                        end_date=spec.get("end_date"),
                        end_day=spec.get("end_day"),
                        fields=fields,
                        columns=columns,
                        checkbox=cb,
                        specimen=spec.get("specimen"),
                    )
                )
        mc = doc.get("min_complete", 0)
        if mc not in (0, 1, 2):
            problems.append(Problem("min_complete must be 0, 1 or 2", where, None, "min_complete", mc, "0 (any), 1 (unverified or complete) or 2 (complete only)"))
            mc = 0
        if problems:
            raise InputError(problems)
        return cls(
            path=where,
            record_id=str(doc.get("record_id", "record_id")),
            study_id=doc.get("study_id"),
            title=doc.get("title"),
            min_complete=int(mc),
            ignore=tuple(str(x) for x in (doc.get("ignore") or [])),
            subjects=subjects,
            blocks=tuple(blocks),
        )


def _col(spec: Any, key: str, where: str, problems: list[Problem]) -> _Col | None:
    if isinstance(spec, str):
        return _Col(field=spec)
    if isinstance(spec, dict) and "value" in spec and len(spec) == 1:
        return _Col(const=spec["value"])
    if isinstance(spec, dict) and "field" in spec and set(spec) <= {"field", "values"}:
        vals = spec.get("values")
        if vals is not None and not isinstance(vals, dict):
            problems.append(Problem("values must map codes to values", where, None, f"{key}.values", vals, "{'1': M, '2': F}"))
            return None
        return _Col(field=str(spec["field"]), values={str(k): v for k, v in vals.items()} if vals else None)
    problems.append(Problem("cannot read this column mapping", where, None, key, spec, "a field name, {field: f, values: {...}} or {value: constant}"))
    return None


# ------------------------------------------------------------------------------------------------


def _cell(df: pd.DataFrame, i: int, col: str | None) -> str | None:
    if col is None or col not in df.columns:
        return None
    v = df.at[i, col]
    return None if v is None or (isinstance(v, str) and not v.strip()) else str(v).strip()


def read_redcap(path: str | Path, mapping: str | Path | RedcapMapping, meta: dict | None = None) -> Study:
    """Read a REDCap flat CSV export with its mapping into a validated :class:`Study` (raises :class:`InputError`)."""
    m = mapping if isinstance(mapping, RedcapMapping) else RedcapMapping.load(mapping)
    path = Path(path)
    file = str(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        raise InputError([Problem(f"cannot read the export ({exc.__class__.__name__})", file, expected="a REDCap flat CSV export (raw values)")]) from None
    df.columns = [c.strip() for c in df.columns]
    df = df.replace({"": None})
    problems: list[Problem] = []

    # --- every column is accounted for, every mapped field exists -------------------------------------
    mapped = m.mapped_fields()
    checkboxes = m.checkbox_fields()
    for c in df.columns:
        if c in mapped or c in SYSTEM_COLUMNS or c.endswith("_complete"):
            continue
        cb_base = c.split("___", 1)[0] if "___" in c else None
        if cb_base is not None and cb_base in checkboxes:
            continue
        problems.append(Problem("REDCap field not in the mapping", file, 1, c, None, "a field named in the mapping, or listed under ignore"))
    present = set(df.columns)
    for fname in sorted(mapped - present - set(m.ignore)):
        problems.append(Problem("mapped field is not in the export", m.path, None, fname, None, f"a column {fname} in {path.name}"))
    for cb in sorted(checkboxes):
        if not any(c.startswith(cb + "___") for c in df.columns):
            problems.append(Problem("checkbox field is not in the export", m.path, None, cb, None, f"columns {cb}___<code> in {path.name}"))
    if m.record_id not in present:
        raise InputError(problems)
    for c in df.columns:
        if c.endswith("_complete"):
            for i in df.index:
                status_v = _cell(df, i, c)
                if status_v is not None and status_v not in ("0", "1", "2"):
                    problems.append(Problem("form status must be 0, 1 or 2", file, i + 2, c, status_v, "0 Incomplete, 1 Unverified, 2 Complete"))

    def value(i: int, c: _Col, key: str) -> Any:
        if c.field is None:
            return c.const
        raw = _cell(df, i, c.field)
        if raw is None or c.values is None:
            return raw
        if raw not in c.values:
            problems.append(Problem("coded value not in the mapping", file, i + 2, c.field, raw, f"one of {sorted(c.values)} ({key})"))
            return None
        return c.values[raw]

    # --- subjects ----------------------------------------------------------------------------------------
    out = _Tables()
    records: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    for i in df.index:
        rid = _cell(df, i, m.record_id)
        if rid is None:
            problems.append(Problem("record id is empty", file, i + 2, m.record_id, None, "a record id on every row"))
            continue
        rec = records.setdefault(rid, {"subject_id": rid})
        first_row.setdefault(rid, i + 2)
        for col, c in m.subjects.items():
            v: Any = value(i, c, f"subjects.{col}")
            if v is None or c.field is None and col in rec:
                continue
            if col in _NUMERIC_COLUMNS["subjects"]:
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    problems.append(Problem("not a number", file, i + 2, c.field, v, "a number"))
                    continue
            if col == "reference_date" and not _DATE.match(str(v)):
                problems.append(Problem("date is not ISO 8601", file, i + 2, c.field, v, "YYYY-MM-DD (REDCap raw export)"))
                continue
            if col in rec and rec[col] != v and c.field is not None:
                problems.append(Problem(f"{col} differs between rows of the same record", file, i + 2, c.field, v, f"the same value as before ({rec[col]!r})"))
                continue
            rec[col] = v
    for rid, rec in records.items():
        if rec.get("reference_date"):
            rec["reference_date"] = str(rec["reference_date"])[:10]
        out.add("subjects", rec, file, first_row[rid], {k: (c.field or k) for k, c in m.subjects.items()} | {"subject_id": m.record_id})

    # --- blocks --------------------------------------------------------------------------------------------
    skipped = 0
    inst = df["redcap_repeat_instrument"] if "redcap_repeat_instrument" in df.columns else pd.Series([None] * len(df), index=df.index)
    events = df["redcap_event_name"] if "redcap_event_name" in df.columns else pd.Series([None] * len(df), index=df.index)

    def day_of(i: int, rid: str, date_f: str | None, day_f: str | None, required: bool) -> float | None:
        d = _cell(df, i, day_f)
        if d is not None:
            try:
                return float(d)
            except ValueError:
                problems.append(Problem("not a number", file, i + 2, day_f, d, "a study day (day 0 = first infusion)"))
                return None
        t = _cell(df, i, date_f)
        if t is None:
            if required:
                problems.append(Problem("no date", file, i + 2, date_f or day_f, None, "a date YYYY-MM-DD[ hh:mm] or a study day"))
            return None
        if not _DATE.match(t):
            problems.append(Problem("date is not ISO 8601", file, i + 2, date_f, t, "YYYY-MM-DD or YYYY-MM-DD hh:mm (REDCap raw export)"))
            return None
        ref = records[rid].get("reference_date")
        if not ref:
            problems.append(Problem("a date needs the record's reference (first infusion) date", file, i + 2, date_f, t, "the subjects.reference_date field filled for this record"))
            return None
        try:
            return _days_between(t.replace(" ", "T"), str(ref))
        except ValueError:
            problems.append(Problem("not a calendar date", file, i + 2, date_f, t, "a real date"))
            return None

    obs_recs: list[dict[str, Any]] = []
    obs_where: list[tuple[int, dict[str, str]]] = []
    for b in m.blocks:
        own = b.source_fields() + [c for c in df.columns if b.checkbox and c.startswith(str(b.checkbox["field"]) + "___")]
        own_present = [c for c in own if c in df.columns and c not in (b.date, b.day)]
        for i in df.index:
            rid = _cell(df, i, m.record_id)
            if rid is None:
                continue
            if b.event is not None and events[i] != b.event:
                continue
            instrument = inst[i] if isinstance(inst[i], str) and inst[i] else None
            if b.form is not None and instrument not in (b.form, None):
                continue
            if instrument is None and b.form is not None and not any(_cell(df, i, c) not in (None, "0") for c in own_present):
                continue
            if b.form is None and not any(_cell(df, i, c) is not None for c in own_present):
                continue
            if b.form is not None and m.min_complete:
                status = _cell(df, i, f"{b.form}_complete")
                if status in ("0", "1", "2") and int(str(status)) < m.min_complete:
                    skipped += 1
                    continue
            n0 = len(problems)
            if b.table == "observations":
                vals = [(f, spec, _cell(df, i, f)) for f, spec in b.fields.items()]
                vals = [v for v in vals if v[2] is not None]
                if not vals:
                    continue
                day = day_of(i, rid, b.date, b.day, required=True)
                if len(problems) > n0:
                    continue
                for fname, spec, raw in vals:
                    val: Any = raw
                    if isinstance(spec.get("values"), dict):
                        vm = {str(k): x for k, x in spec["values"].items()}
                        if raw not in vm:
                            problems.append(Problem("coded value not in the mapping", file, i + 2, fname, raw, f"one of {sorted(vm)}"))
                            continue
                        val = vm[raw]
                    obs_recs.append(
                        {
                            "subject_id": rid,
                            "day": day,
                            "datetime": _cell(df, i, b.date),
                            "code": spec["code"],
                            "value": val,
                            "unit": spec.get("unit"),
                            "specimen": spec.get("specimen", b.specimen),
                            "lln": spec.get("lln"),
                            "uln": spec.get("uln"),
                            "lloq": spec.get("lloq"),
                            "source": _source(df, i, rid, fname),
                        }
                    )
                    obs_where.append((i + 2, {"value": fname, "unit": fname, "code": fname, "day": b.date or b.day or fname}))
                continue
            base: dict[str, Any] = {}
            for col, c in b.columns.items():
                base[col] = value(i, c, f"{b.table}[{b.index}].columns.{col}")
                if base[col] is not None and col in _NUMERIC_COLUMNS.get(b.table, ()):
                    try:
                        base[col] = float(base[col])
                    except (TypeError, ValueError):
                        problems.append(Problem("not a number", file, i + 2, c.field, base[col], "a number"))
            rows: list[dict[str, Any]] = []
            if b.checkbox:
                cbf = str(b.checkbox["field"])
                for code, text in b.checkbox["values"].items():
                    cell = _cell(df, i, f"{cbf}___{code}")
                    if cell not in (None, "0", "1"):
                        problems.append(Problem("checkbox value must be 0 or 1", file, i + 2, f"{cbf}___{code}", cell, "0 or 1"))
                    elif cell == "1":
                        rows.append({**base, str(b.checkbox["column"]): text})
                for c in df.columns:
                    if c.startswith(cbf + "___") and c.split("___", 1)[1] not in {str(k) for k in b.checkbox["values"]} and _cell(df, i, c) == "1":
                        problems.append(Problem("checkbox code not in the mapping", file, i + 2, c, "1", f"one of {sorted(str(k) for k in b.checkbox['values'])}"))
            elif any(v is not None for k, v in base.items() if b.columns[k].field is not None):
                rows.append(base)
            if not rows:
                continue
            start = day_of(i, rid, b.date, b.day, required=True)
            end = day_of(i, rid, b.end_date, b.end_day, required=False)
            if len(problems) > n0:
                continue
            cols = {k: (c.field or k) for k, c in b.columns.items()}
            for r in rows:
                r["subject_id"] = rid
                r["source"] = r.get("source") or _source(df, i, rid, None)
                if b.table == "interventions":
                    r["start_day"], r["end_day"] = start, end
                    cols |= {"start_day": b.date or b.day or "", "end_day": b.end_date or b.end_day or ""}
                else:
                    r["day"], r["end_day"] = start, end
                    cols |= {"day": b.date or b.day or "", "end_day": b.end_date or b.end_day or ""}
                out.add(b.table, r, file, i + 2, cols)

    if obs_recs:
        canon, probs = canonicalise_observations(pd.DataFrame(obs_recs), file, row_offset=0)
        problems.extend(out.add_observations(canon, file, obs_where, probs))
    md: dict[str, Any] = {"source": file, "format": "redcap", "mapping": m.path, "redcap_skipped_incomplete": skipped}
    if m.study_id:
        md["study_id"] = m.study_id
    if m.title:
        md["title"] = m.title
    return out.build(problems, {**md, **(meta or {})})


def _source(df: pd.DataFrame, i: int, rid: str, fname: str | None) -> str:
    parts = [f"REDCap record {rid}"]
    for c in ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"):
        v = _cell(df, i, c)
        if v is not None:
            parts.append(f"{c.removeprefix('redcap_')}={v}")
    if fname:
        parts.append(f"field={fname}")
    return "; ".join(parts)


__all__ = ["read_redcap", "RedcapMapping", "SYSTEM_COLUMNS"]
