"""Writes that wait for the store's write lock, within a bound, and never half-happen.

SQLite lets one writer at a time hold its lock; a long ingest, or another process, may hold it
when a short write (an action recorded through the API) arrives. ``write_transaction`` runs the
write in a transaction begun with ``BEGIN IMMEDIATE`` (the lock taken first, so the write never
fails half-way for want of it), polling for the lock every few milliseconds until a deadline; a
failed attempt is rolled back whole and tried again. Past the deadline it raises
``StoreBusyError`` and nothing was written. On PostgreSQL, lock and serialization failures are
retried the same way, and a lock wait ends at the deadline (``lock_timeout``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import TypeVar

import sqlalchemy as sa

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_SECONDS = 0.004
"""Sleep between two tries for SQLite's write lock (jittered): short, so a waiting write gets the
lock in the gaps an ingest leaves between its commits."""
_BUSY_TEXTS = ("database is locked", "database table is locked", "database is busy")
_PG_RETRY_CODES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


class StoreBusyError(RuntimeError):
    """The store's write lock stayed held past the bound; nothing was written.

    Attributes:
        waited: seconds waited.
    """

    def __init__(self, waited: float):
        super().__init__(f"the ledger store stayed busy for {waited:.1f} s (another writer holds its lock); "
                         "nothing was written")
        self.waited = waited


def is_busy_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) means another writer holds the lock: worth retrying."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, StoreBusyError):
            return True
        text = str(exc).lower()
        if any(t in text for t in _BUSY_TEXTS):
            return True
        code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
        if code in _PG_RETRY_CODES:
            return True
        exc = exc.__cause__ or getattr(exc, "orig", None)
        seen += 1
    return False


def _begin_immediate(conn: sa.Connection) -> None:
    dbapi = conn.connection.driver_connection
    dbapi.execute("PRAGMA busy_timeout=0")  # this loop does the waiting, in short polls
    dbapi.execute("BEGIN IMMEDIATE")


def write_transaction(engine: sa.Engine, work: Callable[[sa.Connection], T], timeout: float = 20.0,
                      commit_lock: threading.Lock | None = None,
                      committed: Callable[[T], None] | None = None) -> T:
    """Run ``work(conn)`` in one transaction, waiting up to ``timeout`` seconds for the write lock.

    ``committed(result)``, if given, runs at once after the commit, with ``commit_lock`` held from just
    before the commit: what it records of the write (the service's pending rows) is then ordered as the
    commits of the writes holding that lock are.

    Returns:
        What ``work`` returned, once committed.

    Raises:
        StoreBusyError: the lock stayed held for ``timeout`` seconds; nothing was written.
    """
    started = time.monotonic()
    deadline = started + timeout
    tries = 0
    while True:
        tries += 1
        try:
            with engine.connect() as conn:
                sqlite = conn.dialect.name == "sqlite"
                busy_before = None
                if sqlite:
                    busy_before = conn.connection.driver_connection.execute("PRAGMA busy_timeout").fetchone()[0]
                try:
                    trans = conn.begin()
                    try:
                        if sqlite:
                            _begin_immediate(conn)
                        else:  # PostgreSQL: any lock wait (a row, the change log's) ends by the deadline
                            wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
                            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                        out = work(conn)
                    except BaseException:
                        trans.rollback()
                        raise
                    with commit_lock if commit_lock is not None else nullcontext():
                        trans.commit()
                        if committed is not None:
                            committed(out)
                    return out
                finally:
                    if busy_before is not None:
                        conn.connection.driver_connection.execute(f"PRAGMA busy_timeout={int(busy_before)}")
        except Exception as exc:
            if not is_busy_error(exc):
                raise
            now = time.monotonic()
            if now >= deadline:
                log.warning("write gave up after %.1f s and %d tries: the store stayed busy", now - started, tries)
                raise StoreBusyError(now - started) from exc
            time.sleep(min(POLL_SECONDS * (0.5 + random.random()), max(deadline - now, 0)))
