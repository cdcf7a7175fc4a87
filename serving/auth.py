"""Who may do what: roles, their permissions, and reading a key from a request.

Roles:
    * ``collector``: the worklist, client pages and actions of their own portfolio (clients whose
      ``collector`` is theirs);
    * ``treasurer``: forecast, KPIs, and reading scores (score calls, client pages, the worklist) of
      every portfolio;
    * ``system`` (ERP, CRM, billing): score calls, invoices, payments and actions;
    * ``admin``: everything, including reloading the model.
"""

from __future__ import annotations

from typing import Literal

from starlette.requests import HTTPConnection

Permission = Literal["scores", "clients", "worklist", "actions", "forecast", "kpis", "ledger", "model", "admin"]

PERMISSIONS: dict[str, frozenset[str]] = {
    "collector": frozenset({"clients", "worklist", "actions", "model"}),
    "treasurer": frozenset({"forecast", "kpis", "scores", "clients", "worklist", "model"}),
    "system": frozenset({"scores", "ledger", "actions", "model"}),
    "admin": frozenset({"scores", "clients", "worklist", "actions", "forecast", "kpis", "ledger", "model", "admin"}),
}
"""Permissions of each role."""

API_KEY_HEADER = "X-API-Key"


def token_from_request(conn: HTTPConnection) -> str | None:
    """The key sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (None when absent)."""
    auth = conn.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = conn.headers.get(API_KEY_HEADER)
    return key.strip() if key and key.strip() else None


def allows(role: str, permission: str) -> bool:
    """Whether ``role`` has ``permission``."""
    return permission in PERMISSIONS.get(role, frozenset())
