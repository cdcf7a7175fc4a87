"""Plain JSON values, the one serializer of the API, the pages and the CLI's ``--json``.

NaN, NaT and infinities become None, timestamps become days, numpy scalars plain Python values.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def plain(value):
    """One value as plain Python (None for missing or non-finite; a timestamp as its ``date``)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).date()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def float_values(a) -> list[float | None]:
    """A float array as a list (None where not finite)."""
    a = np.asarray(a, dtype="float64")
    return [float(v) if ok else None for v, ok in zip(a.tolist(), np.isfinite(a).tolist())]


def column_values(s: pd.Series) -> list:
    """A column as plain Python values (None for missing; ``datetime64`` as ``date``)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        if getattr(s.dtype, "tz", None) is None:
            return s.to_numpy(dtype="datetime64[D]").tolist()  # numpy gives dates, and None for NaT
        return [None if pd.isna(v) else v.date() for v in s]
    if pd.api.types.is_bool_dtype(s) and s.dtype != object:
        return [None if pd.isna(v) else bool(v) for v in s.astype(object)]
    if pd.api.types.is_float_dtype(s):
        return float_values(s.to_numpy(dtype="float64", na_value=np.nan))
    if pd.api.types.is_integer_dtype(s):
        return [None if pd.isna(v) else int(v) for v in s.astype(object)]
    return [plain(v) for v in s.astype(object)]


def records(df: pd.DataFrame, columns: list[str] | None = None) -> list[dict]:
    """Rows of ``df`` (the given columns that exist, or all) as dicts of plain values."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    values = [column_values(df[c]) for c in cols]
    return [dict(zip(cols, row)) for row in zip(*values)]


def plain_dict(values: dict) -> dict:
    """A dict's values as plain Python."""
    return {k: plain(v) for k, v in values.items()}
