"""Chunked, staged ingest on SQLite and on the real PostgreSQL server: duplicates across chunks,
re-sends, strict mode, a failure mid-file, CSV layouts the fast reader hands back to pandas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import ledger.writers as writers_mod
from ledger.staged_upsert import upsert_frame
from ledger.ingest import IngestRejected, ingest_file
from ledger.schema import ingest_runs
from ledger.engine import open_store
from ledger.reader import count_rows, load_ledger

HEADER = "invoice_id,client_id,issue_date,due_date,amount,currency,paid_date,doc_type\n"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(n: int, amount: float = 10.0, start: int = 0) -> list[str]:
    return [f"I{i:04d},C{i % 7},2024-01-02,2024-02-01,{amount + i},EUR,,invoice" for i in range(start, start + n)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    eng = open_store(url)
    yield eng
    eng.dispose()


def _runs(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(ingest_runs.c.status, ingest_runs.c.inserted, ingest_runs.c.updated,
                      ingest_runs.c.unchanged, ingest_runs.c.rejected).order_by(ingest_runs.c.id))]


def test_duplicates_across_chunks_are_settled(engine, tmp_path):
    lines = _rows(5) + [
        "I0001,C1,2024-01-02,2024-02-01,11.0,EUR,,invoice",   # row 6: identical copy of row 2
        "I0003,C3,2024-01-02,2024-02-01,99.0,EUR,,invoice",   # row 7: conflicts with row 4
    ] + _rows(3, start=5)
    path = _write(tmp_path / "invoices.csv", lines)
    with pytest.raises(IngestRejected) as exc:
        ingest_file(engine, path, rejects_dir=tmp_path, chunk_rows=2, strict=True)
    assert "2 invoices share a invoice_id with another row holding different values: rows 4, 7" in str(exc.value)
    assert count_rows(engine, "invoices") == 0

    result = ingest_file(engine, path, rejects_dir=tmp_path, chunk_rows=2)
    assert (result.read, result.inserted, result.unchanged, result.rejected) == (10, 7, 1, 2)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["4", "7"]
    assert rej["reason"].str.contains("invoice_id I0003 appears more than once with different values "
                                      r"\(rows 4, 7\)").all()
    assert rej["amount"].tolist() == ["13.0", "99.0"]  # original values
    stored = load_ledger(engine).invoices
    assert stored["invoice_id"].tolist() == ["I0000", "I0001", "I0002", "I0004", "I0005", "I0006", "I0007"]
    assert _runs(engine) == [("rejected", 0, 0, 0, 2), ("stored", 7, 0, 1, 2)]


def test_resend_changes_nothing_and_a_later_export_updates(engine, tmp_path):
    path = _write(tmp_path / "invoices.csv", _rows(9))
    first = ingest_file(engine, path, chunk_rows=4)
    before = load_ledger(engine).invoices
    with engine.connect() as conn:
        stamps = conn.execute(sa.select(sa.func.max(writers_mod.LEDGER_TABLES["invoices"].c.updated_at))).scalar_one()
    again = ingest_file(engine, path, chunk_rows=4)
    assert (first.inserted, again.inserted, again.updated, again.unchanged) == (9, 0, 0, 9)
    pd.testing.assert_frame_equal(load_ledger(engine).invoices, before)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(writers_mod.LEDGER_TABLES["invoices"].c.updated_at))).scalar_one() == stamps

    later = _rows(9)
    later[2] = later[2].replace("EUR,,invoice", "EUR,2024-02-05,invoice")
    third = ingest_file(engine, _write(tmp_path / "invoices_later.csv", later + _rows(2, start=9)), chunk_rows=4)
    assert (third.inserted, third.updated, third.unchanged) == (2, 1, 8)
    inv = load_ledger(engine).invoices.set_index("invoice_id")
    assert inv.loc["I0002", "paid_date"] == pd.Timestamp("2024-02-05")
    assert len(inv) == 11


def test_failure_while_staging_leaves_the_store_and_the_connection_clean(engine, tmp_path, monkeypatch,
                                                                         failing_chunk_write):
    ingest_file(engine, _write(tmp_path / "invoices.csv", _rows(3)))
    before = load_ledger(engine).invoices
    monkeypatch.setattr(writers_mod, "CHUNK_ROWS", 5)
    changed = [_rows(1, amount=500.0)[0]] + _rows(30, start=1)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(engine, _write(tmp_path / "invoices_2.csv", changed), chunk_rows=7)
    pd.testing.assert_frame_equal(load_ledger(engine).invoices, before)
    assert len(_runs(engine)) == 1 and failing_chunk_write["n"] == 3
    failing_chunk_write["restore"]()
    result = ingest_file(engine, _write(tmp_path / "invoices_2.csv", changed), chunk_rows=7)
    assert (result.inserted, result.updated, result.unchanged) == (28, 1, 2)


def test_ragged_rows_and_quoted_newlines(engine, tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "\n".join([
        'I1,C1,2024-01-02,2024-02-01,10,EUR,,invoice',
        'I2,C1,2024-01-02,2024-02-01,10,EUR',                 # row 2: fields missing
        'I3,"C\n2",2024-01-02,2024-02-01,10,EUR,,invoice',    # row 3: a newline inside quotes
        'I4,C2,2024-01-02,2024-02-01,10,EUR,,invoice',
    ]) + "\n", encoding="utf-8")
    result = ingest_file(engine, path, rejects_dir=tmp_path)
    assert (result.read, result.inserted, result.rejected) == (4, 2, 2)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["2", "3"] and "missing doc_type" in rej["reason"].iloc[0]
    # The quoted newline is read as part of one value: an id with a control character, rejected as the API does.
    assert rej["client_id"].iloc[1] == "C\n2" and "control characters" in rej["reason"].iloc[1]
    assert sorted(load_ledger(engine).invoices["invoice_id"]) == ["I1", "I4"]


def test_load_reads_back_what_upsert_wrote(engine):
    inv = pd.DataFrame({
        "invoice_id": ["b", "a", "c"], "client_id": ["C1", "C1", "C2"],
        "issue_date": pd.to_datetime(["2024-01-02", "1999-12-31", "2024-02-29"]),
        "due_date": pd.to_datetime(["2024-02-01", "2000-01-30", "2024-03-30"]),
        "amount": [0.1, 1e16, 123456.789], "currency": ["EUR", "USD", "EUR"],
        "paid_date": pd.to_datetime([None, "2000-02-01", None]), "doc_type": ["invoice"] * 3,
        "terms": [None, "30 net", "é ü"], "disputed": pd.array([True, None, False], dtype="boolean"),
        "score": [1.5, None, 3.0], "rating": ["A", None, "C"],
    })
    clients = pd.DataFrame({"client_id": ["C1", "C2"], "credit_limit": [None, 5000.0],
                            "strategic": pd.array([None, True], dtype="boolean")})
    with engine.begin() as conn:
        assert upsert_frame(conn, "invoices", inv) == (3, 0, 0)
        assert upsert_frame(conn, "clients", clients) == (2, 0, 0)
    led = load_ledger(engine)
    got = led.invoices
    assert got["invoice_id"].tolist() == ["a", "b", "c"]
    expected = inv.set_index("invoice_id").loc[["a", "b", "c"]].reset_index()
    for name in ("issue_date", "due_date", "paid_date"):
        assert str(got[name].dtype) == "datetime64[s]"
        pd.testing.assert_series_equal(got[name], expected[name].astype("datetime64[s]"))
    assert got["amount"].tolist() == [1e16, 0.1, 123456.789]
    assert got["terms"].tolist() == ["30 net", None, "é ü"]
    assert got["disputed"].tolist()[1] is True and pd.isna(got["disputed"].iloc[0])
    assert got["score"].tolist()[1:] == [1.5, 3.0] and pd.isna(got["score"].iloc[0])
    assert got["rating"].tolist()[1:] == ["A", "C"] and pd.isna(got["rating"].iloc[0])
    assert led.clients["strategic"].tolist()[1] is True and pd.isna(led.clients["credit_limit"].iloc[0])
    with engine.begin() as conn:  # the same rows again: nothing changes
        assert upsert_frame(conn, "invoices", inv) == (0, 0, 3)


def test_a_payment_of_a_rejected_invoice_is_rejected_until_the_invoice_is_stored(engine, tmp_path):
    bad = tmp_path / "invoices.csv"
    bad.write_text(HEADER + "I1,C1,2024-01-02,2024-02-01,0,EUR,,invoice\nI2,C1,2024-01-02,2024-02-01,5,EUR,,invoice\n",
                   encoding="utf-8")
    assert ingest_file(engine, bad, rejects_dir=tmp_path).rejected == 1  # I1: zero amount
    pay = tmp_path / "payments.csv"
    pay.write_text("payment_id,invoice_id,paid_date,amount\nP1,I1,2024-02-01,3\nP2,I2,2024-02-01,5\n", encoding="utf-8")
    result = ingest_file(engine, pay, rejects_dir=tmp_path)
    assert (result.inserted, result.rejected) == (1, 1)
    assert "1 payment references a rejected invoice_id: row 1 of payments.csv" in "\n".join(result.problems)
    ingest_file(engine, bad, rejects_dir=tmp_path)  # the same rejection again: still rejected
    assert ingest_file(engine, pay, rejects_dir=tmp_path).rejected == 1
    fixed = tmp_path / "invoices_fixed.csv"
    fixed.write_text(HEADER + "I1,C1,2024-01-02,2024-02-01,3,EUR,,invoice\n", encoding="utf-8")
    assert ingest_file(engine, fixed, rejects_dir=tmp_path).inserted == 1
    again = ingest_file(engine, pay, rejects_dir=tmp_path)
    assert (again.inserted, again.unchanged, again.rejected) == (1, 1, 0)
    assert sorted(load_ledger(engine).payments["payment_id"]) == ["P1", "P2"]
