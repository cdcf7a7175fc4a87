"""Frames to JSON-ready rows: NaN/NaT become None, timestamps become days, numpy scalars plain values."""

from __future__ import annotations

import numpy as np
import pandas as pd


def column_values(s: pd.Series) -> list:
    """A column as plain Python values (None for missing; ``datetime64`` as ``date``)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        if getattr(s.dtype, "tz", None) is None:
            return s.to_numpy(dtype="datetime64[D]").tolist()  # numpy gives dates, and None for NaT
        return [None if pd.isna(v) else v.date() for v in s]
    if pd.api.types.is_bool_dtype(s) and s.dtype != object:
        return [None if pd.isna(v) else bool(v) for v in s.astype(object)]
    if pd.api.types.is_float_dtype(s):
        a = s.to_numpy(dtype="float64", na_value=np.nan)
        ok = np.isfinite(a)
        return [float(v) if k else None for v, k in zip(a.tolist(), ok.tolist())]
    if pd.api.types.is_integer_dtype(s):
        return [None if pd.isna(v) else int(v) for v in s.astype(object)]
    return [None if v is None or (isinstance(v, float) and not np.isfinite(v)) or v is pd.NA or v is pd.NaT
            else (v.date() if isinstance(v, pd.Timestamp) else v) for v in s.astype(object)]


def records(df: pd.DataFrame, columns: list[str] | None = None) -> list[dict]:
    """Rows of ``df`` (the given columns that exist, or all) as dicts of plain values."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    values = [column_values(df[c]) for c in cols]
    return [dict(zip(cols, row)) for row in zip(*values)]
