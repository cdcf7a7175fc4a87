"""FastAPI dependencies, as ``Annotated`` aliases: the service state, the caller, permissions.

``authenticate`` (key -> ``Principal``) is the reusable key check: the web pages call it from their
login form and keep the principal in the session cookie.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from starlette.requests import HTTPConnection

from serving.auth import allows, token_from_request
from serving.keys import Principal, verify_key
from serving.current import current_ledger
from serving.state import ServiceState

AUTHENTICATE_HEADERS = {"WWW-Authenticate": 'Bearer realm="encaisse"'}


def get_state(request: Request) -> ServiceState:
    """The service state built in the lifespan."""
    return request.app.state.encaisse


StateDep = Annotated[ServiceState, Depends(get_state)]


def authenticate(state: ServiceState, token: str | None) -> Principal | None:
    """The principal of a valid, unrevoked key, else None (for the API and the pages' login alike)."""
    return verify_key(state.engine, token)


def get_principal(request: HTTPConnection) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` or ``X-API-Key``.

    Raises:
        HTTPException: 401 (with ``WWW-Authenticate``) when the key is missing, unknown or revoked.
    """
    token = token_from_request(request)
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Missing API key: send 'Authorization: Bearer <key>' "
                            "or 'X-API-Key: <key>'.", headers=AUTHENTICATE_HEADERS)
    principal = authenticate(request.app.state.encaisse, token)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid or revoked API key.",
                            headers=AUTHENTICATE_HEADERS)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: str):
    """A dependency giving the caller if their role has ``permission``, else 403."""

    def check(principal: PrincipalDep) -> Principal:
        if not allows(principal.role, permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"A {principal.role} key may not use this endpoint (it needs '{permission}').")
        return principal

    return check


ScoresCaller = Annotated[Principal, Depends(require("scores"))]
ClientsCaller = Annotated[Principal, Depends(require("clients"))]
WorklistCaller = Annotated[Principal, Depends(require("worklist"))]
ActionsCaller = Annotated[Principal, Depends(require("actions"))]
ForecastCaller = Annotated[Principal, Depends(require("forecast"))]
KpisCaller = Annotated[Principal, Depends(require("kpis"))]
LedgerCaller = Annotated[Principal, Depends(require("ledger"))]
ModelCaller = Annotated[Principal, Depends(require("model"))]
AdminCaller = Annotated[Principal, Depends(require("admin"))]


def check_portfolio(state: ServiceState, principal: Principal, client_id: str) -> None:
    """403 unless the caller may see ``client_id`` (a collector sees their own portfolio only)."""
    if principal.role != "collector":
        return
    owner = current_ledger(state).collector_of(client_id)
    if owner != principal.collector:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"Client {client_id!r} is not in the portfolio of collector {principal.collector!r}.")
