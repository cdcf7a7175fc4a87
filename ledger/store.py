"""The ledger store: open (and migrate) it, load a ``Ledger`` from it, upsert canonical frames.

SQLite by default, PostgreSQL by URL. ``open_store`` (``ledger.engine``, re-exported here) always
runs the Alembic migrations up to the head revision, under a lock, so a newer release upgrades an
existing store in place.

Idempotence rests on ``row_hash``: a digest of a row's canonical values (and, for invoices, its
mapped extras). Re-sending the same rows changes nothing; a row whose values changed (an invoice
now paid) is updated; the rest is counted unchanged.

Writes go through a staging table (``StagedUpsert``: batches by ``executemany`` on SQLite, ``COPY``
on PostgreSQL, then one ``INSERT ... SELECT`` that skips identical rows), so memory stays bounded
by a batch and the counts come from SQL. On SQLite, rows whose keys are all new (a first load, or
an export of new documents) go straight into the table instead (``DirectInsert``).

``load_ledger`` reads the driver's values column-wise (PostgreSQL: ``COPY ... TO STDOUT`` parsed
by Arrow), never through per-value type processing; SQLite rows in table order, sorted by key here.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import tempfile
import time
from datetime import UTC, datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.contracts import COMPACT_TABLES, TABLES, Ledger, Table, coerce_frame, compact_frame
from ledger.engine import (alembic_config, create_store_engine, current_revision, head_revision,  # noqa: F401
                           open_store, upgrade_store)
from ledger.schema import LEDGER_TABLES

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
"""Rows per staging batch (``executemany`` on SQLite, ``COPY`` on PostgreSQL)."""
REBUILD_MIN_ROWS = 50_000
"""A merge adding at least this many rows, and more than the table holds, rebuilds
the table's secondary indexes instead of updating them row by row."""
SQLITE_CACHE_KB = 256 * 1024
"""SQLite page cache while rows are written (KiB; the default is 2 MB)."""


# --- row hashes ----------------------------------------------------------------------------------


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


def _encode(table: Table, df: pd.DataFrame, names: list[str]) -> tuple[list[list[Any]], list[list[str]]]:
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


def _extra_parts(table: Table, df: pd.DataFrame) -> list[list[str]]:
    """Canonical text of the columns outside the contract (invoice extras), in name order."""
    others = sorted(c for c in df.columns if c not in table.names and c not in ("extra", "row_hash", "source_row"))
    return [(name + "=" + df[name].astype("str")).where(df[name].notna(), "\x00").astype("str").tolist()
            for name in others]


def _join(parts: list[list[str]], n: int) -> list[str]:
    return ["\x1f".join(row) for row in zip(*parts)] if parts else [""] * n


def _canonical_texts(table: Table, df: pd.DataFrame, columns: list[str] | None = None) -> list[str]:
    """``canonical_strings`` as a list."""
    parts = _encode(table, df, columns if columns is not None else table.names)[1]
    if columns is None:
        parts += _extra_parts(table, df)
    return _join(parts, len(df))


def canonical_strings(table: Table, df: pd.DataFrame, columns: list[str] | None = None) -> pd.Series:
    """One string per row holding its canonical values, in a stable text form.

    ``df`` must be typed (``contracts.coerce_frame``). Columns outside the contract (the extras of
    invoices) are appended in name order as ``name=value``, unless ``columns`` picks the columns.
    Dates are ``YYYY-MM-DD``, numbers Python's ``repr`` of the float, booleans ``1``/``0``, a
    missing canonical value empty and a missing extra ``\\x00``; values are separated by ``\\x1f``.
    """
    return pd.Series(_canonical_texts(table, df, columns), index=df.index, dtype=object)


def _digests(texts: list[str]) -> list[str]:
    blake2b = hashlib.blake2b
    return [blake2b(t.encode(), digest_size=16).hexdigest() for t in texts]


def row_hashes(table: Table, df: pd.DataFrame) -> pd.Series:
    """The ``row_hash`` of every row of a typed canonical frame (32 hex characters)."""
    return pd.Series(_digests(_canonical_texts(table, df)), index=df.index, dtype=object)


def content_ids(table: Table, df: pd.DataFrame, prefix: str) -> pd.Series:
    """Deterministic ids from a row's content, key excluded (for actions sent without an id)."""
    names = [n for n in table.names if n != table.key]
    ids = [prefix + d[:20] for d in _digests(_canonical_texts(table, df, names))]
    return pd.Series(ids, index=df.index, dtype=object)


# --- upsert ----------------------------------------------------------------------------------------


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


def _write_chunk(staged: "StagedUpsert", columns: list[list[Any]]) -> None:
    """Write one batch of staged rows, given column-wise (a seam for the atomicity test)."""
    staged.write_columns(columns)


class StagedUpsert:
    """Rows staged in a temporary table, then merged into a ledger table with one statement.

    Staging keeps memory bounded whatever the file size (a batch at a time goes to the database)
    and lets duplicate keys be settled before anything touches the ledger table. SQLite takes the
    batches with ``executemany``, PostgreSQL with ``COPY``. Everything happens in the caller's
    transaction: a failure leaves the ledger table as it was.

    Usage: ``stage`` batches (with a unique ``source_row`` each), ``discard`` rows if needed,
    then ``merge``. With ``lock_at_merge`` (a file ingest on SQLite, whose transaction has written
    only the temporary stage), the store's write lock is taken at the merge: held for the merge
    only, never while the file is read.
    """

    def _bind(self, conn: sa.Connection, table: str | Table, extras, now: datetime | None) -> None:
        """What every writer of a ledger table holds: connection, table, extra attributes, time stamp."""
        self.conn = conn
        self.spec = TABLES[table] if isinstance(table, str) else table
        self.target = LEDGER_TABLES[self.spec.name]
        self.extras = list(extras)
        if self.extras and self.spec.name != "invoices":
            raise ValueError(f"Table {self.spec.name!r} has no extra attributes; unexpected columns {self.extras}.")
        self.now = now or datetime.now(UTC)
        self.dialect = conn.dialect.name
        self.staged = 0

    def __init__(self, conn: sa.Connection, table: str | Table, extras: list[str] | tuple[str, ...] = (),
                 now: datetime | None = None, lock_at_merge: bool = False) -> None:
        self._bind(conn, table, extras, now)
        self.lock_at_merge = lock_at_merge
        columns = [sa.Column("source_row", sa.Integer(), primary_key=True, autoincrement=False)]
        columns += [sa.Column(n, self.target.c[n].type) for n in self.spec.names]
        if self.spec.name == "invoices":
            columns.append(sa.Column("extra", sa.Text()))
        columns.append(sa.Column("row_hash", self.target.c.row_hash.type))
        self.stage = sa.Table(f"_stage_{self.spec.name}", sa.MetaData(), *columns, prefixes=["TEMPORARY"])
        self.stage.drop(conn, checkfirst=True)  # a failed ingest may have left it on a pooled connection
        self.stage.create(conn)
        self._cache_size = None
        if self.dialect == "sqlite":
            # Index maintenance on a large merge thrashes SQLite's default 2 MB page cache.
            self._cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            conn.exec_driver_sql(f"PRAGMA cache_size={-SQLITE_CACHE_KB}")
        self._names = [c.name for c in columns]
        arrow_of = {"date": "string", "amount": "float64", "int": "int64", "bool": "bool", "str": "string"}
        self._arrow_types = ["int64", *(arrow_of[self.spec.column(n).kind] for n in self.spec.names)]
        self._arrow_types += ["string"] * (len(self._names) - len(self._arrow_types))  # extra, row_hash

    def stage_frame(self, df: pd.DataFrame, on_progress: Callable[[int], None] | None = None) -> pd.Series:
        """Stage typed canonical rows with a unique ``source_row`` column (and extras).

        Returns:
            Their ``row_hash``: the frame's own column if it has one (trusted), else computed.
        """
        with _gc_paused():
            db_cols, text_cols = _encode(self.spec, df, self.spec.names)
            if "row_hash" in df.columns:
                hashes = df["row_hash"].astype("str").tolist()
            else:
                hashes = _digests(_join(text_cols + _extra_parts(self.spec, df), len(df)))
            del text_cols
            cols = [df["source_row"].astype("int64").tolist(), *db_cols]
            if self.spec.name == "invoices":
                cols.append(_extra_texts(df, self.extras))
            cols.append(hashes)
            for start in range(0, len(df), CHUNK_ROWS):
                self.lock()
                _write_chunk(self, [c[start:start + CHUNK_ROWS] for c in cols])
                self.staged += min(CHUNK_ROWS, len(df) - start)
                self.checkpoint(last=start + CHUNK_ROWS >= len(df))
                if on_progress:
                    on_progress(self.staged)
        return pd.Series(hashes, index=df.index, dtype=object)

    def lock(self) -> None:
        """Before each batch: nothing here (the caller's transaction holds everything)."""

    def checkpoint(self, last: bool = False) -> None:
        """After each batch (``last``: of a frame): nothing here (staged rows wait in the caller's transaction)."""

    def write_columns(self, columns: list[list[Any]]) -> None:
        """Write rows given as columns (in staging column order) to the staging table.

        PostgreSQL: one ``COPY ... (FORMAT csv)`` of the batch written by Arrow's CSV writer (every
        value quoted, so an empty text stays distinct from a null; floats round-trip exactly).
        SQLite: ``executemany``.
        """
        if not columns or not len(columns[0]):
            return
        dbapi = self.conn.connection.driver_connection
        cols = ", ".join(self._names)
        if self.dialect == "postgresql":
            import pyarrow as pa
            import pyarrow.csv as pv

            batch = pa.table([pa.array(c, type=t) for c, t in zip(columns, self._arrow_types)], names=self._names)
            buf = io.BytesIO()
            pv.write_csv(batch, buf, write_options=pv.WriteOptions(include_header=False, quoting_style="all_valid"))
            with dbapi.cursor() as cur, cur.copy(f"COPY {self.stage.name} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getbuffer())
        else:
            marks = ", ".join("?" * len(self._names))
            cur = dbapi.cursor()
            try:
                cur.executemany(f"INSERT INTO {self.stage.name} ({cols}) VALUES ({marks})", zip(*columns))
            finally:
                cur.close()

    def fetch(self, source_rows: list[int]) -> pd.DataFrame:
        """``source_row``, key and ``row_hash`` of staged rows."""
        key = self.spec.key
        parts = []
        for start in range(0, len(source_rows), 10_000):
            batch = source_rows[start:start + 10_000]
            res = self.conn.execute(sa.select(self.stage.c.source_row, self.stage.c[key], self.stage.c.row_hash)
                                    .where(self.stage.c.source_row.in_(batch)))
            parts.append(pd.DataFrame(res.all(), columns=["source_row", key, "row_hash"]))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["source_row", key, "row_hash"])

    def discard(self, source_rows: list[int]) -> None:
        """Drop staged rows (duplicates) before the merge."""
        for start in range(0, len(source_rows), 10_000):
            batch = source_rows[start:start + 10_000]
            self.conn.execute(self.stage.delete().where(self.stage.c.source_row.in_(batch)))
            self.staged -= len(batch)

    def counts(self) -> tuple[int, int, int]:
        """``(new, changed, unchanged)`` staged keys against the ledger table."""
        s, t, key = self.stage, self.target, self.spec.key
        n = self.conn.execute(sa.select(sa.func.count()).select_from(s)).scalar_one()
        matched, changed = self.conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(
                sa.case((t.c.row_hash != s.c.row_hash, 1), else_=0)), 0))
            .select_from(s.join(t, t.c[key] == s.c[key]))
        ).one()
        return int(n - matched), int(changed), int(matched - changed)

    def merge(self) -> tuple[int, int, int]:
        """Insert new keys and update changed rows; drop the staging table.

        Returns:
            ``(inserted, updated, unchanged)``.
        """
        if self.lock_at_merge and self.dialect == "sqlite":
            # Staging wrote to the connection's temporary database only; the write lock on the store
            # is taken now, for the merge alone, before reading the table (a read snapshot taken
            # first could be outdated by another writer's commit, and SQLite refuses to write from it).
            dbapi = self.conn.connection.driver_connection
            if dbapi.in_transaction:
                dbapi.commit()
            dbapi.execute("BEGIN IMMEDIATE")
        new, changed, unchanged = self.counts()
        rebuild: list[sa.Index] = []
        if new >= REBUILD_MIN_ROWS:
            stored = self.conn.execute(sa.select(sa.func.count()).select_from(self.target)).scalar_one()
            if new > stored:
                # Building an index from sorted data beats inserting as many rows into it one by
                # one (SQLite: 5.6 -> 3.2 s for 1M invoices). SQLite readers keep their snapshot
                # (WAL); PostgreSQL readers of the table wait for the commit (DROP INDEX locks it).
                rebuild = sorted(self.target.indexes, key=lambda ix: ix.name)
        for ix in rebuild:
            ix.drop(self.conn)
        if new or changed:
            # No staged key is stored yet: a plain INSERT (PostgreSQL's ON CONFLICT checks every
            # row with a speculative insertion, which a first load does not need).
            self.conn.execute(self._merge_statement(plain=not (changed or unchanged)))
        for ix in rebuild:
            ix.create(self.conn)
        self.close()
        return new, changed, unchanged

    def close(self) -> None:
        """Drop the staging table (if still there)."""
        self.stage.drop(self.conn, checkfirst=True)
        if self._cache_size is not None:
            self.conn.exec_driver_sql(f"PRAGMA cache_size={int(self._cache_size)}")
            self._cache_size = None

    def _merge_statement(self, plain: bool = False) -> sa.Executable:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise NotImplementedError(f"the ledger store runs on SQLite or PostgreSQL, not {self.dialect}")
        s, t = self.stage, self.target
        names = [*self.spec.names, *(["extra"] if self.spec.name == "invoices" else []), "row_hash"]
        values: list[Any] = []
        for n in names:
            col = s.c[n]
            if n == "extra" and self.dialect == "postgresql":
                col = sa.cast(col, t.c.extra.type)
            values.append(col)
        stamp_type = t.c.updated_at.type
        values += [sa.bindparam("ingested_at", self.now, type_=stamp_type),
                   sa.bindparam("updated_at", self.now, type_=stamp_type)]
        # SQLite needs a WHERE in INSERT ... SELECT ... ON CONFLICT (the ON would read as a join's).
        select = sa.select(*values).where(sa.true())
        stmt = insert(t).from_select([*names, "ingested_at", "updated_at"], select)
        if plain:
            return stmt
        changed = {n: stmt.excluded[n] for n in names if n != self.spec.key}
        changed["updated_at"] = stmt.excluded.updated_at
        return stmt.on_conflict_do_update(index_elements=[t.c[self.spec.key]], set_=changed,
                                          where=t.c.row_hash != stmt.excluded.row_hash)


def _stored_probe(conn: sa.Connection, spec: Table) -> str:
    """SQL finding whether any key of a JSON array (the one parameter) is stored: one index
    look-up per key, the keys passed as one text instead of a parameter each."""
    q = conn.dialect.identifier_preparer.quote
    return (f"SELECT 1 FROM json_each(?) AS k WHERE EXISTS "
            f"(SELECT 1 FROM {q(spec.name)} WHERE {q(spec.key)} = k.value) LIMIT 1")


def _is_empty(conn: sa.Connection, target: sa.Table) -> bool:
    return conn.execute(sa.select(sa.literal(1)).select_from(target).limit(1)).first() is None


def _begin_sqlite(conn: sa.Connection) -> None:
    """Open the SQLite transaction now if the driver has not yet.

    pysqlite begins a transaction only before its first INSERT/UPDATE/DELETE: DDL sent before
    that (dropping an index) would be committed at once, outside the caller's transaction.
    """
    dbapi = conn.connection.driver_connection
    if not dbapi.in_transaction:
        dbapi.execute("BEGIN")


class DirectInsert(StagedUpsert):
    """Rows of new keys inserted straight into a ledger table (SQLite), without staging.

    ``StagedUpsert``'s interface (``stage_frame``, ``merge``, ``close``), values, hashes and stamps,
    without the staging table, the merge statement and its look-ups. Right only while every
    staged key is unique and not stored: ``ledger.ingest`` checks each chunk (``any_stored`` and
    its own digests) before writing it, and starts the file over with ``StagedUpsert`` when a key
    repeats. On an empty table the secondary indexes are dropped first and built once over the
    loaded rows by ``merge``.

    The rows are committed a batch at a time (``checkpoint``): SQLite's write lock is held for one
    batch, never for the whole file, so a short write from elsewhere (an action recorded through
    the API) waits a fraction of a second, not the file's length. One logical ingest all the same:
    a failure, a rejected file or a repeated key ``undo``es what it committed (every row it
    inserted carries its stamp; none existed before), indexes included. An ingest killed
    part-way leaves the batches it committed: sending the file again stores the rest (the stored
    rows are unchanged), and ``open_store`` rebuilds any index it had dropped.
    """

    COMMIT_ROWS = 20_000
    """Rows per commit (one batch): the lock is held a fraction of a second at a time; committing
    every batch leaves a 1M-row ingest as fast as one transaction (bench/RESULTS.md, writes during
    an ingest)."""
    COMMIT_GAP_SECONDS = 0.01
    """Pause between a batch's commit and the next batch: writers waiting for the lock (polling every
    few milliseconds, ``ledger.writes``) take it in this gap."""

    def __init__(self, conn: sa.Connection, table: str | Table, extras: list[str] | tuple[str, ...] = (),
                 now: datetime | None = None) -> None:
        if conn.dialect.name != "sqlite":
            raise ValueError(f"DirectInsert writes to SQLite, not {conn.dialect.name}.")
        self._bind(conn, table, extras, now)
        _begin_sqlite(conn)
        self.was_empty = _is_empty(conn, self.target)
        names = [*self.spec.names, *(["extra"] if self.spec.name == "invoices" else []), "row_hash"]
        self._names = ["source_row", *names]
        # The stamps as SQLAlchemy binds them in the merge statement (same text in the table).
        stamp_type = self.target.c.updated_at.type.dialect_impl(conn.dialect)
        process = stamp_type.bind_processor(conn.dialect)
        stamp = str(process(self.now) if process else self.now).replace("'", "''")
        preparer = conn.dialect.identifier_preparer
        cols = ", ".join(preparer.quote(n) for n in [*names, "ingested_at", "updated_at"])
        marks = ", ".join("?" * len(names))
        self._insert = (f"INSERT INTO {preparer.quote(self.target.name)} ({cols}) "
                        f"VALUES ({marks}, '{stamp}', '{stamp}')")
        self._cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size={-SQLITE_CACHE_KB}")
        # Building an index over sorted data beats inserting into it row by row; a table that
        # holds rows keeps its indexes (the file may be small next to it).
        self._indexes = sorted(self.target.indexes, key=lambda ix: ix.name) if self.was_empty else []
        for ix in self._indexes:
            ix.drop(conn)
        self._probe = _stored_probe(conn, self.spec)
        self._stamp = stamp
        self.committed = 0

    def lock(self) -> None:
        """Take the write lock for the next batch (waiting for others' short writes: the busy timeout)."""
        dbapi = self.conn.connection.driver_connection
        if not dbapi.in_transaction:
            dbapi.execute("BEGIN IMMEDIATE")

    def checkpoint(self, last: bool = False) -> None:
        """Commit once ``COMMIT_ROWS`` rows are written, and after a frame's ``last`` batch, leaving
        writers a gap; the lock is taken again at the next batch, so reading and checking the file's
        next chunk hold no lock."""
        if not last and self.staged - self.committed < self.COMMIT_ROWS:
            return
        self.conn.connection.driver_connection.commit()
        self.committed = self.staged
        time.sleep(self.COMMIT_GAP_SECONDS)

    def undo(self) -> None:
        """Remove every row this ingest inserted, in its own transaction, and rebuild dropped indexes."""
        dbapi = self.conn.connection.driver_connection
        if dbapi.in_transaction:
            dbapi.rollback()
        dbapi.execute("BEGIN IMMEDIATE")
        preparer = self.conn.dialect.identifier_preparer
        dbapi.execute(f"DELETE FROM {preparer.quote(self.target.name)} WHERE ingested_at = '{self._stamp}'")
        for ix in self._indexes:
            ix.create(self.conn, checkfirst=True)
        dbapi.commit()
        self.committed = self.staged = 0

    @staticmethod
    def usable(conn: sa.Connection, table: str | Table, keys: list[str]) -> bool:
        """Whether ``conn`` is a SQLite store whose ``table`` holds none of ``keys``.

        Asks under the write lock (``BEGIN IMMEDIATE``), so the answer holds until the transaction
        ends: nobody writes between it and the rows. When the answer is no and the transaction was
        opened here, it ends at once (nothing was written): the staged path reads the table at its
        merge, as if never asked. Kept open, its read snapshot would be older than any write
        committed meanwhile, and SQLite refuses to write from such a snapshot.
        """
        spec = TABLES[table] if isinstance(table, str) else table
        if conn.dialect.name != "sqlite":
            return False
        dbapi = conn.connection.driver_connection
        opened = not dbapi.in_transaction
        if opened:
            dbapi.execute("BEGIN IMMEDIATE")
        target = LEDGER_TABLES[spec.name]
        if _is_empty(conn, target):
            return True
        try:
            usable = conn.exec_driver_sql(_stored_probe(conn, spec), (json.dumps(keys),)).first() is None
        except sa.exc.OperationalError:  # a SQLite built without JSON functions
            usable = False
        if not usable and opened:
            dbapi.rollback()
        return usable

    def any_stored(self, keys: list[str]) -> bool:
        """Whether the table held any of ``keys`` before this transaction (none if it was empty)."""
        if self.was_empty or not keys:
            return False
        return self.conn.exec_driver_sql(self._probe, (json.dumps(keys),)).first() is not None

    def write_columns(self, columns: list[list[Any]]) -> None:
        """Insert rows given as columns in staging order (``source_row`` first, not stored)."""
        if not columns or not len(columns[0]):
            return
        cur = self.conn.connection.driver_connection.cursor()
        try:
            cur.executemany(self._insert, zip(*columns[1:]))
        finally:
            cur.close()

    def fetch(self, source_rows: list[int]) -> pd.DataFrame:
        raise NotImplementedError("DirectInsert keeps no staged rows: duplicate keys need StagedUpsert.")

    def discard(self, source_rows: list[int]) -> None:
        raise NotImplementedError("DirectInsert keeps no staged rows: duplicate keys need StagedUpsert.")

    def counts(self) -> tuple[int, int, int]:
        return self.staged, 0, 0

    def merge(self) -> tuple[int, int, int]:
        """Build the secondary indexes over the inserted rows.

        Returns:
            ``(inserted, 0, 0)``.
        """
        dbapi = self.conn.connection.driver_connection
        for ix in self._indexes:  # one transaction per index: the lock is held for one index build at a time
            self.lock()
            ix.create(self.conn, checkfirst=True)  # open_store may have rebuilt one meanwhile
            dbapi.commit()
            time.sleep(self.COMMIT_GAP_SECONDS)
        self._indexes = []
        self.lock()  # the caller records the run and commits
        self.close()
        return self.staged, 0, 0

    def close(self) -> None:
        """Give the connection its page cache size back (a rollback restores dropped indexes)."""
        if self._cache_size is not None:
            self.conn.exec_driver_sql(f"PRAGMA cache_size={int(self._cache_size)}")
            self._cache_size = None


def upsert_frame(
    conn: sa.Connection,
    table: str | Table,
    df: pd.DataFrame,
    *,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int, int]:
    """Insert new keys, update keys whose values changed, leave the rest; in the caller's transaction.

    Args:
        conn: a connection inside a transaction (``engine.begin()``); nothing is committed here.
        table: canonical table name or ``contracts`` table.
        df: rows with the table's canonical columns (typed or coercible, keys unique). For invoices,
            other columns are mapped extras, stored in ``extra``. A ``row_hash`` column, if present,
            is trusted (``row_hashes`` computes it).
        now: timestamp for ``ingested_at``/``updated_at`` (default: the current UTC time).
        on_progress: called with (rows staged, rows to stage) after every batch.

    Returns:
        ``(inserted, updated, unchanged)`` counts.
    """
    spec = TABLES[table] if isinstance(table, str) else table
    extras = [c for c in df.columns if c not in spec.names and c != "row_hash"]
    if extras and spec.name != "invoices":
        raise ValueError(f"Table {spec.name!r} has no extra attributes; unexpected columns {extras}.")
    if df[spec.key].duplicated().any():
        dups = df.loc[df[spec.key].duplicated(), spec.key].head(5).tolist()
        raise ValueError(f"upsert_frame needs unique {spec.key} values; duplicated: {dups}.")
    frame = coerce_frame(df.drop(columns=["row_hash"], errors="ignore"), spec)
    frame[spec.key] = frame[spec.key].astype("str")
    if "row_hash" in df.columns:
        frame["row_hash"] = df["row_hash"].astype("str").to_numpy()
    frame["source_row"] = np.arange(1, len(frame) + 1)
    staged = StagedUpsert(conn, spec, extras, now)
    total = len(frame)
    staged.stage_frame(frame, on_progress=(lambda done: on_progress(done, total)) if on_progress else None)
    return staged.merge()


# --- load ----------------------------------------------------------------------------------------

LOAD_ROWS = 200_000
"""Rows fetched at a time by ``load_ledger``."""


def _typed_column(kind: str, values: tuple[Any, ...] | list[Any]) -> Any:
    """Driver values (ISO text for dates) -> a typed array, as ``contracts.coerce_frame`` types it."""
    if kind == "date":
        return _parse_days(values).astype("datetime64[s]")
    if kind == "amount":
        return np.array(values, dtype="float64")
    if kind == "int":
        return pd.array(values, dtype="Int64")
    if kind == "bool":
        objects = np.asarray(values, dtype=object)
        missing = np.equal(objects, None)
        # astype(bool) is each value's truth, as bool(v) gives it (SQLite stores 1/0).
        return pd.arrays.BooleanArray(np.where(missing, False, objects).astype(bool), missing)
    return np.array(values, dtype=object)


def _parse_days(values: Any) -> np.ndarray:
    """ISO dates (None where missing) -> ``datetime64[D]``.

    Arrow parses ``YYYY-MM-DD`` several times faster than numpy; anything else is left to numpy,
    which reads (or refuses) it as it always did.
    """
    import pyarrow as pa

    try:
        days = pa.array(values, type=pa.string()).cast(pa.date32())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return np.array(values, dtype="datetime64[D]")
    return days.to_numpy(zero_copy_only=False).astype("datetime64[D]")


def _fetch_columns(conn: sa.Connection, sql: str, kinds: list[str]) -> list[list[Any]]:
    """Run ``sql`` on the raw driver cursor and return typed column parts, a batch at a time.

    The driver's own values are read (no SQLAlchemy type processing per value); PostgreSQL dates
    come back as ISO text, as SQLite stores them, and are parsed by numpy.
    """
    dbapi = conn.connection.driver_connection
    cur = dbapi.cursor()
    if conn.dialect.name == "postgresql":
        from psycopg.types.string import TextLoader

        cur.adapters.register_loader("date", TextLoader)
    parts: list[list[Any]] = [[] for _ in kinds]
    try:
        with _gc_paused():
            cur.execute(sql)
            while True:
                rows = cur.fetchmany(LOAD_ROWS)
                if not rows:
                    break
                # One 2-D object array: half the time of zip(*rows) and its tuple per column.
                block = np.array(rows, dtype=object)
                del rows
                for i, kind in enumerate(kinds):
                    parts[i].append(_typed_column(kind, block[:, i]))
                del block
    finally:
        cur.close()
    return parts


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of row tuples are made and dropped.

    They hold no cycles, but each allocation counts towards a collection that scans every live
    object: the transposition of 1M fetched rows took 2.4 s with it, 0.9 s without.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _copy_columns(conn: sa.Connection, sql: str, kinds: list[str]) -> list[list[Any]]:
    """PostgreSQL: ``COPY (sql) TO STDOUT`` as CSV into a temporary file, parsed by Arrow's reader.

    The file keeps memory bounded; Arrow parses and types the columns in C. In PostgreSQL's CSV a
    null is an unquoted empty field and an empty text a quoted one, floats print exactly
    (``extra_float_digits`` 1, the default), booleans as t/f, dates as ISO.
    """
    import pyarrow as pa
    import pyarrow.csv as pv

    arrow_of = {"date": pa.date32(), "amount": pa.float64(), "int": pa.int64(), "bool": pa.bool_(),
                "str": pa.string(), "json": pa.string()}
    names = [f"c{i}" for i in range(len(kinds))]
    parts: list[list[Any]] = [[] for _ in kinds]
    dbapi = conn.connection.driver_connection
    with tempfile.TemporaryFile() as tmp:
        with dbapi.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
            for data in copy:
                tmp.write(data)
        if not tmp.tell():
            return parts  # an empty table (Arrow refuses an empty file)
        tmp.seek(0)
        reader = pv.open_csv(
            tmp,
            read_options=pv.ReadOptions(column_names=names, block_size=16 << 20),
            parse_options=pv.ParseOptions(newlines_in_values=True),
            convert_options=pv.ConvertOptions(
                column_types={n: arrow_of[k] for n, k in zip(names, kinds)}, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=False,
                true_values=["t"], false_values=["f"]),
        )
        for batch in reader:
            for i, kind in enumerate(kinds):
                col = batch.column(i)
                if kind == "date":
                    parts[i].append(col.to_numpy(zero_copy_only=False).astype("datetime64[s]"))
                elif kind in ("int", "bool"):
                    parts[i].append(_typed_column(kind, col.to_pylist()))
                else:
                    parts[i].append(col.to_numpy(zero_copy_only=False))
    return parts


def _concat(kind: str, parts: list[Any]) -> Any:
    if not parts:
        return _typed_column(kind, [])
    if len(parts) == 1:
        return parts[0]
    if kind in ("int", "bool"):
        return pd.concat([pd.Series(p) for p in parts], ignore_index=True).array
    return np.concatenate(parts)


def _read_table(conn: sa.Connection, spec: Table) -> pd.DataFrame:
    names = list(spec.names)
    kinds = [spec.column(n).kind for n in names]
    if spec.name == "invoices":
        names.append("extra")
        kinds.append("json")
    preparer = conn.dialect.identifier_preparer
    select = f"SELECT {', '.join(preparer.quote(n) for n in names)} FROM {preparer.quote(spec.name)} "
    by_key = select + f"ORDER BY {preparer.quote(spec.key)}"
    if conn.dialect.name == "postgresql":
        columns = [_concat(k, p) for k, p in zip(kinds, _copy_columns(conn, by_key, kinds))]
    else:
        # SQLite: in table order, then by key here. Walking the key's index to read the rows in
        # its order took twice as long (1M invoices: 4.2 s against 2.2 s), and tables are mostly
        # stored in key order already (ids grow over time).
        columns = [_concat(k, p) for k, p in zip(kinds, _fetch_columns(conn, select + "ORDER BY rowid", kinds))]
        keys = columns[names.index(spec.key)]
        if len(keys) and pd.api.types.infer_dtype(keys, skipna=False) != "string":
            columns = [_concat(k, p) for k, p in zip(kinds, _fetch_columns(conn, by_key, kinds))]
        elif len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            # Python orders text by code point, as SQLite's BINARY collation orders its UTF-8
            # bytes (and Arrow its sort): the same order as ORDER BY key.
            import pyarrow as pa
            import pyarrow.compute as pc

            order = pc.sort_indices(pa.array(keys, type=pa.string())).to_numpy()
            columns = [c.take(order) for c in columns]
    data = {n: pd.Series(c, dtype=object if k == "str" else None, copy=False)
            for n, k, c in zip(names, kinds, columns)}
    extra = data.pop("extra", None)
    typed = pd.DataFrame(data, columns=spec.names, copy=False)
    if extra is not None and len(extra):
        texts = pd.Series(extra, dtype=object)
        has = texts.notna() & (texts != "null")
        if has.any():
            records = [json.loads(e) if isinstance(e, str) else e for e in texts[has]]
            expanded = pd.DataFrame.from_records(records, index=texts.index[has])
            for name in expanded.columns:
                typed[name] = expanded[name].reindex(typed.index)
    return typed


def load_ledger(engine: sa.Engine, as_of: pd.Timestamp | str | None = None) -> Ledger:
    """The stored ledger as typed frames, optionally as known at the start of day ``as_of``.

    Args:
        engine: an engine from ``open_store``.
        as_of: if given, ``Ledger.known_at(as_of)``: documents issued from that day on are dropped,
            later payments and actions hidden.

    Returns:
        A ``Ledger``; invoices carry their mapped extras as columns after the canonical ones. Text
        columns are held compactly (``contracts.compact_frame``).
    """
    frames = {}
    with engine.connect() as conn:
        for name, spec in TABLES.items():  # compacted one at a time: one table of Python strings at most
            df = _read_table(conn, spec)
            frames[name] = compact_frame(df, spec) if name in COMPACT_TABLES else df
            del df
    ledger = Ledger(**frames)
    return ledger.known_at(as_of) if as_of is not None else ledger


class EmptyStoreError(ValueError):
    """The store holds no invoices yet."""


def load_store_ledger(url: str) -> Ledger:
    """The whole ledger stored at ``url`` (migrated first); the engine is disposed afterwards.

    Raises:
        EmptyStoreError: no invoice is stored yet.
    """
    engine = open_store(url)
    try:
        ledger = load_ledger(engine)
    finally:
        engine.dispose()
    if ledger.invoices.empty:
        raise EmptyStoreError(f"The store {url} holds no invoices; load some with `encaisse ingest` first.")
    return ledger


def count_rows(engine: sa.Engine, table: str) -> int:
    """Number of rows stored in a ledger table."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(LEDGER_TABLES[table])).scalar_one())


__all__ = [
    "DirectInsert", "EmptyStoreError", "StagedUpsert", "alembic_config", "canonical_strings", "content_ids", "count_rows", "current_revision",
    "head_revision", "load_ledger", "load_store_ledger", "open_store", "row_hashes", "upgrade_store", "upsert_frame",
]

