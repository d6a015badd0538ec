"""Canonical JSON and content hashes for the audit chain and for versioned study content.

* :func:`canonical_json` -- sorted keys, no whitespace, UTF-8: the byte form that is hashed.
* :func:`table_hash` -- SHA-256 of a Study table, column by column (float64 little-endian bytes with one
  NaN pattern and no negative zero; nullable integers as values plus a mask; text joined with a unit
  separator and a null marker). It depends only on column names, order of rows and values, never on the
  pandas version's internal hashing, so a table read back from the database hashes the same as the one
  that was written.
* :func:`study_hash` -- SHA-256 over the four table hashes and the canonical meta.
* :func:`record_hash` -- SHA-256 of an audit record's canonical JSON (which includes the previous hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cd7kit.data import jsonable

GENESIS_HASH = "0" * 64
_NULL = "\x00"
_SEP = "\x1f"


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace (NaN becomes null)."""
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _column_bytes(s: pd.Series) -> tuple[str, bytes]:
    dtype = str(s.dtype)
    if dtype == "float64":
        a = s.to_numpy(dtype="<f8", copy=True)
        a[np.isnan(a)] = np.nan
        a = a + 0.0  # -0.0 -> 0.0
        return "f8", a.tobytes()
    if dtype in ("Int64", "int64", "int32", "Int32"):
        mask = s.isna().to_numpy()
        vals = s.fillna(0).to_numpy(dtype="<i8") if mask.any() else s.to_numpy(dtype="<i8")
        return "i8", vals.tobytes() + np.packbits(mask).tobytes()
    if dtype in ("bool", "boolean"):
        mask = s.isna().to_numpy()
        vals = s.fillna(False).to_numpy(dtype=bool).astype("u1")
        return "b1", vals.tobytes() + np.packbits(mask).tobytes()
    arr = s.to_numpy(dtype=object, copy=True)
    arr[pd.isna(arr)] = _NULL
    text = _SEP.join(map(str, arr.tolist()))
    return "s", text.encode("utf-8")


def table_hash(df: pd.DataFrame) -> str:
    """SHA-256 of a table's columns (names, kinds and values, in row order)."""
    h = hashlib.sha256()
    h.update(f"rows={len(df)};".encode())
    for col in df.columns:
        kind, data = _column_bytes(df[col])
        h.update(f"{col}:{kind}:{len(data)};".encode())
        h.update(data)
    return h.hexdigest()


def study_hash(table_hashes: Mapping[str, str], meta: Mapping[str, Any]) -> str:
    """SHA-256 of a study's content: its four table hashes and its meta."""
    return sha256_text(canonical_json({"tables": dict(table_hashes), "meta": dict(meta)}))


def record_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of an audit record's canonical JSON (the fields include ``prev_hash``)."""
    return sha256_text(canonical_json(dict(fields)))


__all__ = ["GENESIS_HASH", "canonical_json", "sha256_text", "table_hash", "study_hash", "record_hash"]
