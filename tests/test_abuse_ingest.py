"""Bad files get a clear error or their bad rows rejected with the reason; no traceback, nothing lost.

Non-finite, absurd and over-long values; Latin-1, empty and ragged files; exit codes; a wrong
separator; ambiguous decimal marks; payments of unknown invoices; racing first ingests.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from encaisse.cli import app
from features.kpis import evaluate_kpis
from ledger.ingest import IngestError, ingest_file
from ledger.engine import current_revision, head_revision, open_store
from ledger.reader import load_ledger

HEADER = "invoice_id,client_id,issue_date,due_date,amount,currency\n"


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def last_json(res) -> dict:
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_non_finite_absurd_and_overlong_values_are_rejected_with_their_reason(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "".join([
        "OK1,C1,2025-11-01,2025-12-01,12.5,EUR\n",
        "INF1,C1,2025-11-01,2025-12-01,inf,EUR\n",
        "BIG1,C1,2025-11-01,2025-12-01,1e308,EUR\n",
        f"{'X' * 65},C1,2025-11-01,2025-12-01,3,EUR\n",
        f"LONGCLIENT,{'C' * 200},2025-11-01,2025-12-01,3,EUR\n",
        "OLD1,C1,1066-10-14,2025-12-01,3,EUR\n",
        "OK2,C2,2025-11-01,2025-12-01,1000000000000,EUR\n",
    ]), encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    result = ingest_file(engine, path, rejects_dir=tmp_path)
    assert (result.read, result.inserted, result.rejected) == (7, 2, 5)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False).set_index("source_row")["reason"]
    assert "amount is not finite" in rej["2"]
    assert "amount is beyond 1e+12" in rej["3"]
    assert "invoice_id of 65 characters (at most 64)" in rej["4"]
    assert "client_id of 200 characters (at most 64)" in rej["5"]
    assert "issue_date 1066-10-14 outside 1900-01-01..2199-12-31" in rej["6"]
    summary = "\n".join(result.problems)
    assert "non-finite amount: row 2 of invoices.csv" in summary and "absurdly large amount: row 3" in summary
    ledger = load_ledger(engine)
    assert sorted(ledger.invoices["invoice_id"]) == ["OK1", "OK2"]
    kpis = evaluate_kpis(ledger, pd.Timestamp("2025-12-15"))
    assert all(np.isfinite(v) for v in kpis.values() if isinstance(v, float))


def test_over_long_text_and_promise_amounts_of_actions_are_rejected(tmp_path):
    path = tmp_path / "actions.csv"
    path.write_text("action_id,client_id,action_date,step,outcome,promise_amount\n"
                    "A1,C1,2025-11-01,call,no_answer,\n"
                    f"A2,C1,2025-11-01,call,{'o' * 256},\n"
                    "A3,C1,2025-11-01,promise,promise,-inf\n", encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    result = ingest_file(engine, path, rejects_dir=tmp_path)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False).set_index("source_row")["reason"]
    assert (result.inserted, result.rejected) == (1, 2)
    assert "outcome of 256 characters (at most 255)" in rej["2"] and "promise_amount is not finite" in rej["3"]


def test_a_latin1_file_without_a_mapping_is_read_with_its_encoding(tmp_path):
    path = tmp_path / "clients_l1.csv"
    path.write_bytes("client_id,name\nC1,Société Générale\n".encode("latin-1"))
    res = cli("ingest", str(path), "--home", str(tmp_path / "ws"), "--json")
    assert res.exit_code == 0, res.output
    assert last_json(res)["inserted"] == 1
    engine = open_store(f"sqlite:///{tmp_path / 'ws' / 'ledger.db'}")
    assert load_ledger(engine).clients["name"].tolist() == ["Société Générale"]
    res = cli("ingest", str(path), "--home", str(tmp_path / "ws2"), "--encoding", "utf-8")
    assert res.exit_code == 2 and res.exception is None or isinstance(res.exception, SystemExit)
    assert "is not utf-8: set the file's encoding with --encoding" in res.stderr
    assert "Traceback" not in res.output + res.stderr


def test_a_utf8_file_with_one_stray_byte_is_refused_naming_its_line_not_read_as_cp1252(tmp_path):
    path = tmp_path / "clients_u8.csv"
    path.write_bytes("client_id,name\nC1,Société Générale\nC2,Dupont\n".encode("utf-8").replace(b"Dupont", b"Dup\xffont"))
    res = cli("ingest", str(path), "--home", str(tmp_path / "ws"))
    assert res.exit_code == 2 and "Traceback" not in res.output + res.stderr
    assert "is UTF-8 but for byte b'\\xff' on line 3" in " ".join(res.stderr.split())
    res = cli("ingest", str(path), "--home", str(tmp_path / "ws"), "--encoding", "cp1252", "--json")
    assert res.exit_code == 0 and last_json(res)["inserted"] == 2  # said so: read as asked


def test_an_empty_file_is_a_one_line_error_storing_nothing_and_writing_no_rejects(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_bytes(b"")
    home = tmp_path / "ws"
    res = cli("ingest", str(path), "--home", str(home))
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1] == ("error: invoices.csv is empty: a CSV needs a header line and "
                                                   "rows. Nothing was stored.")
    assert not any((home / "rejects").glob("*")) if (home / "rejects").exists() else True


def test_a_row_with_an_extra_field_is_rejected_with_its_line_and_the_others_are_stored(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "A1,C1,2025-11-01,2025-12-01,12.5,EUR\n"
                             "A2,C1,2025-11-01,2025-12-01,12,5,EUR\n"
                             "A3,C1,2025-11-01,2025-12-01,13,EUR\n", encoding="utf-8")
    home = tmp_path / "ws"
    res = cli("ingest", str(path), "--home", str(home), "--json")
    assert res.exit_code == 1  # rows rejected, the others stored
    assert "line 3 has 7 fields where the header has 6" in res.stderr
    out = last_json(res)
    assert (out["read"], out["inserted"], out["rejected"]) == (3, 2, 1)
    rej = pd.read_csv(out["rejects_file"], dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["2"] and rej["invoice_id"].tolist() == ["A2"]


def test_exit_codes_are_distinct(tmp_path, monkeypatch):
    home = tmp_path / "ws"
    good = tmp_path / "invoices.csv"
    good.write_text(HEADER + "A1,C1,2025-11-01,2025-12-01,12.5,EUR\n", encoding="utf-8")
    bad = tmp_path / "invoices_bad.csv"
    bad.write_text(HEADER + "A2,C1,2025-11-01,2025-10-01,12.5,EUR\n", encoding="utf-8")
    assert cli("ingest", str(good), "--home", str(home)).exit_code == 0
    assert cli("ingest", str(bad), "--home", str(home)).exit_code == 1
    assert cli("ingest", str(tmp_path / "missing.csv"), "--home", str(home)).exit_code == 2
    import ledger.ingest as ingest_mod

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(ingest_mod, "_ingest_once", boom)
    res = cli("ingest", str(good), "--home", str(home))
    assert res.exit_code == 4 and "RuntimeError: simulated bug" in res.stderr and "Traceback" not in res.stderr


def test_ingest_against_a_held_write_lock_waits_then_fails_in_one_line(tmp_path):
    home = tmp_path / "ws"
    good = tmp_path / "invoices.csv"
    good.write_text(HEADER + "A1,C1,2025-11-01,2025-12-01,12.5,EUR\n", encoding="utf-8")
    open_store(f"sqlite:///{home / 'ledger.db'}").dispose()
    holder = sqlite3.connect(home / "ledger.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        res = cli("ingest", str(good), "--home", str(home), "--wait", "0.3")
    finally:
        holder.rollback()
        holder.close()
    assert res.exit_code == 3, res.output
    assert "stayed busy" in res.stderr and "Traceback" not in res.stderr
    res = cli("ingest", str(good), "--home", str(home), "--json")
    assert res.exit_code == 0 and last_json(res)["inserted"] == 1


def test_a_semicolon_file_gets_a_separator_hint_and_reads_with_delimiter(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER.replace(",", ";") + "A1;C1;2025-11-01;2025-12-01;12,5;EUR\n", encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    with pytest.raises(IngestError, match="separated by semicolons.*--delimiter ';'"):
        ingest_file(engine, path, rejects_dir=tmp_path)


def test_an_ambiguous_amount_with_a_decimal_comma_is_rejected_not_guessed(tmp_path):
    from ledger.mapping import parse_mapping

    path = tmp_path / "export.csv"
    path.write_text("id;client;issued;due;amount\nA1;C1;2025-11-01;2025-12-01;1.234\n"
                    "A2;C1;2025-11-01;2025-12-01;1234,5\n", encoding="utf-8")
    mapping = parse_mapping({"table": "invoices", "source": {"delimiter": ";", "decimal": ","}, "columns": {
        "invoice_id": "id", "client_id": "client", "issue_date": "issued", "due_date": "due", "amount": "amount",
        "currency": {"value": "EUR"}, "doc_type": {"value": "invoice"}}})
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    result = ingest_file(engine, path, mapping, rejects_dir=tmp_path)
    assert (result.inserted, result.rejected) == (1, 1)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["1"] and "ambiguous amount '1.234'" in rej["reason"].iloc[0]
    assert load_ledger(engine).invoices["amount"].tolist() == [1234.5]
    thousands = mapping.model_copy(update={"source": mapping.source.model_copy(update={"thousands": "."})})
    result = ingest_file(engine, path, thousands, rejects_dir=tmp_path)
    assert result.rejected == 0 and sorted(load_ledger(engine).invoices["amount"]) == [1234.0, 1234.5]


def test_payments_of_unknown_invoices_are_reported(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    inv = tmp_path / "invoices.csv"
    inv.write_text(HEADER + "A1,C1,2025-11-01,2025-12-01,12.5,EUR\n", encoding="utf-8")
    ingest_file(engine, inv, rejects_dir=tmp_path)
    pay = tmp_path / "payments.csv"
    pay.write_text("payment_id,invoice_id,paid_date,amount\nP1,A1,2025-12-02,12.5\nP2,NOPE,2025-12-02,3\n",
                   encoding="utf-8")
    result = ingest_file(engine, pay, rejects_dir=tmp_path)
    assert result.inserted == 2  # stored (the invoice may come in a later file), but said
    assert any("1 payment names an invoice not in the store: NOPE" in p for p in result.problems)
    res = cli("ingest", str(pay), "--home", str(tmp_path / "ws"))
    assert "2 payments name invoices not in the store: A1, NOPE" in res.stderr  # a workspace without invoices


def test_payments_before_their_invoice_or_beyond_its_amount_are_stored_and_reported(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    inv = tmp_path / "invoices.csv"
    inv.write_text(HEADER + "A1,C1,2025-11-01,2025-12-01,100,EUR\nA2,C1,2025-11-01,2025-12-01,50,EUR\n", encoding="utf-8")
    ingest_file(engine, inv, rejects_dir=tmp_path)
    pay = tmp_path / "payments.csv"
    pay.write_text("payment_id,invoice_id,paid_date,amount\nP1,A1,2025-10-30,60\nP2,A1,2025-12-02,40.004\n"
                   "P3,A2,2025-12-02,50\n", encoding="utf-8")
    result = ingest_file(engine, pay, rejects_dir=tmp_path)
    assert result.inserted == 3 and result.problems == [
        "1 invoice paid before its issue_date (A1): stored all the same; check the payments' paid_date or the invoice."]
    more = tmp_path / "payments_more.csv"  # a second file: the totals count what was stored before
    more.write_text("payment_id,invoice_id,paid_date,amount\nP4,A1,2025-12-03,0.01\nP5,A2,2025-12-03,0.004\n",
                    encoding="utf-8")
    result = ingest_file(engine, more, rejects_dir=tmp_path)
    assert result.inserted == 2 and len(result.problems) == 2  # A1, touched again, still paid before its issue
    assert result.problems[1].startswith("1 invoice now paid more than its amount (A1): stored all the same")
    assert ingest_file(engine, more, rejects_dir=tmp_path).problems == []  # sent again: nothing stored, nothing said
    # The invoice side: stored after its payments, its amount lowered, its issue day moved after a payment.
    pay = tmp_path / "payments_first.csv"
    pay.write_text("payment_id,invoice_id,paid_date,amount\nQ1,B1,2025-12-02,200\nQ2,B2,2025-12-02,100\n"
                   "Q3,B3,2025-11-05,10\n", encoding="utf-8")
    ingest_file(engine, pay, rejects_dir=tmp_path)
    later = tmp_path / "invoices_later.csv"
    later.write_text(HEADER + "B1,C1,2025-11-01,2025-12-01,100,EUR\nB2,C1,2025-11-01,2025-12-01,100,EUR\n"
                     "B3,C1,2025-11-01,2025-12-01,100,EUR\n", encoding="utf-8")
    assert [p[:45] for p in ingest_file(engine, later, rejects_dir=tmp_path).problems] == [
        "1 invoice now paid more than its amount (B1):"]
    changed = tmp_path / "invoices_changed.csv"
    changed.write_text(HEADER + "B1,C1,2025-11-01,2025-12-01,100,EUR\nB2,C1,2025-11-01,2025-12-01,50,EUR\n"
                       "B3,C1,2025-11-10,2025-12-01,100,EUR\n", encoding="utf-8")
    assert [p[:45] for p in ingest_file(engine, changed, rejects_dir=tmp_path).problems] == [
        "1 invoice paid before its issue_date (B3): st", "1 invoice now paid more than its amount (B2):"]
    engine.dispose()


def test_actions_with_a_step_the_product_does_not_read_are_stored_and_reported(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    path = tmp_path / "actions.csv"
    path.write_text("action_id,client_id,action_date,step\nA1,C1,2025-01-02,relance_1\nA2,C1,2025-01-03,relance_1\n"
                    "A3,C1,2025-01-04,Reminder 1\nA4,C1,2025-01-05,reminder_1\nA5,C1,2025-01-06,instalment_call\n",
                    encoding="utf-8")
    from models.policy import load_policy

    result = ingest_file(engine, path, rejects_dir=tmp_path, policy_steps=load_policy().step_names())
    assert result.inserted == 5
    assert [p for p in result.problems if "step" in p] == [
        "3 actions stored with a step neither the product nor the dunning policy reads ('relance_1' x2, 'Reminder 1' "
        "x1): client features and next steps count them as no known step. Map them (a mapping's step: values:) to one "
        "of preventive, reminder, reminder_1, reminder_2, call, formal_notice, agency, promise, dispute, "
        "dispute_resolved, payment_plan, dunning_block, dunning_unblock, or to a step of the policy."]
    res = cli("ingest", str(path), "--home", str(tmp_path / "ws"))  # the CLI reads the shipped policy's steps
    assert "3 actions stored with a step neither" in " ".join(res.stderr.split())
    engine.dispose()


def _open(url: str, barrier, queue) -> None:
    barrier.wait()
    try:
        engine = open_store(url)
        queue.put(current_revision(engine))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        queue.put(f"{exc.__class__.__name__}: {exc}"[:300])


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_first_opens_of_a_new_store_racing_each_other_all_succeed(tmp_path, store, request):
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if store == "sqlite" else request.getfixturevalue("pg_url")
    ctx = mp.get_context("fork")
    n = 6
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(url, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = [queue.get(timeout=5) for _ in procs]
    assert results == [head_revision()] * n


def test_an_ingest_killed_part_way_is_finished_by_sending_the_file_again(tmp_path, monkeypatch, failing_chunk_write):
    """A kill leaves the batches the direct path committed (here: undo disabled, as a kill skips it);
    the next open rebuilds the indexes it had dropped, and the same file again stores the rest."""
    import ledger.writers as writers_mod
    from ledger.direct_insert import DirectInsert

    monkeypatch.setattr(writers_mod, "CHUNK_ROWS", 10)
    monkeypatch.setattr(DirectInsert, "COMMIT_ROWS", 10)
    monkeypatch.setattr(DirectInsert, "undo", lambda self: None)
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "".join(f"K{i:03d},C{i % 3},2025-01-01,2025-02-01,10,EUR\n" for i in range(50)),
                    encoding="utf-8")
    db = tmp_path / "ledger.db"
    engine = open_store(f"sqlite:///{db}")
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(engine, path, rejects_dir=tmp_path)
    engine.dispose()
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from invoices").fetchone()[0] == 20  # two batches committed
    assert not con.execute("select name from sqlite_master where name = 'ix_invoices_client_id'").fetchall()
    con.close()
    failing_chunk_write["restore"]()
    engine = open_store(f"sqlite:///{db}")  # rebuilds the dropped indexes
    con = sqlite3.connect(db)
    assert con.execute("select name from sqlite_master where name = 'ix_invoices_client_id'").fetchall()
    con.close()
    result = ingest_file(engine, path, rejects_dir=tmp_path)
    assert (result.inserted, result.unchanged) == (30, 20)
    assert sorted(load_ledger(engine).invoices["invoice_id"]) == [f"K{i:03d}" for i in range(50)]
