"""Scoring requests and the scores answered."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.schemas.fields import Day, Id, StrictIn
from serving.schemas.ledger import INVOICE_EXAMPLE, InvoiceIn, PaymentIn


class ScoreRequest(StrictIn):
    """Invoices to score as of a day.

    * Store mode: ``invoice_ids`` of invoices in the store, and/or full ``invoices`` rows (a sent row
      replaces the stored one); the clients' history comes from the store.
    * Stateless mode: ``history`` present (even empty): the ``invoices`` and the clients' other
      invoice rows (``history``, and optionally ``payments``) are all that is used.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"as_of": "2025-06-01", "invoice_ids": ["INV-2025-0042", "INV-2025-0043"]},
        {"as_of": "2025-06-01", "invoices": [INVOICE_EXAMPLE], "history": [
            {**INVOICE_EXAMPLE, "invoice_id": "INV-2025-0007", "issue_date": "2025-02-01", "due_date": "2025-03-03",
             "paid_date": "2025-03-20"}]}]})

    as_of: Day | None = Field(default=None, description="Score at the start of this day (default: today, UTC).")
    invoice_ids: list[Id] = Field(default_factory=list, description="Invoices known to the store.")
    invoices: list[InvoiceIn] = Field(default_factory=list, description="Full invoice rows to score.")
    history: list[InvoiceIn] | None = Field(default=None, description="Stateless mode: the clients' other invoices.")
    payments: list[PaymentIn] | None = Field(default=None, description="Stateless mode: payment rows (optional).")
    n_reasons: int = Field(default=3, ge=0, le=10, description="Reasons given per invoice.")

    @model_validator(mode="after")
    def _something_to_score(self) -> "ScoreRequest":
        if not self.invoice_ids and not self.invoices:
            raise ValueError("give invoice_ids or invoices to score")
        if self.history is not None and self.invoice_ids:
            raise ValueError("invoice_ids need the store: leave history out, or send full invoices rows")
        if self.payments is not None and self.history is None:
            raise ValueError("payments are only read in stateless mode (with history)")
        return self


class ScoreOut(BaseModel):
    """One invoice's scores."""

    invoice_id: str
    client_id: str
    amount: float
    currency: str | None
    due_date: date
    p_late: float = Field(description="P(paid after the due date); 1 for an invoice already overdue.")
    p_very_late: float = Field(description="P(paid more than 30 days after max(due date, as_of)).")
    payment_date_p10: date
    payment_date_p50: date
    payment_date_p90: date
    p10_days: float = Field(description="Days after as_of (clipped to the model's horizon).")
    p50_days: float
    p90_days: float
    beyond_horizon: bool = Field(description="P90 lies past the model's horizon.")
    reasons: list[str] = Field(description="Facts pushing P(very late) up the most, in plain words.")


class NotScored(BaseModel):
    invoice_id: str
    reason: str


class ScoresOut(BaseModel):
    """Scores of a batch, with the model and day they hold for."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2025-06-01", "model_version": "3", "model_run_id": "4f1c...", "mode": "store",
        "scores": [{"invoice_id": "INV-2025-0042", "client_id": "C0007", "amount": 1250.0, "currency": "EUR",
                    "due_date": "2025-06-01", "p_late": 0.41, "p_very_late": 0.12, "payment_date_p10": "2025-06-02",
                    "payment_date_p50": "2025-06-12", "payment_date_p90": "2025-07-20", "p10_days": 1.0,
                    "p50_days": 11.0, "p90_days": 49.0, "beyond_horizon": False,
                    "reasons": ["pays 12 days late on average"]}],
        "not_scored": []}]})

    as_of: date
    model_version: str
    model_run_id: str | None
    mode: Literal["store", "stateless"]
    scores: list[ScoreOut]
    not_scored: list[NotScored]
