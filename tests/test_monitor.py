"""Monitoring: PSI by hand, a stored run judged exactly as the backtest judges the same day and model,
retrain alerts that fire on worse accuracy or injected drift and stay quiet without, `encaisse monitor`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ledger.contracts import Ledger
from ledger.engine import open_store
from ledger.run_forecasts import load_run_forecast, save_run_forecast
from ledger.scores_store import load_run, list_score_runs, save_scores
from ledger.synth import make_ledger
from models.drift import bin_shares, evaluate_drift, psi
from models.monitoring import MonitoringConfig, build_monitoring, build_run_forecast, with_ranks
from models.scorer import EncaisseModel
from models.scoring import build_scoring
from pipelines.backtest import Backtest, evaluate_backtest
from pipelines.config import QUICK_CONFIG, load_config
from pipelines.validation import build_evaluation_set, predict_evaluation_set

RUN_DAY = pd.Timestamp("2025-03-03")
MONITOR_DAY = pd.Timestamp("2025-06-30")
COMPARED = ("auc_p_late", "brier_p_late", "mae_days", "bias_days", "within_7d", "interval_coverage",
            "pinball_days", "capture_top10", "weekly_wape", "weekly_band_coverage")


# -- formulas, by hand --------------------------------------------------------------------------------


def test_psi_matches_hand_computed_values():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), abs=1e-12)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # an empty bin counts with the floor 1e-4, not zero: finite
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(
        0.1 * math.log(0.4 / 0.5) * -1 + (0.1 - 1e-4) * math.log(0.1 / 1e-4), rel=1e-9)


def test_bin_shares_cut_on_edges_with_a_missing_bin():
    shares = bin_shares([1.0, 2.0, 2.5, 3.0, np.nan], [1.5, 2.5])
    # bins: (-inf, 1.5), [1.5, 2.5), [2.5, inf), missing
    assert shares.tolist() == [0.2, 0.2, 0.4, 0.2]


def test_evaluate_drift_names_the_shifted_feature_in_words():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"c_delay_mean": rng.normal(5, 2, 5000), "i_amount": rng.lognormal(7, 1, 5000)})
    from models.drift import build_reference

    ref = build_reference(train, {"p_late": rng.uniform(0, 1, 5000)})
    same = pd.DataFrame({"c_delay_mean": rng.normal(5, 2, 2000), "i_amount": rng.lognormal(7, 1, 2000)})
    moved = same.assign(c_delay_mean=same["c_delay_mean"] + 20)
    quiet = evaluate_drift(ref, same)
    loud = evaluate_drift(ref, moved, pd.DataFrame({"p_late": rng.uniform(0, 1, 2000)}))
    assert quiet["psi"].max() < 0.1
    top = loud.iloc[0]
    assert top["name"] == "c_delay_mean" and top["status"] == "major" and top["psi"] > 1
    assert top["words"] == "pays 5 days late on average → pays 25 days late on average"
    assert loud.set_index("name").loc["i_amount", "status"] == "stable"
    assert evaluate_drift(None, same).empty


# -- a stored run against the backtest -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return make_ledger(120, years=2, seed=5, end_date="2025-06-30")


@pytest.fixture(scope="module")
def model(ledger) -> EncaisseModel:
    cfg = load_config(QUICK_CONFIG)
    return EncaisseModel(**cfg.model.estimator_params()).fit(ledger.known_at(RUN_DAY), RUN_DAY)


def _store_run(engine, model, ledger, day, version="1", corrupt=False) -> str:
    scoring = build_scoring(model, ledger, day, invoice_flags=False)
    wl = scoring.worklist
    if corrupt:  # a model that got worse: risk ranking reversed, payment dates 60 days late
        wl = wl.assign(p_late=1.0 - wl["p_late"])
    run_id = save_scores(engine, wl, scoring.client_scores, as_of=day, model_version=version)
    fc = build_run_forecast(model, ledger, day, scoring.worklist)
    inv = fc.invoices
    if corrupt:
        inv = inv.assign(**{c: inv[c] + 60 for c in inv.columns if c.endswith("_days")})
    save_run_forecast(engine, run_id, fc.periods, inv)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory, model, ledger):
    url = f"sqlite:///{tmp_path_factory.mktemp('mon') / 'ledger.db'}"
    engine = open_store(url)
    _store_run(engine, model, ledger, RUN_DAY)
    yield engine
    engine.dispose()


def test_run_forecast_round_trips_through_the_store(store, model, ledger):
    run = list_score_runs(store).iloc[0].to_dict()
    fc = load_run_forecast(store, run["run_id"])
    again = build_run_forecast(model, ledger, RUN_DAY, load_run(store, run).invoices.assign(rank=np.nan))
    assert len(fc.periods) == 13 and fc.periods["period_start"].is_monotonic_increasing
    np.testing.assert_allclose(fc.periods["expected_amount"], again.periods["expected_amount"], rtol=1e-12)
    q = fc.invoices.set_index("invoice_id").reindex(again.invoices["invoice_id"])
    np.testing.assert_allclose(q["q50_days"], again.invoices["q50_days"].to_numpy(), rtol=1e-12)
    assert fc.invoices["rank"].notna().any() and fc.invoices["rank"].min() == 1


def test_a_forecast_started_from_the_scores_hook_equals_the_one_built_after_the_worklist(model, ledger):
    """run_score's order: the forecast is built from the scores build_scoring hands over before it
    plans and ranks, and the worklist's ranks are added afterwards."""
    seen = []
    scoring = build_scoring(model, ledger, RUN_DAY, invoice_flags=False,
                            on_scores=lambda scores, cdf: seen.append((scores, cdf)))
    [(scores, cdf)] = seen
    assert scores is scoring.scores and cdf is scoring.payment_cdf
    early = build_run_forecast(model, ledger.known_at(RUN_DAY), RUN_DAY, scored=(scores.copy(deep=False), cdf))
    assert early.invoices["rank"].isna().all()
    after = build_run_forecast(model, ledger, RUN_DAY, scoring.worklist, scored=(scores, cdf))
    ranked = with_ranks(early, scoring.worklist)
    pd.testing.assert_frame_equal(ranked.periods, after.periods, check_exact=True)
    pd.testing.assert_frame_equal(ranked.invoices, after.invoices, check_exact=True)
    assert list(ranked.invoices.columns[:2]) == ["invoice_id", "rank"]
    both = ranked.invoices.merge(scoring.worklist[["invoice_id", "rank"]], on="invoice_id", suffixes=("", "_wl"))
    assert len(both) == len(scoring.worklist) > 0 and (both["rank"] == both["rank_wl"]).all()


def test_monitored_run_equals_the_backtest_of_the_same_day_and_model(store, model, ledger):
    mon = build_monitoring(store, ledger, MONITOR_DAY)
    [run] = mon.runs
    known = ledger.known_at(RUN_DAY)
    es = build_evaluation_set(ledger, [RUN_DAY], MONITOR_DAY)
    bt = Backtest(as_of=RUN_DAY, end=MONITOR_DAY, model=model, evaluation_set=es,
                  predictions=predict_evaluation_set(model, known, es))
    expected = evaluate_backtest(ledger, RUN_DAY, MONITOR_DAY, backtest=bt)["model"]
    assert run["n_invoices"] == bt.n_open
    assert run["window_days"] == (MONITOR_DAY - RUN_DAY).days
    for k in COMPARED:
        assert expected[k] is not None, k
        assert run[k] == pytest.approx(expected[k], rel=1e-9, abs=1e-12), k
    assert run["calibration"] and sum(b["n"] for b in run["calibration"]) == run["n_risk"]
    assert run["weeks"] and all(w["low"] <= w["high"] for w in run["weeks"])


def test_a_run_is_not_judged_before_its_outcomes(store, ledger):
    mon = build_monitoring(store, ledger, RUN_DAY)
    assert mon.runs == []
    later = build_monitoring(store, ledger, RUN_DAY + pd.Timedelta(days=1))
    [run] = later.runs
    assert run["weeks"] == [] and run["weekly_wape"] is None  # no week fully observed yet


def test_retrain_alert_fires_when_realized_accuracy_drops(tmp_path, model, ledger):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        _store_run(engine, model, ledger, RUN_DAY, version="1")
        good = build_monitoring(engine, ledger, MONITOR_DAY).runs[0]
        validation = {v: {k: good[k] for k in ("auc_p_late", "brier_p_late", "mae_days", "interval_coverage")}
                      for v in ("1", "2")}
        quiet = build_monitoring(engine, ledger, MONITOR_DAY, model_version="1", validation=validation)
        assert quiet.alerts.empty
        _store_run(engine, model, ledger, RUN_DAY + pd.Timedelta(days=7), version="2", corrupt=True)
        loud = build_monitoring(engine, ledger, MONITOR_DAY, model_version="2", validation=validation)
    finally:
        engine.dispose()
    assert [v["model_version"] for v in loud.versions] == ["1", "2"]
    kinds = loud.alerts["kind"].tolist()
    assert set(kinds) == {"retrain_accuracy"}
    text = " ".join(loud.alerts["reason"])
    assert "AUC of P(late)" in text and "payment-date MAE" in text and "encaisse train --as-of 2025-06-30" in text
    # a margin wider than the drop keeps it quiet
    wide = MonitoringConfig(auc_drop=1, brier_rise=1, mae_rise_days=1000, coverage_drop=1)
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        assert build_monitoring(engine, ledger, MONITOR_DAY, model_version="2", validation=validation,
                                config=wide).alerts.empty
    finally:
        engine.dispose()


def _deteriorate(ledger: Ledger, after: pd.Timestamp, share: float = 0.5, days: int = 75) -> Ledger:
    """A group of clients pays ``days`` later on every invoice issued from ``after`` on."""
    clients = sorted(ledger.invoices["client_id"].unique())
    group = set(clients[: int(len(clients) * share)])
    inv = ledger.invoices.copy()
    hit = inv["client_id"].isin(group) & (inv["issue_date"] >= after) & inv["paid_date"].notna()
    inv.loc[hit, "paid_date"] = inv.loc[hit, "paid_date"] + pd.Timedelta(days=days)
    inv.loc[inv["paid_date"] >= pd.Timestamp("2025-07-01"), "paid_date"] = pd.NaT
    pay = ledger.payments.copy()
    if len(pay):
        moved = pay["invoice_id"].isin(set(inv.loc[hit, "invoice_id"]))
        pay.loc[moved, "paid_date"] = pay.loc[moved, "paid_date"] + pd.Timedelta(days=days)
        pay = pay[pay["paid_date"] < pd.Timestamp("2025-07-01")]
    return Ledger.from_frames(inv, payments=pay, clients=ledger.clients, actions=ledger.actions)


def test_drift_alert_fires_with_injected_drift_and_stays_quiet_without(tmp_path, model, ledger):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    day = pd.Timestamp("2025-04-28")
    try:
        quiet = build_monitoring(engine, ledger, day, model=model, model_version="1")
        drifted = build_monitoring(engine, _deteriorate(ledger, RUN_DAY - pd.Timedelta(days=120)), day, model=model,
                                   model_version="1")
    finally:
        engine.dispose()
    assert quiet.n_open > 50 and len(quiet.drift)
    assert (quiet.drift["psi"] >= 0.25).sum() < 3, quiet.drift.head(3)
    assert quiet.alerts.empty
    assert (drifted.drift["psi"] >= 0.25).sum() >= 3
    [alert] = drifted.alerts.itertuples()
    assert alert.kind == "retrain_drift" and "encaisse train" in alert.reason
    top = drifted.drift.iloc[0]
    assert top["words"] in alert.reason and top["train_mean"] != top["today_mean"]
    js = drifted.to_json()
    assert list(js) == ["as_of", "runs", "drift", "alerts"] and json.dumps(js)


# -- the command line ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_score_stores_the_forecast_and_monitor_reports_it(monkeypatch, tmp_path, _isolated_home):
    from typer.testing import CliRunner

    import models.registry
    import pipelines.monitor
    import pipelines.score
    from encaisse.cli import app
    from ledger.contracts import TABLES
    from ledger.staged_upsert import upsert_frame
    from models.registry import ChampionModel

    small = make_ledger(20, seed=3, end_date="2025-07-31")
    fitted = EncaisseModel(max_snapshots=16, snapshot_freq_days=28, hazard_params={"n_estimators": 40},
                           risk_params={"n_estimators": 40}).fit(small, "2025-06-01")

    for module in (models.registry, pipelines.monitor):
        monkeypatch.setattr(module, "load_champion", lambda settings: ChampionModel(fitted, "7", "run-abc", "2025-06-01"))
    engine = open_store(f"sqlite:///{_isolated_home / 'ledger.db'}")
    with engine.begin() as conn:
        for name in TABLES:
            upsert_frame(conn, name, getattr(small, name))
    runner = CliRunner()
    res = runner.invoke(app, ["score", "--as-of", "2025-06-01", "--json"])
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout.strip().splitlines()[-1])["run_id"]
    fc = load_run_forecast(engine, run_id)
    engine.dispose()
    assert len(fc.periods) == 13 and len(fc.invoices) == json.loads(res.stdout.strip().splitlines()[-1])["n_invoices"]

    res = runner.invoke(app, ["monitor", "--as-of", "2025-07-31", "--json", "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout.strip().splitlines()[-1])
    assert list(body) == ["as_of", "runs", "drift", "alerts"] and body["as_of"] == "2025-07-31"
    [run] = body["runs"]
    keys = {"run_id", "as_of", "model_version", "n_invoices", "auc_p_late", "brier_p_late", "mae_days", "bias_days",
            "interval_coverage", "weekly_wape", "weekly_band_coverage"}
    assert keys <= set(run) and run["run_id"] == run_id and run["model_version"] == "7"
    assert run["mae_days"] is not None and run["weekly_wape"] is not None
    assert body["drift"]["model_version"] == "7" and body["drift"]["rows"]
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "## Model v7 (1 runs" in report and "## Drift of today's" in report
    shown = runner.invoke(app, ["monitor", "--as-of", "2025-07-31"])
    assert shown.exit_code == 0 and "Stored runs judged on the outcomes known on 2025-07-31" in shown.stdout
    alerts = runner.invoke(app, ["alerts", "--as-of", "2025-07-31", "--json"])
    assert alerts.exit_code == 0, alerts.output


def test_a_run_stored_without_its_forecast_keeps_its_risk_figures(tmp_path, model, ledger):
    engine = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        scoring = build_scoring(model, ledger, RUN_DAY, invoice_flags=False)
        save_scores(engine, scoring.worklist, scoring.client_scores, as_of=RUN_DAY, model_version="1")
        [run] = build_monitoring(engine, ledger, MONITOR_DAY).runs
    finally:
        engine.dispose()
    assert run["auc_p_late"] is not None and run["brier_p_late"] is not None
    assert run["mae_days"] is None and run["capture_top10"] is None and run["weekly_wape"] is None
    assert run["weeks"] == []


def test_monitoring_thresholds_are_validated_with_the_training_config():
    from pipelines.config import ConfigError, parse_config

    assert parse_config({"monitoring": {"drift_psi": 0.3}}).monitoring.drift_psi == 0.3
    with pytest.raises(ConfigError, match="did you mean 'drift_psi'"):
        parse_config({"monitoring": {"drift_psy": 0.3}})
    with pytest.raises(ConfigError, match="monitoring.auc_drop"):
        parse_config({"monitoring": {"auc_drop": -1}})


def test_run_forecasts_round_trip_on_postgresql(pg_url, store):
    run = list_score_runs(store).iloc[0].to_dict()
    stored = load_run(store, run)
    fc = load_run_forecast(store, run["run_id"])
    engine = open_store(pg_url)
    try:
        run_id = save_scores(engine, stored.invoices, stored.clients, as_of=RUN_DAY, model_version="1")
        save_run_forecast(engine, run_id, fc.periods, fc.invoices)
        back = load_run_forecast(engine, run_id)
    finally:
        engine.dispose()
    pd.testing.assert_frame_equal(back.periods, fc.periods)
    pd.testing.assert_frame_equal(back.invoices.sort_values("invoice_id").reset_index(drop=True),
                                  fc.invoices.sort_values("invoice_id").reset_index(drop=True))
