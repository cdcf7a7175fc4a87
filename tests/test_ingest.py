"""Mapped ingest: row-level reasons, idempotence, atomicity, real exports, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import ledger.writers as writers_mod
from ledger.ingest import IngestRejected, ingest_file
from ledger.parsing import validate_frame
from ledger.mapping import parse_mapping
from ledger.schema import ingest_runs
from ledger.engine import open_store
from ledger.reader import count_rows, load_ledger

REPO = Path(__file__).resolve().parents[1]
MAPPINGS = REPO / "data" / "mappings"

HEADER = "invoice_id,client_id,issue_date,due_date,amount,currency,paid_date,doc_type\n"
GOOD = [
    "A1,C1,2024-01-02,2024-02-01,100.0,EUR,,invoice",
    "A2,C1,2024-01-05,2024-02-04,50.5,EUR,2024-02-01,invoice",
    "A3,C2,2024-01-07,2024-02-06,20,USD,,credit_note",
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def engine(tmp_path):
    eng = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield eng
    eng.dispose()


# --- validate_frame on three-row frames -----------------------------------------------------------

def _frame(**override):
    df = pd.DataFrame({
        "invoice_id": ["A1", "A2", "A3"], "client_id": ["C1", "C1", "C2"],
        "issue_date": ["2024-01-02", "2024-01-05", "2024-01-07"],
        "due_date": ["2024-02-01", "2024-02-04", "2024-02-06"],
        "amount": [100.0, 50.5, 20.0], "currency": ["EUR", "EUR", "EUR"],
        "doc_type": ["invoice", "invoice", "invoice"],
    })
    for k, v in override.items():
        df[k] = v
    return df


def test_validate_frame_accepts_clean_rows():
    good, rejects = validate_frame("invoices", _frame())
    assert len(good) == 3 and len(rejects) == 0
    assert str(good["issue_date"].dtype) == "datetime64[s]"
    assert good["amount"].tolist() == [100.0, 50.5, 20.0]


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        ("client_id", ["C1", None, "C2"], "missing client_id"),
        ("issue_date", ["2024-01-02", "2024-13-45", "2024-01-07"], "unparsable issue_date '2024-13-45'"),
        ("amount", [100.0, 0.0, 20.0], "amount is zero or negative (0.0)"),
        ("amount", [100.0, -3.0, 20.0], "amount is zero or negative (-3.0)"),
        ("due_date", ["2024-02-01", "2024-01-01", "2024-02-06"], "due_date 2024-01-01 before issue_date 2024-01-05"),
        ("currency", ["EUR", "EUROS", "EUR"], "unknown currency 'EUROS'"),
        ("doc_type", ["invoice", "bill", "invoice"], "unknown doc_type 'bill'"),
    ],
)
def test_validate_frame_rejects_with_reason(column, values, reason):
    good, rejects = validate_frame("invoices", _frame(**{column: values}))
    assert good["invoice_id"].tolist() == ["A1", "A3"]
    assert rejects["source_row"].tolist() == [2]
    assert reason in rejects["reason"].iloc[0]
    assert rejects["invoice_id"].iloc[0] == "A2"  # original values kept


def test_validate_frame_duplicates():
    same = _frame(invoice_id=["A1", "A1", "A3"], client_id=["C1", "C1", "C2"],
                  issue_date=["2024-01-02"] * 3, due_date=["2024-02-01"] * 3, amount=[1.0, 1.0, 2.0])
    good, rejects = validate_frame("invoices", same)
    assert good["invoice_id"].tolist() == ["A1", "A3"] and len(rejects) == 0

    conflict = _frame(invoice_id=["A1", "A1", "A3"])
    good, rejects = validate_frame("invoices", conflict)
    assert good["invoice_id"].tolist() == ["A3"]
    assert rejects["source_row"].tolist() == [1, 2]
    assert "invoice_id A1 appears more than once with different values (rows 1, 2)" in rejects["reason"].iloc[0]


def test_validate_frame_actions_get_content_ids():
    acts = pd.DataFrame({"client_id": ["C1", "C1"], "action_date": ["2024-03-01", "2024-03-02"],
                         "step": ["reminder_1", "call"]})
    good1, _ = validate_frame("actions", acts)
    good2, _ = validate_frame("actions", acts.iloc[::-1])
    assert good1["action_id"].notna().all() and good1["action_id"].nunique() == 2
    assert set(good1["action_id"]) == set(good2["action_id"])


# --- files ---------------------------------------------------------------------------------------

def test_bad_rows_are_reported_and_good_rows_stored(engine, tmp_path):
    lines = GOOD + [
        "B1,,2024-01-02,2024-02-01,10,EUR,,invoice",            # row 4: missing client_id
        "B2,C3,02/01/2024,2024-02-01,10,EUR,,invoice",           # row 5: unparsable issue_date
        "B3,C3,2024-01-02,2024-02-01,0,EUR,,invoice",            # row 6: zero amount
        "B4,C3,2024-03-02,2024-02-01,10,EUR,,invoice",           # row 7: due before issue
        "B5,C3,2024-01-02,2024-02-01,10,XXX,,invoice",           # row 8: unknown currency
        "B6,C3,2024-01-02,2024-02-01,10,EUR,,bill",              # row 9: unknown doc_type
        "A1,C1,2024-01-02,2024-02-01,100.0,EUR,,invoice",         # row 10: identical duplicate of row 1
        "B7,C4,2024-01-02,2024-02-01,10,EUR,,invoice",           # row 11: conflicting duplicate
        "B7,C4,2024-01-02,2024-02-01,11,EUR,,invoice",           # row 12
    ]
    path = _write(tmp_path / "invoices.csv", lines)
    rejects_dir = tmp_path / "rejects"
    with pytest.raises(IngestRejected) as exc:
        ingest_file(engine, path, rejects_dir=rejects_dir, strict=True)
    assert count_rows(engine, "invoices") == 0  # strict: nothing stored
    assert "1 invoice has due_date before issue_date" in str(exc.value)
    assert "row 7 of invoices.csv; fix the dates or map issue_date with not_after" in str(exc.value)

    result = ingest_file(engine, path, rejects_dir=rejects_dir)
    assert (result.read, result.inserted, result.updated, result.unchanged, result.rejected) == (12, 3, 0, 1, 8)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    reasons = dict(zip(rej["source_row"].astype(int), rej["reason"]))
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 11, 12]
    assert reasons[4] == "missing client_id"
    assert "unparsable issue_date '02/01/2024'" in reasons[5]
    assert "zero or negative" in reasons[6]
    assert "before issue_date" in reasons[7]
    assert "unknown currency 'XXX'" in reasons[8]
    assert "unknown doc_type 'bill'" in reasons[9]
    assert "rows 11, 12" in reasons[11] and "rows 11, 12" in reasons[12]
    assert rej.loc[rej["source_row"] == "12", "amount"].item() == "11"  # original values
    assert sorted(load_ledger(engine).invoices["invoice_id"]) == ["A1", "A2", "A3"]


def test_rows_with_a_payment_before_their_issue_are_stored_and_reported(engine, tmp_path):
    lines = GOOD + [f"P{i},C1,2024-01-10,2024-02-10,10,EUR,2024-01-0{i},invoice" for i in range(1, 8)]
    result = ingest_file(engine, _write(tmp_path / "invoices.csv", lines))
    assert result.inserted == 10 and result.rejected == 0
    odd = [p for p in result.problems if "paid_date before issue_date" in p]
    assert odd == ["7 invoices rows stored with paid_date before issue_date (P1, P2, P3, P4, P5, ...): check them at "
                   "the source; if the export's issue day is a period stamp, map issue_date with not_after: "
                   "[due_date, paid_date]."]
    again = ingest_file(engine, _write(tmp_path / "invoices.csv", GOOD))
    assert not [p for p in again.problems if "before" in p]


def test_rows_referencing_a_rejected_row_are_rejected_until_it_is_stored(engine, tmp_path):
    bad = GOOD + ["B1,C3,2024-03-02,2024-02-01,10,EUR,,invoice"]  # row 4: due before issue
    first = ingest_file(engine, _write(tmp_path / "invoices.csv", bad), rejects_dir=tmp_path)
    assert (first.inserted, first.rejected, first.stored) == (3, 1, True)
    payments = tmp_path / "payments.csv"
    payments.write_text("payment_id,invoice_id,paid_date,amount\n"
                        "P1,A1,2024-02-01,100\nP2,B1,2024-02-03,10\nP3,NEW9,2024-02-03,5\n", encoding="utf-8")
    result = ingest_file(engine, payments, rejects_dir=tmp_path)
    assert (result.read, result.inserted, result.rejected) == (3, 2, 1)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["2"] and rej["payment_id"].tolist() == ["P2"]
    assert rej["reason"].iloc[0].startswith("invoice_id B1: that invoice was rejected by the ingest of "
                                            "invoices.csv (due_date 2024-02-01 before issue_date 2024-03-02)")
    summary = "\n".join(result.problems)
    assert "1 payment references a rejected invoice_id: row 2 of payments.csv" in summary
    assert "1 payment names an invoice not in the store: NEW9" in summary  # never seen: stored, reported
    assert sorted(load_ledger(engine).payments["payment_id"]) == ["P1", "P3"]

    fixed = ingest_file(engine, _write(tmp_path / "invoices_fixed.csv",
                                       ["B1,C3,2024-01-02,2024-02-01,10,EUR,,invoice"]), rejects_dir=tmp_path)
    assert (fixed.inserted, fixed.rejected) == (1, 0)
    again = ingest_file(engine, payments, rejects_dir=tmp_path)
    assert (again.inserted, again.unchanged, again.rejected) == (1, 2, 0)


def test_reingest_is_idempotent_and_later_export_updates(engine, tmp_path):
    path = _write(tmp_path / "invoices.csv", GOOD)
    first = ingest_file(engine, path)
    second = ingest_file(engine, path)
    assert (first.inserted, first.updated) == (3, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 3)

    later = [GOOD[0].replace("EUR,,invoice", "EUR,2024-02-03,invoice")] + GOOD[1:] + [
        "A4,C2,2024-02-01,2024-03-02,75,EUR,,invoice"]
    third = ingest_file(engine, _write(tmp_path / "invoices_later.csv", later))
    assert (third.inserted, third.updated, third.unchanged) == (1, 1, 2)
    inv = load_ledger(engine).invoices.set_index("invoice_id")
    assert inv.loc["A1", "paid_date"] == pd.Timestamp("2024-02-03")
    with engine.connect() as conn:
        runs = conn.execute(sa.select(ingest_runs.c.inserted, ingest_runs.c.updated).order_by(ingest_runs.c.id)).all()
    assert [tuple(r) for r in runs] == [(3, 0), (0, 0), (1, 1)]


def test_failure_mid_file_leaves_store_unchanged(engine, tmp_path, monkeypatch):
    ingest_file(engine, _write(tmp_path / "invoices.csv", GOOD))
    before = load_ledger(engine).invoices
    more = [f"N{i},C9,2024-01-02,2024-02-01,{i + 1},EUR,,invoice" for i in range(50)]
    changed = [GOOD[0].replace("100.0", "999.0")] + GOOD[1:] + more
    monkeypatch.setattr(writers_mod, "CHUNK_ROWS", 10)
    calls = {"n": 0}
    real = writers_mod._write_chunk

    def flaky(staged, columns):
        calls["n"] += 1
        if calls["n"] == 3:  # two batches are already staged inside the transaction
            raise RuntimeError("disk full")
        real(staged, columns)

    monkeypatch.setattr(writers_mod, "_write_chunk", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(engine, _write(tmp_path / "invoices_2.csv", changed))
    assert calls["n"] == 3
    pd.testing.assert_frame_equal(load_ledger(engine).invoices, before)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ingest_runs)).scalar_one() == 1


def test_mapping_options_filters_values_bools_not_after_and_extras(engine, tmp_path):
    src = tmp_path / "export.csv.gz"
    pd.DataFrame({
        "DOC": ["0001", "0002", "0003", "0004"],
        "CUST": ["K1", "K1", "K2", "K2"],
        "MONTH": ["2024-01-01", "2024-02-01", "2024-02-01", "2024-02-01"],
        "DUE": ["20240120", "20240131.0", "20240115", "20240301"],
        "PAID": ["", "20240105", "", ""],
        "AMT": ["1.234,50", "10,00", "5,00", "7,00"],
        "KIND": ["Invoice", "Credit memo", "Odd", "Statistical"],
        "DISP": ["Yes", "No", "0", "ja"],
        "RATING": ["A", "B", "", "C"],
    }).to_csv(src, sep=";", index=False, compression="gzip")
    mapping = parse_mapping({
        "name": "test",
        "table": "invoices",
        "source": {"delimiter": ";", "decimal": ",", "thousands": "."},
        "columns": {
            "invoice_id": "DOC", "client_id": "CUST",
            "issue_date": {"column": "MONTH", "not_after": ["due_date", "paid_date"]},
            "due_date": {"column": "DUE", "format": "%Y%m%d"},
            "paid_date": {"column": "PAID", "format": "%Y%m%d"},
            "amount": "AMT", "currency": {"value": "EUR"},
            "doc_type": {"column": "KIND", "values": {"Invoice": "invoice", "Credit memo": "credit_note"},
                         "default": "other"},
            "disputed": {"column": "DISP", "true_values": ["ja"]},
        },
        "filters": [{"column": "KIND", "not_in": ["Statistical"]}],
        "extra": {"rating": {"column": "RATING"}},
    })
    result = ingest_file(engine, src, mapping, rejects_dir=tmp_path)
    assert (result.read, result.inserted, result.filtered, result.rejected) == (4, 3, 1, 0)
    rej = pd.read_csv(result.rejects_file, dtype=str)
    assert rej["reason"].tolist() == ["filtered by mapping"] and rej["source_row"].tolist() == ["4"]
    inv = load_ledger(engine).invoices.set_index("invoice_id")
    assert inv.loc["0001", "amount"] == 1234.5
    assert inv.loc["0002", "issue_date"] == pd.Timestamp("2024-01-05")  # paid before the month stamp
    assert inv.loc["0003", "issue_date"] == pd.Timestamp("2024-01-15")  # due before the month stamp
    assert inv.loc["0001", "issue_date"] == pd.Timestamp("2024-01-01")
    assert inv["doc_type"].to_dict() == {"0001": "invoice", "0002": "credit_note", "0003": "other"}
    assert inv["disputed"].tolist() == [True, False, False]
    assert inv.loc["0001", "rating"] == "A" and pd.isna(inv.loc["0003", "rating"])


def test_mapping_naming_absent_column_fails_before_reading(engine, tmp_path):
    path = _write(tmp_path / "invoices.csv", GOOD)
    mapping = parse_mapping({"table": "invoices", "columns": {
        "invoice_id": "invoice_id", "client_id": "KUNNR", "issue_date": "issue_date",
        "due_date": "due_date", "amount": "amount", "currency": "currency", "doc_type": "doc_type"}})
    with pytest.raises(ValueError, match="reads columns missing from invoices.csv: KUNNR"):
        ingest_file(engine, path, mapping)


def test_parquet_and_actions_without_ids(engine, tmp_path):
    acts = pd.DataFrame({"client_id": ["C1", "C2"], "action_date": pd.to_datetime(["2024-03-01", "2024-03-02"]),
                         "step": ["reminder_1", "call"], "promise_amount": [None, 30.0]})
    path = tmp_path / "actions.parquet"
    acts.to_parquet(path)
    first = ingest_file(engine, path)
    second = ingest_file(engine, path)
    assert (first.inserted, second.inserted, second.updated, second.unchanged) == (2, 0, 0, 2)
    stored = load_ledger(engine).actions
    assert stored["action_id"].str.startswith("A").all()


# --- real exports --------------------------------------------------------------------------------

def test_ibm_export_stores_every_invoice(engine, shared_data, tmp_path):
    path = shared_data / "ibm_ar" / "WA_Fn-UseC_-Accounts-Receivable.csv"
    result = ingest_file(engine, path, MAPPINGS / "ibm_ar.yaml", tmp_path)
    assert (result.read, result.inserted, result.rejected, result.filtered) == (2466, 2466, 0, 0)
    inv = load_ledger(engine).invoices
    assert len(inv) == 2466 and inv["paid_date"].notna().all()
    assert "0000611365" in set(inv["invoice_id"])
    assert "paperless_bill" in inv.columns
    assert not {"DaysToSettle", "DaysLate", "days_late"} & set(inv.columns)
    again = ingest_file(engine, path, MAPPINGS / "ibm_ar.yaml", tmp_path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2466)


@pytest.mark.slow
def test_sap_export_ingests_and_reingests_unchanged(engine, shared_data, tmp_path):
    path = shared_data / "sap_ar" / "sap_ar_as_of_2019-01-01.csv.gz"
    result = ingest_file(engine, path, MAPPINGS / "sap_ar.yaml", tmp_path)
    assert result.read == 196_027
    assert result.inserted + result.rejected == result.read
    assert 185_000 < result.inserted < 196_027
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    assert rej["reason"].str.contains("amount is zero or negative").all()
    assert (rej["VALUE_EUR"].astype(float) <= 0).all()
    inv = load_ledger(engine).invoices
    assert (inv["due_date"] >= inv["issue_date"]).all()
    assert (inv["paid_date"].dropna() >= inv.loc[inv["paid_date"].notna(), "issue_date"]).all()
    assert (inv["doc_type"] == "invoice").sum() > 175_000
    assert inv["paid_date"].isna().sum() > 4_000
    again = ingest_file(engine, path, MAPPINGS / "sap_ar.yaml", tmp_path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, result.inserted)


# --- CLI -----------------------------------------------------------------------------------------

def _cli(*args):
    from encaisse.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_json_last_line_and_exit_codes(tmp_path):
    home = tmp_path / "ws"
    ok = _write(tmp_path / "invoices.csv", GOOD)
    res = _cli("ingest", str(ok), "--home", str(home), "--json")
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert {k: last[k] for k in ("read", "inserted", "updated", "unchanged", "rejected")} == {
        "read": 3, "inserted": 3, "updated": 0, "unchanged": 0, "rejected": 0}
    assert last["rejects_file"] is None

    bad = _write(tmp_path / "invoices_bad.csv", GOOD + ["B1,C3,2024-03-02,2024-02-01,10,EUR,,invoice",
                                                        "B2,C3,2024-01-02,2024-02-01,10,EUR,,invoice"])
    res = _cli("ingest", str(bad), "--home", str(home), "--json", "--strict")
    assert res.exit_code == 1
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert (last["read"], last["inserted"], last["unchanged"], last["rejected"], last["stored"]) == (5, 0, 0, 1, False)
    assert Path(last["rejects_file"]).parent == home.resolve() / "rejects"
    assert "due_date before issue_date: row 4 of invoices_bad.csv" in res.stderr
    assert "1 row rejected, nothing stored (--strict)" in res.stderr

    res = _cli("ingest", str(bad), "--home", str(home), "--json")  # by default the good rows are stored
    assert res.exit_code == 1
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert (last["inserted"], last["unchanged"], last["rejected"], last["stored"]) == (1, 3, 1, True)
    assert "1 row rejected, the other rows stored" in res.stderr
    rej = pd.read_csv(last["rejects_file"], dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["4"] and rej["invoice_id"].tolist() == ["B1"]

    for flag in ([], ["--allow-rejects"]):  # sent again: nothing changes; the old flag changes nothing
        res = _cli("ingest", str(bad), "--home", str(home), "--json", *flag)
        assert res.exit_code == 1
        last = json.loads(res.stdout.strip().splitlines()[-1])
        assert (last["inserted"], last["updated"], last["unchanged"], last["rejected"]) == (0, 0, 4, 1)
    res = _cli("ingest", str(bad), "--home", str(home), "--strict", "--allow-rejects")
    assert res.exit_code == 2 and "contradict" in res.stderr


def test_cli_bad_mapping_and_unknown_table(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("table: invoices\ncolumns: {invoice_id: {colum: X}}\n", encoding="utf-8")
    data = _write(tmp_path / "export.csv", GOOD)
    res = _cli("ingest", str(data), "--mapping", str(mapping))
    assert res.exit_code == 2 and "did you mean 'column'" in res.stderr
    res = _cli("ingest", str(data))
    assert res.exit_code == 2 and "Cannot tell which table export.csv holds" in res.stderr
    for bad_table in ("bogus", "Invoices"):
        res = _cli("ingest", str(data), "--table", bad_table)
        assert res.exit_code == 2 and f"Unknown table '{bad_table}': the tables are invoices" in res.stderr
    invoices_mapping = Path(__file__).resolve().parents[1] / "data" / "mappings" / "ibm_ar.yaml"
    res = _cli("ingest", str(data), "--table", "payments", "--mapping", str(invoices_mapping))
    assert res.exit_code == 2 and "--table payments contradicts mapping 'ibm_ar'" in " ".join(res.stderr.split())
    for folder_args in ([str(tmp_path)], [str(data), "--mapping", str(tmp_path)]):
        res = _cli("ingest", *folder_args)
        assert res.exit_code == 2 and f"{tmp_path} is a folder" in " ".join(res.stderr.split())
    res = _cli("ingest", str(data), "--table", "invoices", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[-1])["inserted"] == 3


def test_cli_db_current_and_upgrade(tmp_path):
    res = _cli("db", "current", "--home", str(tmp_path / "ws"), "--json")
    assert json.loads(res.stdout.splitlines()[-1])["revision"] is None
    assert not (tmp_path / "ws").exists()  # asking creates nothing
    res = _cli("db", "upgrade", "--home", str(tmp_path / "ws"), "--json")
    from ledger.engine import head_revision

    assert json.loads(res.stdout.splitlines()[-1]) == {"before": None, "revision": head_revision()}
    res = _cli("db", "current", "--home", str(tmp_path / "ws"), "--json")
    assert json.loads(res.stdout.splitlines()[-1])["up_to_date"] is True


def test_validate_frame_takes_empty_input_and_all_empty_columns():
    from ledger.parsing import validate_frame

    rows = pd.DataFrame({"invoice_id": ["a"], "client_id": ["c"], "issue_date": ["2024-01-01"],
                         "due_date": ["2024-01-31"], "amount": [10.0], "currency": ["EUR"],
                         "terms": [None], "paid_date": [None]})  # JSON callers send such columns
    good, rejects = validate_frame("invoices", rows)
    assert len(good) == 1 and len(rejects) == 0 and pd.isna(good["terms"].iloc[0])
    good, rejects = validate_frame("invoices", rows.iloc[:0])
    assert len(good) == 0 and len(rejects) == 0


def test_cli_db_current_names_a_store_it_cannot_read(tmp_path, monkeypatch, pg_url):
    import sqlalchemy as sa

    missing = sa.engine.make_url(pg_url).set(database="no_such_database_here", query={})
    monkeypatch.setenv("ENCAISSE_DATABASE_URL", missing.render_as_string(hide_password=False))
    res = _cli("db", "current", "--home", str(tmp_path / "ws"))
    assert res.exit_code == 2 and "cannot read the store" in " ".join(res.stderr.split())
    assert "no_such_database_here" in res.stderr
    assert isinstance(res.exception, SystemExit)  # one line, no traceback
