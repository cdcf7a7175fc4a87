"""Rows of new keys go straight into the ledger table on SQLite (``DirectInsert``): the same stored
rows, counts, rejects and run records as the staged merge; a file whose keys repeat or are already
stored goes on staged, read once."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

import ledger.ingest as ingest_mod
import ledger.writers as writers_mod
from ledger.direct_insert import DirectInsert
from ledger.staged_upsert import StagedUpsert
from ledger.ingest import ingest_file
from ledger.mapping import parse_mapping
from ledger.engine import open_store
from ledger.reader import count_rows, load_ledger

HEADER = ("invoice_id,client_id,issue_date,due_date,amount,currency,paid_date,doc_type,terms,company,"
          "country,disputed,dunning_block,credit_category,rating\n")
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def _lines(n: int, start: int = 0) -> list[str]:
    out = []
    for i in range(start, start + n):
        paid = f"2024-0{2 + i % 3}-1{i % 10}" if i % 4 else ""
        disputed = ("True", "False", "")[i % 3]
        out.append(f"I{i:05d},C{i % 7},2024-01-{1 + i % 28:02d},2024-02-{1 + i % 28:02d},{10 + i * 0.01!r},"
                   f"{('EUR', 'usd')[i % 2]},{paid},{('invoice', 'Credit_Note')[i % 5 == 0]},30 net,FR01,"
                   f"FR,{disputed},{'' if i % 6 else 'B'}, A ,{('x', '', 'é ü')[i % 3]}")
    return out


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


MAPPING = parse_mapping({
    "name": "direct", "table": "invoices",
    "columns": {n: n for n in HEADER.strip().split(",") if n != "rating"},
    "extra": {"rating": {"column": "rating"}},
})


def _stored(db: Path) -> dict[str, list[tuple]]:
    """Every ledger row with its rowid, stamps checked and left out; indexes; run records."""
    con = sqlite3.connect(db)
    out: dict[str, list[tuple]] = {}
    for table in ("invoices", "payments", "clients", "actions"):
        rows = con.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()
        names = [d[0] for d in con.execute(f"SELECT rowid, * FROM {table} LIMIT 0").description]
        i, u = names.index("ingested_at"), names.index("updated_at")
        for r in rows:
            assert STAMP.match(r[i]) and STAMP.match(r[u]), r
        out[table] = [tuple((type(v).__name__, v) for k, v in enumerate(r) if k not in (i, u)) for r in rows]
    out["indexes"] = sorted(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
    out["runs"] = con.execute("SELECT source, mapping, table_name, status, read, inserted, updated, unchanged, "
                              "rejected, filtered FROM ingest_runs ORDER BY id").fetchall()
    con.close()
    return out


@pytest.fixture
def writers(monkeypatch):
    """The writer class each ingest used, in order."""
    used: list[str] = []
    for cls in (StagedUpsert, DirectInsert):
        real = cls.__init__

        def spy(self, *args, _real=real, _name=cls.__name__, **kwargs):
            used.append(_name)
            _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    return used


def _ingest_both(tmp_path: Path, monkeypatch, files: list[tuple[Path, dict]]) -> tuple[dict, dict, list, list]:
    """Ingest ``files`` into a store straight where possible and into another always staged."""
    results = {}
    for mode in ("direct", "staged"):
        db = tmp_path / f"{mode}.db"
        engine = open_store(f"sqlite:///{db}")
        with monkeypatch.context() as m:
            if mode == "staged":
                m.setattr(ingest_mod.DirectInsert, "usable", staticmethod(lambda *a, **k: False))
            got = []
            for path, kwargs in files:
                r = ingest_file(engine, path, rejects_dir=tmp_path / f"rejects_{mode}", **kwargs)
                rej = pd.read_csv(r.rejects_file, dtype=str, keep_default_na=False) if r.rejects_file else None
                got.append(((r.read, r.inserted, r.updated, r.unchanged, r.rejected, r.filtered), r.problems, rej))
        ledger = load_ledger(engine)
        engine.dispose()
        results[mode] = (got, _stored(db), ledger)
    return results["direct"], results["staged"]


def _assert_same(direct, staged):
    for (counts_d, problems_d, rej_d), (counts_s, problems_s, rej_s) in zip(direct[0], staged[0], strict=True):
        assert counts_d == counts_s
        assert problems_d == problems_s
        if rej_s is None:
            assert rej_d is None
        else:
            pd.testing.assert_frame_equal(rej_d, rej_s)
    stored_d, stored_s = direct[1], staged[1]
    runs_d = [r[1:] for r in stored_d.pop("runs")]
    runs_s = [r[1:] for r in stored_s.pop("runs")]
    assert runs_d == runs_s
    assert stored_d == stored_s
    for name in ("invoices", "payments", "clients", "actions"):
        pd.testing.assert_frame_equal(getattr(direct[2], name), getattr(staged[2], name))


def test_first_load_goes_straight_in_and_stores_what_the_merge_stores(tmp_path, monkeypatch, writers):
    lines = _lines(40)
    lines[7] = lines[7].replace("2024-01-08", "2024-13-45")  # unparsable issue_date
    lines[12] = lines[12].replace(",10.12,", ",-3,")  # negative amount
    path = _write(tmp_path / "invoices.csv", lines)
    actions = tmp_path / "actions.csv"
    actions.write_text("invoice_id,client_id,action_date,step,channel,outcome,promise_date,promise_amount\n"
                       "I00001,C1,2024-02-03,reminder_1,email,,,\n"
                       "I00002,C2,2024-02-04,promise,call,promise,2024-02-20,12.5\n", encoding="utf-8")
    files = [(path, {"mapping": MAPPING, "chunk_rows": 9}),
             (actions, {"table": "actions"}),
             (path, {"mapping": MAPPING, "chunk_rows": 9})]  # sent again
    direct, staged = _ingest_both(tmp_path, monkeypatch, files)
    _assert_same(direct, staged)
    assert [g[0] for g in direct[0]] == [(40, 38, 0, 0, 2, 0), (2, 2, 0, 0, 0, 0), (40, 0, 0, 38, 2, 0)]
    assert writers[:3] == ["DirectInsert", "DirectInsert", "StagedUpsert"]  # a re-send is merged
    assert len(direct[1]["invoices"]) == 38 and direct[2].invoices["rating"].notna().any()


def test_new_keys_go_straight_into_a_table_that_holds_rows(tmp_path, monkeypatch, writers):
    first = _write(tmp_path / "invoices_1.csv", _lines(30))
    second = _write(tmp_path / "invoices_2.csv", _lines(30, start=30))
    files = [(first, {"chunk_rows": 7, "table": "invoices"}), (second, {"chunk_rows": 7, "table": "invoices"})]
    direct, staged = _ingest_both(tmp_path, monkeypatch, files)
    _assert_same(direct, staged)
    assert writers[:2] == ["DirectInsert", "DirectInsert"]
    assert [g[0][1] for g in direct[0]] == [30, 30]


def test_a_stored_key_in_a_later_chunk_moves_the_file_to_a_stage(tmp_path, monkeypatch, writers):
    first = _write(tmp_path / "invoices_1.csv", _lines(10))
    changed = _lines(10)[3].replace(",30 net,", ",60 net,")
    second = _write(tmp_path / "invoices_2.csv", _lines(20, start=10) + [changed, "I00077,C1,2024-01-02,bad"])
    files = [(first, {"table": "invoices"}),
             (second, {"chunk_rows": 6, "table": "invoices"})]
    direct, staged = _ingest_both(tmp_path, monkeypatch, files)
    _assert_same(direct, staged)
    assert writers[:3] == ["DirectInsert", "DirectInsert", "StagedUpsert"]
    assert direct[0][1][0] == (22, 20, 1, 0, 1, 0)
    from ledger.changes import read_changes

    engine = open_store(f"sqlite:///{tmp_path / 'direct.db'}")
    with engine.connect() as conn:  # the rows moved out of the table to the stage are announced: read it all again
        assert None in [c.keys for c in read_changes(conn, 0)]
    engine.dispose()
    assert len(list((tmp_path / "rejects_direct").iterdir())) == 1  # the abandoned attempt's is gone


def test_a_repeated_key_moves_the_file_to_a_stage(tmp_path, monkeypatch, writers):
    lines = _lines(12)
    lines += [lines[2], lines[5].replace(",30 net,", ",45 net,")]  # an identical copy and a conflict
    path = _write(tmp_path / "invoices.csv", lines)
    direct, staged = _ingest_both(tmp_path, monkeypatch,
                                  [(path, {"chunk_rows": 5, "table": "invoices"})])
    _assert_same(direct, staged)
    assert writers[:2] == ["DirectInsert", "StagedUpsert"]
    assert direct[0][0][0] == (14, 11, 0, 1, 2, 0)
    assert len(list((tmp_path / "rejects_direct").iterdir())) == 1


def test_rows_with_mapped_extras_move_to_the_stage_as_they_were_stored(tmp_path, monkeypatch, writers):
    lines = _lines(20)
    lines += [lines[11].replace(",30 net,", ",15 net,")]  # a conflict with a row of the second chunk
    path = _write(tmp_path / "invoices.csv", lines)
    direct, staged = _ingest_both(tmp_path, monkeypatch, [(path, {"mapping": MAPPING, "chunk_rows": 8})])
    _assert_same(direct, staged)
    assert writers[:2] == ["DirectInsert", "StagedUpsert"]
    assert direct[0][0][0] == (21, 19, 0, 0, 2, 0) and direct[2].invoices["rating"].notna().any()


def test_a_failure_going_straight_in_leaves_the_table_empty_with_its_indexes(tmp_path, failing_chunk_write, writers):
    db = tmp_path / "ledger.db"
    engine = open_store(f"sqlite:///{db}")
    before = _stored(db)
    calls = failing_chunk_write
    path = _write(tmp_path / "invoices.csv", _lines(30))
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(engine, path, table="invoices", chunk_rows=7)
    assert calls["n"] == 3 and count_rows(engine, "invoices") == 0 and writers == ["DirectInsert"]
    assert _stored(db) == before  # indexes included: their drop was inside the transaction
    calls["restore"]()
    result = ingest_file(engine, path, table="invoices", chunk_rows=7)
    assert (result.inserted, count_rows(engine, "invoices")) == (30, 30)
    assert _stored(db)["indexes"] == before["indexes"]
    engine.dispose()


def test_rejected_file_going_straight_in_stores_nothing(tmp_path, writers):
    db = tmp_path / "ledger.db"
    engine = open_store(f"sqlite:///{db}")
    before = _stored(db)
    lines = _lines(20)
    lines[14] = lines[14].replace(",EUR,", ",XXX,")
    with pytest.raises(ingest_mod.IngestRejected):
        ingest_file(engine, _write(tmp_path / "invoices.csv", lines), table="invoices", chunk_rows=6, strict=True)
    after = _stored(db)
    assert after.pop("runs")[0][2:] == ("invoices", "rejected", 20, 0, 0, 0, 1, 0) and writers == ["DirectInsert"]
    before.pop("runs")
    assert after == before
    engine.dispose()


@pytest.mark.parametrize("resend", [False, True])
def test_a_write_committed_elsewhere_while_a_file_is_read_does_not_fail_it(tmp_path, resend, writers):
    """Another connection commits while the file is read: the file is still stored, whichever path it takes.

    A re-send (stored keys) is staged: its merge must not write from a read snapshot older than
    that commit. New keys go straight in, a batch at a time: the lock is free between batches, so
    the other write is committed at once instead of waiting for the whole file.
    """
    db = tmp_path / "ledger.db"
    engine = open_store(f"sqlite:///{db}")
    first = _write(tmp_path / "first.csv", _lines(50))
    ingest_file(engine, first, mapping=MAPPING, rejects_dir=tmp_path / "rejects")
    lines = [line.replace(",10.", ",20.", 1) for line in _lines(50)] if resend else _lines(50, start=50)
    second = _write(tmp_path / "second.csv", lines)
    others = []

    def write_elsewhere(stage, done, total):
        if stage == "read" and not others:
            con = sqlite3.connect(db, timeout=0.2)
            try:
                con.execute("INSERT INTO clients (client_id, ingested_at, updated_at, row_hash) "
                            "VALUES ('ELSEWHERE', '2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000', 'x')")
                con.commit()
                others.append("committed")
            except sqlite3.OperationalError as exc:
                others.append(str(exc))
            finally:
                con.close()

    result = ingest_file(engine, second, mapping=MAPPING, rejects_dir=tmp_path / "rejects",
                         on_progress=write_elsewhere)
    assert (result.inserted, result.updated) == ((0, 50) if resend else (50, 0))
    assert others == ["committed"]
    assert writers[-1] == ("StagedUpsert" if resend else "DirectInsert")
    assert count_rows(engine, "invoices") == (50 if resend else 100)


def _ingest_then_die(db: Path, path: Path, rejects: Path) -> None:
    """In a child process: ingest ``path`` 10 rows a commit, killed (SIGKILL) after the second commit."""
    import os
    import signal

    writers_mod.CHUNK_ROWS = 10
    DirectInsert.COMMIT_ROWS = 10
    real = DirectInsert.checkpoint

    def checkpoint(self, last=False):
        real(self, last)
        if self.committed >= 20:
            os.kill(os.getpid(), signal.SIGKILL)

    DirectInsert.checkpoint = checkpoint
    ingest_file(open_store(f"sqlite:///{db}"), path, rejects_dir=rejects)


def test_a_killed_ingest_is_marked_and_the_next_one_of_the_file_completes_it(tmp_path):
    import multiprocessing as mp
    import signal

    db = tmp_path / "ledger.db"
    path = _write(tmp_path / "invoices.csv", _lines(50))
    open_store(f"sqlite:///{db}").dispose()
    child = mp.get_context("fork").Process(target=_ingest_then_die, args=(db, path, tmp_path))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM invoices").fetchone()[0] == 20
    assert con.execute("SELECT status, inserted, finished_at IS NULL FROM ingest_runs").fetchall() == [
        ("running", 20, 1)]
    con.close()

    engine = open_store(f"sqlite:///{db}")
    other = _write(tmp_path / "invoices_other.csv", _lines(5, start=100))  # another file: no word of the run
    assert ingest_file(engine, other, rejects_dir=tmp_path).completed_runs == []
    from ledger.changes import read_changes

    with engine.connect() as conn:
        before = read_changes(conn, 0)[-1].id
    result = ingest_file(engine, path, rejects_dir=tmp_path)
    assert (result.inserted, result.unchanged, result.completed_runs) == (30, 20, [1])
    with engine.connect() as conn:  # the killed run's rows were never named: a bulk change says so
        assert None in [c.keys for c in read_changes(conn, before)]
    assert any(p.startswith("an earlier ingest of invoices.csv (run 1, started ") and
               p.endswith("did not finish after storing 20 rows: this one completed it (the rows it had stored "
                          "are counted unchanged)") for p in result.problems)
    assert sorted(load_ledger(engine).invoices["invoice_id"]) == [f"I{i:05d}" for i in [*range(50), *range(100, 105)]]
    again = ingest_file(engine, path, rejects_dir=tmp_path)
    assert (again.unchanged, again.completed_runs) == (50, [])
    engine.dispose()
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT status FROM ingest_runs ORDER BY id")] == [
        "interrupted", "stored", "stored", "stored"]
    assert con.execute("SELECT count(DISTINCT file_hash) FROM ingest_runs").fetchone()[0] == 2
    con.close()


@pytest.fixture
def passes(monkeypatch):
    """The passes over each file's rows: every reader opens it through ``ledger.sources.open_source``."""
    import ledger.sources as sources_mod

    real = sources_mod.open_source
    opened: list[tuple[str, str]] = []

    def counted(path, kind):
        opened.append((Path(path).name, kind))
        return real(path, kind)

    monkeypatch.setattr(sources_mod, "open_source", counted)
    return opened


def test_a_file_is_read_once_whichever_way_its_rows_are_written(tmp_path, passes, writers):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    path = _write(tmp_path / "invoices.csv", _lines(30))
    assert ingest_file(engine, path, table="invoices", chunk_rows=7).inserted == 30  # straight in
    assert ingest_file(engine, path, table="invoices", chunk_rows=7).unchanged == 30  # staged: all stored
    lines = _lines(20, start=30)
    repeats = _write(tmp_path / "invoices_2.csv", lines + [lines[3]] + _lines(5, start=1))  # a copy, stored keys
    result = ingest_file(engine, repeats, table="invoices", chunk_rows=7)  # straight in, then staged
    assert (result.read, result.inserted, result.unchanged) == (26, 20, 6)
    pd.DataFrame({"invoice_id": ["P1", "P2"], "client_id": ["C1", "C2"], "issue_date": ["2024-01-02"] * 2,
                  "due_date": ["2024-02-01"] * 2, "amount": [1.0, 2.0], "currency": ["EUR"] * 2}
                 ).to_parquet(tmp_path / "invoices_3.parquet")
    assert ingest_file(engine, tmp_path / "invoices_3.parquet", chunk_rows=1).inserted == 2
    assert writers == ["DirectInsert", "StagedUpsert", "DirectInsert", "StagedUpsert", "DirectInsert"]
    assert passes == [("invoices.csv", "arrow"), ("invoices.csv", "arrow"), ("invoices_2.csv", "arrow"),
                      ("invoices_3.parquet", "parquet")]
    engine.dispose()


def test_a_ragged_file_goes_on_row_by_row_after_the_rows_already_read(tmp_path, passes, writers):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    lines = _lines(30)
    lines[24] += ",an extra field"
    result = ingest_file(engine, _write(tmp_path / "invoices.csv", lines), table="invoices", rejects_dir=tmp_path,
                         chunk_rows=7)
    assert (result.read, result.inserted, result.rejected) == (30, 29, 1)
    rej = pd.read_csv(result.rejects_file, dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["25"] and "line 26 has 16 fields" in rej["reason"].iloc[0]
    assert writers == ["DirectInsert"]  # one ingest, not started over
    assert passes == [("invoices.csv", "arrow"), ("invoices.csv", "utf-8")]
    engine.dispose()
