"""The FastAPI app: ``create_app(settings)``; the champion and the ledger load in the lifespan.

Run it with ``encaisse serve`` (uvicorn), or ``uvicorn --factory serving.app:create_app``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from ledger.engine import open_store
from ledger.workspace import Settings, load_settings
from ledger.writes import StoreBusyError
from serving import current, dunning_pages, invoice_scores, monitoring_pages, outcomes, pages, writes
from serving.limits import BodyGuard, validation_error
from serving.config import ServingSettings, resolve_session_secret
from serving.routes import actions, clients, forecast, health, ledger, model, monitoring, scores, worklist
from serving.state import LRU, ServiceState

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_DESCRIPTION = """Risk scores, payment-date forecasts, worklists and cash forecasts for accounts receivable.

Authenticate with an API key (`encaisse keys create --role ...`): `Authorization: Bearer <key>` or
`X-API-Key: <key>`. Roles: **collector** (worklist, clients and actions of their portfolio),
**treasurer** (forecast, KPIs, scores), **system** (scores, invoices, payments, actions), **admin** (all). The key is checked, and the body's
size, before a body is read.
Every score carries the model version and the `as_of` day it holds for.
"""


def create_app(
    settings: Settings | None = None,
    serving: ServingSettings | None = None,
    champion_loader: Callable[[Settings], Any] | None = None,
) -> FastAPI:
    """Build the app. Nothing is loaded here: the store, the ledger and the champion load at start-up.

    Args:
        settings: workspace settings (default: from the environment).
        serving: service settings (default: from the environment).
        champion_loader: ``settings -> ChampionModel`` (default: the registry's champion).
    """
    settings = settings or load_settings()
    serving = serving or ServingSettings()
    loader = champion_loader or current.default_loader
    session_secret = resolve_session_secret(serving, settings.home_dir)  # refused here, before serving

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_store(settings.store_url)
        state = ServiceState(settings=settings, serving=serving, engine=engine, loader=loader,
                             client_features=LRU(serving.client_feature_cache_days),
                             open_rows=LRU(serving.score_cache_days), session_secret=session_secret)
        app.state.encaisse = state
        current.refresh_ledger(state)
        loaded, message = current.reload_champion(state)
        log.info("%s", message)
        if loaded and serving.warm_today:
            invoice_scores.warm_today(state)  # today's client features and open invoices: the day's first call is fast
        current.settle_heap()  # the ledger, model and caches loaded: out of the collector's scans
        stop = threading.Event()

        def warm() -> None:  # after each periodic reload, so that no request pays for it
            if state.champion is not None:
                invoice_scores.warm_today(state)

        threads = []
        if serving.reload_seconds:
            threads.append(current.start_periodic_reload(state, stop, after=warm if serving.warm_today else None))
        if serving.sync_seconds:
            threads.append(current.start_change_sync(state, stop, after=(lambda: writes.warm_soon(state))
                                                     if serving.warm_today else None))
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            engine.dispose()

    app = FastAPI(title="Encaisse", version="1", description=API_DESCRIPTION, lifespan=lifespan)

    @app.exception_handler(current.NoModelError)
    async def _no_model(request: Request, exc: current.NoModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(outcomes.RowsRejected)
    async def _rejected(request: Request, exc: outcomes.RowsRejected) -> JSONResponse:
        o = exc.outcome
        route = request.scope.get("route")
        takes_option = route is not None and any(p.name == "allow_rejects" for p in route.dependant.query_params)
        fix = "Fix them, or send ?allow_rejects=true to store the others." if takes_option else "Fix them and send again."
        return JSONResponse({"detail": {
            "message": f"{o.rejected} of {o.received} {o.table} rows were rejected; nothing was stored. {fix}",
            "rejected": o.rejected, "rejects": o.rejects}}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(StoreBusyError)
    async def _busy(request: Request, exc: StoreBusyError) -> JSONResponse:
        retry = max(1, round(serving.write_timeout_seconds / 4))
        return JSONResponse({"detail": f"The ledger store is busy (another writer held its lock for "
                                       f"{exc.waited:.0f} s); nothing was stored. Send the same request again "
                                       f"in {retry} s: it is idempotent."},
                            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(retry)})

    @app.exception_handler(writes.NotYours)
    async def _not_yours(request: Request, exc: writes.NotYours) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_403_FORBIDDEN)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(BodyGuard, max_body_bytes=serving.max_body_bytes)

    for router in (health.router, model.router, scores.router, clients.router, worklist.router, actions.router,
                   forecast.router, ledger.router, monitoring.router, pages.router, dunning_pages.router,
                   monitoring_pages.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app
