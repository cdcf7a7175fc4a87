"""``GET /health`` (the process answers) and ``GET /ready`` (a model is loaded and the store answers)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving import current
from serving.deps import StateDep
from serving.schemas import ErrorOut, HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="The service is alive")
def health() -> HealthOut:
    return HealthOut()


@router.get("/ready", response_model=ReadyOut, summary="A model is loaded and the store is reachable",
            responses={503: {"model": ErrorOut, "description": "Not ready, and why."}})
def ready(state: StateDep) -> ReadyOut:
    problems = []
    if state.champion is None:
        problems.append(state.champion_error or "No champion model is loaded.")
    store = current.store_reachable(state)
    if store:
        problems.append(store)
    if problems:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, " ".join(problems))
    index = current.current_ledger(state)
    return ReadyOut(model_version=str(state.champion.version), invoices=len(index.ledger.invoices))
