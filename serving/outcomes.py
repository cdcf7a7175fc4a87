"""What a write did (or why nothing was stored): counts and every rejected row with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


class RowsRejected(ValueError):
    """Rows failed the ledger's validation; nothing was stored. ``outcome`` lists them."""

    def __init__(self, outcome: "WriteOutcome"):
        super().__init__(f"{outcome.rejected} of {outcome.received} {outcome.table} rows were rejected")
        self.outcome = outcome


@dataclass
class WriteOutcome:
    """What a write did: counts, and every rejected row with its 1-based position and reason."""

    table: str
    received: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    stored: bool = False
    keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def outcome_of(table: str, received: int, rejects: pd.DataFrame, what: str | None = None) -> WriteOutcome:
    spec_key = {"invoices": "invoice_id", "payments": "payment_id", "actions": "action_id", "clients": "client_id"}[table]
    listed = [{"row": int(r["source_row"]), "key": None if pd.isna(r.get(spec_key)) else str(r.get(spec_key)),
               "reason": _short(str(r["reason"]))} for r in rejects.to_dict("records")]
    return WriteOutcome(table=what or table, received=received, rejected=len(listed), rejects=listed)


def _short(text: str, limit: int = 300) -> str:
    """A reason cut to ``limit`` characters: an answer never echoes large input back."""
    return text if len(text) <= limit else text[:limit] + "..."
