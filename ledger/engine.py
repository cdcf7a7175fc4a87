"""Opening the ledger store: engines, Alembic migrations under a lock, indexes an interrupted ingest dropped.

``open_store`` is what callers want: an engine on the store at
``url``, migrated to the newest revision. Migrations run under the store's migration lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so processes opening a new store together run
them once.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

# Alembic announces its plugins at INFO when imported: noise on every CLI call.
if logging.getLogger("alembic.runtime.plugins").level == logging.NOTSET:
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

from ledger.schema import LEDGER_TABLES  # noqa: E402

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config built in code: no ``alembic.ini`` needed at runtime."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers work while an ingest writes; NORMAL sync is safe with WAL and much faster.
    # Switching a new file to WAL needs its lock: a process opening it while another one migrates
    # waits as long as migrations may take, not the connection's usual busy timeout.
    before = int(cur.execute("PRAGMA busy_timeout").fetchone()[0])
    cur.execute(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
    _switch_to_wal(cur)
    cur.execute(f"PRAGMA busy_timeout={before}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _switch_to_wal(cur: Any) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another connection holds the file.

    SQLite answers "database is locked" at once, without the busy handler, when two connections
    that both read the file race for the exclusive lock the switch needs (waiting could deadlock),
    so processes opening a new store together retry here for as long as migrations may take.
    """
    deadline = time.monotonic() + MIGRATION_WAIT_MS / 1000
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)


def create_store_engine(url: str, busy_timeout: float | None = None) -> sa.Engine:
    """An engine for ``url`` without migrating (``open_store`` is what callers want).

    ``busy_timeout``: seconds a SQLite statement waits for another process's write lock (default 5).
    """
    kwargs = {"connect_args": {"timeout": busy_timeout}} if busy_timeout is not None and url.startswith("sqlite") else {}
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        import sqlite3

        if sqlite3.sqlite_version_info < (3, 35):  # INSERT ... RETURNING (the change log's keys)
            raise RuntimeError(f"The ledger store needs SQLite 3.35 or newer; this Python has {sqlite3.sqlite_version}. "
                               "Use a newer Python, or PostgreSQL (ENCAISSE_DATABASE_URL).")
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        db = engine.url.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    return engine


MIGRATION_LOCK_ID = 0x656E6361  # "enca"
"""PostgreSQL advisory lock taken while migrations run."""
MIGRATION_WAIT_MS = 120_000
"""How long a process waits for another one's migrations (SQLite busy timeout, milliseconds)."""


def _lock_for_migrations(conn: sa.Connection) -> int | None:
    """Take the store's migration lock for the rest of ``conn``'s transaction.

    SQLite: ``BEGIN IMMEDIATE`` (the write lock; DDL is transactional there). PostgreSQL: a
    transaction-scoped advisory lock. A second process starting together waits here, then finds
    the store migrated.

    Returns:
        SQLite: the connection's busy timeout before (milliseconds), to be given back.
    """
    if conn.dialect.name == "sqlite":
        dbapi = conn.connection.driver_connection
        before = int(dbapi.execute("PRAGMA busy_timeout").fetchone()[0])
        dbapi.execute(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
        if not dbapi.in_transaction:
            dbapi.execute("BEGIN IMMEDIATE")
        return before
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
    return None


def upgrade_store(engine: sa.Engine, revision: str = "head") -> str | None:
    """Run the migrations up to ``revision`` under the migration lock; return the store's revision.

    Idempotent: processes racing to create or upgrade one store run the migrations once, the others
    wait for the lock and find nothing left to do.
    """
    cfg = alembic_config()
    with _quiet_alembic(), engine.begin() as conn:
        busy = _lock_for_migrations(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        if busy is not None:
            conn.connection.driver_connection.execute(f"PRAGMA busy_timeout={busy}")
    return current_revision(engine)


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's INFO chatter is noise in a CLI; a level someone set explicitly wins."""
    logger = logging.getLogger("alembic")
    level = logger.level
    if level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def current_revision(engine: sa.Engine) -> str | None:
    """The store's Alembic revision (None for an empty database)."""
    with _quiet_alembic(), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this release knows."""
    with _quiet_alembic():
        return ScriptDirectory.from_config(alembic_config()).get_current_head()


def open_store(url: str, busy_timeout: float | None = None) -> sa.Engine:
    """Open the store at ``url``, creating or upgrading it to the newest schema.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///.encaisse/ledger.db`` or
            ``postgresql+psycopg://user@host/db``.
        busy_timeout: seconds a SQLite statement waits for another process's write lock (default 5).

    Returns:
        An engine on the migrated store.
    """
    engine = create_store_engine(url, busy_timeout)
    if current_revision(engine) != head_revision():
        rev = upgrade_store(engine)
        log.info("ledger store at revision %s", rev)
    _rebuild_dropped_indexes(engine)
    return engine


def _rebuild_dropped_indexes(engine: sa.Engine) -> None:
    """Build the ledger tables' secondary indexes an ingest killed part-way had dropped (SQLite)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        present = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
    missing = [ix for t in LEDGER_TABLES.values() for ix in t.indexes if ix.name not in present]
    if missing:
        log.warning("rebuilding %d index(es) an interrupted ingest had dropped", len(missing))
        with engine.begin() as conn:
            for ix in missing:
                ix.create(conn, checkfirst=True)
