"""Monitoring: how every stored scoring run came true, how far today drifted, and when to retrain.

``build_monitoring`` is the one assembly the CLI (``encaisse monitor``), the API
(``GET /v1/monitoring``) and the pages (*Forecast vs actual*, *Model health*) call. For each run
stored before the monitoring day D it reads what the run forecast (``ledger.scores_store`` and
``ledger.run_forecasts``) and judges it on what happened up to D with the backtest's own metric
functions, censoring-aware (an invoice still open at D is censored there):

* P(late): AUC, Brier, calibration bins (``models.evaluation.evaluate_forecasts``,
  ``evaluate_calibration_bins``);
* payment date: MAE, bias, P10-P90 coverage, pinball (``evaluate_forecasts`` on the stored quantiles);
* the worklist's top-10% capture (``models.worklist.evaluate_worklist_capture``, stored ranks);
* the stored weekly forecast against the collections that came in
  (``models.forecast.evaluate_collection_forecast``: WAPE, band coverage).

Drift compares today's open invoices with the model's training reference (``models.drift``).
Retrain alerts (``models.alerts.build_retrain_alerts``) compare realized accuracy with the model
version's validation figures, with the margins in ``MonitoringConfig``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from features.calendar import invoice_countries
from ledger.contracts import Ledger
from ledger.run_forecasts import QUANTILE_DAY_COLUMNS, RunForecast, load_run_forecast
from ledger.scores_store import StoredScores, list_score_runs, load_run
from models.collection import build_forecast
from models.drift import DRIFT_COLUMNS, evaluate_drift
from models.evaluation import PINBALL_LEVELS, build_truth, evaluate_calibration_bins, evaluate_forecasts
from models.forecast import evaluate_collection_forecast
from models.worklist import evaluate_worklist_capture

log = logging.getLogger(__name__)

RUN_FORECAST_WEEKS = 13
"""Weeks of collection forecast a scoring run stores (and the backtest judges)."""

RUN_METRICS = ("n_risk", "late_rate", "auc_p_late", "brier_p_late", "calibration_ece", "mae_days", "bias_days",
               "within_7d", "interval_coverage", "pinball_days", "capture_top10", "capture_top10_static",
               "weekly_wape", "weekly_band_coverage")
"""Realized figures of a run, as in the backtest (None when the outcomes cannot tell yet)."""

COMPARED = (("auc_p_late", "auc_drop", -1), ("brier_p_late", "brier_rise", 1), ("mae_days", "mae_rise_days", 1),
            ("interval_coverage", "coverage_drop", -1))
"""(metric, margin field, direction): a realized figure worse than validation by more than the margin alerts."""


class MonitoringConfig(BaseModel):
    """When monitoring raises a retrain alert (section ``monitoring`` of the training config).

    Realized figures are compared with the model version's validation figures (logged at training);
    a run counts once ``min_window_days`` of outcomes are in and ``min_risk_rows`` invoices tell
    about lateness. Validation judges outcomes over a shorter window than a month-old run, so the
    payment-date margins are wider than the risk ones.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    auc_drop: float = Field(default=0.05, ge=0, le=1, description="Realized AUC of P(late) below validation by more.")
    brier_rise: float = Field(default=0.05, ge=0, le=1, description="Realized Brier above validation by more.")
    mae_rise_days: float = Field(default=10.0, ge=0, description="Realized payment-date MAE above validation by "
                                                                  "more (days).")
    coverage_drop: float = Field(default=0.20, ge=0, le=1, description="Realized P10-P90 coverage below "
                                                                        "validation by more.")
    drift_psi: float = Field(default=0.25, gt=0, description="PSI from which a feature or score has drifted.")
    drift_min_features: int = Field(default=3, ge=1, description="Drifted features that raise a drift alert (a "
                                    "drifted score alone raises one): a single day-count feature moves with "
                                    "the pay-run calendar.")
    min_window_days: int = Field(default=28, ge=1, description="Days of outcomes a run needs before it is compared.")
    min_risk_rows: int = Field(default=30, ge=1, description="Invoices with known lateness a run needs.")


# -- what a run stores ----------------------------------------------------------------------------


def build_run_forecast(model, ledger: Ledger, as_of, worklist: pd.DataFrame | None = None,
                       scored: tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]] | None = None) -> RunForecast:
    """What a scoring run keeps for monitoring: its weekly forecast and each invoice's quantiles and rank.

    The forecast is ``build_forecast`` over ``RUN_FORECAST_WEEKS`` weeks without the not-yet-issued
    line (monitoring compares it with what the open invoices brought in); the quantiles are the
    model's payment-day quantiles at ``PINBALL_LEVELS`` (days after as_of, cut at the horizon).

    Args:
        model: the fitted ``EncaisseModel`` that scored the run.
        ledger: the ledger scored (only what is known at ``as_of`` is read).
        as_of: the run's day.
        worklist: the run's worklist (``invoice_id``, ``rank``), for the ranks (None: none yet, see
            :func:`with_ranks`).
        scored: the run's own ``(scores, (days, cdf))`` of the invoices open at ``as_of`` (the model's
            figures for them, whatever ledger they were built on: features ignore anything on or
            after ``as_of``); None: scored here. Not modified.
    """
    d = pd.Timestamp(as_of).normalize()
    known = ledger.known_at(d)
    if scored is None:
        scores, (days, cdf) = model.score(known, d, n_reasons=0, return_cdf=True)
    else:
        scores, (days, cdf) = scored[0].drop(columns="reasons", errors="ignore"), scored[1]
    countries = invoice_countries(known, scores["invoice_id"])  # read once, for both
    q = np.minimum(model.payment_quantiles(days, cdf, d, PINBALL_LEVELS, countries), model.payment_model_.horizon_days)
    inv = pd.DataFrame(q, columns=QUANTILE_DAY_COLUMNS)
    inv.insert(0, "invoice_id", scores["invoice_id"].to_numpy())
    fc = build_forecast(model, known, d, horizon=RUN_FORECAST_WEEKS, freq="W", run_rate_weeks=0,
                        scored=(scores, (days, cdf)), countries=countries)
    return with_ranks(RunForecast(periods=fc.periods.drop(columns="not_yet_issued_amount", errors="ignore"),
                                  invoices=inv), worklist)


def with_ranks(forecast: RunForecast, worklist: pd.DataFrame | None) -> RunForecast:
    """``forecast`` with its invoices' ``rank`` column (second) taken from ``worklist`` (``invoice_id``,
    ``rank``); empty ranks without one. A forecast built before its run's worklist gets them here."""
    ranks = (worklist.set_index("invoice_id")["rank"] if worklist is not None and "rank" in worklist.columns
             else pd.Series(dtype="Int64"))
    inv = forecast.invoices.drop(columns="rank", errors="ignore")
    inv.insert(1, "rank", inv["invoice_id"].map(ranks).astype("Int64"))
    return RunForecast(periods=forecast.periods, invoices=inv)


# -- realized figures of one run ------------------------------------------------------------------


def evaluate_run(run: StoredScores, forecast: RunForecast, ledger: Ledger, as_of) -> dict:
    """Realized figures of one stored run, judged on outcomes up to (excluded) ``as_of``.

    Returns:
        ``run_id``, ``as_of`` (the run's day), ``model_version``, ``n_invoices``, ``window_days``,
        ``RUN_METRICS``, ``calibration`` (bins) and ``weeks`` (per observed week: period_start,
        expected, low, high, actual).
    """
    d = pd.Timestamp(run.run["as_of"]).normalize()
    end = pd.Timestamp(as_of).normalize()
    out = {"run_id": run.run_id, "as_of": str(d.date()), "model_version": str(run.run["model_version"]),
           "n_invoices": int(run.run["n_invoices"]), "window_days": int((end - d).days)}
    out.update(dict.fromkeys(RUN_METRICS))
    out.update(calibration=[], weeks=[])
    if end <= d:
        return out
    known = ledger.known_at(end)
    # The backtest's evaluation set is ordered by invoice id: the same order gives the same sums.
    inv = run.invoices.sort_values("invoice_id", kind="stable").reset_index(drop=True)
    frame = inv[["invoice_id", "client_id", "due_date"]]
    truth = build_truth(frame, known, d, end)
    pred = pd.DataFrame({"p_late": inv["p_late"].to_numpy(dtype=float)})
    q = forecast.invoices.set_index("invoice_id").reindex(inv["invoice_id"])
    has_q = len(forecast.invoices) > 0 and q[QUANTILE_DAY_COLUMNS].notna().all(axis=1).all()
    for col in QUANTILE_DAY_COLUMNS:
        pred[col] = q[col].to_numpy(dtype=float) if has_q else np.nan
    pred["p10_days"], pred["p50_days"], pred["p90_days"] = pred["q10_days"], pred["q50_days"], pred["q90_days"]
    m = evaluate_forecasts(pred, truth)
    out.update({k: m.get(k) for k in RUN_METRICS if k in m})
    risk = truth["not_due"].to_numpy() & truth["y_late"].notna().to_numpy() & pred["p_late"].notna().to_numpy()
    cal = evaluate_calibration_bins(truth["y_late"].to_numpy()[risk], pred["p_late"].to_numpy()[risk])
    out["calibration_ece"], out["calibration"] = cal["ece"], cal["bins"]
    ranks = forecast.invoices.set_index("invoice_id")["rank"] if len(forecast.invoices) else None
    if ranks is not None and ranks.notna().any():
        wl = run.invoices.assign(rank=run.invoices["invoice_id"].map(ranks))
        cap = evaluate_worklist_capture(wl, known, d, end)
        out["capture_top10"], out["capture_top10_static"] = cap["capture_top10"], cap["capture_top10_static"]
    if len(forecast.periods):
        col = evaluate_collection_forecast(forecast.periods, known, d, end, freq="W")
        out["weekly_wape"], out["weekly_band_coverage"] = col["weekly_wape"], col["weekly_band_coverage"]
        out["weeks"] = [{"period_start": r["period_start"], "expected": float(r["expected"]), "low": float(r["low"]),
                         "high": float(r["high"]), "actual": float(r["actual"])} for r in col["periods"]]
    return out


# -- the monitoring answer ------------------------------------------------------------------------


@dataclass
class Monitoring:
    """The monitoring answer as of a day.

    Attributes:
        as_of: the monitoring day D (outcomes known up to the start of D).
        runs: one dict per stored run before D (``evaluate_run``), oldest first.
        versions: per model version: ``model_version``, ``n_runs``, ``validation`` (its validation
            figures) and the mean realized figures over its runs.
        drift: ``models.drift.DRIFT_COLUMNS``, largest PSI first (empty without a model or reference).
        drift_model_version: the model the drift is measured against; ``n_open``: today's open invoices.
        alerts: retrain alerts (``models.alerts.ALERT_COLUMNS``).
        config: the thresholds used.
    """

    as_of: pd.Timestamp
    runs: list[dict]
    versions: list[dict]
    drift: pd.DataFrame
    drift_model_version: str | None
    n_open: int
    alerts: pd.DataFrame
    config: MonitoringConfig = field(default_factory=MonitoringConfig)

    def drift_json(self) -> dict:
        """The drift part of the JSON answer."""
        rows = self.drift.astype(object).where(self.drift.notna(), None).to_dict("records")
        feats = [r for r in rows if r["kind"] == "feature"]
        return {"model_version": self.drift_model_version, "n_open": self.n_open,
                "threshold_psi": self.config.drift_psi,
                "max_feature_psi": feats[0]["psi"] if feats else None,
                "top_features": [r["words"] for r in feats[:3] if r["status"] != "stable"],
                "rows": rows}

    def alerts_json(self) -> list[dict]:
        return self.alerts.astype(object).where(self.alerts.notna(), None).to_dict("records")

    def to_json(self) -> dict:
        """``{"as_of", "runs", "drift", "alerts"}``: plain JSON values (``encaisse monitor --json``)."""
        return {"as_of": str(self.as_of.date()), "runs": self.runs, "drift": self.drift_json(),
                "alerts": self.alerts_json()}


def _mean(values) -> float | None:
    v = [float(x) for x in values if x is not None and np.isfinite(float(x))]
    return float(np.mean(v)) if v else None


def summarize_versions(runs: list[dict], validation: Mapping[str, Mapping]) -> list[dict]:
    """Per model version (in order of first run): its runs, validation figures and mean realized figures."""
    out = []
    for version in dict.fromkeys(r["model_version"] for r in runs):
        mine = [r for r in runs if r["model_version"] == version]
        val = validation.get(version) or {}
        out.append({"model_version": version, "n_runs": len(mine), "first_run": mine[0]["as_of"],
                    "last_run": mine[-1]["as_of"],
                    "validation": {k: val.get(k) for k, _, _ in COMPARED},
                    "realized": {k: _mean(r.get(k) for r in mine) for k in RUN_METRICS}})
    return out


def build_monitoring(engine: sa.Engine, ledger: Ledger, as_of, *, model=None, model_version: str | None = None,
                     validation: Mapping[str, Mapping] | None = None, config: MonitoringConfig | None = None,
                     features: pd.DataFrame | None = None, scores: pd.DataFrame | None = None,
                     lang: str = "en") -> Monitoring:
    """The monitoring answer as of ``as_of``: every stored run's realized figures, drift, retrain alerts.

    Args:
        engine: the store holding the runs (``score_runs`` and their stored forecasts).
        ledger: the ledger; outcomes dated before ``as_of`` are read.
        as_of: the monitoring day D. Runs stored on or after D are left out.
        model: the model in service (its ``reference_`` is the drift reference), or None (no drift).
        model_version: its version, for the drift and the alerts.
        validation: model version -> its validation figures (``auc_p_late``, ``brier_p_late``,
            ``mae_days``, ``interval_coverage``), as logged at training.
        config: alert thresholds (default ``MonitoringConfig()``).
        features, scores: today's open invoices' features and scores when the caller has them.
        lang: language of the drift's plain words.
    """
    from models.alerts import build_retrain_alerts  # alerts build on this module's answer

    d = pd.Timestamp(as_of).normalize()
    cfg = config or MonitoringConfig()
    validation = validation or {}
    stored = list_score_runs(engine)
    stored = stored[stored["as_of"] < d]
    runs = []
    for row in stored.to_dict("records"):
        run = load_run(engine, row)
        runs.append(evaluate_run(run, load_run_forecast(engine, run.run_id), ledger, d))
    drift = pd.DataFrame(columns=DRIFT_COLUMNS)
    n_open = 0
    if model is not None:
        feats = model.features(ledger, d) if features is None else features
        sc = model.score(ledger, d, features=feats, n_reasons=0) if scores is None else scores
        n_open = len(feats)
        drift = evaluate_drift(getattr(model, "reference_", None), feats, sc, lang=lang)
    mon = Monitoring(as_of=d, runs=runs, versions=summarize_versions(runs, validation), drift=drift,
                     drift_model_version=model_version, n_open=n_open, alerts=pd.DataFrame(), config=cfg)
    mon.alerts = build_retrain_alerts(mon, validation)
    return mon


def load_monitoring(settings, engine: sa.Engine, ledger: Ledger, as_of, champion=None, *,
                    features: pd.DataFrame | None = None, scores: pd.DataFrame | None = None,
                    lang: str = "en") -> Monitoring:
    """``build_monitoring`` with each version's validation figures and thresholds read from the registry.

    The thresholds are those the model in service (else the latest run's model) was trained with
    (``monitoring.*`` params of its training run; ``MonitoringConfig()`` defaults for a model trained
    before they were logged).

    Args:
        settings: the workspace (``ledger.workspace.Settings``: registry).
        engine, ledger, as_of: as ``build_monitoring``.
        champion: the ``models.registry.ChampionModel`` in service, or None (no drift).
    """
    from models import registry

    runs = list_score_runs(engine)
    versions = [*runs["model_version"].astype(str).tolist(), *([champion.version] if champion is not None else [])]
    try:
        validation, thresholds = registry.load_validation(settings, versions)
    except Exception as exc:  # an unreachable registry must not take the realized figures down with it
        log.warning("validation figures unavailable (%s): retrain alerts on accuracy are off", exc)
        validation, thresholds = {}, {}
    current = champion.version if champion is not None else (versions[-1] if versions else None)
    known = {k: v for k, v in thresholds.get(str(current), {}).items() if k in MonitoringConfig.model_fields}
    return build_monitoring(engine, ledger, as_of, model=champion.model if champion is not None else None,
                            model_version=str(current) if current is not None else None, validation=validation,
                            config=MonitoringConfig(**known), features=features, scores=scores, lang=lang)


__all__ = ["Monitoring", "MonitoringConfig", "RUN_FORECAST_WEEKS", "RUN_METRICS", "build_monitoring",
           "build_run_forecast", "evaluate_run", "load_monitoring", "summarize_versions", "with_ranks"]
