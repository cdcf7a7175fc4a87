"""What every writer of canonical rows into a ledger table shares: the ``RowWriter`` protocol and the
writing of a frame a batch at a time.

The two writers: ``ledger.staged_upsert.StagedUpsert`` (rows staged in a temporary table, then
merged with one statement; ``upsert_frame``, the short write of a frame) and
``ledger.direct_insert.DirectInsert`` (SQLite: rows of new keys straight into the table, committed
a batch at a time). Both encode, hash and write their batches here (``_write_frame``), each deciding
what taking the lock and a checkpoint between batches mean.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa

from ledger.contracts import TABLES, Table
from ledger.hashing import digests, encode_columns, extra_parts, join_parts
from ledger.memory import gc_paused
from ledger.schema import LEDGER_TABLES

CHUNK_ROWS = 20_000
"""Rows per staging batch (``executemany`` on SQLite, ``COPY`` on PostgreSQL)."""
SQLITE_CACHE_KB = 256 * 1024
"""SQLite page cache while rows are written (KiB; the default is 2 MB)."""


def _extra_texts(df: pd.DataFrame, names: list[str]) -> list[str | None]:
    """Mapped extras as one JSON object per row (None when a row has none)."""
    if not names:
        return [None] * len(df)
    cols = []
    for n in names:
        s = df[n]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            vals = s.astype("float64").astype("object")
        else:
            vals = s.astype("object")
        cols.append(vals.where(s.notna(), None).tolist())
    out = []
    for row in zip(*cols):
        d = {k: v for k, v in zip(names, row) if v is not None}
        out.append(json.dumps(d) if d else None)
    return out


def _write_chunk(staged: "RowWriter", columns: list[list[Any]]) -> None:
    """Write one batch of staged rows, given column-wise (a seam for the atomicity test)."""
    staged.write_columns(columns)


class RowWriter(Protocol):
    """What an ingest asks of a writer of one ledger table (``StagedUpsert`` or ``DirectInsert``).

    ``stage_frame`` batches of rows (unique ``source_row`` each), then ``merge`` once; ``close``
    whatever happens. ``staged`` counts the rows written so far; ``now`` stamps them. The change row
    (``ledger.changes``) is recorded by ``merge``, or with ``announce_at_merge`` False by ``announce``,
    which the caller calls just before its commit.
    """

    spec: Table
    now: datetime
    staged: int
    announce_at_merge: bool

    def announce(self) -> None:
        """Record the change row of what ``merge`` wrote (once)."""

    def stage_frame(self, df: pd.DataFrame, on_progress: Callable[[int], None] | None = None) -> pd.Series:
        """Write rows; their ``row_hash``."""

    def merge(self) -> tuple[int, int, int]:
        """Finish the write: ``(inserted, updated, unchanged)``."""

    def close(self) -> None:
        """Release what the writer holds (a staging table, the page cache size)."""


def _bind(writer, conn: sa.Connection, table: str | Table, extras, now: datetime | None) -> None:
    """What every writer of a ledger table holds: connection, table, extra attributes, time stamp."""
    writer.conn = conn
    writer.spec = TABLES[table] if isinstance(table, str) else table
    writer.target = LEDGER_TABLES[writer.spec.name]
    writer.extras = list(extras)
    if writer.extras and writer.spec.name != "invoices":
        raise ValueError(f"Table {writer.spec.name!r} has no extra attributes; unexpected columns {writer.extras}.")
    writer.now = now or datetime.now(UTC)
    writer.dialect = conn.dialect.name
    writer.staged = 0


def _write_frame(writer: "RowWriter", df: pd.DataFrame, on_progress: Callable[[int], None] | None = None) -> pd.Series:
    """Write typed canonical rows with a unique ``source_row`` column (and extras) a batch at a time:
    ``lock``, write, ``checkpoint``, the writer deciding what each means.

    Returns:
        Their ``row_hash``: the frame's own column if it has one (trusted), else computed.
    """
    with gc_paused():
        db_cols, text_cols = encode_columns(writer.spec, df, writer.spec.names)
        if "row_hash" in df.columns:
            hashes = df["row_hash"].astype("str").tolist()
        else:
            hashes = digests(join_parts(text_cols + extra_parts(writer.spec, df), len(df)))
        del text_cols
        cols = [df["source_row"].astype("int64").tolist(), *db_cols]
        if writer.spec.name == "invoices":
            cols.append(_extra_texts(df, writer.extras))
        cols.append(hashes)
        for start in range(0, len(df), CHUNK_ROWS):
            writer.lock()
            _write_chunk(writer, [c[start:start + CHUNK_ROWS] for c in cols])
            writer.staged += min(CHUNK_ROWS, len(df) - start)
            writer.checkpoint(last=start + CHUNK_ROWS >= len(df))
            if on_progress:
                on_progress(writer.staged)
    return pd.Series(hashes, index=df.index, dtype=object)
