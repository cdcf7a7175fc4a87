"""``POST /v1/invoices`` and ``POST /v1/payments``: the same validation and idempotence as ``encaisse ingest``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from serving import writes
from serving.deps import LedgerCaller, StateDep
from serving.schemas import ErrorOut, InvoicesIn, PaymentsIn, WriteOut

router = APIRouter(prefix="/v1", tags=["ledger"])

AllowRejects = Annotated[bool, Query(description="Store the good rows even when some are rejected.")]
RESPONSES = {413: {"model": ErrorOut, "description": "Too many rows in one call."},
             422: {"model": ErrorOut, "description": "Invalid request, or rows rejected (nothing stored): "
                                                     "detail.rejects lists each with its reason."},
             503: {"model": ErrorOut, "description": "The store stayed busy; nothing was stored. Retry after "
                                                     "`Retry-After` seconds."}}


def _write(state, table: str, rows: list[dict], allow_rejects: bool) -> WriteOut:
    if len(rows) > state.serving.max_rows_per_write:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{len(rows)} {table} in one call; the limit is {state.serving.max_rows_per_write}.")
    outcome = writes.write_rows(state, table, rows, allow_rejects=allow_rejects)
    return WriteOut(**{k: v for k, v in outcome.__dict__.items() if k in WriteOut.model_fields})


REPLACES = ("Each row is the whole record: a row whose key is stored replaces it, so a field left out is stored "
            "empty (an invoice sent again without its `paid_date` is open again). Send every field you know, as "
            "`encaisse ingest` reads a full export; a row equal to the stored one changes nothing.")


@router.post("/invoices", response_model=WriteOut, summary="Store invoices (insert, update when changed)",
             description=REPLACES, responses=RESPONSES)
def post_invoices(body: InvoicesIn, state: StateDep, _: LedgerCaller, allow_rejects: AllowRejects = False) -> WriteOut:
    return _write(state, "invoices", [r.model_dump() for r in body.invoices], allow_rejects)


@router.post("/payments", response_model=WriteOut, summary="Store payments (insert, update when changed)",
             description=REPLACES, responses=RESPONSES)
def post_payments(body: PaymentsIn, state: StateDep, _: LedgerCaller, allow_rejects: AllowRejects = False) -> WriteOut:
    return _write(state, "payments", [r.model_dump() for r in body.payments], allow_rejects)
