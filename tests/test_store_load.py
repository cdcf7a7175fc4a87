"""load_ledger on SQLite reads rows in table order and puts them in key order itself: the same
frames as reading them ``ORDER BY`` the key, whatever order they were stored in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import ledger.reader as reader_mod
from ledger.engine import open_store
from ledger.reader import load_ledger
from ledger.staged_upsert import upsert_frame

KEYS = ["b", "a", "Z", "é", "e", "ä", "10", "9", "a b", "€", "😀", "A", "ab", "a\n"]


def _invoices(keys: list[str]) -> pd.DataFrame:
    n = len(keys)
    days = pd.to_datetime("2024-01-01") + pd.to_timedelta(np.arange(n) * 3, unit="D")
    return pd.DataFrame({
        "invoice_id": keys, "client_id": [f"C{i % 3}" for i in range(n)],
        "issue_date": days, "due_date": days + pd.Timedelta(days=30), "amount": np.arange(1, n + 1) / 7,
        "currency": ["EUR"] * n, "paid_date": [days[i] if i % 3 else None for i in range(n)],
        "doc_type": ["invoice"] * n, "terms": [None if i % 4 == 0 else "30 net" for i in range(n)],
        "disputed": pd.array([(True, False, None)[i % 3] for i in range(n)], dtype="boolean"),
    })


def test_rows_stored_out_of_key_order_load_in_key_order(tmp_path, monkeypatch):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    inv = _invoices(KEYS)
    with engine.begin() as conn:  # two writes: the table's order is neither key nor input order
        upsert_frame(conn, "invoices", inv.iloc[7:])
        upsert_frame(conn, "invoices", inv.iloc[:7])
    monkeypatch.setattr(reader_mod, "LOAD_ROWS", 4)  # several fetched batches
    got = load_ledger(engine).invoices
    with engine.connect() as conn:
        by_sql = [r[0] for r in conn.execute(sa.text("SELECT invoice_id FROM invoices ORDER BY invoice_id"))]
    assert got["invoice_id"].tolist() == by_sql == sorted(KEYS)
    expected = inv.set_index("invoice_id").loc[by_sql].reset_index()
    for name in ("issue_date", "due_date", "paid_date"):
        pd.testing.assert_series_equal(got[name], expected[name].astype("datetime64[s]"))
    assert got["amount"].tolist() == expected["amount"].tolist()
    assert got["terms"].tolist() == [None if pd.isna(v) else v for v in expected["terms"]]
    pd.testing.assert_series_equal(got["disputed"], expected["disputed"])
    engine.dispose()


def test_typed_columns_match_the_value_by_value_conversion():
    dates = ("2024-01-02", None, "1999-12-31", "2024-02-29T00:00")  # the last one numpy's to read
    got = reader_mod._typed_column("date", np.array(dates, dtype=object))
    assert got.tolist() == np.array(dates, dtype="datetime64[D]").astype("datetime64[s]").tolist()
    flags = (1, 0, None, 2, 1.0, 0.0, "x", "")
    got = reader_mod._typed_column("bool", np.array(flags, dtype=object))
    pd.testing.assert_extension_array_equal(
        got, pd.array([None if v is None else bool(v) for v in flags], dtype="boolean"))


@pytest.fixture(autouse=True)
def _arrow_for_small_stores(monkeypatch):
    monkeypatch.setattr(reader_mod, "ADBC_MIN_ROWS", 0)  # these stores are small: read through Arrow all the same


def _store_with_every_kind(tmp_path) -> sa.Engine:
    """A store holding each table of a small synthetic ledger, with keys in every script and gaps."""
    from ledger.synth import make_ledger

    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    led = make_ledger(6, years=1, seed=3)
    inv = pd.concat([led.invoices, _invoices(KEYS)], ignore_index=True)
    with engine.begin() as conn:
        upsert_frame(conn, "invoices", inv)
        for name in ("payments", "clients", "actions"):
            upsert_frame(conn, name, getattr(led, name))
    return engine


def _load_both_ways(engine, monkeypatch) -> tuple[object, object, list[bool]]:
    """The ledger loaded through the ADBC driver (when it can) and through ``sqlite3``; whether ADBC's
    rows were used, per table read."""
    real = reader_mod._arrow_parts
    used: list[bool] = []

    def spy(*args, **kwargs):
        parts = real(*args, **kwargs)
        used.append(parts is not None)
        return parts

    monkeypatch.setattr(reader_mod, "_arrow_parts", spy)
    arrow = load_ledger(engine)
    monkeypatch.setattr(reader_mod, "_adbc_tables", lambda *a, **k: None)
    return arrow, load_ledger(engine), used


def _assert_same_ledger(a, b) -> None:
    for name in ("invoices", "payments", "clients", "actions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)


def test_the_arrow_reader_loads_the_frames_sqlite3_loads(tmp_path, monkeypatch):
    engine = _store_with_every_kind(tmp_path)
    arrow, rows, used = _load_both_ways(engine, monkeypatch)
    assert used == [True] * 4
    assert len(arrow.invoices) > len(KEYS) and len(arrow.actions) and len(arrow.payments) and len(arrow.clients)
    _assert_same_ledger(arrow, rows)
    for frame, col in ((arrow.invoices, "currency"), (arrow.invoices, "terms"), (arrow.actions, "step")):
        values = frame[col].dropna().tolist()  # held compactly: one string object per distinct value
        assert len(values) > len(set(values)) == len({id(v) for v in values})
    engine.dispose()


def test_a_value_of_another_type_or_a_column_typed_too_early_falls_back_to_sqlite3(tmp_path, monkeypatch):
    engine = _store_with_every_kind(tmp_path)
    with engine.begin() as conn:  # SQLite keeps text that does not look like a number in an INTEGER column
        conn.execute(sa.text("UPDATE clients SET strategic = 'yes' WHERE rowid = (SELECT max(rowid) FROM clients)"))
        conn.execute(sa.text("UPDATE invoices SET terms = NULL WHERE rowid <= 3"))
    # Batches of 2 rows: a column empty in the first batch (terms) is typed int64, and text follows.
    path = str(tmp_path / "ledger.db")
    monkeypatch.setattr(reader_mod, "ADBC_BATCH_ROWS", 2)
    assert reader_mod._adbc_tables(path, ["SELECT invoice_id FROM invoices ORDER BY rowid",
                                          "SELECT invoice_id, terms FROM invoices ORDER BY rowid"]) is None
    monkeypatch.setattr(reader_mod, "ADBC_BATCH_ROWS", 1 << 20)
    [clients] = reader_mod._adbc_tables(path, ["SELECT client_id, strategic FROM clients ORDER BY rowid"])
    assert reader_mod._arrow_parts(clients, ["str", "bool"], [False, False]) is None
    arrow, rows, used = _load_both_ways(engine, monkeypatch)
    assert used == [True, True, False, True]  # clients read by sqlite3
    assert arrow.clients["strategic"].iloc[-1]  # bool("yes"), as before
    _assert_same_ledger(arrow, rows)
    engine.dispose()


def test_reading_through_arrow_leaves_this_process_connections_working(tmp_path):
    # The driver's own SQLite runs in a child process: here, a connection with writes still in the
    # WAL keeps reading and writing (one copy of SQLite closing the file here would drop its locks).
    engine = _store_with_every_kind(tmp_path)
    with engine.connect() as held:
        held.execute(sa.text("UPDATE clients SET name = 'after' WHERE rowid = 1"))
        held.commit()
        loaded = load_ledger(engine)
        assert (loaded.clients["name"] == "after").sum() == 1
        held.execute(sa.text("UPDATE clients SET name = 'again' WHERE rowid = 1"))
        held.commit()
        assert held.execute(sa.text("SELECT count(*) FROM clients WHERE name = 'again'")).scalar_one() == 1
    assert (load_ledger(engine).clients["name"] == "again").sum() == 1
    engine.dispose()


def test_a_small_store_is_read_here_without_a_child_process(tmp_path, monkeypatch):
    engine = _store_with_every_kind(tmp_path)
    calls = []
    monkeypatch.setattr(reader_mod, "_adbc_tables", lambda *a, **k: calls.append(a) or None)
    rows = reader_mod._stored_rows(engine, ["invoices", "payments", "clients", "actions"])
    monkeypatch.setattr(reader_mod, "ADBC_MIN_ROWS", rows + 1)
    load_ledger(engine)
    assert not calls
    monkeypatch.setattr(reader_mod, "ADBC_MIN_ROWS", rows)
    load_ledger(engine)
    assert len(calls) == 1 and len(calls[0][1]) == 4  # one child for the four tables
    engine.dispose()


def test_the_arrow_read_sees_one_snapshot_while_a_writer_commits_to_two_tables(tmp_path):
    """Every table comes from the same read transaction: a commit that writes two tables is seen whole
    or not at all, however it falls between the queries."""
    import sqlite3
    import threading

    path = str(tmp_path / "two.db")
    w = sqlite3.connect(path, check_same_thread=False)
    w.execute("PRAGMA journal_mode=WAL")
    w.execute("CREATE TABLE a (x TEXT)")
    w.execute("CREATE TABLE b (x TEXT)")
    w.executemany("INSERT INTO a VALUES (?)", [(str(i),) for i in range(200_000)])
    w.executemany("INSERT INTO b VALUES (?)", [(str(i),) for i in range(200_000)])
    w.commit()
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            w.execute("INSERT INTO a VALUES ('w')")
            w.execute("INSERT INTO b VALUES ('w')")
            w.commit()
            stop.wait(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        counts = []
        for _ in range(4):
            a, b = reader_mod._adbc_tables(path, ["SELECT x FROM a ORDER BY rowid", "SELECT x FROM b ORDER BY rowid"])
            counts.append((a.num_rows, b.num_rows))
    finally:
        stop.set()
        thread.join()
        w.close()
    assert all(na == nb for na, nb in counts), counts
    assert len({na for na, _ in counts}) > 1  # the writer committed between the reads


def _load_beside_a_two_table_writer(url: str) -> list[tuple[int, int]]:
    """(invoices, payments) the writer added, as each of several ``load_ledger`` calls saw them while a
    writer committed one invoice and its payment per transaction."""
    import threading

    from ledger.synth import make_ledger

    engine = open_store(url)
    led = make_ledger(4, years=1, seed=3)
    with engine.begin() as conn:
        for name in ("clients", "invoices", "payments"):
            upsert_frame(conn, name, getattr(led, name))
    inv0, pay0 = led.invoices.iloc[[0]], led.payments.iloc[[0]]
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            with engine.begin() as conn:
                upsert_frame(conn, "invoices", inv0.assign(invoice_id=f"W{i:06d}"))
                upsert_frame(conn, "payments", pay0.assign(payment_id=f"WP{i:06d}", invoice_id=f"W{i:06d}"))
            stop.wait(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    try:
        for _ in range(6):
            loaded = load_ledger(engine)
            seen.append((int(loaded.invoices["invoice_id"].str.startswith("W").sum()),
                         int(loaded.payments["payment_id"].str.startswith("WP").sum())))
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    return seen


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_load_ledger_reads_every_table_from_one_snapshot(store, tmp_path, request):
    """A write of two tables in one transaction is loaded whole or not at all, on a small SQLite store
    (read here with sqlite3) as on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if store == "sqlite" else request.getfixturevalue("pg_url")
    seen = _load_beside_a_two_table_writer(url)
    assert all(invoices == payments for invoices, payments in seen), seen
    assert len(set(seen)) > 1  # the writer committed between the loads
