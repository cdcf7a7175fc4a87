"""``DirectInsert``: rows of new keys inserted straight into a SQLite ledger table, a batch per commit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ledger.changes import KEYS_MAX, record_change
from ledger.contracts import TABLES, Table
from ledger.schema import LEDGER_TABLES
from ledger.staged_upsert import StagedUpsert
from ledger.writers import SQLITE_CACHE_KB, _bind, _write_frame


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
        self._keys: list[str] | None = []  # what the change row names (None: more than KEYS_MAX)
        self.announce_at_merge = True  # as StagedUpsert's
        self._announced = False

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
        if self.committed:  # rows others may have read are gone: readers read the whole ledger again
            record_change(self.conn, self.spec.name, None, self.committed)
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
        if self._keys is not None and len(self._keys) + len(df) > KEYS_MAX:
            self._keys = None
        elif self._keys is not None:
            self._keys.extend(df[self.spec.key].astype(str).tolist())
        return _write_frame(self, df, on_progress)

    def hand_over(self, to: StagedUpsert, source_rows: list[int]) -> None:
        """Move the rows inserted so far into ``to``'s stage as stored (values, hashes), and out of the
        table (indexes rebuilt), in one transaction, so the ingest goes on staged without reading its
        file again. ``source_rows``: the source row of each row inserted, in the order written."""
        dbapi = self.conn.connection.driver_connection
        self.lock()
        q = self.conn.dialect.identifier_preparer.quote
        names = [q(n) for n in self._names[1:]]
        table = q(self.target.name)
        dbapi.execute("DROP TABLE IF EXISTS temp._written")
        dbapi.execute("CREATE TEMPORARY TABLE _written (pos INTEGER PRIMARY KEY, source_row INTEGER NOT NULL)")
        dbapi.executemany("INSERT INTO _written VALUES (?, ?)", enumerate(source_rows, 1))
        # The rows were written in source order: the n-th of them by rowid is the n-th source row given.
        moved = dbapi.execute(
            f"INSERT INTO {q(to.stage.name)} (source_row, {', '.join(names)}) "
            f"SELECT w.source_row, {', '.join('t.' + n for n in names)} "
            f"FROM (SELECT row_number() OVER (ORDER BY rowid) AS pos, {', '.join(names)} FROM {table} "
            f"WHERE ingested_at = '{self._stamp}') AS t JOIN _written AS w ON w.pos = t.pos").rowcount
        dbapi.execute("DROP TABLE _written")
        if moved != len(source_rows):
            raise RuntimeError(f"{moved} rows stamped by this ingest in {self.target.name}, not {len(source_rows)}")
        to.staged += moved
        dbapi.execute(f"DELETE FROM {table} WHERE ingested_at = '{self._stamp}'")
        for ix in self._indexes:
            ix.create(self.conn, checkfirst=True)
        self._indexes = []
        if self.on_commit is not None:
            self.on_commit(None)
        if self.committed:  # rows others may have read are gone until the merge: read it all again
            record_change(self.conn, self.spec.name, None, self.committed)
        dbapi.commit()
        self.close()

    def merge(self) -> tuple[int, int, int]:
        """Build the secondary indexes over the inserted rows, and record the change (``ledger.changes``).

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
        if self.announce_at_merge:
            self.announce()
        self.close()
        return self.staged, 0, 0

    def announce(self) -> None:
        """Record the change row of the rows inserted (``ledger.changes``), once."""
        if self.staged and not self._announced:
            record_change(self.conn, self.spec.name, self._keys, self.staged)
            self._announced = True

    def close(self) -> None:
        """Give the connection its page cache size back (a rollback restores dropped indexes)."""
        if self._cache_size is not None:
            self.conn.exec_driver_sql(f"PRAGMA cache_size={int(self._cache_size)}")
            self._cache_size = None
