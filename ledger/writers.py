"""Writers of canonical rows into a ledger table: ``StagedUpsert`` and ``DirectInsert`` (a ``RowWriter`` each).

``StagedUpsert`` stages rows in a temporary table (batches by ``executemany`` on SQLite, ``COPY``
on PostgreSQL), then merges them with one ``INSERT ... SELECT`` that skips identical rows, so
memory stays bounded by a batch and the counts come from SQL. ``DirectInsert`` (SQLite) inserts
rows whose keys are all new straight into the table. ``upsert_frame`` is the short write of a frame.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.contracts import TABLES, Table, coerce_frame
from ledger.hashing import digests, encode_columns, extra_parts, join_parts
from ledger.memory import gc_paused
from ledger.schema import LEDGER_TABLES

CHUNK_ROWS = 20_000
"""Rows per staging batch (``executemany`` on SQLite, ``COPY`` on PostgreSQL)."""
REBUILD_MIN_ROWS = 50_000
"""A merge adding at least this many rows, and more than the table holds, rebuilds
the table's secondary indexes instead of updating them row by row."""
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


def _write_chunk(staged: "StagedUpsert | DirectInsert", columns: list[list[Any]]) -> None:
    """Write one batch of staged rows, given column-wise (a seam for the atomicity test)."""
    staged.write_columns(columns)


class RowWriter(Protocol):
    """What an ingest asks of a writer of one ledger table (``StagedUpsert`` or ``DirectInsert``).

    ``stage_frame`` batches of rows (unique ``source_row`` each), then ``merge`` once; ``close``
    whatever happens. ``staged`` counts the rows written so far; ``now`` stamps them.
    """

    spec: Table
    now: datetime
    staged: int

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


def _write_frame(writer: "StagedUpsert | DirectInsert", df: pd.DataFrame, on_progress: Callable[[int], None] | None = None) -> pd.Series:
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

    def __init__(self, conn: sa.Connection, table: str | Table, extras: list[str] | tuple[str, ...] = (),
                 now: datetime | None = None, lock_at_merge: bool = False) -> None:
        _bind(self, conn, table, extras, now)
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
        """Stage typed canonical rows with a unique ``source_row`` column (and extras); their ``row_hash``."""
        return _write_frame(self, df, on_progress)

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
                # one (bench/RESULTS.md, ingest and load). SQLite readers keep their snapshot
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


class DirectInsert:
    """Rows of new keys inserted straight into a ledger table (SQLite), without staging.

    A ``RowWriter`` like ``StagedUpsert``, with the same values, hashes and stamps, without the
    staging table, the merge statement and its look-ups (so no ``fetch`` or ``discard``). Right only while every
    staged key is unique and not stored: ``ledger.ingest`` checks each chunk (``any_stored`` and
    its own digests) before writing it, and ``hand_over``s what it wrote to a ``StagedUpsert`` when a
    key repeats (the rest of the file follows staged). On an empty table the secondary indexes are dropped first and built once over the
    loaded rows by ``merge``.

    The rows are committed a batch at a time (``checkpoint``): SQLite's write lock is held for one
    batch, never for the whole file, so a short write from elsewhere (an action recorded through
    the API) waits a fraction of a second, not the file's length. One logical ingest all the same:
    a failure or a rejected file under ``strict`` ``undo``es what it committed (every row it
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
                 now: datetime | None = None, on_commit: Callable[[int | None], None] | None = None) -> None:
        """``on_commit(rows)`` runs in each transaction that commits rows, just before its commit, with
        the rows committed so far (None in the one that ``undo``es them): the ingest keeps its run's
        record true at every point a kill may leave."""
        if conn.dialect.name != "sqlite":
            raise ValueError(f"DirectInsert writes to SQLite, not {conn.dialect.name}.")
        _bind(self, conn, table, extras, now)
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
        self.on_commit = on_commit

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
        if self.on_commit is not None:
            self.on_commit(self.staged)
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
        if self.on_commit is not None:
            self.on_commit(None)
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

    def stage_frame(self, df: pd.DataFrame, on_progress: Callable[[int], None] | None = None) -> pd.Series:
        """Insert typed canonical rows with a unique ``source_row`` column (and extras); their ``row_hash``."""
        return _write_frame(self, df, on_progress)

    def hand_over(self, to: StagedUpsert, source_rows: Callable[[list[str]], list[int]]) -> None:
        """Move the rows inserted so far into ``to``'s stage as stored (values, hashes), and out of the
        table (indexes rebuilt), in one transaction, so the ingest goes on staged without reading its
        file again. ``source_rows`` gives the rows' source row numbers from their keys."""
        dbapi = self.conn.connection.driver_connection
        self.lock()
        q = self.conn.dialect.identifier_preparer.quote
        names = self._names[1:]
        table = q(self.target.name)
        key_at = names.index(self.spec.key)
        cur = dbapi.execute(f"SELECT {', '.join(q(n) for n in names)} FROM {table} "
                            f"WHERE ingested_at = '{self._stamp}' ORDER BY rowid")
        while rows := cur.fetchmany(CHUNK_ROWS):
            columns = [list(c) for c in zip(*rows)]
            to.write_columns([source_rows(columns[key_at]), *columns])
            to.staged += len(rows)
        dbapi.execute(f"DELETE FROM {table} WHERE ingested_at = '{self._stamp}'")
        for ix in self._indexes:
            ix.create(self.conn, checkfirst=True)
        self._indexes = []
        if self.on_commit is not None:
            self.on_commit(None)
        dbapi.commit()
        self.close()

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
