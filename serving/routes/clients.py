"""``GET /v1/clients/{client_id}``: profile, scenario, behaviour figures and scored open invoices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from serving import current, views
from serving.deps import ClientsCaller, StateDep, check_portfolio
from serving.frames import records
from serving.schemas import ClientOut, Day, ErrorOut, Id, InvoiceScoreOut

router = APIRouter(prefix="/v1", tags=["clients"])

ROW_COLUMNS = list(InvoiceScoreOut.model_fields) + ["channel", "template", "late_penalty", "recovery_indemnity",
                                                    "prescription_date", "prescription_status"]


@router.get("/clients/{client_id}", response_model=ClientOut, summary="A client's profile, behaviour and open invoices",
            responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}})
def get_client(
    client_id: Annotated[Id, Path(description="Client id.")],
    state: StateDep,
    principal: ClientsCaller,
    as_of: Annotated[Day | None, Query(description="Day (default: today, UTC).")] = None,
) -> ClientOut:
    check_portfolio(state, principal, client_id)
    champion = current.current_model(state)
    try:
        view = views.score_client(state, client_id, as_of)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return ClientOut(client_id=view.client_id, as_of=view.as_of.date(), model_version=str(champion.version),
                     master=view.master, profile=view.profile, behaviour=view.behaviour,
                     open_invoices=records(view.invoices, ROW_COLUMNS))
