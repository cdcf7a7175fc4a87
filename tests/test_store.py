"""The ledger store: migrations, upsert and load, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger.schema import metadata
from ledger.engine import _switch_to_wal, current_revision, head_revision, open_store
from ledger.reader import load_ledger
from ledger.staged_upsert import upsert_frame


def _invoices(paid=None, amount=100.0):
    return pd.DataFrame({
        "invoice_id": ["0001", "0002", "0003"], "client_id": ["C1", "C1", "C2"],
        "issue_date": pd.to_datetime(["2024-01-02", "2024-01-05", "2024-02-07"]),
        "due_date": pd.to_datetime(["2024-02-01", "2024-02-04", "2024-03-06"]),
        "amount": [amount, 50.5, 20.0], "currency": ["EUR"] * 3,
        "paid_date": pd.to_datetime([paid, None, None]), "doc_type": ["invoice"] * 3,
        "disputed": pd.array([True, None, False], dtype="boolean"),
        "rating": ["A", None, "C"],
    })


def _check_store(url):
    engine = open_store(url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == [], f"migrations and ledger.schema disagree: {diffs}"

        with engine.begin() as conn:
            assert upsert_frame(conn, "invoices", _invoices()) == (3, 0, 0)
        with engine.begin() as conn:
            assert upsert_frame(conn, "invoices", _invoices()) == (0, 0, 3)
        with engine.begin() as conn:
            assert upsert_frame(conn, "invoices", _invoices(paid="2024-02-10")) == (0, 1, 2)

        inv = load_ledger(engine).invoices.set_index("invoice_id")
        assert inv.loc["0001", "paid_date"] == pd.Timestamp("2024-02-10")
        assert inv.loc["0001", "rating"] == "A" and pd.isna(inv.loc["0002", "rating"])
        assert inv["disputed"].tolist()[0] is True and pd.isna(inv["disputed"].iloc[1])
        assert str(inv["issue_date"].dtype) == "datetime64[s]"

        known = load_ledger(engine, as_of="2024-02-01").invoices.set_index("invoice_id")
        assert list(known.index) == ["0001", "0002"]  # 0003 issued later
        assert known["paid_date"].isna().all()  # paid after as_of: open then

        with engine.begin() as conn:  # a failing transaction leaves nothing behind
            upsert_frame(conn, "invoices", _invoices(amount=1.0))
            conn.rollback()
        assert load_ledger(engine).invoices.set_index("invoice_id").loc["0001", "amount"] == 100.0
    finally:
        engine.dispose()
    reopened = open_store(url)  # a second open finds the store up to date
    assert current_revision(reopened) == head_revision()
    reopened.dispose()


def test_sqlite_store(tmp_path):
    _check_store(f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.mark.postgres
def test_postgres_store(pg_url):
    _check_store(pg_url)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert {"invoices", "payments", "clients", "actions", "ingest_runs", "alembic_version"} <= tables


@pytest.mark.postgres
def test_postgres_ingest(pg_url, tmp_path):
    from ledger.ingest import ingest_file

    path = tmp_path / "invoices.csv"
    _invoices().drop(columns=["rating"]).to_csv(path, index=False)
    engine = open_store(pg_url)
    try:
        first = ingest_file(engine, path)
        second = ingest_file(engine, path)
        assert (first.inserted, second.inserted, second.updated, second.unchanged) == (3, 0, 0, 3)
    finally:
        engine.dispose()


def test_upsert_refuses_duplicate_keys(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    df = pd.concat([_invoices().iloc[:1]] * 2)
    with engine.begin() as conn, pytest.raises(ValueError, match="unique invoice_id"):
        upsert_frame(conn, "invoices", df)
    engine.dispose()


class _Cursor:
    """Answers the WAL switch with the errors given, then succeeds."""

    def __init__(self, errors):
        self.errors, self.calls = list(errors), 0

    def execute(self, sql):
        assert sql == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self

    def fetchall(self):
        return [("wal",)]


def test_the_wal_switch_waits_out_a_lock_another_opener_holds_and_raises_anything_else():
    # SQLite refuses the switch at once, without its busy handler, while another connection holds the
    # file: the opener tries again instead of failing.
    cur = _Cursor([sqlite3.OperationalError("database is locked")] * 3)
    _switch_to_wal(cur)
    assert cur.calls == 4
    cur = _Cursor([sqlite3.OperationalError("disk I/O error")])
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _switch_to_wal(cur)
    assert cur.calls == 1
