"""The store's change log (``ledger.changes``), and the service reading it: what another process stores
(another worker, an ingest, a dunning run) is served within ``sync_seconds``, reading only those rows."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import ledger.staged_upsert as staged_mod
from ledger.changes import last_change_id, read_changes, writing_as
from ledger.engine import open_store
from ledger.ingest import ingest_file
from ledger.reader import read_keys
from ledger.staged_upsert import upsert_frame
from ledger.writes import write_transaction
from serving import current
from serving.config import ServingSettings
from api_helpers import AS_OF, start_api


def _invoices(ids, amount=100.0, paid=None):
    n = len(ids)
    return pd.DataFrame({"invoice_id": ids, "client_id": ["C1"] * n, "issue_date": pd.to_datetime(["2025-05-20"] * n),
                         "due_date": pd.to_datetime(["2025-07-01"] * n), "amount": [amount] * n,
                         "currency": ["EUR"] * n, "paid_date": pd.to_datetime([paid] * n), "doc_type": ["invoice"] * n,
                         "rating": ["A"] * n})


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = open_store(url)
    yield engine
    engine.dispose()


def _changes(engine, after=0):
    with engine.connect() as conn:
        return read_changes(conn, after)


def test_each_write_names_the_keys_it_changed_and_a_bulk_write_names_none(store, monkeypatch):
    with store.begin() as conn:
        upsert_frame(conn, "invoices", _invoices(["a'1", "b", "c", "50%"]))
    with store.begin() as conn:
        upsert_frame(conn, "invoices", _invoices(["a'1", "b", "c", "50%"]))  # the same rows: no change
    with store.begin() as conn:
        upsert_frame(conn, "invoices", pd.concat([_invoices(["b"], amount=5.0), _invoices(["c"]), _invoices(["d"])]))
    with store.begin() as conn:  # rolled back: no change either
        upsert_frame(conn, "invoices", _invoices(["e"]))
        conn.rollback()
    monkeypatch.setattr(staged_mod, "KEYS_MAX", 1)
    with store.begin() as conn, writing_as("another"):
        upsert_frame(conn, "invoices", _invoices(["f", "g"]))
    changes = _changes(store)
    assert [(c.table, c.keys and tuple(sorted(c.keys)), c.n_rows) for c in changes] == [
        ("invoices", ("50%", "a'1", "b", "c"), 4), ("invoices", ("b", "d"), 2), ("invoices", None, 2)]
    assert [c.id for c in changes] == sorted(c.id for c in changes)
    assert changes[-1].writer == "another" and changes[0].writer != "another"
    assert _changes(store, after=changes[1].id) == changes[2:]
    with store.connect() as conn:
        assert last_change_id(conn) == changes[-1].id
        rows = read_keys(conn, "invoices", ["b", "a'1", "zz", "50%"])  # a quote and a % in keys, one not stored
    assert rows["invoice_id"].tolist() == ["50%", "a'1", "b"] and rows["amount"].tolist() == [100.0, 100.0, 5.0]
    assert rows["rating"].tolist() == ["A", "A", "A"]  # the mapped extras, as columns


def test_change_ids_are_committed_in_their_order(pg_url):
    """PostgreSQL: a writer takes its change id only once the writer before it has ended, so a reader that
    sees an id has seen every lower one that will ever be committed."""
    engine = open_store(pg_url)
    first = engine.connect()
    try:
        trans = first.begin()
        upsert_frame(first, "invoices", _invoices(["first"]))  # its change row taken, not committed
        second = threading.Thread(target=lambda: write_transaction(
            engine, lambda conn: upsert_frame(conn, "invoices", _invoices(["second"]))))
        second.start()
        second.join(timeout=1.0)
        waited = second.is_alive()  # waits for the first to end before taking an id
        seen = _changes(engine)
        trans.commit()
        second.join(timeout=30)
        assert waited and seen == []
        assert [c.keys for c in _changes(engine)] == [("first",), ("second",)]
    finally:
        first.close()
        engine.dispose()


def test_a_file_going_straight_in_names_its_keys(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        path = tmp_path / "invoices.csv"
        _invoices(["x1", "x2"]).to_csv(path, index=False)
        assert ingest_file(engine, path, table="invoices").inserted == 2
        assert [(c.keys, c.n_rows) for c in _changes(engine)] == [(("x1", "x2"), 2)]
    finally:
        engine.dispose()


def test_a_file_undone_after_its_first_commits_names_no_keys(tmp_path, monkeypatch):
    """Rows an ingest committed, then removed when it failed: readers must read the whole ledger again."""
    import ledger.direct_insert as direct_mod

    monkeypatch.setattr(direct_mod.DirectInsert, "COMMIT_ROWS", 2)
    real = direct_mod.DirectInsert.checkpoint
    calls = []

    def failing_checkpoint(self, last=False):
        calls.append(last)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, last)

    monkeypatch.setattr(direct_mod.DirectInsert, "checkpoint", failing_checkpoint)
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        path = tmp_path / "invoices.csv"
        _invoices([f"y{i}" for i in range(9)]).to_csv(path, index=False)
        with pytest.raises(OSError):
            ingest_file(engine, path, table="invoices", chunk_rows=2)
        with engine.connect() as conn:
            assert read_keys(conn, "invoices", [f"y{i}" for i in range(9)]).empty
        assert [c.keys for c in _changes(engine)] == [None]
    finally:
        engine.dispose()


def _wait(predicate, seconds=30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _knows(state, invoice_id) -> bool:
    return current.current_ledger(state).invoice_pos.get_indexer([invoice_id])[0] >= 0


def test_what_another_process_stores_is_served_reading_only_its_rows(tmp_path, monkeypatch):
    loads = []
    read_store = current.load_ledger
    monkeypatch.setattr(current, "load_ledger", lambda *a, **k: loads.append(1) or read_store(*a, **k))
    with start_api(tmp_path / "home", serving=ServingSettings(sync_seconds=0.1)) as api:
        state = api.client.app.state.encaisse
        assert len(loads) == 1
        engine = open_store(api.settings.store_url)
        with engine.begin() as conn:  # an ingest, or another worker
            upsert_frame(conn, "invoices", _invoices(["BY-OTHER"]).assign(client_id=api.ledger.invoices["client_id"][0]))
        assert _wait(lambda: _knows(state, "BY-OTHER"))
        with engine.begin() as conn:  # then paid: the stored row changes
            upsert_frame(conn, "invoices", _invoices(["BY-OTHER"], paid="2025-05-25").assign(
                client_id=api.ledger.invoices["client_id"][0]))
        engine.dispose()

        def paid() -> bool:
            index = current.current_ledger(state)
            pos = index.invoice_pos.get_indexer(["BY-OTHER"])[0]
            return pos >= 0 and index.ledger.invoices["paid_date"].iloc[pos] == pd.Timestamp("2025-05-25")

        assert _wait(paid)
        assert len(loads) == 1  # no reload of the whole ledger
        body = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": ["BY-OTHER"]}).json()
        assert body["scores"] == [] and "paid" in body["not_scored"][0]["reason"]


def test_a_bulk_write_elsewhere_reads_the_whole_ledger_again(tmp_path, monkeypatch):
    loads = []
    read_store = current.load_ledger
    monkeypatch.setattr(current, "load_ledger", lambda *a, **k: loads.append(1) or read_store(*a, **k))
    monkeypatch.setattr(staged_mod, "KEYS_MAX", 1)
    with start_api(tmp_path / "home", serving=ServingSettings(sync_seconds=0.1)) as api:
        state = api.client.app.state.encaisse
        engine = open_store(api.settings.store_url)
        with engine.begin() as conn:
            upsert_frame(conn, "invoices", _invoices(["BULK-1", "BULK-2"]))
        engine.dispose()
        assert _wait(lambda: _knows(state, "BULK-1") and _knows(state, "BULK-2"))
        assert len(loads) == 2


def test_two_workers_serve_each_others_writes_and_skip_their_own(tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    serving = ServingSettings(sync_seconds=0.1)
    with start_api(tmp_path / "home", serving=serving) as api:
        first = api.client.app.state.encaisse
        with TestClient(create_app(api.settings, serving=serving, champion_loader=api.loader)) as other:
            second = other.app.state.encaisse
            row = {"invoice_id": "BY-SECOND", "client_id": str(api.ledger.invoices["client_id"][0]),
                   "issue_date": "2025-05-20", "due_date": "2025-07-01", "amount": 120.0, "currency": "EUR"}
            w = other.post("/v1/invoices", json={"invoices": [row]}, headers=api.headers("system"))
            assert w.status_code == 200 and w.json()["inserted"] == 1, w.text
            assert _knows(second, "BY-SECOND")  # its own write, at once
            version = current.current_ledger(second).version
            assert _wait(lambda: _knows(first, "BY-SECOND"))
            body = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": ["BY-SECOND"]}).json()
            assert [s["invoice_id"] for s in body["scores"]] == ["BY-SECOND"]
            time.sleep(0.5)  # five reads of the log by each worker
            assert current.sync_changes(second) == 0
            # its own change row was skipped: folded in already, its ledger and caches are as they were
            assert current.current_ledger(second).version == version


def test_a_write_commits_under_the_commit_lock_and_records_itself_before_releasing_it(tmp_path):
    """The service's write holds its commit lock from just before the commit until its rows are pending, so a
    read of the change log that holds the lock sees the store and ``pending`` agree."""
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    lock = threading.Lock()
    recorded = []
    try:
        lock.acquire()
        writer = threading.Thread(target=lambda: write_transaction(
            engine, lambda conn: upsert_frame(conn, "invoices", _invoices(["held"])), commit_lock=lock,
            committed=recorded.append))
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive() and recorded == []
        with engine.connect() as conn:
            assert read_keys(conn, "invoices", ["held"]).empty  # not committed while the lock is held
        lock.release()
        writer.join(timeout=30)
        assert recorded == [(1, 0, 0)]
        with engine.connect() as conn:
            assert read_keys(conn, "invoices", ["held"])["invoice_id"].tolist() == ["held"]
    finally:
        engine.dispose()


def test_the_change_log_is_read_from_where_it_stood_when_a_load_began(tmp_path, monkeypatch):
    """A row stored while the ledger loads is read again after it: the load may have missed it."""
    with start_api(tmp_path / "home", serving=ServingSettings(sync_seconds=0)) as api:
        state = api.client.app.state.encaisse
        read_store = current.load_ledger
        engine = open_store(api.settings.store_url)

        def load_then_store(*args, **kwargs):
            ledger = read_store(*args, **kwargs)
            with engine.begin() as conn:
                upsert_frame(conn, "invoices", _invoices(["DURING-LOAD"]))
            return ledger

        monkeypatch.setattr(current, "load_ledger", load_then_store)
        current.refresh_ledger(state)
        monkeypatch.setattr(current, "load_ledger", read_store)
        engine.dispose()
        assert not _knows(state, "DURING-LOAD")
        assert current.sync_changes(state) == 1
        assert _knows(state, "DURING-LOAD")
        assert current.sync_changes(state) == 0


def test_migration_creates_the_change_log_on_an_older_store(tmp_path):
    from ledger.engine import create_store_engine, current_revision, head_revision, upgrade_store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_store_engine(url)
    upgrade_store(engine, "0008")
    assert current_revision(engine) == "0008"
    engine.dispose()
    engine = open_store(url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.begin() as conn:
            upsert_frame(conn, "invoices", _invoices(["after-upgrade"]))
        assert [c.keys for c in _changes(engine)] == [("after-upgrade",)]
    finally:
        engine.dispose()


def _pg_state(pg_url):
    """A service state on a PostgreSQL store holding two invoices (no app: its functions are called)."""
    from ledger.workspace import Settings
    from serving.state import ServiceState

    engine = open_store(pg_url)
    with engine.begin() as conn:
        upsert_frame(conn, "invoices", _invoices(["K", "L"]).drop(columns="rating"))  # as the API sends them
    state = ServiceState(settings=Settings(database_url=pg_url), serving=ServingSettings(write_timeout_seconds=20),
                         engine=engine, loader=lambda settings: None)
    current.refresh_ledger(state)
    return state


def _served(state, invoice_id, column="amount"):
    index = current.current_ledger(state)
    return index.ledger.invoices[column].iloc[index.invoice_pos.get_indexer([invoice_id])[0]]


def test_a_write_of_this_service_never_waits_for_a_read_of_the_change_log(pg_url):
    """PostgreSQL: a read of the log waiting for a table another writer holds does not hold the service's own
    writes (the other writer may be waiting for one of them: nothing would end the wait)."""
    from serving.writes import write_rows

    state = _pg_state(pg_url)
    other = open_store(pg_url)
    blocker = other.connect()
    try:
        with other.begin() as conn:
            upsert_frame(conn, "invoices", _invoices(["BY-OTHER"]))
        trans = blocker.begin()
        blocker.exec_driver_sql("LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE")  # as an ingest rebuilding indexes
        sync = threading.Thread(target=current.sync_changes, args=(state,))
        sync.start()
        sync.join(timeout=1.0)
        reading = sync.is_alive()  # waits for the table
        payment = {"payment_id": "P1", "invoice_id": "K", "paid_date": "2025-06-02", "amount": 10.0}
        writer = threading.Thread(target=write_rows, args=(state, "payments", [payment]))
        writer.start()
        writer.join(timeout=10)
        wrote = not writer.is_alive()
        trans.rollback()
        sync.join(timeout=30)
        writer.join(timeout=30)
        assert reading and wrote
        assert _knows(state, "BY-OTHER") and len(current.current_ledger(state).ledger.payments) == 1
    finally:
        blocker.close()
        other.dispose()
        state.engine.dispose()


def test_a_write_serves_what_it_stored_when_another_process_wrote_the_same_row_meanwhile(pg_url, monkeypatch):
    """PostgreSQL: the service re-sends a stored row while another process changes it: the store holds the
    service's row, and so does what it serves."""
    import serving.writes as writes_mod

    state = _pg_state(pg_url)
    other = open_store(pg_url)
    real = staged_mod.StagedUpsert.merge
    first = []

    def others_write_first(self):  # the service's merge, once its rows are staged: the other process commits first
        if not first:
            first.append(1)
            with other.begin() as theirs, writing_as("another-process"):
                upsert_frame(theirs, "invoices", _invoices(["K"], amount=200.0))
            assert current.sync_changes(state) == 1 and _served(state, "K") == 200.0  # the service reads it
        return real(self)

    monkeypatch.setattr(staged_mod.StagedUpsert, "merge", others_write_first)
    try:
        row = {"invoice_id": "K", "client_id": "C1", "issue_date": "2025-05-20", "due_date": "2025-07-01",
               "amount": 100.0, "currency": "EUR", "doc_type": "invoice"}
        outcome = writes_mod.write_rows(state, "invoices", [row])  # the row as stored before the other's write
        assert outcome.updated == 1
        with other.connect() as conn:
            assert read_keys(conn, "invoices", ["K"])["amount"].tolist() == [100.0]
        assert _served(state, "K") == 100.0
        current.sync_changes(state)
        assert _served(state, "K") == 100.0
    finally:
        other.dispose()
        state.engine.dispose()


def test_a_reload_during_a_write_of_this_service_serves_what_the_store_holds(tmp_path, monkeypatch):
    """A write of this service is committed; before it is numbered, another process changes the same row, and
    a reload begins: the reload serves the other process's row, the store's."""
    from serving.writes import write_rows

    with start_api(tmp_path / "home", serving=ServingSettings(sync_seconds=0)) as api:
        state = api.client.app.state.encaisse
        client_id = str(api.ledger.invoices["client_id"][0])
        row = {"invoice_id": "K", "client_id": client_id, "issue_date": "2025-05-20", "due_date": "2025-07-01",
               "amount": 300.0, "currency": "EUR", "doc_type": "invoice"}
        committed, resume = threading.Event(), threading.Event()
        real = state.add_pending

        def paused(*args, **kwargs):  # the write's rows, numbered once it has committed
            committed.set()
            resume.wait(30)
            real(*args, **kwargs)

        monkeypatch.setattr(state, "add_pending", paused)
        writer = threading.Thread(target=write_rows, args=(state, "invoices", [row]))
        writer.start()
        assert committed.wait(30)
        engine = open_store(api.settings.store_url)
        with engine.begin() as conn:  # another process, after the service's commit
            upsert_frame(conn, "invoices", _invoices(["K"], amount=200.0).assign(client_id=client_id))
        engine.dispose()
        reload = threading.Thread(target=current.refresh_ledger, args=(state,))
        reload.start()
        reload.join(timeout=1.0)
        resume.set()
        writer.join(timeout=30)
        reload.join(timeout=60)
        assert _served(state, "K") == 200.0
        current.sync_changes(state)
        assert _served(state, "K") == 200.0


def _lookups(index) -> dict:
    names = ("invoices_of_client", "payments_of_invoice", "actions_of_invoice", "actions_of_client", "client_rows")
    out = {name: {k: v.tolist() for k, v in getattr(index, name).items()} for name in names}
    out["invoice_pos"] = index.invoice_pos.tolist()
    return out


@pytest.mark.parametrize("table", ["invoices", "payments", "actions", "clients"])
def test_rows_folded_in_leave_the_look_ups_a_fresh_build_would_make(table):
    """New keys appended, stored keys replaced (a client changing hands too): every look-up equals what
    ``LedgerIndex.build`` makes of the same ledger."""
    from ledger.contracts import TABLES, coerce_frame
    from ledger.synth import make_ledger
    from serving.state import LedgerIndex, positions_by_value

    ledger = make_ledger(12, seed=5, end_date="2025-07-31")
    index = LedgerIndex.build(ledger, 1)
    frame = getattr(ledger, table)
    key = TABLES[table].key
    rows = frame.sample(4, random_state=1).copy()  # stored keys: replaced
    owner = "invoice_id" if table == "payments" else "client_id"
    if owner != key:
        rows[owner] = frame[owner].iloc[0]
    fresh = frame.sample(3, random_state=2).copy()
    fresh[key] = [f"NEW-{i}" for i in range(3)]
    for written in (fresh, rows):  # appended, then replaced
        index = index.with_rows(table, coerce_frame(written, TABLES[table]), index.version + 1)
    rebuilt = LedgerIndex.build(index.ledger, 1)
    assert _lookups(index) == _lookups(rebuilt)
    got = getattr(index.ledger, table).set_index(key)
    if owner != key:  # the replaced rows hold what was written
        assert got.loc[rows[key].astype(str), owner].tolist() == rows[owner].tolist()
    assert set(fresh[key]) <= set(got.index)
    assert positions_by_value(pd.Series(["b", None, "a", "b"], dtype=object)).keys() == {"b", "a"}


def test_a_write_waiting_for_another_writer_on_postgresql_gives_up_at_its_bound(pg_url):
    """The change log's lock, held by another writer until its commit, is waited for within the service's
    write bound: past it, the write is refused busy (503) with nothing stored."""
    import time as clock

    from ledger.writes import StoreBusyError
    from serving.writes import write_rows

    state = _pg_state(pg_url)
    state.serving = ServingSettings(write_timeout_seconds=1)
    blocker = state.engine.connect()
    try:
        trans = blocker.begin()
        upsert_frame(blocker, "invoices", _invoices(["HELD"]))  # its change row: the lock, held to its commit
        payment = {"payment_id": "P1", "invoice_id": "K", "paid_date": "2025-06-02", "amount": 10.0}
        started = clock.monotonic()
        timer = threading.Timer(8.0, trans.rollback)
        timer.start()
        with pytest.raises(StoreBusyError):
            write_rows(state, "payments", [payment])
        waited = clock.monotonic() - started
        timer.cancel()
        trans.rollback()
        assert waited < 5
        assert current.current_ledger(state).ledger.payments.empty
    finally:
        blocker.close()
        state.engine.dispose()


def test_an_ingest_takes_the_change_logs_lock_only_at_its_end(pg_url, tmp_path, monkeypatch):
    """PostgreSQL: while an ingest checks what it stored and records its run, other writers are not held by
    the change log's lock (it is taken just before the ingest's commit)."""
    import ledger.ingest as ingest_mod

    engine = open_store(pg_url)
    other = open_store(pg_url)
    real = ingest_mod.payment_problems
    done = []

    def with_another_writer(conn, *args, **kwargs):
        writer = threading.Thread(target=lambda: write_transaction(
            other, lambda c: upsert_frame(c, "invoices", _invoices(["MEANWHILE"])), timeout=30))
        writer.start()
        writer.join(timeout=5)
        done.append(not writer.is_alive())
        out = real(conn, *args, **kwargs)
        writer.join(timeout=30)
        return out

    monkeypatch.setattr(ingest_mod, "payment_problems", with_another_writer)
    try:
        with engine.begin() as conn:
            upsert_frame(conn, "invoices", _invoices(["K"]))
        path = tmp_path / "payments.csv"
        path.write_text("payment_id,invoice_id,paid_date,amount\nP1,K,2025-07-02,100\n", encoding="utf-8")
        assert ingest_file(engine, path).inserted == 1
        assert done == [True]
        assert [c.table for c in _changes(engine)] == ["invoices", "invoices", "payments"]
    finally:
        other.dispose()
        engine.dispose()
