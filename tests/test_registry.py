"""Train -> register -> load_champion -> score on a small synthetic ledger; parity; champion alias rules."""

from __future__ import annotations

import pandas as pd
import pytest

from ledger.contracts import Ledger
from ledger.synth import make_ledger
from ledger.workspace import Settings
from models import registry
from pipelines.config import ValidationConfig
from pipelines.train import decide_promotion, run_training

AS_OF = "2025-05-01"


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return make_ledger(30, years=2, seed=3, end_date="2025-06-30")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ledger, quick_config):
    """A workspace with one trained, registered, promoted model (and the in-memory result)."""
    settings = Settings(home=tmp_path_factory.mktemp("ws"))
    return settings, run_training(settings, AS_OF, quick_config, ledger=ledger)


def test_first_model_is_registered_and_promoted(trained):
    settings, result = trained
    assert result.promoted and result.reason == "no champion yet"
    assert registry.get_champion_version(settings) == result.version
    champ = registry.load_champion(settings)
    assert (champ.version, champ.run_id, champ.as_of) == (result.version, result.run_id, AS_OF)
    assert champ.metrics["val_mae_days"] == pytest.approx(result.metrics["mae_days"])
    assert champ.metrics["val_auc_p_late"] == pytest.approx(result.metrics["auc_p_late"])
    assert "val_client_median_delay_mae_days" in champ.metrics


def test_batch_parity_champion_scores_equal_in_memory(trained, ledger):
    settings, result = trained
    champ = registry.load_champion(settings)
    for day in (AS_OF, "2025-06-15"):
        pd.testing.assert_frame_equal(champ.model.score(ledger, day), result.model.score(ledger, day))


def test_pyfunc_parity_stateless_predict(trained, ledger):
    """The pyfunc as any MLflow caller loads it scores canonical invoice rows like the in-memory model."""
    settings, result = trained
    pyfunc = registry.load_pyfunc(settings)
    invoices = ledger.invoices[ledger.invoices["client_id"].isin(ledger.invoices["client_id"].unique()[:12])]
    got = pyfunc.predict(invoices, params={"as_of": AS_OF})
    want = result.model.score(Ledger.from_frames(invoices), AS_OF)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
    with pytest.raises(ValueError, match="as_of"):
        pyfunc.predict(invoices)


def test_load_model_version_and_missing(trained, tmp_path):
    settings, result = trained
    assert registry.load_model_version(settings, result.version).run_id == result.run_id
    with pytest.raises(LookupError, match="no version 99"):
        registry.load_model_version(settings, 99)
    with pytest.raises(registry.NoChampionError, match="encaisse train"):
        registry.load_champion(Settings(home=tmp_path / "empty"))


def test_experiment_artifacts_are_absolute_under_the_workspace(trained):
    settings, result = trained
    client = registry.configure_mlflow(settings)
    exp = client.get_experiment(client.get_run(result.run_id).info.experiment_id)
    assert exp.artifact_location.startswith(settings.artifact_dir.as_uri())
    arts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "training_report.json", "plots"} <= arts
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert plots == {"plots/calibration_p_late.png", "plots/pit_histogram.png"}


def test_champion_moves_only_when_better_or_forced(tmp_path, ledger, quick_config):
    settings = Settings(home=tmp_path / "ws")
    # Weak payment-date model, same risk models (so the AUC guard sees equal AUCs).
    weak = quick_config.with_model(hazard_params={"n_estimators": 1, "learning_rate": 0.001, "n_jobs": 1, "verbose": -1})
    first = run_training(settings, AS_OF, weak, ledger=ledger)
    assert first.promoted

    # A better model takes the alias; the reported figures say why.
    better = run_training(settings, AS_OF, quick_config, ledger=ledger)
    assert better.champion_metrics["mae_days"] > better.metrics["mae_days"]
    assert better.promoted, better.reason
    assert registry.get_champion_version(settings) == better.version

    # The same model again is not better than itself: the alias stays.
    same = run_training(settings, AS_OF, quick_config, ledger=ledger)
    assert same.metrics["mae_days"] == pytest.approx(same.champion_metrics["mae_days"])
    assert not same.promoted and "does not beat" in same.reason
    assert registry.get_champion_version(settings) == better.version

    # --force moves it anyway.
    forced = run_training(settings, AS_OF, quick_config, ledger=ledger, force=True)
    assert forced.promoted and forced.reason.startswith("forced")
    assert registry.get_champion_version(settings) == forced.version


@pytest.mark.parametrize("challenger, champion, n_rows, force, promoted, words", [
    ({"mae_days": 10.0, "auc_p_late": 0.80}, None, 100, False, True, "no champion"),
    ({"mae_days": 10.0, "auc_p_late": 0.80}, {"mae_days": 11.0, "auc_p_late": 0.80}, 100, False, True, "beats"),
    ({"mae_days": 11.0, "auc_p_late": 0.90}, {"mae_days": 11.0, "auc_p_late": 0.80}, 100, False, False, "does not beat"),
    ({"mae_days": 10.0, "auc_p_late": 0.70}, {"mae_days": 11.0, "auc_p_late": 0.80}, 100, False, False, "auc_p_late"),
    ({"mae_days": 10.0, "auc_p_late": 0.795}, {"mae_days": 11.0, "auc_p_late": 0.80}, 100, False, True, "beats"),
    ({"mae_days": 10.0, "auc_p_late": 0.80}, {"mae_days": 11.0, "auc_p_late": 0.80}, 5, False, False, "min_rows"),
    ({"mae_days": 12.0, "auc_p_late": 0.50}, {"mae_days": 11.0, "auc_p_late": 0.80}, 5, True, True, "forced"),
])
def test_decide_promotion(challenger, champion, n_rows, force, promoted, words):
    got, reason = decide_promotion(challenger, champion, ValidationConfig(min_rows=20), n_rows, force)
    assert got is promoted and words in reason


def test_decide_promotion_on_brier_and_unscorable_champion():
    cfg = ValidationConfig(primary_metric="brier_p_late", min_improvement=0.01)
    assert not decide_promotion({"brier_p_late": 0.195}, {"brier_p_late": 0.20}, cfg, 100)[0]
    assert decide_promotion({"brier_p_late": 0.18}, {"brier_p_late": 0.20}, cfg, 100)[0]
    ok, reason = decide_promotion({"brier_p_late": 0.1}, None, cfg, 100, champion_error="KeyError: 'x'")
    assert not ok and "could not be scored" in reason
