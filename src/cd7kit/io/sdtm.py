"""CDISC SDTM reader and writer: a folder of domain files (CSV or SAS XPT) <-> a :class:`Study`.

Domains (SDTMIG 3.4; mapping as in ``shared/specs/data-and-platform.md`` section 1.2 and
``docs/data-format.md``, "SDTM"):

* **DM** -> ``subjects`` (USUBJID, AGE/AGEU, SEX, SITEID; ARMCD/ACTARMCD/ARM -> ``dose_level`` by a
  configurable pattern; ``ARMNRS = "SCREEN FAILURE"`` -> status ``screen_failure``).
* **EX** -> ``interventions`` (EXCAT lymphodepletion / CAR cell infusion -> ``kind``, EXDOSE/EXDOSU).
* **CM** -> ``interventions`` (kind from CMCAT when it names a cd7kit kind, else from CMDECOD/CMTRT
  through the agent table ``io/data/agents.yaml``).
* **VS, LB, PC, CP** (and **QS, FA** for ICE/CAPD/level of consciousness) -> ``observations``: the code
  is found by the vocabulary's ``sdtm_domain`` + ``sdtm_testcd`` (specimen from ``--SPEC`` breaks ties);
  values from ``--STRESN``/``--STRESU`` (fall back to ``--STRESC``, then ``--ORRES``/``--ORRESU``);
  ``--STNRLO``/``--STNRHI`` -> ``lln``/``uln``; ``--LLOQ`` -> ``lloq``; ``<x``/``BLQ`` -> ``blq``. Units
  are converted by :func:`cd7kit.io.convert.canonicalise_observations`.
* **AE** -> ``events`` (AEDECOD -> term, AETOXGR -> grade, AEREL -> attribution; kind from AECAT when
  it names a cd7kit event kind, else from the term table: crs, icans, infection, ..., else ``ae``).
* **RS** -> ``events`` of kind ``response`` (RSSTRESC, RSCAT -> details).
* **SUPP--** datasets carry what SDTM has no variable for (oxygen device, subject diagnosis, ...).
* **IE** is written, never read: it is derived from the data by the eligibility engine (see
  :func:`ie_records`), so reading it back would only repeat what the other domains say.

Days: day 0 is the first CAR infusion (EX), else DM RFXSTDTC. SDTM ``--DY`` has no day 0 (SDTMIG 3.4
section 4.4.4), so days are derived from ``--DTC`` and the reference date, or converted from ``--DY``
with :func:`cd7kit.data.days.from_sdtm_dy` (shifted by RFSTDTC - reference), never copied.

Every problem of every file names the file, row, column, value and expected form; all are raised
together as one :class:`~cd7kit.errors.InputError` and nothing partial is returned.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cd7kit.data import Study
from cd7kit.data import schema as S
from cd7kit.data.days import date_from_day, from_sdtm_dy, to_sdtm_dy
from cd7kit.data.study import TABLES
from cd7kit.data.units import UnitError, parse_unit
from cd7kit.errors import InputError, Problem
from cd7kit.vocab import TestCode, Vocabulary, load_vocabulary

from .agents import load_agents
from .convert import _BLQ, canonicalise_observations

if TYPE_CHECKING:  # the eligibility engine reads observations through cd7kit.io.convert: imported when used
    from cd7kit.clinical.eligibility import CriteriaSet

#: Findings domains read into (and written from) ``observations``.
FINDINGS = ("VS", "LB", "PC", "CP", "QS", "FA")
#: Domains whose test codes can hold observations (RS too, for codes the vocabulary maps to RS).
OBS_DOMAINS = (*FINDINGS, "RS")
#: Every domain the reader looks for (SUPP-- datasets of these are read too).
DOMAINS = ("DM", "EX", "CM", *FINDINGS, "AE", "RS")

#: Columns an import must have, per domain (bold keys of the spec's table 1.2, plus what the mapping needs).
REQUIRED: dict[str, tuple[str, ...]] = {
    "DM": ("STUDYID", "DOMAIN", "USUBJID"),
    "EX": ("STUDYID", "DOMAIN", "USUBJID", "EXSEQ", "EXTRT"),
    "CM": ("USUBJID", "CMTRT"),
    "AE": ("USUBJID", "AETERM", "AEDECOD"),
    "RS": ("USUBJID", "RSTESTCD", "RSTEST"),
    **{d: ("USUBJID", f"{d}TESTCD") for d in FINDINGS},
    "SUPP": ("RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QVAL"),
}
for _d in ("VS", "LB", "PC"):
    REQUIRED[_d] = ("USUBJID", f"{_d}TESTCD", f"{_d}TEST")

#: SDTM specimen terms (CDISC CT "Specimen Type") <-> cd7kit specimens.
SPECIMEN_TO_SDTM = {
    "PB": "BLOOD",
    "BM": "BONE MARROW",
    "CSF": "CEREBROSPINAL FLUID",
    "serum": "SERUM",
    "plasma": "PLASMA",
    "urine": "URINE",
    "tissue": "TISSUE",
}
_SPECIMEN_FROM_SDTM = {v: k for k, v in SPECIMEN_TO_SDTM.items()} | {
    "WHOLE BLOOD": "PB",
    "PERIPHERAL BLOOD": "PB",
    "VENOUS BLOOD": "PB",
    **{k.upper(): k for k in SPECIMEN_TO_SDTM},
}
_AGE_UNITS = {"YEARS": 1.0, "MONTHS": 1 / 12, "WEEKS": 7 / 365.25, "DAYS": 1 / 365.25}
_SEXES = {"M": "M", "F": "F", "U": "U", "UNDIFFERENTIATED": "U", "UNKNOWN": "U"}
_ISO = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?)?)?$")
_NUMERIC_SUFFIXES = ("SEQ", "DOSE", "STRESN", "STNRLO", "STNRHI", "LLOQ", "DY", "STDY", "ENDY")

# SUPPQUAL qualifiers written and read by cd7kit (QNAM -> cd7kit column), per parent table.
SUPP_SUBJECTS = {
    "STATUS": "status",
    "DIAGNOS": "diagnosis",
    "CD7BLPCT": "cd7_blast_pct",
    "DOSECPK": "dose_cells_per_kg",
    "PRODUCT": "product",
    "DONORTYP": "donor_type",
    "WEIGHTKG": "weight_kg",
    "HEIGHTCM": "height_cm",
    "REFDATE": "reference_date",
    "SOURCE": "source",
}
SUPP_INTERVENTIONS = {"DEVICE": "device", "FLOWLMIN": "flow_l_min", "INDIC": "indication", "DETAILS": "details", "SOURCE": "source", "NOAGENT": "_noagent"}
SUPP_OBSERVATIONS = {"ATTRIB": "attribution", "SOURCE": "source"}
SUPP_EVENTS = {"ATTRIB": "attribution", "DETAILS": "details", "SOURCE": "source"}
_SUPP_NUMERIC = {"cd7_blast_pct", "dose_cells_per_kg", "weight_kg", "height_cm", "flow_l_min"}


@dataclass(frozen=True)
class SdtmOptions:
    """How sponsor conventions map onto cd7kit (all documented in ``docs/data-format.md``).

    ``dose_level_pattern`` is searched (case-insensitive) in the DM columns ``dose_level_columns`` in
    order; its group ``level`` is the dose level (``DL2``, ``Dose level 2`` -> 2). ``dose_pattern``
    (group ``dose``) reads the planned dose per kg from ARM text (``... 1.2e8 cells/kg``). ``tests``
    maps sponsor test codes to cd7kit codes, keys ``"<DOMAIN>.<TESTCD>"`` (``"LB.IL6X": "IL6"``).
    """

    dose_level_pattern: str = r"(?<![A-Z])(?:DL|DOSE\s*LEVEL|LEVEL)\s*-?\s*(?P<level>\d+)"
    dose_level_columns: tuple[str, ...] = ("ACTARMCD", "ARMCD", "ACTARM", "ARM")
    dose_pattern: str = r"(?P<dose>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*cells\s*/\s*kg"
    tests: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path | None) -> SdtmOptions:
        """Options from a YAML mapping file (keys as the fields; unknown keys are an error)."""
        if path is None:
            return cls()
        import yaml

        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError([Problem(f"cannot read the SDTM mapping ({exc.__class__.__name__})", str(path), expected="a YAML file of SDTM options (docs/data-format.md)")]) from None
        if not isinstance(doc, dict):
            raise InputError([Problem("the SDTM mapping is not a YAML mapping", str(path), expected="keys dose_level_pattern, dose_level_columns, dose_pattern, tests")])
        doc = doc.get("sdtm", doc)
        known = {f.name for f in dataclasses.fields(cls)}
        bad = [k for k in doc if k not in known]
        if bad:
            raise InputError([Problem("unknown key in SDTM mapping", str(path), None, k, None, "one of " + ", ".join(sorted(known))) for k in bad])
        if "dose_level_columns" in doc:
            doc["dose_level_columns"] = tuple(doc["dose_level_columns"])
        return cls(**doc)


# ------------------------------------------------------------------------------------------------
# reading helpers
# ------------------------------------------------------------------------------------------------


@dataclass
class _File:
    """One loaded domain file; ``offset`` turns a frame position into the row a user sees."""

    domain: str
    path: str
    df: pd.DataFrame
    offset: int
    cols: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cols = {str(c): self.df[c].tolist() for c in self.df.columns}

    def drop_rows(self) -> None:
        self.df = self.df.iloc[0:0]
        self.cols = {c: [] for c in self.cols}

    def row(self, i: int) -> int:
        return i + self.offset

    def get(self, i: int, col: str) -> Any:
        values = self.cols.get(col)
        return None if values is None else values[i]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()) or v is pd.NA


def _clean_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Upper-case names, trimmed text, and ``None`` for every missing or empty cell (object dtype)."""
    out = pd.DataFrame(index=df.index)
    for name, col in df.items():
        c = str(name).strip().upper()
        if col.dtype == object:
            txt = col.astype(str).str.strip()
            out[c] = txt.where(col.notna() & (txt != ""), None).astype(object)
        else:
            out[c] = col.astype(object).where(col.notna(), None)
    return out


def _load(path: Path, domain: str, problems: list[Problem]) -> _File | None:
    try:
        if path.suffix.lower() == ".xpt":
            import pyreadstat

            df, _meta = pyreadstat.read_xport(str(path))
            offset = 1  # XPT rows are counted as records 1, 2, ...
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            offset = 2  # header is row 1
    except Exception as exc:  # unreadable file of any kind
        problems.append(Problem(f"cannot read the file ({exc.__class__.__name__}: {exc})", str(path), expected=f"an SDTM {domain} dataset as CSV or SAS XPT v5/v8"))
        return None
    return _File(domain, str(path), _clean_frame(df), offset)


def _discover(folder: Path, problems: list[Problem]) -> dict[str, _File]:
    files: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in (".csv", ".xpt"):
            files.setdefault(p.stem.upper(), []).append(p)
    out: dict[str, _File] = {}
    wanted = set(DOMAINS) | {f"SUPP{d}" for d in DOMAINS}
    for name, paths in files.items():
        if name not in wanted:
            continue
        if len(paths) > 1:
            problems.append(Problem(f"{name} is given twice", str(paths[0]), value=", ".join(p.name for p in paths), expected="one file per domain (CSV or XPT)"))
            continue
        f = _load(paths[0], name, problems)
        if f is not None:
            out[name] = f
    return out


def _num(f: _File, i: int, col: str, problems: list[Problem], integer: bool = False) -> float | None:
    v = f.get(i, col)
    if _blank(v):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        problems.append(Problem("not a number", f.path, f.row(i), col, v, "an integer" if integer else "a number"))
        return None
    if integer and x != np.floor(x):
        problems.append(Problem("not a whole number", f.path, f.row(i), col, v, "an integer"))
        return None
    return x


def _txt(f: _File, i: int, col: str) -> str | None:
    v = f.get(i, col)
    if _blank(v):
        return None
    if isinstance(v, float) and v == np.floor(v):
        return str(int(v))
    return str(v)


def _seqkey(v: str | None) -> str:
    """A --SEQ / IDVARVAL value as a join key ("1", "1.0" and 1.0 are the same record)."""
    if v is None:
        return ""
    try:
        x = float(v)
    except ValueError:
        return v
    return str(int(x)) if x == np.floor(x) else v


def _check_iso(f: _File, i: int, col: str, problems: list[Problem]) -> str | None:
    """The ISO 8601 text of a --DTC cell, or None (blank or bad; bad ones add a problem)."""
    v = _txt(f, i, col)
    if v is None:
        return None
    if not _ISO.match(v):
        problems.append(Problem("date is not ISO 8601", f.path, f.row(i), col, v, "ISO 8601: YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss] (partial YYYY-MM allowed)"))
        return None
    if len(v) >= 10:
        try:
            _days_between(v, "2000-01-01")
        except (ValueError, TypeError):
            problems.append(Problem("not a calendar date", f.path, f.row(i), col, v, "a real date in ISO 8601"))
            return None
    return v


def _days_between(dtc: str, ref: str) -> float:
    """cd7kit day of an ISO date(-time) relative to the reference date's midnight.

    The same arithmetic as :func:`cd7kit.data.days.day_from_dates` (whole days for dates, a fraction
    for a time of day, no day -0), done with :mod:`datetime` for one value at a time.
    """
    import datetime as dt

    t = dt.datetime.fromisoformat(dtc)
    r = dt.datetime.fromisoformat(ref[:10])
    if t.tzinfo is not None:
        t = t.replace(tzinfo=None)
    return (t - r) / dt.timedelta(days=1) + 0.0


@dataclass(frozen=True)
class _Ref:
    """Per-subject day anchors: ``ref`` is day 0 (first infusion); ``anchor`` is RFSTDTC for --DY."""

    ref: str | None
    anchor: str | None
    dy_shift: float = 0.0  # used when dates are unknown: minus the cd7kit day of the first infusion's EXSTDY

    @property
    def shift(self) -> float:
        if self.ref and self.anchor:
            return _days_between(self.anchor[:10], self.ref)
        return self.dy_shift


def _day(f: _File, i: int, dtc_col: str, dy_col: str, r: _Ref, problems: list[Problem], required: bool) -> float | None:
    n0 = len(problems)
    dtc = _check_iso(f, i, dtc_col, problems)
    dy = _num(f, i, dy_col, problems, integer=True)
    if len(problems) > n0:
        return None
    if dy == 0:
        problems.append(Problem("SDTM study day 0 does not exist", f.path, f.row(i), dy_col, f.get(i, dy_col), "a non-zero integer (SDTM --DY has no day 0: day 1 is the reference date, day -1 the day before)"))
        return None
    if dtc is not None and len(dtc) >= 10 and r.ref:
        day = _days_between(dtc, r.ref)
        if dy is not None and r.anchor:
            expect = int(to_sdtm_dy([_days_between(dtc, r.anchor)])[0])
            if expect != int(dy):
                problems.append(Problem(f"{dy_col} does not match {dtc_col} and RFSTDTC {r.anchor}", f.path, f.row(i), dy_col, f.get(i, dy_col), str(expect)))
        return day
    if dy is not None:
        return float(from_sdtm_dy([dy])[0]) + r.shift
    if dtc is not None:
        if len(dtc) < 10:
            problems.append(Problem("a partial date gives no day", f.path, f.row(i), dtc_col, dtc, f"a complete date YYYY-MM-DD, or {dy_col}"))
        else:
            problems.append(Problem("a date needs the subject's first-infusion date (EX) or DM.RFXSTDTC", f.path, f.row(i), dtc_col, dtc, f"DM.RFXSTDTC for this subject, or {dy_col}"))
        return None
    if required:
        problems.append(Problem("no date and no study day", f.path, f.row(i), dtc_col, None, f"an ISO 8601 date in {dtc_col} or a study day in {dy_col}"))
    return None


def _missing_columns(f: _File, problems: list[Problem], required: Iterable[str]) -> bool:
    missing = [c for c in required if c not in f.df.columns]
    for c in missing:
        problems.append(Problem("required column is missing", f.path, 1, c, None, f"a column named {c}"))
    return bool(missing)


def _supp(files: dict[str, _File], problems: list[Problem]) -> dict[tuple[str, str, str], dict[str, tuple[Any, str, int]]]:
    """SUPP-- qualifiers keyed by (RDOMAIN, USUBJID, IDVARVAL) -> {QNAM: (QVAL, file, row)}."""
    out: dict[tuple[str, str, str], dict[str, tuple[Any, str, int]]] = {}
    for name, f in files.items():
        if not name.startswith("SUPP"):
            continue
        if _missing_columns(f, problems, REQUIRED["SUPP"]):
            continue
        parent = name[4:]
        for i in f.df.index:
            rdom = (_txt(f, i, "RDOMAIN") or parent).upper()
            idvar = (_txt(f, i, "IDVAR") or "").upper()
            if idvar not in ("", f"{rdom}SEQ"):
                problems.append(Problem("IDVAR is not supported", f.path, f.row(i), "IDVAR", idvar, f"{rdom}SEQ (or blank for DM)"))
                continue
            key = (rdom, _txt(f, i, "USUBJID") or "", _seqkey(_txt(f, i, "IDVARVAL")))
            out.setdefault(key, {})[(_txt(f, i, "QNAM") or "").upper()] = (f.get(i, "QVAL"), f.path, f.row(i))
    return out


def _apply_supp(rec: dict[str, Any], quals: dict[str, tuple[Any, str, int]] | None, names: dict[str, str], problems: list[Problem]) -> None:
    for qnam, (qval, path, row) in (quals or {}).items():
        col = names.get(qnam)
        if col is None or _blank(qval):
            continue
        if col in _SUPP_NUMERIC:
            try:
                rec[col] = float(qval)
            except (TypeError, ValueError):
                problems.append(Problem("not a number", path, row, "QVAL", qval, f"a number for QNAM {qnam}"))
        else:
            rec[col] = str(qval)


# ------------------------------------------------------------------------------------------------
# the reader
# ------------------------------------------------------------------------------------------------


class _Tables:
    """Rows of the four tables, each with where it came from (for naming problems found later)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self.src: dict[str, list[tuple[str, int, dict[str, str]]]] = {t: [] for t in TABLES}
        self.obs_parts: list[pd.DataFrame] = []

    def add(self, table: str, rec: dict[str, Any], path: str, row: int, cols: dict[str, str]) -> None:
        self.rows[table].append(rec)
        self.src[table].append((path, row, cols))

    def add_observations(self, frame: pd.DataFrame, path: str, where: list[tuple[int, dict[str, str]]], probs: list[Problem]) -> list[Problem]:
        """Keep the canonicalised rows without problems; return the problems named by source row and column."""
        named: list[Problem] = []
        bad: set[int] = set()
        for p in probs:
            k = int(p.row) if p.row is not None else None
            row, cols = where[k] if k is not None else (None, {})
            if k is not None:
                bad.add(k)
            named.append(dataclasses.replace(p, file=path, row=row, column=cols.get(p.column or "", p.column)))
        keep = [k for k in range(len(frame)) if k not in bad]
        self.obs_parts.append(frame.iloc[keep].astype(object))
        for k in keep:
            self.src["observations"].append((path, where[k][0], where[k][1]))
        return named

    def remap(self, problems: list[Problem]) -> list[Problem]:
        out = []
        for p in problems:
            if p.file in self.src and p.row is not None and 0 <= p.row - 2 < len(self.src[p.file]):
                path, row, cols = self.src[p.file][p.row - 2]
                out.append(dataclasses.replace(p, file=path, row=row, column=cols.get(p.column or "", p.column)))
            else:
                out.append(p)
        return out

    def build(self, problems: list[Problem], meta: dict[str, Any]) -> Study:
        """Validate what was read; raise every problem (the reader's and the schema's) together."""
        tables: dict[str, pd.DataFrame | None] = {
            "subjects": pd.DataFrame(self.rows["subjects"]) if self.rows["subjects"] else pd.DataFrame({"subject_id": pd.Series(dtype=object)}),
            "observations": pd.concat(self.obs_parts, ignore_index=True) if self.obs_parts else None,
            "interventions": pd.DataFrame(self.rows["interventions"]) if self.rows["interventions"] else None,
            "events": pd.DataFrame(self.rows["events"]) if self.rows["events"] else None,
        }
        try:
            study = Study.from_tables(**tables, meta=meta, origin={t: t for t in TABLES})
        except InputError as err:
            more = [p for p in self.remap(err.problems) if p not in problems]
            raise InputError([*problems, *more]) from None
        if problems:
            raise InputError(problems)
        return study


_BY_SDTM: dict[int, dict[tuple[str, str], list[TestCode]]] = {}


def _by_sdtm(vocab: Vocabulary) -> dict[tuple[str, str], list[TestCode]]:
    key = id(vocab)
    if key not in _BY_SDTM:
        idx: dict[tuple[str, str], list[TestCode]] = {}
        for c in vocab:
            if c.sdtm_domain and c.sdtm_testcd:
                idx.setdefault((c.sdtm_domain, c.sdtm_testcd), []).append(c)
        _BY_SDTM.clear()
        _BY_SDTM[key] = idx
    return _BY_SDTM[key]


def _find_code(vocab: Vocabulary, domain: str, testcd: str, specimen: str | None, unit: str | None, opts: SdtmOptions) -> tuple[TestCode | None, str]:
    override = opts.tests.get(f"{domain}.{testcd}")
    if override is not None:
        return (vocab[override], "") if override in vocab else (None, f"mapping names unknown code {override}")
    hits = [c for c in _by_sdtm(vocab).get((domain, testcd), [])]
    if len(hits) > 1 and specimen is not None:
        hits = [c for c in hits if c.specimen == specimen] or hits
    if len(hits) > 1 and unit:
        try:
            q = parse_unit(unit)
            same = [c for c in hits if _same_unit(q, c.canonical_unit)]
            hits = same or hits
        except UnitError:
            pass
    if len(hits) == 1:
        return hits[0], ""
    if not hits:
        known = sorted({str(c.sdtm_testcd) for c in vocab if c.sdtm_domain == domain})
        return None, f"an {domain}TESTCD of cd7kit's vocabulary: {', '.join(known)}"
    return None, f"{domain}SPEC or a unit that tells apart {', '.join(c.code for c in hits)}"


def _same_unit(q: Any, canonical: str) -> bool:
    try:
        c = parse_unit(canonical)
    except UnitError:
        return False
    return str(q.units) == str(c.units) and abs(float(q.magnitude) - float(c.magnitude)) < 1e-12


def read_sdtm(folder: str | Path, options: SdtmOptions | None = None, meta: dict | None = None) -> Study:
    """Read an SDTM folder (CSV or XPT per domain) into a validated :class:`Study` (raises :class:`InputError`)."""
    opts = options or SdtmOptions()
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError([Problem("not a folder", str(folder), expected="a folder of SDTM domain files (dm.csv or dm.xpt, ex, cm, vs, lb, ...)")])
    problems: list[Problem] = []
    files = _discover(folder, problems)
    if "DM" not in files and not any(p.file and Path(p.file).stem.upper() == "DM" for p in problems):
        problems.append(Problem("DM is missing", str(folder / "dm.csv"), expected="a DM domain file (dm.csv or dm.xpt)"))
    for name, f in files.items():
        if not name.startswith("SUPP"):
            if _missing_columns(f, problems, REQUIRED[name]):
                f.drop_rows()
    supp = _supp(files, problems)
    agents = load_agents()
    vocab = load_vocabulary()
    out = _Tables()
    dose_re = re.compile(opts.dose_level_pattern, re.I)
    perkg_re = re.compile(opts.dose_pattern, re.I)

    # --- DM -> subjects -------------------------------------------------------------------------
    refs: dict[str, _Ref] = {}
    rfx: dict[str, str | None] = {}
    study_ids: list[str] = []
    dm = files.get("DM")
    dm_rows: dict[str, tuple[dict[str, Any], int]] = {}
    if dm is not None:
        for i in dm.df.index:
            sid = _txt(dm, i, "USUBJID")
            if sid is None:
                problems.append(Problem("USUBJID is empty", dm.path, dm.row(i), "USUBJID", None, "a unique subject identifier"))
                continue
            if sid in dm_rows:
                problems.append(Problem("subject listed twice in DM", dm.path, dm.row(i), "USUBJID", sid, "one DM row per subject"))
                continue
            if (s := _txt(dm, i, "STUDYID")) and s not in study_ids:
                study_ids.append(s)
            rec: dict[str, Any] = {"subject_id": sid, "site": _txt(dm, i, "SITEID")}
            sex = (_txt(dm, i, "SEX") or "U").upper()
            if sex not in _SEXES:
                problems.append(Problem("unknown SEX", dm.path, dm.row(i), "SEX", sex, "M, F, U or UNDIFFERENTIATED"))
            rec["sex"] = _SEXES.get(sex, "U")
            age = _num(dm, i, "AGE", problems)
            if age is not None:
                ageu = _txt(dm, i, "AGEU")
                if ageu is None and "AGEU" in dm.df.columns:
                    problems.append(Problem("AGE needs AGEU", dm.path, dm.row(i), "AGEU", None, ", ".join(_AGE_UNITS)))
                elif (ageu or "YEARS").upper() not in _AGE_UNITS:
                    problems.append(Problem("unknown AGEU", dm.path, dm.row(i), "AGEU", ageu, ", ".join(_AGE_UNITS)))
                else:
                    rec["age_years"] = age * _AGE_UNITS[(ageu or "YEARS").upper()]
            armnrs = (_txt(dm, i, "ARMNRS") or "").upper()
            armcds = {(_txt(dm, i, c) or "").upper() for c in ("ARMCD", "ACTARMCD")}
            if armnrs == "SCREEN FAILURE" or "SCRNFAIL" in armcds:
                rec["status"] = "screen_failure"
            elif armnrs == "NOT ASSIGNED" or (not armnrs and armcds <= {"", "NOTASSGN"} and "ARMCD" in dm.df.columns):
                rec["status"] = "screened"
            else:
                rec["status"] = "enrolled"
            if rec["status"] != "screen_failure":
                for col in opts.dose_level_columns:
                    v = _txt(dm, i, col)
                    m = dose_re.search(v) if v else None
                    if m:
                        try:
                            rec["dose_level"] = int(m.group("level"))
                        except (IndexError, TypeError, ValueError):
                            problems.append(Problem("the dose-level pattern matched but gave no whole number", dm.path, dm.row(i), col, v, f"text whose group 'level' of {opts.dose_level_pattern!r} is an integer"))
                        break
                for col in ("ACTARM", "ARM"):
                    v = _txt(dm, i, col)
                    m = perkg_re.search(v) if v else None
                    if m:
                        rec["dose_cells_per_kg"] = float(m.group("dose"))
                        break
            for col in ("RFSTDTC", "RFXSTDTC"):
                _check_iso(dm, i, col, problems)
            _apply_supp(rec, supp.get(("DM", sid, "")), SUPP_SUBJECTS, problems)
            if rec.get("status") not in S.SUBJECT_STATUSES:
                problems.append(Problem("unknown subject status in SUPPDM", dm.path, dm.row(i), "STATUS", rec.get("status"), ", ".join(S.SUBJECT_STATUSES)))
            rfx[sid] = _txt(dm, i, "RFXSTDTC")
            refs[sid] = _Ref(None, _txt(dm, i, "RFSTDTC") or rfx[sid])
            dm_rows[sid] = (rec, dm.row(i))

    def known_subject(f: _File, i: int) -> str | None:
        sid = _txt(f, i, "USUBJID")
        if sid not in dm_rows:
            problems.append(Problem("subject is not in DM", f.path, f.row(i), "USUBJID", sid, "a USUBJID listed in DM"))
            return None
        return sid

    # --- EX kinds first: the first CAR infusion is day 0 ----------------------------------------
    ex = files.get("EX")
    ex_kind: dict[int, str] = {}
    first_infusion: dict[str, str] = {}
    first_dy: dict[str, float] = {}
    if ex is not None:
        for i in ex.df.index:
            kind = agents.category_kind(_txt(ex, i, "EXCAT")) or agents.agent_kind(_txt(ex, i, "EXTRT"))
            if kind is None:
                col = "EXCAT" if _txt(ex, i, "EXCAT") else "EXTRT"
                problems.append(Problem("cannot tell what this EX record is", ex.path, ex.row(i), col, ex.get(i, col), "EXCAT LYMPHODEPLETION or CAR CELL INFUSION (or a cd7kit intervention kind)"))
                continue
            ex_kind[i] = kind
            dtc = _txt(ex, i, "EXSTDTC")
            sid = _txt(ex, i, "USUBJID")
            if kind == "car_infusion" and sid and dtc and _ISO.match(dtc) and len(dtc) >= 10:
                if sid not in first_infusion or dtc[:10] < first_infusion[sid]:
                    first_infusion[sid] = dtc[:10]
            dy = _num(ex, i, "EXSTDY", [], integer=True)
            if kind == "car_infusion" and sid and dy:
                first_dy[sid] = min(dy, first_dy.get(sid, dy))

    def complete(d: Any) -> str | None:
        return str(d)[:10] if d is not None and _ISO.match(str(d)) and len(str(d)) >= 10 else None

    for sid, (rec, _row) in dm_rows.items():
        anchor = complete(refs[sid].anchor)
        ref = complete(rec.get("reference_date")) or first_infusion.get(sid)
        if ref is None and anchor and sid in first_dy:  # day 0 = RFSTDTC + the infusion's EXSTDY
            ref = (pd.Timestamp(anchor) + pd.Timedelta(days=float(from_sdtm_dy([first_dy[sid]])[0]))).strftime("%Y-%m-%d")
        ref = ref or complete(rfx.get(sid))  # a bad or partial RFXSTDTC was reported above
        rec["reference_date"] = ref
        dy_shift = -float(from_sdtm_dy([first_dy[sid]])[0]) if sid in first_dy else 0.0
        refs[sid] = _Ref(ref, anchor or ref, dy_shift)
        out.add("subjects", rec, dm.path if dm else "DM", _row, {"subject_id": "USUBJID", "age_years": "AGE", "sex": "SEX", "dose_level": "ARMCD", "status": "ARMNRS", "site": "SITEID", "reference_date": "RFXSTDTC"})

    # --- EX, CM -> interventions ------------------------------------------------------------------
    for dom in ("EX", "CM"):
        if dom not in files:
            continue
        f = files[dom]
        for i in f.df.index:
            sid = known_subject(f, i)
            if sid is None or (dom == "EX" and i not in ex_kind):
                continue
            r = refs[sid]
            n0 = len(problems)
            start = _day(f, i, f"{dom}STDTC", f"{dom}STDY", r, problems, required=True)
            end = _day(f, i, f"{dom}ENDTC", f"{dom}ENDY", r, problems, required=False)
            if dom == "EX":
                kind = ex_kind[i]
            else:
                kind = agents.category_kind(_txt(f, i, "CMCAT")) or agents.agent_kind(_txt(f, i, "CMDECOD"), _txt(f, i, "CMTRT")) or "other"
            rec = {
                "subject_id": sid,
                "start_day": start,
                "end_day": end,
                "kind": kind,
                "agent": _txt(f, i, f"{dom}TRT"),
                "dose": _num(f, i, f"{dom}DOSE", problems),
                "dose_unit": _txt(f, i, f"{dom}DOSU"),
                "route": _txt(f, i, f"{dom}ROUTE"),
                "indication": _txt(f, i, "CMINDC") if dom == "CM" else None,
            }
            if kind == "oxygen" and rec["dose"] is not None and rec["dose_unit"]:
                try:
                    q = parse_unit(str(rec["dose_unit"]))
                    rec["flow_l_min"] = rec["dose"] * float((q / parse_unit("L/min")).to("dimensionless").magnitude)
                    rec["dose"], rec["dose_unit"] = None, None
                except Exception:  # not a flow unit: keep it as a dose
                    pass
            _apply_supp(rec, supp.get((dom, sid, _seqkey(_txt(f, i, f"{dom}SEQ")))), SUPP_INTERVENTIONS, problems)
            if rec.pop("_noagent", None) == "Y":
                rec["agent"] = None
            if start is not None and end is not None and end < start:
                problems.append(Problem("end is before start", f.path, f.row(i), f"{dom}ENDTC", f.get(i, f"{dom}ENDTC") or f.get(i, f"{dom}ENDY"), f"on or after {dom}STDTC"))
            if len(problems) == n0:
                cols = {"start_day": f"{dom}STDTC", "end_day": f"{dom}ENDTC", "kind": f"{dom}CAT", "agent": f"{dom}TRT", "dose": f"{dom}DOSE", "dose_unit": f"{dom}DOSU", "route": f"{dom}ROUTE", "device": f"SUPP{dom}.DEVICE", "flow_l_min": f"{dom}DOSE", "indication": "CMINDC"}
                out.add("interventions", rec, f.path, f.row(i), cols)

    # --- findings -> observations ------------------------------------------------------------------
    code_cache: dict[tuple[str, str, str | None, str | None], tuple[TestCode | None, str]] = {}
    rs_codes = {str(c.sdtm_testcd) for c in vocab if c.sdtm_domain == "RS" and c.sdtm_testcd}
    for dom in OBS_DOMAINS:
        if dom not in files:
            continue
        f = files[dom]
        recs: list[dict[str, Any]] = []
        where: list[tuple[int, dict[str, str]]] = []
        for i in f.df.index:
            if dom == "RS" and (_txt(f, i, "RSTESTCD") or "") not in rs_codes:
                continue  # a response assessment: read into events below
            sid = known_subject(f, i)
            if sid is None:
                continue
            n0 = len(problems)
            testcd = _txt(f, i, f"{dom}TESTCD")
            spec_raw = _txt(f, i, f"{dom}SPEC")
            specimen = None
            if spec_raw is not None:
                specimen = _SPECIMEN_FROM_SDTM.get(spec_raw.upper())
                if specimen is None:
                    problems.append(Problem("unknown specimen", f.path, f.row(i), f"{dom}SPEC", spec_raw, ", ".join(SPECIMEN_TO_SDTM.values())))
            stresn = _num(f, i, f"{dom}STRESN", problems)
            stresc = _txt(f, i, f"{dom}STRESC")
            if stresn is not None or stresc is not None:
                value: Any = stresn if stresn is not None else stresc
                vcol, unit, ucol = (f"{dom}STRESN" if stresn is not None else f"{dom}STRESC"), _txt(f, i, f"{dom}STRESU"), f"{dom}STRESU"
                lo, hi = _num(f, i, f"{dom}STNRLO", problems), _num(f, i, f"{dom}STNRHI", problems)
            else:
                value, vcol, unit, ucol = _txt(f, i, f"{dom}ORRES"), f"{dom}ORRES", _txt(f, i, f"{dom}ORRESU"), f"{dom}ORRESU"
                lo, hi = _num(f, i, f"{dom}ORNRLO", problems), _num(f, i, f"{dom}ORNRHI", problems)
            if testcd is None:
                problems.append(Problem("test code is empty", f.path, f.row(i), f"{dom}TESTCD", None, f"an {dom}TESTCD"))
                continue
            ckey = (dom, testcd, specimen, unit)
            if ckey not in code_cache:
                code_cache[ckey] = _find_code(vocab, dom, testcd, specimen, unit, opts)
            tc, why = code_cache[ckey]
            if tc is None:
                problems.append(Problem("unknown test code" if "vocabulary" in why or "mapping" in why else "ambiguous test code", f.path, f.row(i), f"{dom}TESTCD", testcd, why))
                continue
            day = _day(f, i, f"{dom}DTC", f"{dom}DY", refs[sid], problems, required=True)
            if len(problems) > n0:
                continue
            value_text = None
            if stresn is not None and stresc is not None:
                value_text = next((k for k in tc.levels if k.lower() == stresc.lower()), None)
                try:
                    float(stresc)
                except ValueError:  # a text form of the result that is not the number: keep it
                    value_text = value_text or stresc
            if isinstance(value, str) and tc.value_type == "numeric" and not tc.levels and not _BLQ.match(value):
                try:
                    float(value)
                except ValueError:  # a character result of a numeric test ("present", "close to zero")
                    value, value_text = None, value
            rec = {
                "subject_id": sid,
                "day": day,
                "datetime": _txt(f, i, f"{dom}DTC"),
                "code": tc.code,
                "value": value,
                "value_text": value_text,
                "unit": unit,
                "specimen": specimen,
                "lln": lo,
                "uln": hi,
                "lloq": _num(f, i, f"{dom}LLOQ", problems),
            }
            _apply_supp(rec, supp.get((dom, sid, _seqkey(_txt(f, i, f"{dom}SEQ")))), SUPP_OBSERVATIONS, problems)
            recs.append(rec)
            where.append((f.row(i), {"code": f"{dom}TESTCD", "value": vcol, "unit": ucol, "day": f"{dom}DTC", "specimen": f"{dom}SPEC", "lln": f"{dom}STNRLO", "uln": f"{dom}STNRHI", "lloq": f"{dom}LLOQ"}))
        if not recs:
            continue
        canon, probs = canonicalise_observations(pd.DataFrame(recs), f.path, row_offset=0)
        problems.extend(out.add_observations(canon, f.path, where, probs))

    # --- AE, RS -> events ----------------------------------------------------------------------
    for dom in ("AE", "RS"):
        if dom not in files:
            continue
        f = files[dom]
        for i in f.df.index:
            if dom == "RS" and (_txt(f, i, "RSTESTCD") or "") in rs_codes:
                continue  # an observation (read above)
            sid = known_subject(f, i)
            if sid is None:
                continue
            n0 = len(problems)
            r = refs[sid]
            if dom == "AE":
                day = _day(f, i, "AESTDTC", "AESTDY", r, problems, required=True)
                end = _day(f, i, "AEENDTC", "AEENDY", r, problems, required=False)
                term = _txt(f, i, "AEDECOD") or _txt(f, i, "AETERM")
                kind = agents.event_kind(_txt(f, i, "AECAT"), _txt(f, i, "AEDECOD"), _txt(f, i, "AETERM"))
                if kind is None:
                    kind = "infection" if (_txt(f, i, "AEBODSYS") or "").upper() == "INFECTIONS AND INFESTATIONS" else "ae"
                grade = _num(f, i, "AETOXGR", problems, integer=True)
                if grade is not None and not 0 <= grade <= 5:
                    problems.append(Problem("grade out of range", f.path, f.row(i), "AETOXGR", f.get(i, "AETOXGR"), "an integer 0-5 (ASTCT for CRS/ICANS, CTCAE v5.0 otherwise)"))
                rec = {"subject_id": sid, "day": day, "end_day": end, "kind": kind, "term": term, "grade": grade, "attribution": _txt(f, i, "AEREL")}
                cols = {"day": "AESTDTC", "end_day": "AEENDTC", "kind": "AECAT", "term": "AEDECOD", "grade": "AETOXGR", "attribution": "AEREL"}
                if term is None:
                    problems.append(Problem("adverse event without a term", f.path, f.row(i), "AEDECOD", None, "AEDECOD or AETERM"))
            else:
                day = _day(f, i, "RSDTC", "RSDY", r, problems, required=True)
                term = _txt(f, i, "RSSTRESC") or _txt(f, i, "RSORRES")
                testcd = (_txt(f, i, "RSTESTCD") or "").upper()
                cat = _txt(f, i, "RSCAT")
                details = cat if testcd == "OVRLRESP" else "; ".join(x for x in (testcd, cat) if x)
                rec = {"subject_id": sid, "day": day, "kind": "response", "term": term, "details": details or None}
                cols = {"day": "RSDTC", "term": "RSSTRESC", "details": "RSCAT"}
                if term is None:
                    problems.append(Problem("response without a result", f.path, f.row(i), "RSSTRESC", None, "RSSTRESC or RSORRES (CR, CRi, PR, NR, PD, ...)"))
            _apply_supp(rec, supp.get((dom, sid, _seqkey(_txt(f, i, f"{dom}SEQ")))), SUPP_EVENTS, problems)
            if len(problems) == n0:
                out.add("events", rec, f.path, f.row(i), cols)

    md: dict[str, Any] = {"source": str(folder), "format": "sdtm", **({"study_id": study_ids[0]} if study_ids else {}), **(meta or {})}
    return out.build(problems, md)


# ------------------------------------------------------------------------------------------------
# the writer
# ------------------------------------------------------------------------------------------------

_LABELS = {
    "STUDYID": "Study Identifier",
    "DOMAIN": "Domain Abbreviation",
    "USUBJID": "Unique Subject Identifier",
    "RDOMAIN": "Related Domain Abbreviation",
    "IDVAR": "Identifying Variable",
    "IDVARVAL": "Identifying Variable Value",
    "QNAM": "Qualifier Variable Name",
    "QLABEL": "Qualifier Variable Label",
    "QVAL": "Data Value",
    "IESEQ": "Sequence Number",
    "IETESTCD": "Inclusion/Exclusion Criterion Short Name",
    "IETEST": "Inclusion/Exclusion Criterion",
    "IECAT": "Inclusion/Exclusion Category",
    "IEORRES": "I/E Criterion Original Result",
    "IESTRESC": "I/E Criterion Result in Std Format",
    "IEDTC": "Date/Time of Collection",
    "IEDY": "Study Day of Collection",
}


def _fmt_dtc(day: float, ref: str) -> str:
    """ISO 8601 text of a cd7kit day: a date for whole days, else a date-time to the minute or second."""
    import datetime as dt

    ts = dt.datetime.fromisoformat(ref[:10]) + dt.timedelta(seconds=round(float(day) * 86400))
    if float(day) == np.floor(day):
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%Y-%m-%dT%H:%M" if ts.second == 0 else "%Y-%m-%dT%H:%M:%S")


def _present(v: Any) -> bool:
    return not _blank(v)


#: SDTMIG v3.4 section 6.3.4: IETESTCD has at most 8 letters, digits or underscores and does not start with a digit.
_IETESTCD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")
#: ... and IETEST at most 200 characters (here: UTF-8 bytes, which SAS XPT v5 counts).
_IETEST_MAX = 200


def _ietestcd_of(criteria: CriteriaSet) -> dict[str, str]:
    """Criterion id -> IETESTCD (characters other than letters, digits and ``_`` become ``_``)."""
    codes = {c.id: re.sub(r"[^A-Za-z0-9_]", "_", c.id) for c in criteria}
    problems = [
        Problem("the criterion id cannot be an SDTM IETESTCD", criteria.source or criteria.trial, None, "id", cid,
                "at most 8 letters, digits or underscores, not starting with a digit (SDTMIG v3.4 section 6.3.4)")
        for cid, code in codes.items() if not _IETESTCD.match(code)
    ]
    seen: dict[str, str] = {}
    for cid, code in codes.items():
        if code in seen:
            problems.append(Problem(f"criteria {seen[code]} and {cid} give the same IETESTCD {code}", criteria.source or criteria.trial, None, "id", cid, "criterion ids that stay distinct"))
        seen.setdefault(code, cid)
    if problems:
        raise InputError(problems)
    return codes


def _ietest(text: str) -> str:
    """The criterion's verbatim text (white space folded), cut at a word with "..." beyond 200 bytes."""
    t = " ".join(text.split())
    if len(t.encode("utf-8")) <= _IETEST_MAX:
        return t
    head = t.encode("utf-8")[: _IETEST_MAX - 3].decode("utf-8", "ignore")
    return (head.rsplit(" ", 1)[0] if " " in head else head).rstrip(" ,;:") + "..."


def ie_records(
    study: Study,
    attestations: Iterable[Mapping[str, Any]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The IE (Inclusion/Exclusion Criteria Not Met) records of a study, computed by the eligibility engine.

    SDTMIG v3.4 section 6.3.4 (IE): one record per criterion *not met* per subject -- an inclusion
    criterion NOT_MET (IEORRES = IESTRESC = "N") or an exclusion criterion MET ("Y") -- at the time
    eligibility for study entry is determined, i.e. the ``screening`` checkpoint (assumption 2: later
    findings are protocol deviations, DV, not IE). Criteria still UNKNOWN are not exceptions and are not
    recorded; an investigator's override counts (the final value). The criteria are those of
    ``study.meta["trial"]`` (no trial: no records), evaluated for ``meta["trial_subjects"]`` (else every
    subject) who reached screening. IETESTCD is the criterion id (at most 8 characters), IETEST its
    verbatim text (at most 200; the full text stays in the criteria file), IECAT INCLUSION / EXCLUSION
    (CDISC CT C66797); the result is NY (C66742). ``attestations`` / ``overrides`` default to the
    study's own (``meta``). Returns rows with ``USUBJID``, ``day`` (cd7kit day of the screening
    checkpoint) and the IE variables; :func:`sdtm_tables` adds STUDYID, DOMAIN, IESEQ, IEDTC and IEDY.
    """
    trial = study.meta.get("trial")
    if not trial:
        return []
    from cd7kit.clinical.eligibility import load_criteria, screening_log
    from cd7kit.clinical.eligibility.log import trial_subject_ids

    cs = load_criteria(str(trial))
    codes = _ietestcd_of(cs)
    log = screening_log(study, cs, attestations, overrides, checkpoints=("screening",), subject_ids=trial_subject_ids(study))
    rows = []
    for rep in log:
        for r in rep.reasons:  # the criteria that make the subject ineligible, in the criteria file's order
            yn = "N" if r.category == "inclusion" else "Y"  # an inclusion criterion not met, an exclusion criterion met
            rows.append(
                {"USUBJID": rep.subject_id, "day": rep.checkpoint_day, "IETESTCD": codes[r.id], "IETEST": _ietest(r.criterion.text),
                 "IECAT": r.category.upper(), "IEORRES": yn, "IESTRESC": yn}
            )
    return rows


def uncarried(study: Study) -> dict[str, list[int]]:
    """Row ids per table that SDTM output cannot carry (codes without a findings-domain SDTM test code)."""
    vocab = load_vocabulary()
    obs = study.observations
    bad = [int(r) for r, c in zip(obs["row_id"], obs["code"], strict=True) if c not in vocab or vocab[c].sdtm_domain not in OBS_DOMAINS or not vocab[c].sdtm_testcd]
    return {"observations": bad} if bad else {}


def sdtm_tables(
    study: Study,
    study_id: str | None = None,
    *,
    attestations: Iterable[Mapping[str, Any]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, pd.DataFrame]:
    """The Study as SDTM datasets (DM, EX, CM, findings, AE, RS, IE and SUPP--), keyed by domain name.

    IE comes from :func:`ie_records` (with ``attestations`` / ``overrides``; none when the study names no
    ``meta["trial"]`` or no subject fails a criterion).
    """
    vocab = load_vocabulary()
    stid = study_id or str(study.meta.get("study_id") or "CD7KIT")
    subj = study.subjects
    iv = study.interventions
    ex_mask = iv["kind"].isin(("lymphodepletion", "car_infusion"))
    refs: dict[str, str | None] = {}
    anchors: dict[str, str | None] = {}
    for r in subj.itertuples(index=False):
        ref = r.reference_date if _present(r.reference_date) else None
        refs[r.subject_id] = str(ref)[:10] if ref else None
        first = iv.loc[ex_mask & (iv["subject_id"] == r.subject_id), "start_day"]
        if ref:
            d0 = min(0.0, float(np.floor(first.min()))) if len(first) else 0.0
            anchors[r.subject_id] = str(date_from_day([d0], ref)[0].strftime("%Y-%m-%d"))
        else:
            anchors[r.subject_id] = None
    supp: list[dict[str, Any]] = []
    seq: dict[tuple[str, str], int] = {}

    def next_seq(dom: str, sid: str) -> int:
        seq[(dom, sid)] = seq.get((dom, sid), 0) + 1
        return seq[(dom, sid)]

    def timing(sid: str, day: Any) -> tuple[str | None, int | None]:
        if not _present(day):
            return None, None
        ref, anc = refs.get(sid), anchors.get(sid)
        if ref and anc:
            dtc = _fmt_dtc(float(day), ref)
            d = float(np.floor(_days_between(dtc, anc)))
            return dtc, int(d + 1 if d >= 0 else d)
        return None, int(to_sdtm_dy([float(day)])[0])

    def add_supp(dom: str, sid: str, seqno: int | None, quals: dict[str, str], rec: Any) -> None:
        for qnam, col in quals.items():
            v = getattr(rec, col)
            if _present(v):
                supp.append({"STUDYID": stid, "RDOMAIN": dom, "USUBJID": sid, "IDVAR": f"{dom}SEQ" if seqno else "", "IDVARVAL": str(seqno) if seqno else "", "QNAM": qnam, "QLABEL": col, "QVAL": f"{v:.17g}" if isinstance(v, float) else str(v)})

    dm = []
    for r in subj.itertuples(index=False):
        sid = r.subject_id
        ref = refs[sid]
        screen_fail = r.status == "screen_failure"
        blank_arm = r.status in ("screen_failure", "screened")
        lvl = None if pd.isna(r.dose_level) else int(r.dose_level)
        arm = "Treatment" if lvl is None else f"Dose level {lvl}"
        if _present(r.dose_cells_per_kg):
            arm += f" ({r.dose_cells_per_kg:.17g} cells/kg)"
        armcd = "TRT" if lvl is None else f"DL{lvl}"
        dm.append(
            {
                "STUDYID": stid,
                "DOMAIN": "DM",
                "USUBJID": sid,
                "SUBJID": sid,
                "SITEID": r.site if _present(r.site) else None,
                "RFSTDTC": anchors[sid],
                "RFXSTDTC": anchors[sid],
                "AGE": r.age_years if _present(r.age_years) else None,
                "AGEU": "YEARS" if _present(r.age_years) else None,
                "SEX": r.sex,
                "ARMCD": None if blank_arm else armcd,
                "ARM": None if blank_arm else arm,
                "ACTARMCD": None if blank_arm else armcd,
                "ACTARM": None if blank_arm else arm,
                "ARMNRS": "SCREEN FAILURE" if screen_fail else ("NOT ASSIGNED" if r.status == "screened" else None),
            }
        )
        skip = ("status", "reference_date") + (() if blank_arm else ("dose_cells_per_kg",))
        quals = {k: v for k, v in SUPP_SUBJECTS.items() if v not in skip}
        if r.status == "withdrawn":
            quals["STATUS"] = "status"
        if ref and ref != anchors[sid]:
            quals["REFDATE"] = "reference_date"
        add_supp("DM", sid, None, quals, r)
    out: dict[str, list[dict[str, Any]]] = {"DM": dm}

    for r in iv.sort_values(["subject_id", "start_day", "row_id"], kind="stable").itertuples(index=False):
        sid = r.subject_id
        dom = "EX" if r.kind in ("lymphodepletion", "car_infusion") else "CM"
        n = next_seq(dom, sid)
        st, stdy = timing(sid, r.start_day)
        en, endy = timing(sid, r.end_day)
        dose, dosu = (r.dose, r.dose_unit) if _present(r.dose) else (None, r.dose_unit if _present(r.dose_unit) else None)
        quals = {"DEVICE": "device", "DETAILS": "details", "SOURCE": "source"}
        if r.kind == "oxygen" and dose is None and _present(r.flow_l_min):
            dose, dosu = float(r.flow_l_min), "L/min"
        elif _present(r.flow_l_min):
            quals["FLOWLMIN"] = "flow_l_min"
        if dom == "EX":
            quals["INDIC"] = "indication"
        rec = {
            "STUDYID": stid,
            "DOMAIN": dom,
            "USUBJID": sid,
            f"{dom}SEQ": n,
            f"{dom}TRT": r.agent if _present(r.agent) else r.kind.replace("_", " ").upper(),
            f"{dom}CAT": {"lymphodepletion": "LYMPHODEPLETION", "car_infusion": "CAR CELL INFUSION"}.get(r.kind, r.kind.upper()),
            f"{dom}DOSE": dose,
            f"{dom}DOSU": dosu,
            f"{dom}ROUTE": r.route if _present(r.route) else None,
            f"{dom}STDTC": st,
            f"{dom}ENDTC": en,
            f"{dom}STDY": stdy,
            f"{dom}ENDY": endy,
        }
        if dom == "CM":
            rec["CMDECOD"] = rec["CMTRT"]
            rec["CMINDC"] = r.indication if _present(r.indication) else None
        out.setdefault(dom, []).append(rec)
        add_supp(dom, sid, n, quals, r)
        if not _present(r.agent):  # the reader would read the kind name back as the agent
            supp.append({"STUDYID": stid, "RDOMAIN": dom, "USUBJID": sid, "IDVAR": f"{dom}SEQ", "IDVARVAL": str(n), "QNAM": "NOAGENT", "QLABEL": "agent not given", "QVAL": "Y"})

    obs = study.observations.sort_values(["subject_id", "day", "row_id"], kind="stable")
    for r in obs.itertuples(index=False):
        tc = vocab[r.code] if r.code in vocab else None
        if tc is None or tc.sdtm_domain not in OBS_DOMAINS or not tc.sdtm_testcd:
            continue
        dom, sid = tc.sdtm_domain, r.subject_id
        n = next_seq(dom, sid)
        dtc, dy = timing(sid, r.day)
        if dtc is None and _present(r.datetime):
            dtc = str(r.datetime)
        orres: str | None
        stresc: str | None
        stresn: float | None
        if bool(r.blq):
            res = f"<{r.lloq:.10g}" if _present(r.lloq) else "BLQ"
            orres, stresc, stresn = res, res, None
        elif _present(r.value):
            txt = r.value_text if _present(r.value_text) else f"{r.value:.17g}"
            orres, stresc, stresn = txt, txt, float(r.value)
        else:
            orres = stresc = r.value_text if _present(r.value_text) else None
            stresn = None
        out.setdefault(dom, []).append(
            {
                "STUDYID": stid,
                "DOMAIN": dom,
                "USUBJID": sid,
                f"{dom}SEQ": n,
                f"{dom}TESTCD": tc.sdtm_testcd,
                f"{dom}TEST": tc.name[:40],
                f"{dom}ORRES": orres,
                f"{dom}ORRESU": r.unit,
                f"{dom}STRESC": stresc,
                f"{dom}STRESN": stresn,
                f"{dom}STRESU": r.unit,
                f"{dom}STNRLO": r.lln if _present(r.lln) else None,
                f"{dom}STNRHI": r.uln if _present(r.uln) else None,
                f"{dom}LLOQ": r.lloq if _present(r.lloq) else None,
                f"{dom}SPEC": SPECIMEN_TO_SDTM.get(r.specimen) if _present(r.specimen) else None,
                f"{dom}DTC": dtc,
                f"{dom}DY": dy,
            }
        )
        add_supp(dom, sid, n, SUPP_OBSERVATIONS, r)

    ev = study.events.sort_values(["subject_id", "day", "row_id"], kind="stable")
    for r in ev.itertuples(index=False):
        sid = r.subject_id
        dtc, dy = timing(sid, r.day)
        if r.kind == "response":
            n = next_seq("RS", sid)
            out.setdefault("RS", []).append(
                {"STUDYID": stid, "DOMAIN": "RS", "USUBJID": sid, "RSSEQ": n, "RSTESTCD": "OVRLRESP", "RSTEST": "Overall Response", "RSCAT": r.details if _present(r.details) else None, "RSORRES": r.term, "RSSTRESC": r.term, "RSDTC": dtc, "RSDY": dy}
            )
            add_supp("RS", sid, n, {"ATTRIB": "attribution", "SOURCE": "source"}, r)
            continue
        n = next_seq("AE", sid)
        en, endy = timing(sid, r.end_day)
        out.setdefault("AE", []).append(
            {
                "STUDYID": stid,
                "DOMAIN": "AE",
                "USUBJID": sid,
                "AESEQ": n,
                "AETERM": r.term,
                "AEDECOD": r.term,
                "AECAT": r.kind.upper(),
                "AETOXGR": None if pd.isna(r.grade) else str(int(r.grade)),
                "AEREL": r.attribution if _present(r.attribution) else None,
                "AESTDTC": dtc,
                "AEENDTC": en,
                "AESTDY": dy,
                "AEENDY": endy,
            }
        )
        add_supp("AE", sid, n, {"DETAILS": "details", "SOURCE": "source"}, r)

    for rec in ie_records(study, attestations, overrides):
        sid = rec.pop("USUBJID")
        dtc, dy = timing(sid, rec.pop("day"))
        out.setdefault("IE", []).append({"STUDYID": stid, "DOMAIN": "IE", "USUBJID": sid, "IESEQ": next_seq("IE", sid), **rec, "IEDTC": dtc, "IEDY": dy})

    frames = {k: pd.DataFrame(v) for k, v in out.items()}
    if supp:
        sdf = pd.DataFrame(supp)
        for dom, part in sdf.groupby("RDOMAIN", sort=False):
            frames[f"SUPP{dom}"] = part.reset_index(drop=True)
    return frames


def write_sdtm(
    study: Study,
    folder: str | Path,
    file_format: str = "csv",
    study_id: str | None = None,
    *,
    attestations: Iterable[Mapping[str, Any]] | None = None,
    overrides: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Write a Study as SDTM datasets (``dm.csv`` ... or ``dm.xpt`` ... with ``file_format="xpt"``).

    Every dataset is computed before the first file is written, so a study that cannot be written
    (e.g. a criterion id that is no IETESTCD) writes nothing. What SDTM cannot carry is listed in
    ``docs/data-format.md`` and by :func:`uncarried`; ``attestations`` / ``overrides``: see :func:`ie_records`.
    """
    if file_format not in ("csv", "xpt"):
        raise InputError([Problem("unknown SDTM file format", str(folder), value=file_format, expected="csv or xpt")])
    tables = sdtm_tables(study, study_id, attestations=attestations, overrides=overrides)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df = df.copy()
        for c in df.columns:
            if c.endswith("SEQ") and file_format == "csv":
                df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
            elif c.endswith(_NUMERIC_SUFFIXES) or c in ("AGE",):
                df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
            else:
                df[c] = df[c].map(lambda v: "" if _blank(v) else str(v))
        path = folder / f"{name.lower()}.{file_format}"
        if file_format == "csv":
            df.to_csv(path, index=False)
        else:
            import pyreadstat

            labels = [_LABELS.get(c, c) for c in df.columns]
            pyreadstat.write_xport(df, str(path), table_name=name, file_format_version=5, column_labels=labels)
    return folder


__all__ = ["read_sdtm", "write_sdtm", "sdtm_tables", "ie_records", "uncarried", "SdtmOptions", "FINDINGS", "OBS_DOMAINS", "DOMAINS", "REQUIRED", "SPECIMEN_TO_SDTM"]
