"""Monitoring: stored runs against outcomes, model versions, feature drift, alerts."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict


class MonitoringWeek(BaseModel):
    """One fully observed week of a run's stored forecast, against what came in (EUR)."""

    period_start: str
    expected: float
    low: float
    high: float
    actual: float


class MonitoringRun(BaseModel):
    """A stored scoring run's realized figures, as the backtest computes them (None: not known yet)."""

    run_id: str
    as_of: str
    model_version: str
    n_invoices: int
    window_days: int
    n_risk: int | None = None
    late_rate: float | None = None
    auc_p_late: float | None = None
    brier_p_late: float | None = None
    calibration_ece: float | None = None
    mae_days: float | None = None
    bias_days: float | None = None
    within_7d: float | None = None
    interval_coverage: float | None = None
    pinball_days: float | None = None
    capture_top10: float | None = None
    capture_top10_static: float | None = None
    weekly_wape: float | None = None
    weekly_band_coverage: float | None = None
    calibration: list[dict[str, float]] = []
    weeks: list[MonitoringWeek] = []


class MonitoringVersion(BaseModel):
    """A model version's runs: its validation figures and the mean of its realized figures."""

    model_version: str
    n_runs: int
    first_run: str
    last_run: str
    validation: dict[str, float | None]
    realized: dict[str, float | None]


class DriftRow(BaseModel):
    """Population stability index of one feature or score, today's open invoices vs the training rows."""

    kind: Literal["feature", "score"]
    name: str
    psi: float
    status: Literal["stable", "moderate", "major"]
    train_mean: float | None
    today_mean: float | None
    words: str


class DriftOut(BaseModel):
    model_version: str | None
    n_open: int
    threshold_psi: float
    max_feature_psi: float | None
    top_features: list[str]
    rows: list[DriftRow]


class MonitoringAlert(BaseModel):
    kind: str
    client_id: str | None = None
    invoice_id: str | None = None
    severity: str
    reason: str


class MonitoringOut(BaseModel):
    """How every stored run came true, drift since training, and retrain alerts."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2019-01-01", "runs": [{"run_id": "5c0f...", "as_of": "2018-12-01", "model_version": "7",
                                          "n_invoices": 3100, "window_days": 31, "auc_p_late": 0.81,
                                          "mae_days": 6.2, "weekly_wape": 0.21, "weeks": []}],
        "versions": [], "drift": {"model_version": "7", "n_open": 3200, "threshold_psi": 0.25,
                                  "max_feature_psi": 0.08, "top_features": [], "rows": []},
        "alerts": []}]})

    as_of: date
    runs: list[MonitoringRun]
    versions: list[MonitoringVersion]
    drift: DriftOut
    alerts: list[MonitoringAlert]
