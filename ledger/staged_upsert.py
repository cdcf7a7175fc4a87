"""``StagedUpsert``: rows staged in a temporary table, then merged into a ledger table with one statement;
``upsert_frame``, the short write of a frame through it.

Staging is ``executemany`` on SQLite and ``COPY`` on PostgreSQL; the merge (one ``INSERT ...
SELECT``) skips identical rows, so memory stays bounded by a batch and the counts come from SQL.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.changes import KEYS_MAX, record_change
from ledger.contracts import TABLES, Table, coerce_frame
from ledger.writers import SQLITE_CACHE_KB, _bind, _write_frame

REBUILD_MIN_ROWS = 50_000
"""A merge adding at least this many rows, and more than the table holds, rebuilds
the table's secondary indexes instead of updating them row by row."""


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
        self.written_keys: list[str] | None = None
        """After ``merge``: the keys it inserted or changed (None: more than ``KEYS_MAX``, not listed)."""
        self.announce_at_merge = True
        """False: the caller calls ``announce`` just before its commit. On PostgreSQL the change row takes a
        lock every writer takes, held to the commit: an ingest announces after its checks and records."""
        self._change: tuple[list[str] | None, int] | None = None
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
        """Insert new keys and update changed rows, and record the change (``ledger.changes``); drop the
        staging table.

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
        keys: list[str] | None = None
        if new or changed:
            # No staged key is stored yet: a plain INSERT (PostgreSQL's ON CONFLICT checks every
            # row with a speculative insertion, which a first load does not need).
            stmt = self._merge_statement(plain=not (changed or unchanged))
            if new + changed <= KEYS_MAX:  # the keys as the merge wrote them, whatever was written meanwhile
                keys = [str(k) for k in self.conn.execute(stmt.returning(self.target.c[self.spec.key])).scalars()]
            else:
                self.conn.execute(stmt)
        for ix in rebuild:
            ix.create(self.conn)
        if new or changed:
            self._change = (keys, len(keys) if keys is not None else new + changed)
            if self.announce_at_merge:
                self.announce()
        self.written_keys = keys if new or changed else []
        self.close()
        return new, changed, unchanged

    def announce(self) -> None:
        """Record the merge's change row (``ledger.changes``), if it wrote anything and has not yet."""
        if self._change is not None:
            record_change(self.conn, self.spec.name, *self._change)
            self._change = None

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


def upsert_frame(
    conn: sa.Connection,
    table: str | Table,
    df: pd.DataFrame,
    *,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int, int]:
    """``upsert_rows``' counts (see there)."""
    done = upsert_rows(conn, table, df, now=now, on_progress=on_progress)
    return done.inserted, done.updated, done.unchanged


class Upserted(NamedTuple):
    """What ``upsert_rows`` did: counts, and the keys it inserted or changed (None: more than
    ``ledger.changes.KEYS_MAX``, not listed)."""

    inserted: int
    updated: int
    unchanged: int
    keys: list[str] | None


def upsert_rows(
    conn: sa.Connection,
    table: str | Table,
    df: pd.DataFrame,
    *,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Upserted:
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
        The counts and the keys written (``Upserted``).
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
    return Upserted(*staged.merge(), keys=staged.written_keys)
