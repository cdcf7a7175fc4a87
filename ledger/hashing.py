"""Row hashes: the digest of a row's canonical values, on which idempotent writes rest.

A row's ``row_hash`` digests its canonical values (and, for invoices, its mapped extras) as text.
Re-sending the same rows changes nothing; a row whose values changed (an invoice now paid) is
updated; the rest is counted unchanged. ``content_ids`` gives rows without a key (payments,
actions of some exports) an id made of their content.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from ledger.contracts import Table


def _all_text(values: np.ndarray) -> bool:
    return len(values) == 0 or pd.api.types.infer_dtype(values, skipna=False) == "string"


def _iso_days(days: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD`` of ``datetime64[D]`` values as Python strings (anything where ``missing``).

    Each day of the column's span is formatted once and shared: numpy formats a date in ~0.4 us,
    and a ledger's dates repeat a few hundred days.
    """
    i = days.view("int64")
    present = i[~missing]
    if not len(present):
        return np.full(len(days), None, dtype=object)
    lo, hi = int(present.min()), int(present.max())
    if hi - lo >= 1_000_000:  # a span over 2,700 years: format every value
        return np.datetime_as_string(days, unit="D").astype(object)
    table = np.datetime_as_string(np.arange(lo, hi + 1, dtype="int64").astype("datetime64[D]"), unit="D")
    return table.astype(object)[np.where(missing, 0, i - lo)]


def encode_columns(table: Table, df: pd.DataFrame, names: list[str]) -> tuple[list[list[Any]], list[list[str]]]:
    """Each column of ``names`` once as driver values and once as canonical text.

    Driver values: ISO text for dates, floats, booleans, text, None for missing. Canonical text
    (``canonical_strings``): ``YYYY-MM-DD``, Python's ``repr`` of the float, ``1``/``0``, the
    text; a missing value is empty, as the first release stored it (pandas' ``fillna("\\x00")`` on
    objects gave ""; stored hashes must stay valid, and ingest turns empty text into missing).
    """
    db_cols: list[list[Any]] = []
    text_cols: list[list[str]] = []
    for name in names:
        s = df[name]
        kind = table.column(name).kind
        missing = s.isna().to_numpy()
        if kind == "date":
            if not pd.api.types.is_datetime64_any_dtype(s):
                s = pd.to_datetime(s).astype("datetime64[s]")
            values = _iso_days(s.to_numpy(dtype="datetime64[D]"), missing)
            text = values
        elif kind in ("amount", "int"):
            floats = pd.to_numeric(s).astype("float64").to_numpy(na_value=np.nan)
            text = np.array(list(map(repr, floats.tolist())), dtype=object)
            values = floats.astype(object) if kind == "amount" else \
                s.astype("Int64").to_numpy(dtype=object, na_value=None)
        elif kind == "bool":
            values = s.astype("boolean").to_numpy(dtype=object, na_value=None)
            text = np.array(["1" if v else "0" for v in values.tolist()], dtype=object)
        else:
            values = s.to_numpy(dtype=object)
            if not _all_text(values[~missing]):
                values = s.astype("str").to_numpy(dtype=object)
            text = values
        if missing.any():
            values = values.copy()
            values[missing] = None
            text = text.copy()
            text[missing] = ""
        db_cols.append(values.tolist())
        text_cols.append(text.tolist())
    return db_cols, text_cols


def extra_parts(table: Table, df: pd.DataFrame) -> list[list[str]]:
    """Canonical text of the columns outside the contract (invoice extras), in name order."""
    others = sorted(c for c in df.columns if c not in table.names and c not in ("extra", "row_hash", "source_row"))
    return [(name + "=" + df[name].astype("str")).where(df[name].notna(), "\x00").astype("str").tolist()
            for name in others]


def join_parts(parts: list[list[str]], n: int) -> list[str]:
    return ["\x1f".join(row) for row in zip(*parts)] if parts else [""] * n


def _canonical_texts(table: Table, df: pd.DataFrame, columns: list[str] | None = None) -> list[str]:
    """``canonical_strings`` as a list."""
    parts = encode_columns(table, df, columns if columns is not None else table.names)[1]
    if columns is None:
        parts += extra_parts(table, df)
    return join_parts(parts, len(df))


def canonical_strings(table: Table, df: pd.DataFrame, columns: list[str] | None = None) -> pd.Series:
    """One string per row holding its canonical values, in a stable text form.

    ``df`` must be typed (``contracts.coerce_frame``). Columns outside the contract (the extras of
    invoices) are appended in name order as ``name=value``, unless ``columns`` picks the columns.
    Dates are ``YYYY-MM-DD``, numbers Python's ``repr`` of the float, booleans ``1``/``0``, a
    missing canonical value empty and a missing extra ``\\x00``; values are separated by ``\\x1f``.
    """
    return pd.Series(_canonical_texts(table, df, columns), index=df.index, dtype=object)


def digests(texts: list[str]) -> list[str]:
    blake2b = hashlib.blake2b
    return [blake2b(t.encode(), digest_size=16).hexdigest() for t in texts]


def row_hashes(table: Table, df: pd.DataFrame) -> pd.Series:
    """The ``row_hash`` of every row of a typed canonical frame (32 hex characters)."""
    return pd.Series(digests(_canonical_texts(table, df)), index=df.index, dtype=object)


def content_ids(table: Table, df: pd.DataFrame, prefix: str) -> pd.Series:
    """Deterministic ids from a row's content, key excluded (for actions sent without an id)."""
    names = [n for n in table.names if n != table.key]
    ids = [prefix + d[:20] for d in digests(_canonical_texts(table, df, names))]
    return pd.Series(ids, index=df.index, dtype=object)
