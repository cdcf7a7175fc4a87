"""The HTTP API on a small synthetic store: parity with batch scoring, limits, writes, reload, readiness.

The champion is an ``EncaisseModel`` fitted in memory on the same ledger (seconds), handed to the app
through ``create_app(champion_loader=...)``; one test goes through the real (empty) registry.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.clients import build_client_features
from features.kpis import evaluate_kpis
from ledger.contracts import TABLES, Ledger, coerce_frame
from ledger.scores_store import save_scores
from ledger.engine import open_store
from ledger.reader import count_rows
from models.collection import MAX_HORIZON
from serving.app import create_app
from serving.config import ServingSettings
from serving.keys import create_key

from api_helpers import AS_OF, FIT_DAY, FakeChampion, collector_of_first_client, fill_store, open_ids, synthetic


def rows_json(df: pd.DataFrame) -> list[dict]:
    """Canonical invoice rows as the JSON a caller would send."""
    out = []
    for r in df[TABLES["invoices"].names].to_dict("records"):
        row = {}
        for k, v in r.items():
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
                continue
            row[k] = v.date().isoformat() if isinstance(v, pd.Timestamp) else (bool(v) if isinstance(v, np.bool_) else v)
        out.append(row)
    return out


def assert_same_scores(api_rows: list[dict], ref: pd.DataFrame) -> None:
    ref = ref.set_index("invoice_id")
    assert [r["invoice_id"] for r in api_rows] and set(r["invoice_id"] for r in api_rows) <= set(ref.index)
    for r in api_rows:
        e = ref.loc[r["invoice_id"]]
        for a, b in (("p_late", "p_late"), ("p_very_late", "p_very_late"), ("p10_days", "p10_days"),
                     ("p50_days", "p50_days"), ("p90_days", "p90_days")):
            assert r[a] == pytest.approx(float(e[b]), abs=1e-12), (r["invoice_id"], a)
        for a, b in (("payment_date_p10", "payment_date_low"), ("payment_date_p50", "expected_payment_date"),
                     ("payment_date_p90", "payment_date_high"), ("due_date", "due_date")):
            assert r[a] == e[b].date().isoformat(), (r["invoice_id"], a)
        assert r["beyond_horizon"] == bool(e["beyond_horizon"])
        assert "; ".join(r["reasons"]) == e["reasons"]


# --- scores ---------------------------------------------------------------------------------------


def test_scores_equal_batch_scores(api):
    ids = open_ids(api.ledger)
    r = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": ids}, role="system")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "7" and body["as_of"] == AS_OF and body["mode"] == "store"
    assert [s["invoice_id"] for s in body["scores"]] == ids and body["not_scored"] == []
    assert_same_scores(body["scores"], api.model.score(api.ledger, AS_OF))


def test_scores_of_one_invoice_and_another_day_equal_batch_scores(api):
    day = "2025-04-15"
    ids = open_ids(api.ledger, day)[3:4]
    r = api.post("/v1/scores", {"as_of": day, "invoice_ids": ids})
    assert r.status_code == 200, r.text
    assert len(r.json()["scores"]) == 1
    assert_same_scores(r.json()["scores"], api.model.score(api.ledger, day))


def test_full_rows_from_the_store_score_like_ids(api):
    ids = open_ids(api.ledger)[:5]
    rows = rows_json(api.ledger.invoices.set_index("invoice_id", drop=False).loc[ids])
    r = api.post("/v1/scores", {"as_of": AS_OF, "invoices": rows}, role="system")
    assert r.status_code == 200, r.text
    assert [s["invoice_id"] for s in r.json()["scores"]] == ids
    assert_same_scores(r.json()["scores"], api.model.score(api.ledger, AS_OF))


def test_stateless_scores_equal_batch_scores_on_the_same_rows(api):
    ids = open_ids(api.ledger)
    client = api.ledger.invoices.set_index("invoice_id").loc[ids[0], "client_id"]
    mine = api.ledger.invoices[api.ledger.invoices["client_id"] == client]
    wanted = [i for i in mine["invoice_id"] if i in set(ids)]
    sent, history = mine[mine["invoice_id"].isin(wanted)], mine[~mine["invoice_id"].isin(wanted)]
    r = api.post("/v1/scores", {"as_of": AS_OF, "invoices": rows_json(sent), "history": rows_json(history)},
                 role="system")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "stateless" and sorted(s["invoice_id"] for s in body["scores"]) == sorted(wanted)
    ref = api.model.score(Ledger.from_frames(mine[TABLES["invoices"].names]), AS_OF)
    assert_same_scores(body["scores"], ref)


def test_not_scored_invoices_say_why(api):
    inv = api.ledger.invoices
    paid = inv[(inv["doc_type"] == "invoice") & (inv["paid_date"] < AS_OF)]["invoice_id"].iloc[0]
    r = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": [open_ids(api.ledger)[0], paid, "NOPE"]})
    assert r.status_code == 200
    why = {x["invoice_id"]: x["reason"] for x in r.json()["not_scored"]}
    assert why["NOPE"].startswith("unknown invoice_id") and why[paid].startswith("paid on")
    assert len(r.json()["scores"]) == 1


def test_more_than_10000_invoices_is_413(api):
    r = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": [f"X{i}" for i in range(10_001)]})
    assert r.status_code == 413
    assert r.json()["detail"] == "10001 invoices in one call; the limit is 10000: split the batch."


@pytest.mark.parametrize("body,field", [
    ({"as_of": "2025-13-01", "invoice_ids": ["A"]}, "as_of"),
    ({"as_of": "1066-10-14", "invoice_ids": ["A"]}, "as_of"),
    ({"as_of": AS_OF, "invoice_ids": [""]}, "invoice_ids"),
    ({"as_of": AS_OF, "invoices": [{"invoice_id": "A", "client_id": "C", "issue_date": "2025-01-01",
                                    "due_date": "2025-02-01", "amount": "lots"}]}, "amount"),
])
def test_bad_input_is_422_naming_the_field(api, body, field):
    r = api.post("/v1/scores", body)
    assert r.status_code == 422
    assert any(field in map(str, e["loc"]) for e in r.json()["detail"]), r.json()


def test_rejected_rows_in_a_score_call_are_422_with_reasons(api):
    row = {"invoice_id": "NEW1", "client_id": "C00001", "issue_date": "2025-03-01", "due_date": "2025-02-01",
           "amount": 100.0}
    r = api.post("/v1/scores", {"as_of": AS_OF, "invoices": [row]})
    assert r.status_code == 422
    assert "due_date 2025-02-01 before issue_date 2025-03-01" in r.json()["detail"]["rejects"][0]["reason"]
    # The score call stores nothing and takes no allow_rejects: the message does not offer it.
    assert r.json()["detail"]["message"] == "1 of 1 invoices rows were rejected; nothing was stored. Fix them and send again."


# --- clients, worklist, forecast, KPIs, model -----------------------------------------------------


def test_client_view(api):
    client_id, collector = collector_of_first_client(api.ledger)
    r = api.get(f"/v1/clients/{client_id}?as_of={AS_OF}")
    assert r.status_code == 200, r.text
    body = r.json()
    feats = build_client_features(api.ledger, AS_OF).loc[client_id]
    assert body["master"]["collector"] == collector and body["model_version"] == "7"
    assert body["behaviour"]["c_n_invoices"] == feats["c_n_invoices"]
    mine = set(open_ids(api.ledger)) & set(api.ledger.invoices.loc[api.ledger.invoices["client_id"] == client_id,
                                                                     "invoice_id"])
    assert {i["invoice_id"] for i in body["open_invoices"]} == mine
    if mine:
        assert body["profile"]["profile"] and body["profile"]["scenario"]
        assert all(i["next_action"] for i in body["open_invoices"])
    assert api.get("/v1/clients/NOPE").status_code == 404


def test_worklist_scored_now_then_from_the_stored_run(fresh_api):
    api = fresh_api
    r = api.get(f"/v1/worklist?as_of={AS_OF}&limit=5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "computed" and "No score run is stored" in body["note"]
    assert body["total"] == len(open_ids(api.ledger)) and len(body["rows"]) == 5
    assert [x["priority"] for x in body["rows"]] == sorted(x["priority"] for x in body["rows"])

    from models.scoring import build_scoring

    scoring = build_scoring(api.model, api.ledger, AS_OF)
    engine = open_store(api.settings.store_url)
    run_id = save_scores(engine, scoring.worklist, scoring.client_scores, as_of=AS_OF, model_version="6")
    engine.dispose()
    r = api.get("/v1/worklist?as_of=2025-06-04&limit=1000")  # three days later: Friday's run read on Monday
    body = r.json()
    assert body["source"] == "stored" and body["run_id"] == run_id and body["model_version"] == "6"
    assert body["run_as_of"] == AS_OF and body["note"] is None and body["total"] == len(scoring.worklist)
    stale = api.get("/v1/worklist?as_of=2025-06-20&limit=1").json()
    assert stale["run_id"] == run_id and "of 2025-06-01, 19 days before 2025-06-20" in stale["note"]
    who = body["rows"][0]["collector"]
    r = api.get(f"/v1/worklist?as_of={AS_OF}&collector={who}")
    assert r.json()["rows"] and {x["collector"] for x in r.json()["rows"]} == {who}


def test_kpis_and_forecast(api):
    r = api.get(f"/v1/kpis?as_of={AS_OF}", role="treasurer")
    assert r.status_code == 200, r.text
    assert r.json()["open_balance"] == pytest.approx(evaluate_kpis(api.ledger, AS_OF)["open_balance"])
    r = api.get(f"/v1/forecast?as_of={AS_OF}&horizon=4&freq=W", role="treasurer")
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["periods"]) == 4 and body["model_version"] == "7" and body["n_invoices"] == len(open_ids(api.ledger))
    assert body["totals"]["expected_amount"] <= body["totals"]["open_amount"]
    assert api.get(f"/v1/forecast?as_of={AS_OF}&freq=M").status_code == 422
    assert api.get(f"/v1/forecast?as_of={AS_OF}&horizon={MAX_HORIZON + 1}").status_code == 422


def test_uplift_is_the_shared_estimate(api):
    from models.policy import load_policy
    from models.uplift import evaluate_uplift
    r = api.get(f"/v1/uplift?as_of={AS_OF}", role="treasurer")
    assert r.status_code == 200, r.text
    body = r.json()
    want = evaluate_uplift(api.ledger, AS_OF, load_policy().control)
    assert set(body["steps"]) == set(want["steps"]) == {"preventive", "reminder_1", "reminder_2"}
    for step, e in want["steps"].items():
        assert body["steps"][step]["n_treated"] == e["n_treated"] and body["steps"][step]["n_control"] == e["n_control"]
    assert [h["as_of"] for h in body["history"]][-1] < str(AS_OF)[:10]
    assert api.get(f"/v1/uplift?as_of={AS_OF}", role="collector").status_code == 403


def test_model_health_ready(api):
    assert api.client.get("/health").json() == {"status": "ok"}
    r = api.client.get("/ready")
    assert r.status_code == 200 and r.json()["model_version"] == "7"
    assert api.get("/v1/model", role="collector").json() == {"version": "7", "run_id": "run-abc", "as_of": FIT_DAY,
                                                             "metrics": {"val_auc": 0.8}}


# --- writes ---------------------------------------------------------------------------------------


def test_actions_change_features_afterwards(fresh_api):
    api = fresh_api
    inv = api.ledger.invoices.set_index("invoice_id")
    invoice_id = open_ids(api.ledger)[0]
    client_id = inv.loc[invoice_id, "client_id"]
    url = f"/v1/clients/{client_id}?as_of={AS_OF}"
    before = api.get(url).json()
    action = {"client_id": client_id, "invoice_id": invoice_id, "action_date": "2025-05-30", "step": "promise",
              "channel": "call", "outcome": "promise", "promise_date": "2025-06-10", "promise_amount": 100.0}
    r = api.post("/v1/actions", action, role="system")
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True and r.json()["write"]["inserted"] == 1
    again = api.post("/v1/actions", action, role="system")
    assert again.status_code == 200  # nothing created
    assert again.json()["created"] is False and again.json()["action_id"] == r.json()["action_id"]
    after = api.get(url).json()
    assert after["behaviour"]["c_promises"] == before["behaviour"]["c_promises"] + 1
    row = next(i for i in after["open_invoices"] if i["invoice_id"] == invoice_id)
    assert row["next_action"] == "wait (promise to pay)"
    # The stored ledger with the action, scored in batch, is what the API now answers.
    actions = pd.concat([api.ledger.actions, pd.DataFrame([{**action, "action_id": r.json()["action_id"]}])],
                        ignore_index=True)
    led = Ledger(api.ledger.invoices, api.ledger.payments, api.ledger.clients, coerce_frame(actions, TABLES["actions"]))
    score_after = api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": [invoice_id]}).json()["scores"]
    assert_same_scores(score_after, api.model.score(led, AS_OF))


@pytest.mark.parametrize("body,status,detail", [
    ({"client_id": "NOPE", "action_date": "2025-05-30", "step": "call"}, 404, "Client 'NOPE' is not in the store."),
    ({"client_id": "C00001", "action_date": "2025-05-30", "step": "promise"}, 422, None),
    ({"client_id": "C00001", "action_date": "2025-05-30", "step": "phone"}, 422, None),
    ({"client_id": "NOPE", "action_date": "2025-05-30", "step": "instalment_call"}, 404,  # a step of the policy
     "Client 'NOPE' is not in the store."),
])
def test_bad_actions(api, body, status, detail):
    r = api.post("/v1/actions", body)
    assert r.status_code == status
    if detail:
        assert r.json()["detail"] == detail


def test_invoices_post_is_idempotent_and_validated(fresh_api):
    api = fresh_api
    n0 = len(api.ledger.invoices)
    rows = [{"invoice_id": "API-1", "client_id": "C00001", "issue_date": "2025-05-20", "due_date": "2025-06-19",
             "amount": 1200.0}, {"invoice_id": "API-2", "client_id": "C00002", "issue_date": "2025-05-21",
                                 "due_date": "2025-06-20", "amount": 80.5, "currency": "EUR"}]
    first = api.post("/v1/invoices", {"invoices": rows}, role="system")
    assert first.status_code == 200, first.text
    assert first.json() | {"rejects": []} == {"table": "invoices", "received": 2, "inserted": 2, "updated": 0,
                                                "unchanged": 0, "rejected": 0, "rejects": [], "warnings": []}
    again = api.post("/v1/invoices", {"invoices": rows}, role="system").json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    changed = api.post("/v1/invoices", {"invoices": [rows[0] | {"paid_date": "2025-06-01"}]}, role="system").json()
    assert (changed["inserted"], changed["updated"]) == (0, 1)
    engine = open_store(api.settings.store_url)
    assert count_rows(engine, "invoices") == n0 + 2
    # A bad row: 422 with its reason, nothing stored; with allow_rejects the good row is stored.
    bad = [rows[0] | {"invoice_id": "API-3"}, rows[1] | {"invoice_id": "API-4", "amount": -5.0}]
    r = api.post("/v1/invoices", {"invoices": bad}, role="system")
    assert r.status_code == 422
    assert r.json()["detail"]["rejects"] == [{"row": 2, "key": "API-4", "reason": "amount is zero or negative (-5.0)"}]
    assert r.json()["detail"]["message"].endswith("nothing was stored. Fix them, or send ?allow_rejects=true to store "
                                                  "the others.")
    assert count_rows(engine, "invoices") == n0 + 2
    r = api.post("/v1/invoices?allow_rejects=true", {"invoices": bad}, role="system")
    assert r.status_code == 200 and (r.json()["inserted"], r.json()["rejected"]) == (1, 1)
    assert r.json()["warnings"] == []
    early = rows[0] | {"invoice_id": "API-5", "paid_date": "2025-01-01"}  # paid before it was issued: stored, said
    r = api.post("/v1/invoices", {"invoices": [early]}, role="system")
    assert r.status_code == 200 and r.json()["inserted"] == 1
    assert r.json()["warnings"][0].startswith("1 invoices row stored with paid_date before issue_date (API-5)")
    assert count_rows(engine, "invoices") == n0 + 4
    engine.dispose()
    # The new invoice is scorable right away.
    s = api.post("/v1/scores", {"as_of": "2025-06-01", "invoice_ids": ["API-2"]}).json()
    assert [x["invoice_id"] for x in s["scores"]] == ["API-2"]


def test_payments_post(fresh_api):
    api = fresh_api
    invoice_id = open_ids(api.ledger, "2025-07-31")[0]
    pay = {"payment_id": "API-P1", "invoice_id": invoice_id, "paid_date": "2025-07-30", "amount": 10.0}
    r = api.post("/v1/payments", {"payments": [pay]}, role="system")
    assert r.status_code == 200 and r.json()["inserted"] == 1
    assert api.post("/v1/payments", {"payments": [pay]}, role="system").json()["unchanged"] == 1


# --- model loading --------------------------------------------------------------------------------


def test_reload_keeps_the_model_when_the_registry_is_unreachable(fresh_api):
    api = fresh_api
    api.loader.fail = ConnectionError("registry down")
    r = api.post("/v1/admin/reload")
    assert r.status_code == 503
    assert r.json()["detail"] == ("Could not load the champion (ConnectionError: registry down); "
                                  "still serving version 7.")
    assert api.get("/v1/model").json()["version"] == "7"
    assert api.client.get("/ready").status_code == 200
    assert api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": open_ids(api.ledger)[:1]}).status_code == 200
    api.loader.fail = None
    api.loader.champion = FakeChampion(api.model, version="8")
    r = api.post("/v1/admin/reload")
    assert r.status_code == 200 and r.json() == {"version": "8", "message": "Serving version 8 (was 7)."}
    assert api.post("/v1/scores", {"as_of": AS_OF, "invoice_ids": open_ids(api.ledger)[:1]}).json()["model_version"] == "8"


def test_ready_is_503_before_a_model_exists(tmp_path):
    """Through the real (empty) MLflow registry of the workspace."""
    ledger, _ = synthetic()
    settings = fill_store(tmp_path / "home", ledger)
    engine = open_store(settings.store_url)
    key = create_key(engine, "system").token
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        r = client.get("/ready")
        assert r.status_code == 503
        assert "NoChampionError" in r.json()["detail"] and "encaisse train" in r.json()["detail"]
        r = client.post("/v1/scores", json={"as_of": AS_OF, "invoice_ids": ["A"]},
                        headers={"X-API-Key": key})
        assert r.status_code == 503 and "no model is loaded" in r.json()["detail"]


def test_placeholder_secret_refused_in_every_environment():
    for env in ("development", "production"):
        with pytest.raises(ValueError, match="placeholder"):
            ServingSettings(environment=env, session_secret="changethis")
    assert ServingSettings(environment="production", session_secret=hashlib.sha256(b"x").hexdigest())


def test_monitoring_serializes_the_one_monitoring_answer(fresh_api):
    from ledger.run_forecasts import save_run_forecast
    from models.monitoring import build_monitoring, build_run_forecast
    from models.scoring import build_scoring

    api = fresh_api
    engine = open_store(api.settings.store_url)
    try:
        scoring = build_scoring(api.model, api.ledger, AS_OF)
        run_id = save_scores(engine, scoring.worklist, scoring.client_scores, as_of=AS_OF, model_version="7")
        fc = build_run_forecast(api.model, api.ledger, AS_OF, scoring.worklist)
        save_run_forecast(engine, run_id, fc.periods, fc.invoices)
        direct = build_monitoring(engine, api.ledger, "2025-07-31")
    finally:
        engine.dispose()
    r = api.get("/v1/monitoring?as_of=2025-07-31", role="treasurer")
    assert r.status_code == 200, r.text
    body = r.json()
    [run] = body["runs"]
    assert run["run_id"] == run_id and run["model_version"] == "7" and run["window_days"] == 60
    for k in ("auc_p_late", "brier_p_late", "mae_days", "interval_coverage", "weekly_wape", "weekly_band_coverage"):
        assert run[k] == pytest.approx(direct.runs[0][k]), k
    assert len(run["weeks"]) == 9 and all(w["low"] <= w["high"] for w in run["weeks"])
    assert body["versions"][0]["model_version"] == "7" and body["versions"][0]["n_runs"] == 1
    drift = body["drift"]
    assert drift["model_version"] == "7" and drift["n_open"] == len(open_ids(api.ledger, "2025-07-31"))
    assert {row["name"] for row in drift["rows"]} >= {"c_delay_mean", "p_late", "p_very_late"}
    assert isinstance(body["alerts"], list)
    assert api.get("/v1/monitoring?as_of=2025-07-31", role="collector").status_code == 403
    assert api.client.get("/v1/monitoring").status_code == 401
    assert api.get("/v1/monitoring?as_of=2025-13-01", role="treasurer").status_code == 422
