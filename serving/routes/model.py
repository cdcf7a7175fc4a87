"""``GET /v1/model`` (what is served) and ``POST /v1/admin/reload`` (take the new champion, no restart)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving import current
from serving.deps import AdminCaller, ModelCaller, StateDep
from serving.schemas import ErrorOut, ModelOut, ReloadOut

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelOut, summary="The champion model being served",
            responses={503: {"model": ErrorOut, "description": "No model is loaded."}})
def get_model(state: StateDep, _: ModelCaller) -> ModelOut:
    champion = current.current_model(state)
    return ModelOut(version=str(champion.version), run_id=champion.run_id, as_of=str(champion.as_of),
                    metrics={k: float(v) for k, v in (champion.metrics or {}).items()})


@router.post("/admin/reload", response_model=ReloadOut, summary="Load the current champion and reload the ledger",
             responses={503: {"model": ErrorOut, "description": "The registry gave no model; the service keeps the "
                                                                "one it has (the detail says which)."}})
def reload(state: StateDep, _: AdminCaller) -> ReloadOut:
    current.refresh_ledger(state)
    loaded, message = current.reload_champion(state)
    if not loaded:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, message)
    return ReloadOut(version=str(state.champion.version), message=message)
