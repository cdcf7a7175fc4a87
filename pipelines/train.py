"""Train, validate, log, register and (maybe) promote an ``EncaisseModel`` as of a day D.

Steps: ``load_known_ledger`` -> ``validate_ledger`` -> ``build_training_set`` -> ``fit`` ->
``evaluate_validation`` -> ``log_run`` -> ``promote``; ``run_training`` chains them.

Time-ordered only. The ledger is loaded as known at the start of D: nothing dated on or after D is
read, by training or by validation.

Validation = the latest period: the invoices open on the snapshot days of the model's held-out
last slice (snapshot days after D - ``hazard_holdout_days``), outcomes observed up to D and
truncated there (``models.evaluation``). The risk models never saw those days (their labels stop
at D - ``label_window_days``); the payment-date model used them for early stopping and
recalibration only, so its validation figures are slightly optimistic. The baselines are judged on
the same rows.

Promotion: the current champion (frozen, as registered) is scored on the challenger's validation
rows. The challenger takes the ``champion`` alias when its ``validation.primary_metric`` (default
``mae_days``, lower is better) beats the champion's by more than ``validation.min_improvement``
and its ``auc_p_late`` is not more than ``validation.auc_tolerance`` below the champion's (the AUC
guard). The first model is promoted; ``force`` promotes regardless. A champion trained as of a
later day than D may have seen the validation outcomes: the comparison is then not fair, which
the reason says.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from ledger.contracts import Ledger
from ledger.reader import load_ledger
from ledger.engine import open_store
from ledger.workspace import Settings
from models.scorer import EncaisseModel
from models import registry
from pipelines import plots
from pipelines.config import TrainingConfig, ValidationConfig
from pipelines.validation import (
    BASELINES, EvaluationSet, build_evaluation_set, evaluate_baselines, evaluate_predictions,
    predict_evaluation_set, risk_outcomes,
)

log = logging.getLogger(__name__)

STEPS = ("load_known_ledger", "validate_ledger", "build_training_set", "fit", "evaluate_validation", "log_run", "promote",
         "compile_trees")


class LedgerError(ValueError):
    """The ledger cannot train a model as of the requested day."""


@dataclass
class Validation:
    """The validation of a fitted model on the latest period.

    Attributes:
        evaluation_set: the rows, their outcomes and the baselines' forecasts.
        predictions: the challenger's forecasts (``FORECAST_COLUMNS`` and ``pit``).
        model: the challenger's metrics; ``baselines``: name -> metrics.
        champion: the champion's metrics on the same rows (None: no champion, or not scored).
        champion_version: its registry version; ``champion_as_of``: its training day.
        champion_error: why the champion could not be scored, if it could not.
    """

    evaluation_set: EvaluationSet
    predictions: pd.DataFrame
    model: dict
    baselines: dict[str, dict]
    champion: dict | None = None
    champion_version: str | None = None
    champion_as_of: str | None = None
    champion_error: str | None = None

    @property
    def n_rows(self) -> int:
        return len(self.evaluation_set.rows)


@dataclass
class TrainResult:
    """What ``run_training`` did; ``to_json`` is the ``encaisse train --json`` line."""

    run_id: str
    version: str
    promoted: bool
    reason: str
    as_of: str
    metrics: dict
    baselines: dict
    champion_metrics: dict | None
    seconds: float
    training_report: dict = field(default_factory=dict)
    model: EncaisseModel | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "version": self.version, "promoted": self.promoted, "reason": self.reason,
                "as_of": self.as_of, "metrics": self.metrics, "baselines": self.baselines,
                "champion_metrics": self.champion_metrics, "seconds": round(self.seconds, 2)}


# -- steps ---------------------------------------------------------------------------------------


def load_known_ledger(settings: Settings, as_of) -> Ledger:
    """The stored ledger as known at the start of ``as_of`` (nothing later is read)."""
    engine = open_store(settings.store_url)
    try:
        return load_ledger(engine, as_of=pd.Timestamp(as_of))
    finally:
        engine.dispose()


def validate_ledger(ledger: Ledger, as_of) -> None:
    """Raise ``LedgerError`` when the ledger cannot train a model as of ``as_of``."""
    d = pd.Timestamp(as_of)
    inv = ledger.invoices
    inv = inv[(inv["doc_type"] == "invoice") & (inv["issue_date"] < d)]
    if inv.empty:
        raise LedgerError(f"The ledger holds no invoice issued before {d.date()}; load some with `encaisse ingest` "
                          f"or train as of a later date.")
    n_paid = int((inv["paid_date"] < d).sum())
    if n_paid == 0:
        raise LedgerError(f"None of the {len(inv)} invoices issued before {d.date()} was paid before it: there is no "
                          f"payment behaviour to learn from. Train as of a later date.")
    bad = inv[inv["due_date"] < inv["issue_date"]]
    if len(bad):
        raise LedgerError(f"{len(bad)} invoices have due_date before issue_date, e.g. "
                          f"{', '.join(bad['invoice_id'].astype(str).head(5))}; fix them in the source and re-ingest.")


def build_estimator(config: TrainingConfig) -> EncaisseModel:
    """An unfitted ``EncaisseModel`` with the configuration's parameters."""
    return EncaisseModel(**config.model.estimator_params())


def fit(model: EncaisseModel, ledger: Ledger, as_of, training_set: pd.DataFrame | None = None) -> EncaisseModel:
    """Fit ``model`` as of ``as_of`` (on ``training_set`` when given)."""
    return model.fit(ledger, as_of, training_set=training_set)


def validation_days(training_set: pd.DataFrame, as_of, holdout_days: int) -> list[pd.Timestamp]:
    """The snapshot days of the held-out last slice: after ``as_of - holdout_days``."""
    cut = pd.Timestamp(as_of) - pd.Timedelta(days=holdout_days)
    days = sorted(pd.Timestamp(d) for d in training_set["as_of"].unique() if pd.Timestamp(d) > cut)
    if not days:
        raise LedgerError(f"No snapshot day after {cut.date()}: the validation period is empty.")
    return days


def evaluate_validation(model: EncaisseModel, ledger: Ledger, as_of, days, champion: registry.ChampionModel | None = None) -> Validation:
    """Metrics of ``model``, the baselines and the champion on the invoices open on ``days``, outcomes to ``as_of``."""
    es = build_evaluation_set(ledger, days, as_of)
    pred = predict_evaluation_set(model, ledger, es)
    val = Validation(evaluation_set=es, predictions=pred, model=evaluate_predictions(pred, es),
                     baselines=evaluate_baselines(es))
    if champion is not None:
        val.champion_version, val.champion_as_of = champion.version, champion.as_of
        try:
            val.champion = evaluate_predictions(predict_evaluation_set(champion.model, ledger, es), es)
        except Exception as exc:  # noqa: BLE001 - an old champion that cannot score must not block training
            log.warning("champion v%s could not be scored on the validation rows: %s", champion.version, exc)
            val.champion_error = f"{type(exc).__name__}: {exc}"
    return val


def decide_promotion(challenger: dict, champion: dict | None, cfg: ValidationConfig, n_rows: int,
                     force: bool = False, champion_error: str | None = None) -> tuple[bool, str]:
    """Whether the challenger takes the ``champion`` alias, and why (see the module docstring)."""
    pm = cfg.primary_metric
    if force:
        return True, "forced (--force)"
    if n_rows < cfg.min_rows:
        return False, f"only {n_rows} validation rows (< validation.min_rows = {cfg.min_rows})"
    if champion_error is not None:
        return False, f"the champion could not be scored on the validation rows ({champion_error}); use --force"
    if champion is None:
        return True, "no champion yet"
    new, old = challenger.get(pm), champion.get(pm)
    if new is None:
        return False, f"the challenger has no {pm} on the validation rows"
    if old is None:
        return True, f"the champion has no {pm} on the validation rows"
    if not old - new > cfg.min_improvement:
        return False, f"{pm} {new:.4f} does not beat the champion's {old:.4f} by more than {cfg.min_improvement}"
    a_new, a_old = challenger.get("auc_p_late"), champion.get("auc_p_late")
    if a_new is not None and a_old is not None and a_new < a_old - cfg.auc_tolerance:
        return False, (f"{pm} {new:.4f} beats the champion's {old:.4f} but auc_p_late {a_new:.4f} is more than "
                       f"{cfg.auc_tolerance} below the champion's {a_old:.4f}")
    auc = f"; auc_p_late {a_new:.4f} vs {a_old:.4f}" if a_new is not None and a_old is not None else ""
    return True, f"{pm} {new:.4f} beats the champion's {old:.4f}{auc}"


def _flat_params(config: TrainingConfig, as_of, report: dict) -> dict:
    out = {"as_of": str(pd.Timestamp(as_of).date()), "experiment": config.experiment}
    for k, v in config.model.model_dump().items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = json.dumps(list(v)) if isinstance(v, tuple) else v
    out.update({f"validation.{k}": v for k, v in config.validation.model_dump().items()})
    out.update({f"monitoring.{k}": v for k, v in config.monitoring.model_dump().items()})
    out.update({f"report.{k}": v for k, v in report.items()})
    return out


def _metric_items(prefix: str, metrics: dict | None) -> dict:
    return {f"{prefix}{k}": float(v) for k, v in (metrics or {}).items()
            if v is not None and np.isfinite(float(v))}


def save_validation_plots(val: Validation, out_dir: Path) -> list[Path]:
    """Calibration curve of p_late and PIT histogram of the payment day, on the validation rows."""
    m = risk_outcomes(val.evaluation_set)
    y = val.evaluation_set.truth["y_late"].to_numpy()[m]
    curves = {"model": (y, val.predictions["p_late"].to_numpy()[m]),
              "historical_rate": (y, val.evaluation_set.baselines["historical_rate"]["p_late"].to_numpy()[m])}
    return [plots.save_calibration_curve(curves, out_dir / "calibration_p_late.png",
                                         title="Calibration of p_late (validation)"),
            plots.save_pit_histogram(val.predictions["pit"], out_dir / "pit_histogram.png")]


def log_run(settings: Settings, config: TrainingConfig, as_of, model: EncaisseModel, val: Validation,
            decision: tuple[bool, str]) -> tuple[str, str]:
    """Log params, metrics, report, plots and the model; register it. Returns (run_id, version)."""
    exp_id = registry.ensure_experiment(settings, config.experiment)
    report = asdict(model.training_report_)
    day = str(pd.Timestamp(as_of).date())
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{day}") as run:
        mlflow.log_params(_flat_params(config, as_of, report))
        metrics = {"val_n_rows": float(val.n_rows), **_metric_items("val_", val.model)}
        for name in BASELINES:
            metrics.update(_metric_items(f"val_{name}_", val.baselines[name]))
        metrics.update(_metric_items("val_champion_", val.champion))
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "training_report.json")
        mlflow.log_text(config.to_yaml(), "config.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            for p in save_validation_plots(val, Path(tmp)):
                mlflow.log_artifact(str(p), "plots")
        mlflow.set_tags({"as_of": day, "promotion.candidate": str(decision[0]).lower(),
                         "promotion.reason": decision[1],
                         "validation.days": ",".join(str(d.date()) for d in val.evaluation_set.days),
                         "champion.version": val.champion_version or ""})
        info = registry.log_model(model, registered_model_name=settings.model_name)
        version = str(info.registered_model_version)
    client = registry.configure_mlflow(settings)
    client.set_model_version_tag(settings.model_name, version, "as_of", day)
    for k in ("mae_days", "auc_p_late"):
        if val.model.get(k) is not None:
            client.set_model_version_tag(settings.model_name, version, f"val_{k}", f"{val.model[k]:.4f}")
    return run.info.run_id, version


def promote(settings: Settings, version: str, decision: tuple[bool, str]) -> bool:
    """Move the ``champion`` alias to ``version`` when the decision says so; return whether it moved."""
    promoted, reason = decision
    if promoted:
        registry.set_champion(settings, version)
        log.info("model %s v%s is the champion: %s", settings.model_name, version, reason)
    else:
        log.info("model %s v%s not promoted: %s", settings.model_name, version, reason)
    return promoted


# -- the pipeline ----------------------------------------------------------------------------------


def run_training(settings: Settings, as_of, config: TrainingConfig, force: bool = False,
                 ledger: Ledger | None = None, on_step: Callable[[str], None] | None = None) -> TrainResult:
    """Run every step as of ``as_of``.

    Args:
        settings: the workspace (store, MLflow).
        as_of: the training day D: nothing dated on or after it is read.
        config: the training configuration.
        force: promote whatever the validation says.
        ledger: use this ledger instead of the store's (it is cut at D here too).
        on_step: called with each step's name as it starts (progress display).
    """
    t0 = time.perf_counter()
    step = on_step or (lambda _name: None)
    d = pd.Timestamp(as_of).normalize()
    step("load_known_ledger")
    ledger = ledger.known_at(d) if ledger is not None else load_known_ledger(settings, d)
    step("validate_ledger")
    validate_ledger(ledger, d)
    step("build_training_set")
    model = build_estimator(config)
    ts = model.build_training_set(ledger, d)
    step("fit")
    fit(model, ledger, d, ts)
    step("evaluate_validation")
    champion = None
    if registry.get_champion_version(settings) is not None:
        champion = registry.load_champion(settings)
    val = evaluate_validation(model, ledger, d, validation_days(ts, d, config.model.hazard_holdout_days), champion)
    decision = decide_promotion(val.model, val.champion, config.validation, val.n_rows, force, val.champion_error)
    if decision[0] and not force and champion is not None and champion.as_of and pd.Timestamp(champion.as_of) > val.evaluation_set.days[0]:
        decision = (True, decision[1] + f" (note: the champion was trained as of {champion.as_of}, after the first "
                    f"validation day: it may have seen these outcomes)")
    step("log_run")
    run_id, version = log_run(settings, config, d, model, val, decision)
    step("promote")
    promoted = promote(settings, version, decision)
    if promoted:
        step("compile_trees")
        # The champion's trees compiled now, into the cache scoring loads them from: the first
        # `encaisse score` after training does not compile them (models.compiled).
        model.use_compiled_trees(settings.artifact_dir / "compiled")
    return TrainResult(
        run_id=run_id, version=version, promoted=promoted, reason=decision[1], as_of=str(d.date()),
        metrics={k: val.model.get(k) for k in val.model}, baselines=val.baselines,
        champion_metrics=val.champion, seconds=time.perf_counter() - t0,
        training_report=asdict(model.training_report_), model=model,
    )
