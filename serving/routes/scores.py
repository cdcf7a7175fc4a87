"""``POST /v1/scores``: late-payment probabilities and payment-date quantiles for a batch of invoices."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving import services
from serving.deps import ScoresCaller, StateDep
from serving.frames import column_values
from serving.schemas import ErrorOut, ScoreRequest, ScoresOut

router = APIRouter(prefix="/v1", tags=["scores"])

_COLUMNS = {"invoice_id": "invoice_id", "client_id": "client_id", "amount": "amount", "currency": "currency",
            "due_date": "due_date", "p_late": "p_late", "p_very_late": "p_very_late",
            "payment_date_low": "payment_date_p10", "expected_payment_date": "payment_date_p50",
            "payment_date_high": "payment_date_p90", "p10_days": "p10_days", "p50_days": "p50_days",
            "p90_days": "p90_days", "beyond_horizon": "beyond_horizon"}


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
    batch = services.score_invoices(
        state, body.as_of, invoice_ids=body.invoice_ids,
        invoices=[r.model_dump() for r in body.invoices],
        history=[r.model_dump() for r in body.history] if stateless else None,
        payments=[r.model_dump() for r in body.payments or []] if stateless else None,
        n_reasons=body.n_reasons)
    s, champion = batch.scores, batch.champion
    cols = {out: column_values(s[src]) for src, out in _COLUMNS.items()}
    cols["reasons"] = [[t for t in str(r).split("; ") if t] if isinstance(r, str) else [] for r in s["reasons"]]
    names = list(cols)
    rows = [dict(zip(names, vals)) for vals in zip(*cols.values())]
    return {"as_of": batch.as_of.date(), "model_version": str(champion.version), "model_run_id": champion.run_id,
            "mode": "stateless" if stateless else "store", "scores": rows, "not_scored": batch.not_scored}
