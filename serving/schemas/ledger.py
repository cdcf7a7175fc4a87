"""Ledger rows in and what a write did: invoices, payments, rejected rows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from serving.schemas.fields import Amount, Day, Id, StrictIn, Text

INVOICE_EXAMPLE = {"invoice_id": "INV-2025-0042", "client_id": "C0007", "issue_date": "2025-05-02",
                   "due_date": "2025-06-01", "amount": 1250.0, "currency": "EUR", "doc_type": "invoice",
                   "terms": "30_net"}


class InvoiceIn(StrictIn):
    """An invoice (or other receivable document) in the canonical layout (``docs/contracts.md``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [INVOICE_EXAMPLE]})

    invoice_id: Id
    client_id: Id
    issue_date: Day
    due_date: Day = Field(description="Never before issue_date.")
    amount: Amount = Field(description="Gross amount in `currency`, > 0.")
    currency: Text = Field(default="EUR", description="ISO 4217 code.")
    paid_date: Day | None = Field(default=None, description="Day the document was cleared; empty = open.")
    doc_type: Text = Field(default="invoice", description="invoice, credit_note, debit_note, down_payment, "
                                                          "payment_difference or other.")
    terms: Text | None = None
    company: Text | None = None
    country: Text | None = None
    disputed: bool | None = None
    dunning_block: Text | None = None
    credit_category: Text | None = None


class PaymentIn(StrictIn):
    """A payment applied to an invoice."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"payment_id": "PAY-88121", "invoice_id": "INV-2025-0042", "paid_date": "2025-06-12", "amount": 1250.0}]})

    payment_id: Id
    invoice_id: Id
    paid_date: Day
    amount: Amount = Field(description="Amount applied, in the invoice currency, > 0.")


class InvoicesIn(StrictIn):
    """Invoices to store (inserted, updated when changed, unchanged otherwise)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"invoices": [INVOICE_EXAMPLE]}]})

    invoices: list[InvoiceIn]


class PaymentsIn(StrictIn):
    """Payments to store."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"payments": [
        {"payment_id": "PAY-88121", "invoice_id": "INV-2025-0042", "paid_date": "2025-06-12", "amount": 1250.0}]}]})

    payments: list[PaymentIn]


class RejectedRow(BaseModel):
    """A row the ledger's validation refused."""

    row: int = Field(description="1-based position of the row in the request.")
    key: str | None = Field(description="The row's id, when it had one.")
    reason: str


class WriteOut(BaseModel):
    """What a write did."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"table": "invoices", "received": 2, "inserted": 1, "updated": 0, "unchanged": 1, "rejected": 0,
         "rejects": []}]})

    table: str
    received: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    rejects: list[RejectedRow]
    warnings: list[str] = Field(default_factory=list, description="What was stored but deserves a look "
                                                                  "(e.g. payments of invoices not in the store).")
