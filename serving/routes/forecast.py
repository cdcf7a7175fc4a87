"""``GET /v1/forecast`` (cash collections per period, P10-P90), ``GET /v1/kpis`` and ``GET /v1/uplift``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from models.collection import MAX_HORIZON, PERIOD_COLUMNS
from serving import current, views
from serving.deps import ForecastCaller, KpisCaller, StateDep
from serving.frames import plain_dict, records
from serving.schemas import Day, ErrorOut, ForecastOut, KpisOut, UpliftOut

router = APIRouter(prefix="/v1", tags=["forecast"])


@router.get("/forecast", response_model=ForecastOut, summary="Expected cash collections per period, with P10-P90",
            responses={503: {"model": ErrorOut}})
def get_forecast(
    state: StateDep,
    _: ForecastCaller,
    as_of: Annotated[Day | None, Query(description="Forecast from the start of this day (default: today).")] = None,
    horizon: Annotated[int, Query(ge=1, le=MAX_HORIZON, description=f"Number of periods (at most {MAX_HORIZON}).")] = 13,
    freq: Annotated[Literal["W", "D"], Query(description="W: weeks from Monday; D: days.")] = "W",
) -> ForecastOut:
    champion = current.current_model(state)
    fc = views.forecast(state, as_of, horizon=horizon, freq=freq)
    return ForecastOut(as_of=fc.as_of.date(), model_version=str(champion.version), freq=freq, horizon=horizon,
                       n_invoices=fc.n_invoices, periods=records(fc.periods, PERIOD_COLUMNS),
                       totals=plain_dict(fc.totals))


@router.get("/kpis", response_model=KpisOut, summary="Aging, DSO, CEI and doubtful receivables")
def get_kpis(
    state: StateDep,
    _: KpisCaller,
    as_of: Annotated[Day | None, Query(description="KPIs at the start of this day (default: today).")] = None,
    period_days: Annotated[int, Query(ge=1, le=3650, description="Period for best possible DSO and CEI, days.")] = 90,
) -> KpisOut:
    return KpisOut(**views.kpis(state, as_of, period_days=period_days))


@router.get("/uplift", response_model=UpliftOut, summary="Measured effect of each testable dunning step")
def get_uplift(
    state: StateDep,
    _: KpisCaller,
    as_of: Annotated[Day | None, Query(description="What is known at the start of this day (default: today).")] = None,
) -> UpliftOut:
    return UpliftOut(**views.uplift(state, as_of))
