"""`encaisse score` / `encaisse alerts` end to end on a small synthetic store, and migration 0002 in place.

The champion is an ``EncaisseModel`` fitted in memory on the same small ledger (seconds), put in place
of ``models.registry.load_champion``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from encaisse.cli import app
from ledger.contracts import TABLES
from ledger.schema import client_scores, invoice_scores, score_runs
from ledger.scores_store import list_score_runs, load_latest_scores, load_run_clients, save_scores
from ledger.engine import create_store_engine, current_revision, head_revision, open_store, upgrade_store
from ledger.reader import load_ledger
from ledger.staged_upsert import upsert_frame
from ledger.synth import make_ledger
from models.scorer import EncaisseModel

REQUIRED = ["invoice_id", "client_id", "amount", "due_date", "p_late", "p_very_late", "expected_payment_date",
            "payment_date_low", "payment_date_high", "priority", "profile", "scenario", "next_action",
            "next_action_date", "reasons"]
LEGAL = ["late_penalty", "recovery_indemnity", "prescription_status", "lme_terms_exceeded"]
FIT_DAY, DAY1, DAY2 = "2025-06-01", "2025-06-01", "2025-06-15"


@dataclass
class _Champion:
    model: EncaisseModel
    version: str = "7"
    run_id: str = "run-abc"
    as_of: str = FIT_DAY
    metrics: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def ledger():
    return make_ledger(20, seed=3, end_date="2025-07-31")


@pytest.fixture(scope="module")
def champion(ledger):
    # 16 snapshots: month starts are snapshot days too, so 8 would not reach back past the
    # risk models' label window.
    model = EncaisseModel(max_snapshots=16, snapshot_freq_days=28, hazard_params={"n_estimators": 40},
                          risk_params={"n_estimators": 40}).fit(ledger, FIT_DAY)
    return _Champion(model=model)


def _fill_store(url, ledger):
    engine = open_store(url)
    with engine.begin() as conn:
        for name in TABLES:
            upsert_frame(conn, name, getattr(ledger, name))
    return engine


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_score_stores_runs_and_writes_the_worklist(ledger, champion, monkeypatch, tmp_path, _isolated_home):
    import models.registry

    monkeypatch.setattr(models.registry, "load_champion", lambda settings: champion)
    _fill_store(f"sqlite:///{_isolated_home / 'ledger.db'}", ledger).dispose()
    runner = CliRunner()
    out1 = tmp_path / "worklist.csv"
    first = _json(runner.invoke(app, ["score", "--as-of", DAY1, "--out", str(out1), "--json"]))
    assert first["as_of"] == DAY1 and first["model_version"] == "7" and first["out"] == str(out1)
    open_day1 = ledger.invoices[(ledger.invoices["doc_type"] == "invoice")
                                & (ledger.invoices["issue_date"] < DAY1)
                                & ~(ledger.invoices["paid_date"] < DAY1)]
    assert first["n_invoices"] == len(open_day1) > 0
    assert first["n_clients"] == open_day1["client_id"].nunique()

    csv = pd.read_csv(out1)
    assert set(REQUIRED + LEGAL) <= set(csv.columns), sorted(set(REQUIRED + LEGAL) - set(csv.columns))
    assert len(csv) == first["n_invoices"]
    pri = csv["priority"].dropna().astype(int)
    assert sorted(pri) == list(range(1, len(pri) + 1))
    overdue = pd.to_datetime(csv["due_date"]) < pd.Timestamp(DAY1)
    assert (csv.loc[overdue, "recovery_indemnity"] == 40.0).all() and csv.loc[~overdue, "late_penalty"].isna().all()

    out2 = tmp_path / "worklist.parquet"
    second = _json(runner.invoke(app, ["score", "--as-of", DAY2, "--out", str(out2), "--capacity", "30",
                                       "--json"]))
    assert second["run_id"] != first["run_id"]
    pq = pd.read_parquet(out2)
    assert set(REQUIRED) <= set(pq.columns)
    minutes = pq[pq["priority"].notna()].groupby("collector")["effort_minutes"].sum()
    assert len(minutes) and (minutes <= 30).all()

    engine = open_store(f"sqlite:///{_isolated_home / 'ledger.db'}")
    try:
        runs = list_score_runs(engine)
        assert runs["run_id"].tolist() == [first["run_id"], second["run_id"]]
        assert runs["model_version"].tolist() == ["7", "7"]
        assert runs["n_invoices"].tolist() == [first["n_invoices"], second["n_invoices"]]
        with engine.connect() as conn:
            per_run = dict(conn.execute(sa.select(invoice_scores.c.run_id, sa.func.count())
                                        .group_by(invoice_scores.c.run_id)).all())
            n_clients = conn.execute(sa.select(sa.func.count()).select_from(client_scores)).scalar_one()
        assert per_run == {first["run_id"]: first["n_invoices"], second["run_id"]: second["n_invoices"]}
        assert n_clients == first["n_clients"] + second["n_clients"]
        latest = load_latest_scores(engine)
        assert latest.run_id == second["run_id"]
        pd.testing.assert_frame_equal(load_run_clients(engine, latest.run), latest.clients)  # what run_score reads
        assert load_latest_scores(engine, "2025-06-14").run_id == first["run_id"]
        assert load_latest_scores(engine, "2025-05-31") is None
        stored = latest.invoices.set_index("invoice_id")
        assert stored["p_very_late"].to_dict() == pytest.approx(pq.set_index("invoice_id")["p_very_late"].to_dict())
        assert set(latest.clients["profile"]) <= {"difficulty", "high_risk", "watch", "trusted", "standard"}
    finally:
        engine.dispose()

    alerts = _json(runner.invoke(app, ["alerts", "--as-of", DAY2, "--json"]))
    assert alerts["run_id"] == second["run_id"] and alerts["previous_run_id"] == first["run_id"]
    assert alerts["n_alerts"] == len(alerts["alerts"])
    assert all(set(a) == {"kind", "client_id", "invoice_id", "severity", "reason"} for a in alerts["alerts"])
    shown = runner.invoke(app, ["alerts", "--as-of", DAY2])
    assert shown.exit_code == 0, shown.output
    assert "Alerts as of 2025-06-15" in shown.stdout
    listed = runner.invoke(app, ["score", "--as-of", DAY2])
    assert listed.exit_code == 0 and "Worklist as of 2025-06-15" in listed.stdout


def test_score_and_alerts_fail_cleanly(ledger, champion, monkeypatch, _isolated_home):
    import models.registry

    monkeypatch.setattr(models.registry, "load_champion", lambda settings: champion)
    runner = CliRunner()
    empty = runner.invoke(app, ["score", "--as-of", DAY1])
    assert empty.exit_code == 1 and "holds no invoices" in empty.stderr
    assert runner.invoke(app, ["score", "--as-of", "not-a-day"]).exit_code == 2
    none = runner.invoke(app, ["alerts", "--as-of", DAY1])
    assert none.exit_code == 1 and "encaisse score" in none.stderr


def test_an_existing_0001_store_upgrades_in_place(tmp_path, monkeypatch):
    import ledger.staged_upsert

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_store_engine(url)
    assert upgrade_store(engine, "0001") == "0001"
    inv = pd.DataFrame({"invoice_id": ["0001", "0002"], "client_id": ["C1", "C2"],
                        "issue_date": pd.to_datetime(["2024-01-02", "2024-01-05"]),
                        "due_date": pd.to_datetime(["2024-02-01", "2024-02-04"]), "amount": [100.0, 50.5]})
    with monkeypatch.context() as m, engine.begin() as conn:
        m.setattr(ledger.staged_upsert, "record_change", lambda *a, **k: None)  # revision 0001 had no change log
        upsert_frame(conn, "invoices", inv.assign(doc_type="invoice", currency="EUR"))
    assert "score_runs" not in sa.inspect(engine).get_table_names()
    engine.dispose()

    upgraded = open_store(url)
    try:
        assert current_revision(upgraded) == head_revision()
        assert {"score_runs", "invoice_scores", "client_scores"} <= set(sa.inspect(upgraded).get_table_names())
        assert load_ledger(upgraded).invoices["invoice_id"].tolist() == ["0001", "0002"]
        rid = save_scores(upgraded, inv.assign(p_very_late=[0.2, 0.4], priority=[1, None]),
                          pd.DataFrame({"client_id": ["C1", "C2"], "p_very_late_max": [0.2, 0.4],
                                        "reason": ["x", "y"]}),
                          as_of="2024-03-01", model_version="1")
        stored = load_latest_scores(upgraded)
        assert stored.run_id == rid and stored.run["n_worklist"] == 1
        assert stored.clients.set_index("client_id")["profile_reason"].to_dict() == {"C1": "x", "C2": "y"}
        with upgraded.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(score_runs)).scalar_one() == 1
    finally:
        upgraded.dispose()
