"""A client's page of figures and the worklist: scored open invoices."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class InvoiceScoreOut(BaseModel):
    """An open invoice in a worklist or client view: scores, profile, next step."""

    model_config = ConfigDict(extra="allow")

    invoice_id: str
    client_id: str
    collector: str | None = None
    priority: int | None = None
    queue: str | None = None
    amount: float | None = None
    amount_remaining: float | None = None
    currency: str | None = None
    due_date: date | None = None
    days_overdue: float | None = None
    p_late: float | None = None
    p_very_late: float | None = None
    expected_payment_date: date | None = None
    payment_date_low: date | None = None
    payment_date_high: date | None = None
    profile: str | None = None
    scenario: str | None = None
    next_action: str | None = None
    next_action_date: date | None = None
    expected_gain: float | None = None
    why: str | None = None
    reasons: str | None = None


class ClientOut(BaseModel):
    """A client as of a day."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "client_id": "C0007", "as_of": "2025-06-01", "model_version": "3",
        "master": {"name": "Dupont SA", "segment": "SME", "collector": "alice"},
        "profile": {"profile": "standard", "scenario": "standard", "profile_reason": "default"},
        "behaviour": {"c_late_rate": 0.4, "c_delay_mean": 6.5}, "open_invoices": []}]})

    client_id: str
    as_of: date
    model_version: str
    master: dict[str, Any] = Field(description="Client master data (name, segment, collector, ...).")
    profile: dict[str, Any] | None = Field(description="Dunning profile, scenario and why; None without open invoices.")
    behaviour: dict[str, Any] = Field(description="Behaviour figures (client features c_*; days, currency units).")
    open_invoices: list[InvoiceScoreOut]


class WorklistOut(BaseModel):
    """Ranked worklist rows (priority 1 first; rows without priority are not for today)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2025-06-01", "source": "stored", "run_id": "a1b2", "run_as_of": "2025-06-01",
        "model_version": "3", "total": 1, "limit": 100, "offset": 0, "note": None,
        "rows": [{"invoice_id": "INV-2025-0042", "client_id": "C0007", "collector": "alice", "priority": 1,
                  "next_action": "call", "why": "1 250 EUR 12 days overdue", "reasons": "pays late"}]}]})

    as_of: date
    source: Literal["stored", "computed"] = Field(description="stored: the latest stored score run at or before "
                                                              "as_of; computed: no run was stored, scored now.")
    run_id: str | None
    run_as_of: date
    model_version: str
    note: str | None
    total: int
    limit: int
    offset: int
    rows: list[InvoiceScoreOut]
