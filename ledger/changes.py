"""The store's change log (``ledger_changes``): which ledger rows each write changed.

Every writer of a ledger table (``StagedUpsert.merge``, ``DirectInsert``) calls ``record_change`` in the
transaction that changes the table: one row naming the table and the keys it inserted or changed, or
no keys when they are more than ``KEYS_MAX`` or rows were removed (a bulk write: read the whole ledger
again). A process that holds the ledger in memory (the service) reads the log past the last id it read
(``read_changes``), then those rows by key (``ledger.reader.read_keys``), instead of the whole ledger.

Ids are committed in increasing order, so "id > the last read" never misses a row. SQLite has one
writer at a time and never reuses an id (AUTOINCREMENT). On PostgreSQL a writer takes a
transaction-level advisory lock before it takes an id, so the next id is taken only once the previous
writer has committed or rolled back; the lock is held from the change row to the commit, the end of
the write. Writers prune rows older than ``KEEP``; a reader that has not read the log for half that
long reads the whole ledger again.
"""

from __future__ import annotations

import contextvars
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ledger.schema import ledger_changes

KEYS_MAX = 10_000
"""A write that changes more rows than this names none of them: readers read the whole ledger again.
A day's file of changed rows is named, and read by key (seconds) instead of the whole ledger (minutes at
10M invoices); a first load is not (a change row holds its keys as one JSON text)."""
KEEP = timedelta(days=1)
"""How long a change row is kept."""
PRUNE_EVERY = 256
"""Writers prune the log once every this many change rows."""
_PG_LOCK = 0x656E6361697373  # "encaiss": the advisory lock that orders the change rows' ids

_writer: contextvars.ContextVar[str | None] = contextvars.ContextVar("ledger_changes_writer", default=None)


def process_writer() -> str:
    """Who writes, when no ``writing_as`` says: this host and process."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


@contextmanager
def writing_as(writer: str) -> Iterator[None]:
    """Name the writer of the changes recorded in this context (the service names its own, so that it
    skips its own writes when it reads the log: it has folded them in already)."""
    token = _writer.set(writer[:64])
    try:
        yield
    finally:
        _writer.reset(token)


@dataclass(frozen=True)
class Change:
    """One write of a ledger table: ``keys`` None means "too many, or rows removed: read it all again"."""

    id: int
    table: str
    keys: tuple[str, ...] | None
    n_rows: int
    writer: str


def record_change(conn: sa.Connection, table: str, keys: list[str] | None, n_rows: int) -> None:
    """Add the change row of a write to ``table``, in the write's transaction (call it last)."""
    if keys is not None and len(keys) > KEYS_MAX:
        keys = None
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK)))
    now = datetime.now(UTC)
    new_id = conn.execute(ledger_changes.insert().values(
        table_name=table, row_keys=json.dumps(list(map(str, keys))) if keys is not None else None, n_rows=int(n_rows),
        writer=_writer.get() or process_writer(), changed_at=now)).inserted_primary_key[0]
    if new_id % PRUNE_EVERY == 0:
        conn.execute(ledger_changes.delete().where(ledger_changes.c.changed_at < now - KEEP))


def last_change_id(conn: sa.Connection) -> int:
    """The newest change row's id (0: none)."""
    return int(conn.execute(sa.select(sa.func.max(ledger_changes.c.id))).scalar() or 0)


def read_changes(conn: sa.Connection, after: int, limit: int = 1_000) -> list[Change]:
    """The change rows past id ``after``, oldest first, at most ``limit``."""
    t = ledger_changes
    rows = conn.execute(sa.select(t.c.id, t.c.table_name, t.c.row_keys, t.c.n_rows, t.c.writer)
                        .where(t.c.id > after).order_by(t.c.id).limit(limit)).all()
    return [Change(id=int(r.id), table=r.table_name, keys=tuple(json.loads(r.row_keys)) if r.row_keys is not None else None,
                   n_rows=int(r.n_rows), writer=r.writer) for r in rows]
