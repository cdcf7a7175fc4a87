"""Reading the stored ledger: ``load_ledger`` and friends.

Values are read column-wise from the driver (PostgreSQL: ``COPY ... TO STDOUT`` parsed by Arrow;
a SQLite file: the ADBC SQLite driver's Arrow columns), never through per-value type processing;
SQLite rows in table order, sorted by key here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.contracts import COMPACT_TABLES, TABLES, TEXT, Ledger, Table, compact_frame, empty_frame
from ledger.engine import open_store
from ledger.memory import gc_paused
from ledger.schema import LEDGER_TABLES

log = logging.getLogger(__name__)

LOAD_ROWS = 200_000
"""Rows fetched at a time by ``load_ledger``."""

ADBC_BATCH_ROWS = 1 << 22
"""Rows per Arrow batch from the ADBC SQLite driver. It types each column from its first batch (a
column empty there is typed int64, and a later text value is then an error), so one batch holds
a whole table up to this size; when it cannot read a table, the tables are read through ``sqlite3``."""

ADBC_MIN_ROWS = 200_000
"""Stored rows (by rowid, the tables read together) from which ``load_ledger`` reads through the
ADBC child process: below, its start-up (a Python process; figure in bench/RESULTS.md) costs more
than ``sqlite3`` takes, as on the demo's and most pages' stores."""

_ARROW_TYPES = {"date": ("string", "large_string"), "amount": ("double",), "int": ("int64",), "bool": ("int64",),
                "str": ("string", "large_string"), "json": ("string", "large_string")}
"""Arrow types the ADBC SQLite driver gives each kind of column as the store holds it (ISO text
dates, REAL amounts, INTEGER ints and 1/0 booleans): anything else (a value of another type
stored in the column) is read through ``sqlite3``, value by value, as before."""


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
    """ISO dates (None where missing; or an Arrow text array) -> ``datetime64[D]``.

    Arrow parses ``YYYY-MM-DD`` several times faster than numpy; anything else is left to numpy,
    which reads (or refuses) it as it always did.
    """
    import pyarrow as pa

    arrow = isinstance(values, (pa.Array, pa.ChunkedArray))
    try:
        days = (values if arrow else pa.array(values, type=pa.string())).cast(pa.date32())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return np.array(values.to_pylist() if arrow else values, dtype="datetime64[D]")
    return days.to_numpy(zero_copy_only=False).astype("datetime64[D]")


def _arrow_typed_column(kind: str, col: Any, shared: bool = False) -> Any:
    """An Arrow column of the ADBC SQLite driver -> the typed array ``_typed_column`` makes of the
    same values from ``sqlite3`` (None: a column of a type ``_ARROW_TYPES`` does not expect).

    ``shared``: text as one string object per distinct value (``contracts.compact_frame``'s shared
    strings), from Arrow's dictionary encoding instead of a hash of the Python strings.
    """
    import pyarrow as pa

    n = len(col)
    if col.null_count == n:  # typed int64 by the driver, whatever the column
        return _typed_column(kind, [None] * n)
    if str(col.type) not in _ARROW_TYPES[kind]:
        return None
    if kind == "date":
        return _parse_days(col).astype("datetime64[s]")
    if kind == "amount":
        return col.to_numpy()  # nulls as NaN, as np.array([..., None], dtype="float64")
    if kind in ("int", "bool"):
        missing = col.is_null().to_numpy(zero_copy_only=False)
        values = col.fill_null(0).to_numpy()
        if kind == "int":
            return pd.arrays.IntegerArray(values.astype("int64"), missing)
        return pd.arrays.BooleanArray(values != 0, missing)  # bool(v) of SQLite's 1/0
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if shared and kind == "str":
        encoded = col.dictionary_encode()
        values = np.empty(len(encoded.dictionary) + 1, dtype=object)  # last slot: missing
        values[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)
        return values[encoded.indices.fill_null(-1).to_numpy()]
    return col.to_numpy(zero_copy_only=False)  # Python str objects, None where missing


_ADBC_CHILD = """
import sys
from urllib.parse import quote

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa

path, batch_rows, out_dir, *sqls = sys.argv[1:]
with adbc.connect("file:" + quote(path) + "?mode=ro") as db:
    for i, sql in enumerate(sqls):
        with db.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": batch_rows})
            cur.execute(sql)
            table = cur.fetch_arrow_table()
        with pa.OSFile(f"{out_dir}/{i}.arrow", "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
"""
"""Run in a child process by ``_adbc_tables``: each query's rows as an Arrow IPC file."""


def _adbc_tables(path: str, sqls: list[str]) -> list[Any] | None:
    """The rows of ``sqls`` on the SQLite file ``path`` as Arrow tables, read by the ADBC SQLite driver
    in a child process (read-only). None when it cannot (no driver, a locked file, an error).

    A child process, not this one: the driver links its own copy of SQLite, and two copies in one
    process break each other's POSIX locks on the file (closing one's connection can checkpoint and
    delete the WAL under the other's open connections: "file is not a database"). Across processes
    this is SQLite's ordinary locking. The child writes Arrow IPC files that are memory-mapped here.
    One child runs every query in one read transaction: the tables come from one snapshot of the
    store, so a write of several tables in one transaction is seen whole or not at all (a child
    per table would read each at its own moment).
    """
    import importlib.util

    if importlib.util.find_spec("adbc_driver_sqlite") is None:
        return None
    import pyarrow as pa

    with tempfile.TemporaryDirectory(prefix="encaisse-load-") as tmp:
        try:
            proc = subprocess.run([sys.executable, "-c", _ADBC_CHILD, os.path.abspath(path), str(ADBC_BATCH_ROWS), tmp,
                                   *sqls], capture_output=True, text=True, check=False)
        except OSError:
            return None
        if proc.returncode != 0:
            log.debug("ADBC read of %s failed, reading with sqlite3: %s", path, proc.stderr.strip()[-500:])
            return None
        # Mapped, not copied: the pages stay readable after the files are unlinked.
        return [pa.ipc.open_file(pa.memory_map(os.path.join(tmp, f"{i}.arrow"))).read_all() for i in range(len(sqls))]


def _arrow_parts(table: Any, kinds: list[str], shared: list[bool]) -> list[list[Any]] | None:
    """An ADBC table's columns typed as ``_fetch_columns`` types them; None when a column holds a
    value of a type ``_ARROW_TYPES`` does not expect (the caller reads with ``sqlite3``).

    ``shared``: per column, text held as shared strings (``_arrow_typed_column``).
    """
    parts: list[list[Any]] = []
    with gc_paused():
        for i, kind in enumerate(kinds):
            typed = _arrow_typed_column(kind, table.column(i), shared=shared[i])
            if typed is None:
                return None
            parts.append([typed])
    return parts


def _stored_rows(engine: sa.Engine, tables: Iterable[str]) -> int:
    """Rows of ``tables`` as their largest rowids count them (an index lookup each, not a count)."""
    with engine.connect() as conn:
        return sum(int(conn.execute(sa.text(f"SELECT max(rowid) FROM {conn.dialect.identifier_preparer.quote(t)}"))
                       .scalar() or 0) for t in tables)


def _sqlite_file(engine_or_conn: Any) -> str | None:
    """The SQLite file of a store (None: another database, or SQLite in memory)."""
    path = engine_or_conn.engine.url.database if engine_or_conn.dialect.name == "sqlite" else None
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def _fetch_columns(conn: sa.Connection, sql: str, kinds: list[str], params: tuple | None = None) -> list[list[Any]]:
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
        with gc_paused():
            cur.execute(sql, params) if params is not None else cur.execute(sql)
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


def _table_select(dialect: sa.Dialect, spec: Table, where: str = "", compact: bool = False):
    """``(names, kinds, ids, shared, select)`` of a table's read (see ``_read_table``)."""
    names = list(spec.names)
    kinds = [spec.column(n).kind for n in names]
    ids = [n for n in names if spec.column(n).kind == "str" and spec.column(n).required and n not in spec.repeated]
    # The text columns compact_frame shares (the others become Arrow text): shared as they are read.
    shared = [compact and k == "str" and n not in ids for n, k in zip(names, kinds)]
    if spec.name == "invoices":
        names.append("extra")
        kinds.append("json")
        shared.append(False)
    preparer = dialect.identifier_preparer
    select = f"SELECT {', '.join(preparer.quote(n) for n in names)} FROM {preparer.quote(spec.name)} {where} "
    return names, kinds, ids, shared, select


def _read_table(conn: sa.Connection, spec: Table, where: str = "", compact: bool = False,
                arrow_table: Any = None, params: tuple | None = None) -> pd.DataFrame:
    """The table's rows (``where``) as a typed frame in key order; ``compact``: its text columns held
    as ``contracts.compact_frame`` holds them. ``arrow_table``: SQLite, the same query's rows in
    rowid order as read by ``_adbc_tables`` (None: read here with ``sqlite3``). ``params``: the
    driver's parameters of ``where`` (a few rows: read with the driver's cursor on either store)."""
    names, kinds, ids, shared, select = _table_select(conn.dialect, spec, where, compact)
    arrow = False
    preparer = conn.dialect.identifier_preparer
    by_key = select + f"ORDER BY {preparer.quote(spec.key)}"
    if params is not None:
        columns = [_concat(k, p) for k, p in zip(kinds, _fetch_columns(conn, by_key, kinds, params))]
    elif conn.dialect.name == "postgresql":
        columns = [_concat(k, p) for k, p in zip(kinds, _copy_columns(conn, by_key, kinds))]
    else:
        # SQLite: in table order, then by key here. Walking the key's index to read the rows in
        # its order is about twice as slow (bench/RESULTS.md, ingest and load), and tables are
        # mostly stored in key order already (ids grow over time).
        in_rowid_order = select + "ORDER BY rowid"
        parts = _arrow_parts(arrow_table, kinds, shared) if arrow_table is not None else None
        arrow = parts is not None
        if parts is None:
            parts = _fetch_columns(conn, in_rowid_order, kinds)
        columns = [_concat(k, p) for k, p in zip(kinds, parts)]
        keys = columns[names.index(spec.key)]
        if len(keys) and pd.api.types.infer_dtype(keys, skipna=False) != "string":
            arrow = False
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
    if not compact:
        return typed
    if not arrow:
        return compact_frame(typed, spec)
    # Read through Arrow: every text column holds text only, the shared ones are shared already;
    # the ids become Arrow text, as compact_frame makes them.
    for n in ids:
        typed[n] = typed[n].astype(TEXT)
    return typed


def _one_snapshot(conn: sa.Connection) -> None:
    """Make the reads that follow on the fresh ``conn`` one snapshot of the store, as the ADBC child's
    transaction is: a write of several tables in one transaction is then read whole or not at all.
    PostgreSQL: REPEATABLE READ (READ COMMITTED takes a snapshot per statement); SQLite: a read
    transaction begun here (the ``sqlite3`` driver begins none for a SELECT)."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")


def load_ledger(engine: sa.Engine, as_of: pd.Timestamp | str | None = None,
                tables: Iterable[str] | None = None, open_on: pd.Timestamp | str | None = None) -> Ledger:
    """The stored ledger as typed frames, optionally as known at the start of day ``as_of``.

    Args:
        engine: an engine from ``open_store``.
        as_of: if given, ``Ledger.known_at(as_of)``: documents issued from that day on are dropped,
            later payments and actions hidden.
        tables: read only these tables (the others are empty), e.g. a plan that needs no payments.
        open_on: read only the invoices not paid before the start of this day (``paid_date``
            empty or on/after it): what a plan of that day looks at, a tenth of a long ledger.

    Returns:
        A ``Ledger``; invoices carry their mapped extras as columns after the canonical ones. Text
        columns are held compactly (``contracts.compact_frame``).
    """
    frames = {}
    wanted = {name: spec for name, spec in TABLES.items() if tables is None or name in tables}
    wheres = {name: "" for name in wanted}
    if "invoices" in wanted and open_on is not None:  # an ISO date made here, not user text
        wheres["invoices"] = f"WHERE paid_date IS NULL OR paid_date >= '{pd.Timestamp(open_on).date().isoformat()}'"
    path = _sqlite_file(engine)
    arrow = None
    if path is not None and wanted and _stored_rows(engine, wanted) >= ADBC_MIN_ROWS:
        sqls = [_table_select(engine.dialect, spec, wheres[name])[4] + "ORDER BY rowid" for name, spec in wanted.items()]
        arrow = _adbc_tables(path, sqls)
    arrow_tables = dict(zip(wanted, arrow)) if arrow is not None else {}
    with engine.connect() as conn:
        _one_snapshot(conn)
        for name, spec in TABLES.items():  # compacted one at a time: one table of Python strings at most
            if name not in wanted:
                frames[name] = empty_frame(spec)
                continue
            frames[name] = _read_table(conn, spec, wheres[name], compact=name in COMPACT_TABLES,
                                       arrow_table=arrow_tables.pop(name, None))
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


def read_keys(conn: sa.Connection, table: str, keys: Iterable[str]) -> pd.DataFrame:
    """The stored rows of ``table`` with these keys, typed as ``load_ledger`` reads them (invoices with
    their extras as columns, text not compacted), in key order; keys not stored are absent."""
    spec = TABLES[table]
    keys = sorted(set(map(str, keys)))
    column = conn.dialect.identifier_preparer.quote(spec.key)
    mark = "%s" if conn.dialect.name == "postgresql" else "?"  # the drivers' placeholders (psycopg, sqlite3)
    parts = []
    for start in range(0, len(keys), 500):
        batch = tuple(keys[start:start + 500])
        parts.append(_read_table(conn, spec, f"WHERE {column} IN ({', '.join([mark] * len(batch))})", params=batch))
    if not parts:
        return _read_table(conn, spec, "WHERE 1 = 0", params=())
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def count_rows(engine: sa.Engine, table: str) -> int:
    """Number of rows stored in a ledger table."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(LEDGER_TABLES[table])).scalar_one())
