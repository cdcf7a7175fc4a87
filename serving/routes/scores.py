"""``POST /v1/scores``: late-payment probabilities and payment-date quantiles for a batch of invoices."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving import invoice_scores
from serving.deps import ScoresCaller, StateDep
from serving.schemas import ErrorOut, ScoreRequest, ScoresOut

router = APIRouter(prefix="/v1", tags=["scores"])

@router.post("/scores", response_model=ScoresOut, summary="Score a batch of invoices (up to 10,000)",
             responses={413: {"model": ErrorOut, "description": "Too many invoices in one call."},
                        422: {"model": ErrorOut, "description": "Invalid request, or rows rejected by the ledger's "
                                                                "validation."},
                        503: {"model": ErrorOut, "description": "No model is loaded."}})
def score(body: ScoreRequest, state: StateDep, _: ScoresCaller) -> dict:
    limits = state.serving
    n = len(body.invoice_ids) + len(body.invoices)
    if n > limits.max_invoices_per_call:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{n} invoices in one call; the limit is {limits.max_invoices_per_call}: split the batch.")
    n_hist = len(body.history or []) + len(body.payments or [])
    if n_hist > limits.max_history_rows:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{n_hist} history and payment rows in one call; the limit is {limits.max_history_rows}.")
    stateless = body.history is not None
    batch = invoice_scores.score_invoices(
        state, body.as_of, invoice_ids=body.invoice_ids,
        invoices=[r.model_dump() for r in body.invoices],
        history=[r.model_dump() for r in body.history] if stateless else None,
        payments=[r.model_dump() for r in body.payments or []] if stateless else None,
        n_reasons=body.n_reasons)
    champion = batch.champion
    return {"as_of": batch.as_of.date(), "model_version": str(champion.version), "model_run_id": champion.run_id,
            "mode": "stateless" if stateless else "store", "scores": batch.scores, "not_scored": batch.not_scored}
