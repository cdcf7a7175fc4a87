"""Hyperparameter search with Optuna on time-ordered validation folds.

Folds: as-of days D_k = D - k * ``tune.fold_step_days`` for k = n_folds - 1 .. 0 (oldest first).
On each, the model is fitted as of D_k and judged like ``encaisse train`` judges it: the invoices
open on the held-out last slice's snapshot days, outcomes up to D_k. The objective is the mean of
``tune.metric`` (lower is better; by default ``pinball_days``, the censoring-aware quantile score
of the payment-date distribution) over the folds; a trial whose running mean is worse
than the median of earlier trials at the same fold is pruned (``MedianPruner``), which skips its
later, more expensive folds. Training sets are built once per fold and shared by every trial
(the searched parameters do not change features).

The study is stored in the workspace (``optuna.db`` under ``settings.home_dir``) so a search can be
resumed; the best parameters are logged to MLflow and written as a config YAML for ``train --config``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import optuna
import pandas as pd

from ledger.contracts import Ledger
from ledger.workspace import Settings
from models.scorer import EncaisseModel
from models import registry
from pipelines.backtest import default_end
from pipelines.config import TrainingConfig, save_config
from pipelines.train import validation_days
from pipelines.validation import EvaluationSet, build_evaluation_set, evaluate_predictions, predict_evaluation_set

log = logging.getLogger(__name__)

Space = Callable[[optuna.Trial], dict]


def lgbm_space(trial: optuna.Trial, model: str, learning_rate: tuple[float, float],
               num_leaves: tuple[int, int]) -> dict:
    """LightGBM parameters of one model, suggested under ``<model>.<parameter>``; the two models differ
    only in their learning-rate and leaf ranges."""
    return {
        "n_estimators": trial.suggest_int(f"{model}.n_estimators", 100, 800, log=True),
        "learning_rate": trial.suggest_float(f"{model}.learning_rate", *learning_rate, log=True),
        "num_leaves": trial.suggest_int(f"{model}.num_leaves", *num_leaves, log=True),
        "min_child_samples": trial.suggest_int(f"{model}.min_child_samples", 20, 300, log=True),
        "colsample_bytree": trial.suggest_float(f"{model}.colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float(f"{model}.reg_lambda", 1e-3, 10.0, log=True),
    }


def hazard_space(trial: optuna.Trial) -> dict:
    """LightGBM parameters of the payment-date (hazard) model."""
    return lgbm_space(trial, "hazard", learning_rate=(0.02, 0.2), num_leaves=(15, 127))


def risk_space(trial: optuna.Trial) -> dict:
    """LightGBM parameters of the two risk classifiers."""
    return lgbm_space(trial, "risk", learning_rate=(0.01, 0.1), num_leaves=(7, 63))


@dataclass
class Fold:
    """One time-ordered fold: training day, shared training set, validation rows."""

    as_of: pd.Timestamp
    ledger: Ledger
    training_set: pd.DataFrame
    evaluation_set: EvaluationSet


@dataclass
class TuneResult:
    """What ``run_tuning`` found; ``to_json`` is the ``encaisse tune --json`` line."""

    study_name: str
    as_of: str
    n_trials: int
    n_complete: int
    n_pruned: int
    best_value: float
    best_metric: str
    hazard_params: dict
    risk_params: dict
    config_path: str
    run_id: str
    seconds: float

    def to_json(self) -> dict:
        return {k: (round(v, 2) if k == "seconds" else v) for k, v in self.__dict__.items()}


def build_folds(ledger: Ledger, as_of, config: TrainingConfig) -> list[Fold]:
    """The folds, oldest first (training sets built once)."""
    d = pd.Timestamp(as_of).normalize()
    base = EncaisseModel(**config.model.estimator_params())
    folds = []
    for k in range(config.tune.n_folds - 1, -1, -1):
        dk = d - pd.Timedelta(days=k * config.tune.fold_step_days)
        known = ledger.known_at(dk)
        ts = base.build_training_set(known, dk)
        es = build_evaluation_set(known, validation_days(ts, dk, config.model.hazard_holdout_days), dk)
        folds.append(Fold(as_of=dk, ledger=known, training_set=ts, evaluation_set=es))
    return folds


def build_objective(folds: list[Fold], config: TrainingConfig, spaces: tuple[Space, Space] = (hazard_space, risk_space)):
    """The Optuna objective: mean primary metric over the folds, pruned between folds."""
    metric = config.tune.metric
    h_space, r_space = spaces

    def objective(trial: optuna.Trial) -> float:
        h = {**(config.model.hazard_params or {}), **h_space(trial)}
        r = {**(config.model.risk_params or {}), **r_space(trial)}
        trial.set_user_attr("hazard_params", h)
        trial.set_user_attr("risk_params", r)
        params = {**config.model.estimator_params(), "hazard_params": h, "risk_params": r}
        values, aucs = [], []
        for step, fold in enumerate(folds):
            model = EncaisseModel(**params).fit(fold.ledger, fold.as_of, training_set=fold.training_set)
            res = evaluate_predictions(predict_evaluation_set(model, fold.ledger, fold.evaluation_set), fold.evaluation_set)
            if res.get(metric) is None:
                raise optuna.TrialPruned(f"{metric} undefined on fold {fold.as_of.date()}")
            values.append(res[metric])
            if res.get("auc_p_late") is not None:
                aucs.append(res["auc_p_late"])
            trial.report(sum(values) / len(values), step)
            if step < len(folds) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
        if aucs:
            trial.set_user_attr("auc_p_late", sum(aucs) / len(aucs))
        return sum(values) / len(values)

    return objective


def study_storage(settings: Settings) -> str:
    """The Optuna storage URL: a SQLite file in the workspace."""
    return f"sqlite:///{settings.home_dir / 'optuna.db'}"


def run_tuning(settings: Settings, config: TrainingConfig, n_trials: int, ledger: Ledger, as_of=None,
               timeout: float | None = None, spaces: tuple[Space, Space] = (hazard_space, risk_space),
               out: str | Path | None = None) -> TuneResult:
    """Search, log the best parameters to MLflow and write them as a training config YAML.

    Args:
        settings: the workspace (Optuna storage, MLflow).
        config: the base configuration; the search overrides its LightGBM parameters.
        n_trials: trials to run (added to an existing study of the same name).
        ledger: the ledger (each fold sees only what was known at its day).
        as_of: the last fold's day (default: the day after the last date in the ledger).
        timeout: stop starting trials after this many seconds.
        spaces: (hazard_space, risk_space) functions.
        out: where to write the tuned config (default ``<home>/tuned/<study>.yaml``).
    """
    t0 = time.perf_counter()
    d = pd.Timestamp(as_of).normalize() if as_of is not None else default_end(ledger)
    folds = build_folds(ledger, d, config)
    name = f"{config.experiment}-{d.date()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=study_storage(settings), direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=config.tune.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    study.optimize(build_objective(folds, config, spaces), n_trials=n_trials, timeout=timeout)
    states = [t.state for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"No trial of study {name!r} completed ({len(study.trials)} trials); see the log.")
    best = study.best_trial
    tuned = config.with_model(hazard_params=best.user_attrs["hazard_params"], risk_params=best.user_attrs["risk_params"])
    path = Path(out) if out is not None else settings.home_dir / "tuned" / f"{name}.yaml"
    save_config(tuned, path)

    exp_id = registry.ensure_experiment(settings, config.experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"tune-{d.date()}") as run:
        mlflow.log_params({"as_of": str(d.date()), "n_folds": config.tune.n_folds, "study": name,
                           **{f"best.{k}": v for k, v in best.params.items()}})
        mlflow.log_metrics({f"best_{config.tune.metric}": best.value,
                            "n_trials": len(study.trials),
                            "n_pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states)})
        if "auc_p_late" in best.user_attrs:
            mlflow.log_metric("best_auc_p_late", best.user_attrs["auc_p_late"])
        mlflow.log_text(tuned.to_yaml(), "tuned_config.yaml")
        mlflow.set_tags({"kind": "tune", "optuna.study": name, "optuna.storage": study_storage(settings)})
    return TuneResult(
        study_name=name, as_of=str(d.date()), n_trials=len(study.trials), n_complete=len(complete),
        n_pruned=sum(s == optuna.trial.TrialState.PRUNED for s in states), best_value=float(best.value),
        best_metric=config.tune.metric, hazard_params=best.user_attrs["hazard_params"],
        risk_params=best.user_attrs["risk_params"], config_path=str(path), run_id=run.info.run_id,
        seconds=time.perf_counter() - t0,
    )
