"""The API under abuse and faults: other portfolios' actions, a held write lock, huge bodies, write bursts."""

from __future__ import annotations

import sqlite3
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

import serving.current as current
from abuse_helpers import client, key, make_store, small_ledger, two_collectors
from ledger.action_history import action_versions
from ledger.engine import open_store
from serving.config import ServingSettings


@pytest.fixture
def site(tmp_path):
    settings = make_store(tmp_path / "home")
    ledger = small_ledger()
    owners = two_collectors(ledger)
    (alice, a_client), (bob, b_client) = owners.items()
    keys = {"admin": key(settings), "alice": key(settings, "collector", alice), "bob": key(settings, "collector", bob)}
    return settings, ledger, keys, a_client, b_client


def action(client_id: str, **kw) -> dict:
    return {"client_id": client_id, "action_date": "2026-01-01", "step": "call", "channel": "call",
            "outcome": "no_answer", **kw}


def stored_action(settings, action_id: str) -> dict | None:
    engine = open_store(settings.store_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("select * from actions where action_id = :a"), {"a": action_id}).mappings().first()
            return dict(row) if row else None
    finally:
        engine.dispose()


def test_a_collector_cannot_overwrite_another_portfolios_action(site):
    settings, ledger, keys, a_client, b_client = site
    with client(settings) as tc:
        r = tc.post("/v1/actions", json=action(b_client, action_id="ACT-BOB-1"), headers={"X-API-Key": keys["bob"]})
        assert r.status_code == 201, r.text
        r = tc.post("/v1/actions", json=action(a_client, action_id="ACT-BOB-1", step="dunning_block", outcome="refused"),
                    headers={"X-API-Key": keys["alice"]})
        assert r.status_code == 403 and "not in the portfolio of collector" in r.json()["detail"]
    assert stored_action(settings, "ACT-BOB-1")["client_id"] == b_client
    assert stored_action(settings, "ACT-BOB-1")["step"] == "call"


def test_an_edit_adds_a_version_superseding_the_stored_one_which_is_kept(site):
    settings, ledger, keys, a_client, b_client = site
    stored = ledger.actions.iloc[0]  # an action that came from a file
    body = action(str(stored["client_id"]), action_id=str(stored["action_id"]), outcome="refused")
    with client(settings) as tc:
        r = tc.post("/v1/actions", json=body, headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 200 and r.json()["write"]["updated"] == 1, r.text  # edited, not created
        again = tc.post("/v1/actions", json=body, headers={"X-API-Key": keys["admin"]})
        assert again.status_code == 200 and again.json()["write"]["unchanged"] == 1
    engine = open_store(settings.store_url)
    with engine.connect() as conn:
        versions = action_versions(conn, str(stored["action_id"]))
    engine.dispose()
    assert len(versions) == 2  # the file's version, kept, and the edit
    old, new = versions
    assert old["superseded_by"] == new["id"] and old["superseded_at"] is not None
    assert old["data"]["step"] == stored["step"] and new["data"]["outcome"] == "refused"
    assert new["superseded_at"] is None and new["recorded_by"].startswith("key enc_")
    assert stored_action(settings, str(stored["action_id"]))["outcome"] == "refused"


def hold_lock(db, seconds: float, ready: threading.Event) -> threading.Thread:
    def run():
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO ingest_runs (started_at, source, table_name, status, read, inserted, updated, "
                    "unchanged, rejected, filtered) VALUES ('2026-01-01', 'holder', 'x', 'x', 0, 0, 0, 0, 0, 0)")
        ready.set()
        time.sleep(seconds)
        con.commit()
        con.close()

    t = threading.Thread(target=run)
    t.start()
    return t


def post_action_while_locked(tc, settings, keys: dict, body: dict, hold_seconds: float):
    """POST an action while another connection holds the store's write lock for ``hold_seconds``."""
    ready = threading.Event()
    holder = hold_lock(settings.home_dir / "ledger.db", hold_seconds, ready)
    ready.wait(5)
    r = tc.post("/v1/actions", json=body, headers={"X-API-Key": keys["admin"]})
    holder.join()
    return r


def test_a_write_waits_for_a_held_lock_and_is_stored(site):
    """Held longer than SQLite's default 5 s busy timeout (where the write used to fail with a 500)."""
    settings, ledger, keys, a_client, _ = site
    with client(settings, ServingSettings(write_timeout_seconds=15)) as tc:
        r = post_action_while_locked(tc, settings, keys, action(a_client, action_id="ACT-WAIT"), hold_seconds=6.0)
    assert r.status_code == 201, r.text
    assert stored_action(settings, "ACT-WAIT") is not None


def test_past_the_bound_a_write_is_503_with_retry_after_and_nothing_half_done(site):
    settings, ledger, keys, a_client, _ = site
    with client(settings, ServingSettings(write_timeout_seconds=0.3)) as tc:
        r = post_action_while_locked(tc, settings, keys, action(a_client, action_id="ACT-BUSY"), hold_seconds=1.5)
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert "nothing was stored" in r.json()["detail"]
        assert stored_action(settings, "ACT-BUSY") is None
        engine = open_store(settings.store_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from action_history where action_id = 'ACT-BUSY'")).scalar() == 0
        engine.dispose()
        r = tc.post("/v1/actions", json=action(a_client, action_id="ACT-BUSY"), headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 201  # sent again once the lock is free: stored
    assert stored_action(settings, "ACT-BUSY") is not None


def test_a_direct_ingest_leaves_writers_gaps_between_its_batches(tmp_path, monkeypatch):
    import ledger.writers as writers_mod
    from ledger.direct_insert import DirectInsert
    from ledger.ingest import ingest_file
    from ledger.writes import write_transaction

    settings = make_store(tmp_path / "home")
    engine = open_store(settings.store_url)
    path = tmp_path / "invoices_new.csv"
    path.write_text("invoice_id,client_id,issue_date,due_date,amount,currency\n" + "".join(
        f"NEW{i:04d},C1,2025-01-01,2025-02-01,10,EUR\n" for i in range(120)), encoding="utf-8")
    monkeypatch.setattr(writers_mod, "CHUNK_ROWS", 10)  # 12 batches
    monkeypatch.setattr(DirectInsert, "COMMIT_ROWS", 20)  # a commit every 2 batches
    real = writers_mod._write_chunk
    seen = {"batches": 0, "written_at_batch": None}
    done = threading.Event()
    other = open_store(settings.store_url)

    def writer():
        write_transaction(other, lambda conn: conn.execute(sa.text(
            "insert into ingest_runs (started_at, source, table_name, status, read, inserted, updated, unchanged, "
            "rejected, filtered) values ('2026-01-01', 'writer', 'x', 'x', 0, 0, 0, 0, 0, 0)")), timeout=30)
        seen["written_at_batch"] = seen["batches"]
        done.set()

    def counting(staged, columns):
        seen["batches"] += 1
        if seen["batches"] == 2:
            threading.Thread(target=writer).start()
        real(staged, columns)

    monkeypatch.setattr(writers_mod, "_write_chunk", counting)
    result = ingest_file(engine, path, rejects_dir=tmp_path)
    assert done.wait(30)
    assert result.inserted == 120 and seen["batches"] == 12
    assert seen["written_at_batch"] < 12  # the write got in between two batches, not after the file
    other.dispose()
    engine.dispose()


def test_a_large_body_is_refused_before_it_is_read_and_never_echoed(site):
    settings, ledger, keys, a_client, _ = site
    with client(settings, ServingSettings(max_body_bytes=64 * 1024)) as tc:
        big = b'{"invoices": [' + b'{"invoice_id": "' + b"X" * 200_000 + b'"}' + b"]}"
        r = tc.post("/v1/invoices", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 401  # no key: refused before the body is read
        r = tc.post("/v1/invoices", content=big, headers={"Content-Type": "application/json", "X-API-Key": keys["admin"]})
        assert r.status_code == 413 and "limit is 65536" in r.json()["detail"]

        def chunks():
            for _ in range(10):
                yield b"X" * 10_000

        r = tc.post("/v1/invoices", content=chunks(), headers={"Content-Type": "application/json",
                                                                "X-API-Key": keys["admin"]})
        assert r.status_code == 413
        bad = {"invoices": [{"invoice_id": "Y" * 1_500, "client_id": "C1"}] * 30}  # 45 kB: under the limit
        r = tc.post("/v1/invoices", json=bad, headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 422 and len(r.content) < 8_000 and "YYYYYYYYYY" not in r.text
        assert r.json()["more_errors"] > 0


def test_writes_are_folded_into_the_loaded_ledger_without_reloading_it(site, monkeypatch):
    settings, ledger, keys, a_client, _ = site
    with client(settings) as tc:
        def no_reload(engine, *a, **k):
            raise AssertionError("the whole ledger was reloaded after a write")

        monkeypatch.setattr(current, "load_ledger", no_reload)
        for i in range(5):
            r = tc.post("/v1/actions", json=action(a_client, action_id=f"ACT-INC-{i}"), headers={"X-API-Key": keys["admin"]})
            assert r.status_code == 201
        state = tc.app.state.encaisse
        index = current.current_ledger(state)
        assert {f"ACT-INC-{i}" for i in range(5)} <= set(index.ledger.actions["action_id"].astype(str))
        assert len(index.ledger.actions) == len(ledger.actions) + 5
        pos = index.actions_of_client[a_client]
        assert {f"ACT-INC-{i}" for i in range(5)} <= set(index.ledger.actions["action_id"].iloc[pos].astype(str))
        page = tc.get(f"/v1/clients/{a_client}", headers={"X-API-Key": keys["admin"]})
        assert page.status_code in (200, 503)  # no model in this test; the ledger part never reloads


def test_a_payment_of_an_unknown_invoice_is_stored_and_reported(site):
    settings, ledger, keys, a_client, _ = site
    unpaid = ledger.invoices[~ledger.invoices["invoice_id"].isin(ledger.payments["invoice_id"])]
    known = str(unpaid.loc[unpaid["amount"] > 1, "invoice_id"].iloc[0])  # a payment of 1.0 overpays nothing
    rows = [{"payment_id": "PAY-KNOWN", "invoice_id": known, "paid_date": "2025-06-01", "amount": 1.0},
            {"payment_id": "PAY-UNKNOWN", "invoice_id": "NO-SUCH-INVOICE", "paid_date": "2025-06-01", "amount": 1.0}]
    with client(settings) as tc:
        r = tc.post("/v1/payments", json={"payments": rows}, headers={"X-API-Key": keys["admin"]})
    assert r.status_code == 200 and r.json()["inserted"] == 2
    assert r.json()["warnings"] == ["1 payment(s) name an invoice not in the store: NO-SUCH-INVOICE (stored all the same)."]


def test_payments_before_their_invoice_or_beyond_its_amount_are_stored_and_reported(site):
    settings, ledger, keys, a_client, _ = site
    invoice = {"invoice_id": "INV-OVER", "client_id": a_client, "issue_date": "2025-05-01", "due_date": "2025-06-01",
               "amount": 100.0, "currency": "EUR"}
    rows = [{"payment_id": "PAY-EARLY", "invoice_id": "INV-OVER", "paid_date": "2025-04-30", "amount": 60.0},
            {"payment_id": "PAY-LATER", "invoice_id": "INV-OVER", "paid_date": "2025-06-02", "amount": 40.0}]
    with client(settings) as tc:
        assert tc.post("/v1/invoices", json={"invoices": [invoice]}, headers={"X-API-Key": keys["admin"]}).status_code == 200
        r = tc.post("/v1/payments", json={"payments": rows}, headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 200 and r.json()["warnings"] == [
            "1 invoice paid before its issue_date (INV-OVER): stored all the same; check the payments' paid_date or the "
            "invoice."]
        extra = {"payment_id": "PAY-TWICE", "invoice_id": "INV-OVER", "paid_date": "2025-06-02", "amount": 40.0}
        r = tc.post("/v1/payments", json={"payments": [extra]}, headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 200 and r.json()["inserted"] == 1
        assert [w[:50] for w in r.json()["warnings"]] == [
            "1 invoice paid before its issue_date (INV-OVER): s", "1 invoice now paid more than its amount (INV-OVER)"]
        again = tc.post("/v1/payments", json={"payments": [extra]}, headers={"X-API-Key": keys["admin"]})
        assert again.json()["unchanged"] == 1 and again.json()["warnings"] == []  # nothing stored, nothing said
        lowered = tc.post("/v1/invoices", json={"invoices": [{**invoice, "amount": 90.0, "issue_date": "2025-04-01"}]},
                          headers={"X-API-Key": keys["admin"]})
    assert [w[:50] for w in lowered.json()["warnings"]] == ["1 invoice now paid more than its amount (INV-OVER)"]


def test_a_page_form_under_a_held_lock_is_a_503_page_and_stores_nothing(site):
    from serving.sessions import SESSION_COOKIE, sign_session

    settings, ledger, keys, a_client, _ = site
    with client(settings, ServingSettings(write_timeout_seconds=0.3)) as tc:
        session = sign_session(tc.app.state.encaisse.session_secret, {"kid": 1, "csrf": "tok", "iat": int(time.time())})
        tc.cookies.set(SESSION_COOKIE, session)  # key 1: the admin
        before = len(small_ledger().actions)
        ready = threading.Event()
        holder = hold_lock(settings.home_dir / "ledger.db", 1.5, ready)
        ready.wait(5)
        r = tc.post(f"/clients/{a_client}/actions", data={"csrf": "tok", "kind": "call", "action_date": "2025-06-01"},
                    follow_redirects=False)
        holder.join()
    assert r.status_code == 503 and r.headers["Retry-After"] == "5" and "nothing was written" in r.text
    engine = open_store(settings.store_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from actions")).scalar() == before
    engine.dispose()
