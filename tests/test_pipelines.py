"""Pipelines: config validation, backtest (keys, leakage, report), tuning, and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from encaisse.cli import app
from features.invoices import open_invoices
from ledger.contracts import Ledger
from ledger.synth import make_ledger, write_ledger
from ledger.workspace import Settings
from pipelines.backtest import build_backtest, default_end, evaluate_backtest, save_backtest_report
from pipelines.config import DEFAULT_CONFIG, QUICK_CONFIG, ConfigError, load_config, parse_config
from pipelines.tune import run_tuning, study_storage
from pipelines.validation import METRICS

CASH_METRICS = ("weekly_wape", "weekly_band_coverage")
AS_OF = "2025-04-01"
runner = CliRunner()


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return make_ledger(30, years=2, seed=5, end_date="2025-06-30")


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def _ingest(ledger: Ledger, folder: Path, home: Path) -> None:
    paths = write_ledger(ledger, folder)
    for path in paths.values():
        res = runner.invoke(app, ["ingest", str(path), "--home", str(home)])
        assert res.exit_code == 0, res.output


# -- config ---------------------------------------------------------------------------------------


def test_packaged_configs_load_and_round_trip(tmp_path):
    for path in (DEFAULT_CONFIG, QUICK_CONFIG):
        cfg = load_config(path)
        again = tmp_path / "again.yaml"
        again.write_text(cfg.to_yaml())
        assert load_config(again) == cfg
    assert load_config() == load_config(DEFAULT_CONFIG)


def test_bin_edges_reach_the_payment_date_model():
    from models.hazard import DEFAULT_EDGES
    from models.scorer import EncaisseModel
    assert load_config().model.bin_edges == DEFAULT_EDGES
    params = parse_config({"model": {"bin_edges": [-30, 0, 30, 90]}}, "my.yaml").model.estimator_params()
    assert EncaisseModel(**params).bin_edges == (-30, 0, 30, 90)


@pytest.mark.parametrize("data, words", [
    ({"model": {"snapshot_freq_dayz": 14}}, ["model.snapshot_freq_dayz", "unknown key", "snapshot_freq_days"]),
    ({"validaton": {}}, ["validaton", "did you mean 'validation'"]),
    ({"model": {"hazard_params": {"n_estimator": 40}}}, ["hazard_params", "n_estimator", "'n_estimators'"]),
    ({"model": {"risk_params": {"random_state": 1}}}, ["risk_params", "model.random_state"]),
    ({"model": {"snapshot_freq_days": 0}}, ["model.snapshot_freq_days", "greater than or equal to 1"]),
    ({"validation": {"primary_metric": "auc"}}, ["validation.primary_metric", "'mae_days'"]),
    ({"model": {"hazard_holdout_days": 7, "snapshot_freq_days": 14}}, ["hazard_holdout_days (7)"]),
    ({"model": {"label_window_days": 30}}, ["label_window_days (30)", "hazard_holdout_days (42)"]),
    ({"tune": {"n_folds": 1}}, ["tune.n_folds", "greater than or equal to 2"]),
    ({"model": {"payment_options": {"refit": True}}}, ["model.payment_options.refit", "unknown key"]),
    ({"model": {"payment_options": {"calibration_strength": [1.5]}}}, ["calibration_strength", "between 0 and 1"]),
    ({"model": {"payment_options": {"calibration_groups": [0], "calibration_strength": [1, 1, 1]}}},
     ["calibration_strength holds 3 values for 2 calibration groups"]),
    ({"model": {"bin_edges": [0, 7, 30]}}, ["model.bin_edges", "before the due date"]),
    ({"model": {"bin_edges": [-7, 30, 14]}}, ["model.bin_edges", "increasing"]),
])
def test_config_errors_name_the_key(data, words):
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "my.yaml")
    msg = str(exc.value)
    assert msg.startswith("Invalid training configuration my.yaml")
    for w in words:
        assert w in msg


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_rejects_a_config_typo_before_any_work(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("model:\n  max_snapshot: 8\n")
    for cmd in (["train", "--as-of", AS_OF], ["backtest", "--as-of", AS_OF], ["tune", "--trials", "1"]):
        res = runner.invoke(app, [*cmd, "--config", str(bad)])
        assert res.exit_code == 2, res.output
        assert "model.max_snapshot: unknown key (did you mean 'max_snapshots'?)" in res.output


# -- backtest -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backtest(ledger, quick_config):
    return build_backtest(ledger, AS_OF, None, quick_config)


def test_backtest_metrics_shape(backtest, ledger, quick_config):
    res = evaluate_backtest(ledger, AS_OF, None, quick_config, backtest=backtest)
    assert list(res) == ["as_of", "n_open", "model", "baselines"]
    assert res["as_of"] == AS_OF
    assert res["n_open"] == len(open_invoices(ledger.known_at(AS_OF), AS_OF)) > 0
    assert list(res["baselines"]) == ["historical_rate", "due_date", "client_median_delay", "static_ranking"]
    assert list(res["model"]) == [*METRICS, *CASH_METRICS, "capture_top10"]
    assert list(res["baselines"]["historical_rate"]) == list(METRICS)
    for name in ("due_date", "client_median_delay"):
        assert list(res["baselines"][name]) == [*METRICS, *CASH_METRICS]
        assert res["baselines"][name]["weekly_band_coverage"] is None  # a schedule has no band
        assert res["baselines"][name]["weekly_wape"] > 0
    assert list(res["baselines"]["static_ranking"]) == ["capture_top10"]
    assert all(res["model"][k] is not None for k in res["model"])
    assert 0 <= res["model"]["weekly_band_coverage"] <= 1 and 0 <= res["model"]["capture_top10"] <= 1
    assert res["baselines"]["historical_rate"]["mae_days"] is None
    assert backtest.end == default_end(ledger) == pd.Timestamp("2025-07-01")


def test_backtest_ignores_everything_dated_after_as_of(backtest, ledger, quick_config):
    """Leakage: removing or altering what happened after D changes no forecast and no figure."""
    d = pd.Timestamp(AS_OF)
    inv = ledger.invoices
    later = inv["issue_date"] >= d
    altered = inv[~later].copy()
    # Invoices issued after D are gone; later payments and actions are gone; only the payment days
    # of the invoices open at D (their outcomes) remain after D.
    open_at_d = set(open_invoices(ledger.known_at(d), d)["invoice_id"])
    outcome = ledger.payments["invoice_id"].isin(open_at_d)  # payments of open invoices are outcomes
    trimmed = Ledger(invoices=altered.reset_index(drop=True),
                     payments=ledger.payments[(ledger.payments["paid_date"] < d) | outcome].copy(),
                     clients=ledger.clients.copy(),
                     actions=ledger.actions[ledger.actions["action_date"] < d].copy())
    end = backtest.end
    other = build_backtest(trimmed, AS_OF, end, quick_config)
    pd.testing.assert_frame_equal(other.predictions, backtest.predictions)
    assert evaluate_backtest(trimmed, AS_OF, end, quick_config, backtest=other) == \
        evaluate_backtest(ledger, AS_OF, end, quick_config, backtest=backtest)


def test_backtest_outcomes_stop_at_end(backtest, ledger, quick_config):
    """A shorter outcome window censors more invoices (a sanity check that --end is honoured)."""
    short = evaluate_backtest(ledger, AS_OF, "2025-05-01", quick_config)
    assert short["n_open"] == backtest.n_open
    c = backtest.evaluation_set.truth["censor_days"].iloc[0]
    assert c == (backtest.end - pd.Timestamp(AS_OF)).days


def test_backtest_report(backtest, ledger, quick_config, tmp_path):
    res = evaluate_backtest(ledger, AS_OF, None, quick_config, backtest=backtest)
    path = save_backtest_report(backtest, res, tmp_path / "rep")
    text = path.read_text()
    assert "## Censoring" in text and "min(T, C)" in text
    for png in ("calibration_p_late.png", "payment_date_error.png", "coverage_by_days_to_due.png", "pit_histogram.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
        assert f"]({png})" in text


def test_cli_backtest_json_and_train(tmp_path, ledger):
    home = tmp_path / "home"
    _ingest(ledger, tmp_path / "csv", home)
    res = runner.invoke(app, ["backtest", "--as-of", AS_OF, "--config", str(QUICK_CONFIG), "--home", str(home),
                              "--json", "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    got = _last_json(res.stdout)
    assert list(got) == ["as_of", "n_open", "model", "baselines", "buckets", "calibration"]
    assert set(got["baselines"]) == {"historical_rate", "due_date", "client_median_delay", "static_ranking"}
    assert all(set(METRICS) <= set(got[k] if k == "model" else got["baselines"][k])
               for k in ("model", "historical_rate", "due_date", "client_median_delay"))
    assert {"weekly_wape", "weekly_band_coverage", "capture_top10"} <= set(got["model"])
    assert 0.5 < got["model"]["auc_p_very_late"] <= 1 and got["baselines"]["due_date"]["auc_p_very_late"] is None
    assert (tmp_path / "rep" / "report.md").is_file()
    # The table for a reader: every forecaster's row, the worklist's static ranking too (it has one metric).
    res = runner.invoke(app, ["backtest", "--as-of", AS_OF, "--config", str(QUICK_CONFIG), "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert "auc_p_very_late" in res.stdout and "static_ranking" in res.stdout

    res = runner.invoke(app, ["train", "--as-of", "2025-05-01", "--config", str(QUICK_CONFIG), "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    first = _last_json(res.stdout)
    assert {"run_id", "version", "promoted", "reason", "metrics", "seconds"} <= set(first)
    assert first["promoted"] is True and first["version"] == "1"
    assert set(METRICS) <= set(first["metrics"])
    res = runner.invoke(app, ["train", "--as-of", "2025-05-01", "--config", str(QUICK_CONFIG), "--home", str(home),
                              "--json", "--force"])
    second = _last_json(res.stdout)
    assert second["promoted"] is True and second["reason"].startswith("forced") and second["version"] == "2"
    from models.registry import get_champion_version

    assert get_champion_version(Settings(home=home)) == "2"


def test_cli_train_on_an_empty_store_fails_cleanly(tmp_path):
    res = runner.invoke(app, ["train", "--as-of", AS_OF, "--home", str(tmp_path / "empty")])
    assert res.exit_code == 1
    assert "no invoice issued before 2025-04-01" in res.output
    res = runner.invoke(app, ["train", "--as-of", "2025-13-01"])
    assert res.exit_code == 2 and "--as-of must be a date" in res.output


def test_extra_attributes_the_invoices_lack_are_an_error_before_training(ledger):
    from models.scorer import EncaisseModel

    with pytest.raises(ValueError, match="do not have: nosuchcol. Map them as `extra:`"):
        EncaisseModel(extra_attributes=("nosuchcol",)).build_training_set(ledger, AS_OF)


# -- tune -----------------------------------------------------------------------------------------


def _tiny_hazard(trial):
    return {"n_estimators": trial.suggest_int("hazard.n_estimators", 5, 30), "n_jobs": 1}


def _tiny_risk(trial):
    return {"num_leaves": trial.suggest_int("risk.num_leaves", 4, 15), "n_jobs": 1}


def test_tune_writes_a_config_train_can_use(tmp_path, ledger, quick_config):
    settings = Settings(home=tmp_path / "home")
    res = run_tuning(settings, quick_config, 3, ledger, as_of="2025-05-01", spaces=(_tiny_hazard, _tiny_risk))
    assert res.n_trials == 3 and res.n_complete + res.n_pruned == 3
    tuned = load_config(res.config_path)
    assert tuned.model.hazard_params == res.hazard_params
    assert 5 <= tuned.model.hazard_params["n_estimators"] <= 30
    assert tuned.model.snapshot_freq_days == quick_config.model.snapshot_freq_days
    study = optuna.load_study(study_name=res.study_name, storage=study_storage(settings))
    assert study.best_value == pytest.approx(res.best_value)
    assert Path(study_storage(settings).removeprefix("sqlite:///")).parent == settings.home_dir
    from models.registry import configure_mlflow

    run = configure_mlflow(settings).get_run(res.run_id)
    assert res.best_metric == "pinball_days"
    assert run.data.metrics[f"best_{quick_config.tune.metric}"] == pytest.approx(res.best_value)
    assert yaml.safe_load(Path(res.config_path).read_text())["model"]["risk_params"] == res.risk_params
