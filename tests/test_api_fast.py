"""Score calls on stored invoices read the day's encoded open invoices: they equal batch scoring.

``serving.invoice_scores.open_rows`` builds, per (ledger version, champion, day), the feature rows and
model input of every open invoice; a call scores only its rows (``EncaisseModel.predict_encoded``).
These tests hold that path to the batch path (``EncaisseModel.score`` on the full ledger, and the
risk and payment-date models' own frame methods), and check that a write rebuilds it.
"""

from __future__ import annotations

import gc
import random

import numpy as np
import pandas as pd
import pytest

from models.scorer import SCORE_COLUMNS
from ledger.engine import open_store
from ledger.staged_upsert import upsert_frame
from serving import current, invoice_scores
from api_helpers import AS_OF, open_ids, synthetic

DAYS = ["2025-02-10", "2025-04-15", AS_OF, "2025-07-20"]


def state_of(api):
    return api.client.app.state.encaisse


def assert_rows_equal(api_rows: list[dict], ref: pd.DataFrame) -> None:
    """Every field of the API's rows equals the batch frame's, exactly (floats bit for bit)."""
    ref = ref.set_index("invoice_id")
    for r in api_rows:
        e = ref.loc[r["invoice_id"]]
        for name in ("p_late", "p_very_late", "p10_days", "p50_days", "p90_days", "amount"):
            assert r[name] == float(e[name]), (r["invoice_id"], name)
        for a, b in (("payment_date_p10", "payment_date_low"), ("payment_date_p50", "expected_payment_date"),
                     ("payment_date_p90", "payment_date_high"), ("due_date", "due_date")):
            assert r[a] == e[b].date().isoformat(), (r["invoice_id"], a)
        assert r["beyond_horizon"] == bool(e["beyond_horizon"]) and r["client_id"] == e["client_id"]
        assert "; ".join(r["reasons"]) == e["reasons"], r["invoice_id"]


@pytest.mark.parametrize("day", DAYS)
def test_scores_of_any_subset_equal_batch_scores(api, day):
    ids = open_ids(api.ledger, day)
    assert len(ids) > 10
    ref = api.model.score(api.ledger, day, n_reasons=5)
    rng = random.Random(day)
    for k in (1, 7, len(ids)):
        asked = rng.sample(ids, k)
        r = api.post("/v1/scores", {"as_of": day, "invoice_ids": asked, "n_reasons": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [s["invoice_id"] for s in body["scores"]] == asked and body["not_scored"] == []
        assert_rows_equal(body["scores"], ref)


def test_encoded_scores_equal_the_models_frame_methods():
    """The float-matrix predictions and reasons equal the risk and payment-date models' frame methods."""
    ledger, model = synthetic()
    for day in DAYS:
        f = model.features(ledger, day)
        X = model.encoder_.transform(f)
        rows = model.encode(f)
        got, (days, cdf) = model.score(None, day, rows=rows, return_cdf=True, num_threads=1)
        not_due = f["i_days_to_due"].to_numpy() >= 0
        want_days, want_cdf = model.payment_model_.predict_cdf(X)
        p_late, p_very = model._blend_risks(model.late_model_.predict_proba(X)[:, 1],
                                            model.very_late_model_.predict_proba(X)[:, 1], want_days, want_cdf,
                                            f["i_days_to_due"].to_numpy(dtype=float))
        np.testing.assert_array_equal(got["p_late"], np.where(not_due, p_late, 1.0))
        np.testing.assert_array_equal(got["p_very_late"], p_very)
        np.testing.assert_array_equal(days, want_days)
        np.testing.assert_array_equal(cdf, want_cdf)
        assert got["reasons"].tolist() == model._reasons(f, X)
        # Rows taken in any order score as they do among all rows.
        pos = np.random.default_rng(0).permutation(len(f))[:9]
        pd.testing.assert_frame_equal(model.score(None, day, rows=rows.take(pos)),
                                      got.iloc[pos].reset_index(drop=True), check_exact=True)


@pytest.mark.parametrize("with_speakable", [True, False])
def test_predicting_at_positions_equals_taking_the_rows(with_speakable):
    """``predict_encoded(rows, positions=p)`` (what a score call runs) gives ``rows.take(p)``'s figures."""
    ledger, model = synthetic()
    rows = model.encode(model.features(ledger, AS_OF), with_reasons=with_speakable)
    pos = np.random.default_rng(1).permutation(len(rows))[:11]
    pos[-1] = pos[0]  # an invoice asked twice is answered twice
    got = model.predict_encoded(rows, AS_OF, positions=pos, n_reasons=4, num_threads=1)
    want = model.predict_encoded(rows.take(pos), AS_OF, n_reasons=4, num_threads=1)
    for name in ("p_late", "p_very_late", "days_q", "dates", "beyond_horizon", "days", "cdf"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert got.reasons == want.reasons and any(got.reasons)
    none = model.predict_encoded(rows, AS_OF, positions=[], num_threads=1)
    assert len(none.p_late) == 0 and none.reasons == [] and none.dates.shape == (0, 3)


def test_no_rows_and_no_reasons():
    ledger, model = synthetic()
    rows = model.encode(model.features(ledger, AS_OF))
    empty = model.score(None, AS_OF, rows=rows.take([]))
    assert list(empty.columns) == SCORE_COLUMNS and len(empty) == 0
    quiet = model.score(None, AS_OF, rows=rows, n_reasons=0)
    assert (quiet["reasons"] == "").all()
    pd.testing.assert_frame_equal(quiet.drop(columns="reasons"), model.score(ledger, AS_OF).drop(columns="reasons"),
                                  check_exact=True)


def test_one_build_per_day_and_model(api):
    state = state_of(api)
    ids = open_ids(api.ledger, "2025-05-05")
    for i in ids[:3]:
        assert api.post("/v1/scores", {"as_of": "2025-05-05", "invoice_ids": [i]}).status_code == 200
    keys = [k for k in state.open_rows if k[3] == pd.Timestamp("2025-05-05")]
    assert len(keys) == 1 and keys[0][:2] == (state.index.version, "7")


def test_a_write_rebuilds_the_open_invoices(fresh_api):
    api = fresh_api
    state = state_of(api)
    invoice_id = open_ids(api.ledger)[0]
    before = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": [invoice_id]}).json()["scores"][0]
    version = state.index.version
    row = api.ledger.invoices.set_index("invoice_id").loc[invoice_id]
    moved = (row["due_date"] + pd.Timedelta(days=20)).date().isoformat()
    sent = {"invoice_id": invoice_id, "client_id": row["client_id"], "issue_date": row["issue_date"].date().isoformat(),
            "due_date": moved, "amount": float(row["amount"])}
    w = api.post("/v1/invoices", {"invoices": [sent]}, role="system")
    assert w.status_code == 200 and w.json()["updated"] == 1, w.text
    assert current.current_ledger(state).version == version + 1  # the write folded in at the next read, no reload
    after = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": [invoice_id]}).json()["scores"][0]
    with state.lock:
        keys = list(state.open_rows)
    assert keys and all(k[0] == state.index.version for k in keys)
    assert before["due_date"] != after["due_date"] == moved
    inv = api.ledger.invoices.copy()
    inv.loc[inv["invoice_id"] == invoice_id, "due_date"] = pd.Timestamp(moved)
    led = type(api.ledger)(inv, api.ledger.payments, api.ledger.clients, api.ledger.actions)
    assert_rows_equal([after], api.model.score(led, AS_OF))


def _new_invoice(api, invoice_id: str) -> dict:
    row = api.ledger.invoices.set_index("invoice_id").loc[open_ids(api.ledger)[0]]
    return {"invoice_id": invoice_id, "client_id": row["client_id"], "issue_date": "2025-05-20",
            "due_date": "2025-07-01", "amount": 12.5}


def _write(api, invoice_id: str) -> None:
    w = api.post("/v1/invoices", {"invoices": [_new_invoice(api, invoice_id)]}, role="system")
    assert w.status_code == 200 and w.json()["inserted"] == 1, w.text


def test_writes_acknowledged_while_the_ledger_reloads_are_served(fresh_api, monkeypatch):
    """A write acknowledged during a reload is served after it, whether a read folded it in meanwhile or not."""
    api = fresh_api
    state = state_of(api)
    read_store = current.load_ledger

    def load_while_writing(engine, *args, **kwargs):
        ledger = read_store(engine, *args, **kwargs)  # what the load read: neither write below
        _write(api, "DURING-LOAD-1")
        current.current_ledger(state)  # a read folds it into the ledger being replaced
        _write(api, "DURING-LOAD-2")
        return ledger

    monkeypatch.setattr(current, "load_ledger", load_while_writing)
    current.refresh_ledger(state)
    monkeypatch.setattr(current, "load_ledger", read_store)
    index = current.current_ledger(state)
    assert (index.invoice_pos.get_indexer(["DURING-LOAD-1", "DURING-LOAD-2"]) >= 0).all()
    assert state.pending == []  # folded, and no load running that needs them
    body = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": ["DURING-LOAD-1", "DURING-LOAD-2"]}).json()
    assert [s["invoice_id"] for s in body["scores"]] == ["DURING-LOAD-1", "DURING-LOAD-2"], body


def test_reloads_run_one_at_a_time_and_the_later_one_serves_what_it_read(fresh_api, monkeypatch):
    """A reload asked while another loads waits for it, then reads the store after it: an ingest's rows
    that the first load missed are served."""
    import threading

    api = fresh_api
    state = state_of(api)
    read_store = current.load_ledger
    engine = open_store(api.settings.store_url)
    second = threading.Thread(target=current.refresh_ledger, args=(state,))

    def first_load(engine_, *args, **kwargs):
        ledger = read_store(engine_, *args, **kwargs)
        with engine.begin() as conn:  # another process (an ingest) writes to the store
            upsert_frame(conn, "invoices", pd.DataFrame([_new_invoice(api, "BY-INGEST")]).assign(
                issue_date=pd.Timestamp("2025-05-20"), due_date=pd.Timestamp("2025-07-01"), doc_type="invoice",
                currency="EUR"))
        monkeypatch.setattr(current, "load_ledger", read_store)
        second.start()  # a reload asked now
        second.join(timeout=0.5)
        assert second.is_alive()  # it waits for this load
        _write(api, "BY-API")
        return ledger

    monkeypatch.setattr(current, "load_ledger", first_load)
    current.refresh_ledger(state)
    second.join(timeout=60)
    engine.dispose()
    with state.lock:  # the change log's reads add to pending under this lock too
        index = current.current_ledger(state)
        assert (index.invoice_pos.get_indexer(["BY-INGEST", "BY-API"]) >= 0).all()
        assert state.pending == [] and state.load_began is None


def test_a_periodic_reload_serves_what_another_process_stored(tmp_path):
    """With reload_seconds, rows another process stores (an ingest, another worker) are served within the delay,
    and this process's own writes stay served across the reloads."""
    import time

    from api_helpers import start_api
    from serving.config import ServingSettings

    with start_api(tmp_path / "home", serving=ServingSettings(reload_seconds=0.2)) as api:
        state = state_of(api)
        _write(api, "BY-THIS-PROCESS")
        engine = open_store(api.settings.store_url)
        with engine.begin() as conn:
            upsert_frame(conn, "invoices", pd.DataFrame([_new_invoice(api, "BY-ANOTHER")]).assign(
                issue_date=pd.Timestamp("2025-05-20"), due_date=pd.Timestamp("2025-07-01"), doc_type="invoice",
                currency="EUR"))
        engine.dispose()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if current.current_ledger(state).invoice_pos.get_indexer(["BY-ANOTHER"])[0] >= 0:
                break
            time.sleep(0.05)
        index = current.current_ledger(state)
        assert (index.invoice_pos.get_indexer(["BY-ANOTHER", "BY-THIS-PROCESS"]) >= 0).all()
        warmed = False
        while not warmed and time.monotonic() < deadline:  # each reload is followed by today's caches, warmed
            with state.lock:
                warmed = index.version < state.index.version and any(
                    k[0] == state.index.version and k[3] == current.today() for k in state.open_rows)
            time.sleep(0.05)
        assert warmed
        body = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": ["BY-ANOTHER"]}).json()
        assert [s["invoice_id"] for s in body["scores"]] == ["BY-ANOTHER"]


def test_warm_today_builds_todays_rows(api):
    state = state_of(api)
    invoice_scores.warm_today(state)
    today = current.today()
    assert any(k[0] == state.index.version and k[3] == today for k in list(state.open_rows))


def test_what_the_service_holds_is_kept_out_of_garbage_collections(api):
    """The ledger, model and each day's open rows are frozen (``settle_heap``): collections skip them."""
    state = state_of(api)
    rows = invoice_scores.open_rows(state, current.current_model(state), pd.Timestamp("2025-03-03"))
    scanned = {id(o) for o in gc.get_objects()}  # the collector's generations; frozen objects are not in them
    assert id(rows) not in scanned and id(state.index) not in scanned


def test_features_on_given_client_features_equal_the_models_own():
    """The server hands the model its cached client features; the rows are the ones the model builds itself."""
    from features.clients import build_client_features
    from models.scoring import build_scoring

    ledger, model = synthetic()
    clients = build_client_features(ledger, AS_OF)
    pd.testing.assert_frame_equal(model.features(ledger, AS_OF, clients=clients), model.features(ledger, AS_OF))
    pd.testing.assert_frame_equal(build_scoring(model, ledger, AS_OF, clients=clients).worklist,
                                  build_scoring(model, ledger, AS_OF).worklist)
