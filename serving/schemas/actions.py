"""A collector action in, and what recording it did."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.schemas.fields import ActionStep, Amount, Day, Id, StrictIn, Text
from serving.schemas.ledger import WriteOut


class ActionIn(StrictIn):
    """A collector action: a call made, a promise to pay (date and amount), a dispute, a payment plan
    instalment (``promise_date``), a dunning block or unblock."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"client_id": "C0007", "invoice_id": "INV-2025-0042", "action_date": "2025-06-03", "step": "promise",
         "channel": "call", "outcome": "promise", "promise_date": "2025-06-15", "promise_amount": 1250.0},
        {"client_id": "C0007", "invoice_id": "INV-2025-0042", "action_date": "2025-06-03", "step": "call",
         "channel": "call", "outcome": "no_answer"}]})

    action_id: Id | None = Field(default=None, description="Default: derived from the row's content "
                                                           "(re-sending the same action changes nothing).")
    client_id: Id
    invoice_id: Id | None = Field(default=None, description="Empty for an action on the whole client.")
    action_date: Day
    step: ActionStep
    channel: Literal["email", "sms", "call", "letter", "registered_letter", "agency"] | None = None
    outcome: Text | None = Field(default=None, description="e.g. no_answer, promise, dispute, paid, refused.")
    promise_date: Day | None = Field(default=None, description="Promised payment day (promise) or instalment "
                                                               "day (payment_plan).")
    promise_amount: Amount | None = None

    @model_validator(mode="after")
    def _promise_has_date(self) -> "ActionIn":
        if self.step == "promise" and self.promise_date is None:
            raise ValueError("promise_date is required when step is 'promise'")
        return self


class ActionOut(BaseModel):
    """The stored action."""

    action_id: str
    created: bool = Field(description="True when the action was stored new (201) or edited (200); false when "
                                      "the same action was already stored (200, nothing changed).")
    write: WriteOut
