"""The ledger store: open (and migrate) it, load a ``Ledger`` from it, upsert canonical frames.

SQLite by default, PostgreSQL by URL. ``open_store`` always runs the Alembic migrations up to the
head revision, so a newer release upgrades an existing store in place.

Idempotence rests on ``row_hash``: a digest of a row's canonical values (and, for invoices, its
mapped extras). Re-sending the same rows changes nothing; a row whose values changed (an invoice
now paid) is updated; the rest is counted unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import sqlalchemy as sa

# Alembic announces its plugins at INFO when imported: noise on every CLI call.
if logging.getLogger("alembic.runtime.plugins").level == logging.NOTSET:
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

from ledger.contracts import TABLES, Ledger, Table, coerce_frame  # noqa: E402
from ledger.schema import LEDGER_TABLES  # noqa: E402

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CHUNK_ROWS = 20_000
"""Rows per executemany batch."""


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
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_store_engine(url: str) -> sa.Engine:
    """An engine for ``url`` without migrating (``open_store`` is what callers want)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        db = engine.url.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    return engine


def upgrade_store(engine: sa.Engine, revision: str = "head") -> str | None:
    """Run the migrations up to ``revision``; return the store's revision afterwards."""
    cfg = alembic_config()
    with _quiet_alembic(), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
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


def open_store(url: str) -> sa.Engine:
    """Open the store at ``url``, creating or upgrading it to the newest schema.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///.encaisse/ledger.db`` or
            ``postgresql+psycopg://user@host/db``.

    Returns:
        An engine on the migrated store.
    """
    engine = create_store_engine(url)
    if current_revision(engine) != head_revision():
        rev = upgrade_store(engine)
        log.info("ledger store at revision %s", rev)
    return engine


# --- row hashes ----------------------------------------------------------------------------------


def canonical_strings(table: Table, df: pd.DataFrame, columns: list[str] | None = None) -> pd.Series:
    """One string per row holding its canonical values, in a stable text form.

    ``df`` must be typed (``contracts.coerce_frame``). Columns outside the contract (the extras of
    invoices) are appended in name order as ``name=value``, unless ``columns`` picks the columns.
    """
    names = columns if columns is not None else table.names
    parts: list[pd.Series] = []
    for name in names:
        s = df[name]
        kind = table.column(name).kind
        if kind == "date":
            if not pd.api.types.is_datetime64_any_dtype(s):
                s = pd.to_datetime(s).astype("datetime64[s]")
            text = s.dt.strftime("%Y-%m-%d")
        elif kind in ("amount", "int"):
            text = pd.to_numeric(s).astype("float64").map(repr)
            text = text.where(s.notna())
        elif kind == "bool":
            text = s.astype("boolean").map({True: "1", False: "0"}, na_action="ignore")
        else:
            text = s.astype("str")
            text = text.where(s.notna())
        parts.append(text.astype("object").fillna("\x00").astype("str"))
    others = [] if columns is not None else sorted(
        c for c in df.columns if c not in table.names and c not in ("extra", "row_hash"))
    for name in others:
        s = df[name]
        parts.append((name + "=" + s.astype("str")).where(s.notna(), "\x00").astype("str"))
    if not parts:
        return pd.Series("", index=df.index, dtype="str")
    out = parts[0]
    for p in parts[1:]:
        out = out + "\x1f" + p
    return out


def _digest(texts: pd.Series) -> pd.Series:
    return pd.Series(
        [hashlib.blake2b(t.encode(), digest_size=16).hexdigest() for t in texts],
        index=texts.index, dtype="str",
    )


def row_hashes(table: Table, df: pd.DataFrame) -> pd.Series:
    """The ``row_hash`` of every row of a typed canonical frame (32 hex characters)."""
    return _digest(canonical_strings(table, df))


def content_ids(table: Table, df: pd.DataFrame, prefix: str) -> pd.Series:
    """Deterministic ids from a row's content, key excluded (for actions sent without an id)."""
    names = [n for n in table.names if n != table.key]
    return prefix + _digest(canonical_strings(table, df, names)).str.slice(0, 20)


# --- upsert ----------------------------------------------------------------------------------------


def _python_values(table: Table, df: pd.DataFrame, name: str) -> list[Any]:
    """A column as a list of Python values the DB driver takes (None for missing)."""
    s = df[name]
    kind = table.column(name).kind if name in table.names else "str"
    if kind == "date":
        values = s.dt.date.astype("object")
    elif kind == "amount":
        values = s.astype("float64").astype("object")
    elif kind == "int":
        values = s.astype("Int64").astype("object")
    elif kind == "bool":
        values = s.astype("boolean").astype("object")
    else:
        values = s.astype("object")
    return values.where(s.notna(), None).tolist()


def _extra_dicts(df: pd.DataFrame, names: list[str]) -> list[dict[str, Any] | None]:
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
    return [
        {k: v for k, v in zip(names, row) if v is not None} or None
        for row in zip(*cols)
    ]


def _write_chunk(conn: sa.Connection, statement: sa.Executable, rows: list[dict[str, Any]]) -> None:
    """One executemany batch (a seam for the atomicity test)."""
    conn.execute(statement, rows)


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
        on_progress: called with (rows written, rows to write) after every batch.

    Returns:
        ``(inserted, updated, unchanged)`` counts.
    """
    spec = TABLES[table] if isinstance(table, str) else table
    sql_table = LEDGER_TABLES[spec.name]
    extras = [c for c in df.columns if c not in spec.names and c != "row_hash"]
    if extras and spec.name != "invoices":
        raise ValueError(f"Table {spec.name!r} has no extra attributes; unexpected columns {extras}.")
    if df[spec.key].duplicated().any():
        dups = df.loc[df[spec.key].duplicated(), spec.key].head(5).tolist()
        raise ValueError(f"upsert_frame needs unique {spec.key} values; duplicated: {dups}.")
    frame = coerce_frame(df.drop(columns=["row_hash"], errors="ignore"), spec)
    frame[spec.key] = frame[spec.key].astype("str")
    hashes = df["row_hash"].astype("str") if "row_hash" in df.columns else row_hashes(spec, frame)
    frame["row_hash"] = hashes.to_numpy()

    key = sql_table.c[spec.key]
    existing = pd.DataFrame(
        conn.execute(sa.select(key, sql_table.c.row_hash)).all(), columns=["_key", "_old_hash"]
    )
    merged = frame[[spec.key, "row_hash"]].merge(
        existing, how="left", left_on=spec.key, right_on="_key", sort=False
    )
    is_new = merged["_key"].isna().to_numpy()
    is_changed = (~is_new) & (merged["_old_hash"].to_numpy() != merged["row_hash"].to_numpy())
    n_new, n_changed = int(is_new.sum()), int(is_changed.sum())
    unchanged = len(frame) - n_new - n_changed

    stamp = now or datetime.now(UTC)
    total = n_new + n_changed
    done = 0

    def rows_of(part: pd.DataFrame, key_name: str) -> list[dict[str, Any]]:
        names = spec.names
        cols = [_python_values(spec, part, n) for n in names]
        out_names = [key_name if n == spec.key else n for n in names]
        if spec.name == "invoices":
            cols.append(_extra_dicts(part, extras))
            out_names.append("extra")
        cols.append(part["row_hash"].astype("object").tolist())
        out_names.append("row_hash")
        return [dict(zip(out_names, row)) for row in zip(*cols)]

    inserts = frame[is_new]
    insert_stmt = sql_table.insert().values(ingested_at=stamp, updated_at=stamp)
    for start in range(0, len(inserts), CHUNK_ROWS):
        part = inserts.iloc[start:start + CHUNK_ROWS]
        _write_chunk(conn, insert_stmt, rows_of(part, spec.key))
        done += len(part)
        if on_progress:
            on_progress(done, total)

    updates = frame[is_changed]
    update_stmt = (
        sql_table.update().where(key == sa.bindparam("_match_key")).values(updated_at=stamp)
    )
    for start in range(0, len(updates), CHUNK_ROWS):
        part = updates.iloc[start:start + CHUNK_ROWS]
        rows = rows_of(part, spec.key)
        for row in rows:
            row["_match_key"] = row.pop(spec.key)
        _write_chunk(conn, update_stmt, rows)
        done += len(part)
        if on_progress:
            on_progress(done, total)
    return n_new, n_changed, unchanged


# --- load ----------------------------------------------------------------------------------------


def _read_table(conn: sa.Connection, spec: Table) -> pd.DataFrame:
    sql_table = LEDGER_TABLES[spec.name]
    cols = [sql_table.c[n] for n in spec.names]
    if spec.name == "invoices":
        cols.append(sql_table.c.extra)
    result = conn.execute(sa.select(*cols).order_by(sql_table.c[spec.key]))
    df = pd.DataFrame(result.all(), columns=[c.name for c in cols])
    extra = df.pop("extra") if "extra" in df.columns else None
    typed = coerce_frame(df, spec)
    if extra is not None and extra.notna().any():
        expanded = pd.DataFrame.from_records(
            [e if isinstance(e, dict) else {} for e in extra], index=typed.index
        )
        for name in expanded.columns:
            typed[name] = expanded[name]
    return typed


def load_ledger(engine: sa.Engine, as_of: pd.Timestamp | str | None = None) -> Ledger:
    """The stored ledger as typed frames, optionally as known at the start of day ``as_of``.

    Args:
        engine: an engine from ``open_store``.
        as_of: if given, ``Ledger.known_at(as_of)``: documents issued from that day on are dropped,
            later payments and actions hidden.

    Returns:
        A ``Ledger``; invoices carry their mapped extras as columns after the canonical ones.
    """
    with engine.connect() as conn:
        frames = {name: _read_table(conn, spec) for name, spec in TABLES.items()}
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
    "EmptyStoreError", "alembic_config", "canonical_strings", "content_ids", "count_rows", "current_revision",
    "head_revision", "load_ledger", "load_store_ledger", "open_store", "row_hashes", "upgrade_store", "upsert_frame",
]

