"""``GET /v1/monitoring``: realized accuracy of every stored run, drift, retrain alerts.

Needs the ``forecast`` permission (treasurers, admins): the answer holds the weekly collections.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving import monitoring as answer
from serving.deps import ForecastCaller, StateDep
from serving.schemas import Day, MonitoringOut

router = APIRouter(prefix="/v1", tags=["forecast"])


@router.get("/monitoring", response_model=MonitoringOut,
            summary="How every stored scoring run came true, drift since training, and retrain alerts")
def get_monitoring(
    state: StateDep,
    _: ForecastCaller,
    as_of: Annotated[Day | None, Query(description="Outcomes known at the start of this day (default: today).")] = None,
) -> MonitoringOut:
    mon = answer.monitoring(state, as_of)
    return MonitoringOut(**mon.to_json(), versions=mon.versions)
