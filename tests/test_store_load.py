"""load_ledger on SQLite reads rows in table order and puts them in key order itself: the same
frames as reading them ``ORDER BY`` the key, whatever order they were stored in."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
