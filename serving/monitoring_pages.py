"""Monitoring pages: *Forecast vs actual* and *Model health*, for the ``forecast`` permission (treasurers, admins).

Both serialize ``serving.monitoring.monitoring`` (the answer ``GET /v1/monitoring`` returns). The
day shown is ``?as_of`` when given, else today: outcomes known at its start judge the runs
stored before it.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from serving import current
from serving.monitoring import monitoring
from serving.page_context import open_page, page, render

router = APIRouter(include_in_schema=False)

HEALTH_METRICS = ("auc_p_late", "brier_p_late", "calibration_ece", "mae_days", "bias_days", "interval_coverage",
                  "capture_top10", "weekly_wape", "weekly_band_coverage")
"""Columns of the model-health table, in order (page keys ``metric_<name>``)."""

SHOWN_RUNS = 12
"""Most recent runs drawn on the forecast-vs-actual page."""


def _day(request: Request) -> pd.Timestamp:
    given = request.query_params.get("as_of")
    if given:
        try:
            return pd.Timestamp(date.fromisoformat(given))
        except ValueError:
            pass
    return current.today()


def _epoch(days: list[str]) -> list[int]:
    return [int(pd.Timestamp(d).timestamp()) for d in days]


def _open_monitoring(request: Request):
    """The page's context on its day, and the monitoring of every stored run as of that day."""
    ctx = open_page(request, "forecast")
    ctx.day = _day(request)
    return ctx, monitoring(ctx.state, ctx.day, lang=ctx.lang)


@router.get("/monitoring/forecast", response_class=HTMLResponse)
@page
def forecast_vs_actual_page(request: Request) -> Response:
    ctx, mon = _open_monitoring(request)
    runs = [r for r in reversed(mon.runs) if r["weeks"]][:SHOWN_RUNS]
    charts = []
    for r in runs:
        w = r["weeks"]
        charts.append({"run": r, "chart": {
            "x": _epoch([x["period_start"] for x in w]), "expected": [x["expected"] for x in w],
            "low": [x["low"] for x in w], "high": [x["high"] for x in w], "due": [x["actual"] for x in w],
            "labels": {"period": ctx.t("col_period"), "expected": ctx.t("col_expected"), "low": ctx.t("col_low"),
                       "high": ctx.t("col_high"), "due": ctx.t("col_actual")}}})
    return render(ctx, "forecast_vs_actual.html", runs=charts, n_runs=len(mon.runs))


@router.get("/monitoring/health", response_class=HTMLResponse)
@page
def model_health_page(request: Request) -> Response:
    ctx, mon = _open_monitoring(request)
    drift = mon.drift_json()["rows"]
    return render(ctx, "model_health.html", mon=mon, runs=list(reversed(mon.runs)), versions=mon.versions,
                  metrics=HEALTH_METRICS, drift=drift, alerts=mon.alerts_json(), drift_psi=mon.config.drift_psi)
