"""``GET /v1/worklist``: ranked rows with the next action and why, per collector."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from serving import views
from serving.deps import StateDep, WorklistCaller
from serving.frames import records
from serving.schemas import Day, ErrorOut, InvoiceScoreOut, Text, WorklistOut

router = APIRouter(prefix="/v1", tags=["worklist"])


@router.get("/worklist", response_model=WorklistOut, summary="The ranked worklist",
            responses={403: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def get_worklist(
    state: StateDep,
    principal: WorklistCaller,
    as_of: Annotated[Day | None, Query(description="Day (default: today, UTC). The latest stored score run at or "
                                                   "before it is used; without one, the ledger is scored now.")] = None,
    collector: Annotated[Text | None, Query(description="Only this collector's rows (a collector key: their own).")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> WorklistOut:
    try:
        collector = views.visible_collector(principal, collector)
    except PermissionError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    view = views.worklist_rows(state, as_of)
    rows = views.collector_rows(view.rows, collector)
    page = rows.iloc[offset:offset + limit]
    return WorklistOut(as_of=view.as_of.date(), source=view.source, run_id=view.run_id, run_as_of=view.run_as_of.date(),
                       model_version=view.model_version, note=view.note, total=len(rows), limit=limit, offset=offset,
                       rows=records(page, list(InvoiceScoreOut.model_fields)))
