"""``GET /v1/forecast`` (cash collections per period, P10-P90) and ``GET /v1/kpis``."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query

from serving import services
from serving.deps import ForecastCaller, KpisCaller, StateDep
from serving.frames import records
from serving.schemas import Day, ErrorOut, ForecastOut, KpisOut

router = APIRouter(prefix="/v1", tags=["forecast"])

PERIOD_COLUMNS = ["period_start", "expected_amount", "low", "high", "due_schedule_amount", "not_yet_issued_amount"]


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@router.get("/forecast", response_model=ForecastOut, summary="Expected cash collections per period, with P10-P90",
            responses={503: {"model": ErrorOut}})
def get_forecast(
    state: StateDep,
    _: ForecastCaller,
    as_of: Annotated[Day | None, Query(description="Forecast from the start of this day (default: today).")] = None,
    horizon: Annotated[int, Query(ge=1, le=366, description="Number of periods (at most 366: a year of days).")] = 13,
    freq: Annotated[Literal["W", "D"], Query(description="W: weeks from Monday; D: days.")] = "W",
) -> ForecastOut:
    champion = services.current_model(state)
    frame, n = services.forecast_frame(state, as_of, horizon=horizon, freq=freq)
    totals = {c: _num(frame[c].sum()) for c in ("expected_amount", "due_schedule_amount", "not_yet_issued_amount")}
    totals.update(low=_num(frame.attrs.get("total_low")), high=_num(frame.attrs.get("total_high")),
                  open_amount=_num(frame.attrs.get("open_amount")),
                  expected_beyond_horizon=_num(frame.attrs.get("expected_beyond_horizon")))
    return ForecastOut(as_of=services.day_of(as_of).date(), model_version=str(champion.version), freq=freq,
                       horizon=horizon, n_invoices=n, periods=records(frame, PERIOD_COLUMNS), totals=totals)


@router.get("/kpis", response_model=KpisOut, summary="Aging, DSO, CEI and doubtful receivables")
def get_kpis(
    state: StateDep,
    _: KpisCaller,
    as_of: Annotated[Day | None, Query(description="KPIs at the start of this day (default: today).")] = None,
    period_days: Annotated[int, Query(ge=1, le=3650, description="Period for best possible DSO and CEI, days.")] = 90,
) -> KpisOut:
    return KpisOut(**services.kpis(state, as_of, period_days=period_days))
