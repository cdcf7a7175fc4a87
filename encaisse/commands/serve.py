"""`encaisse serve`: run the HTTP API (and web pages) under uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from encaisse.console import fail
from encaisse.options import HomeOption


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
        workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes (each loads the model "
                                                                      "and the ledger).")] = 1,
        home: HomeOption = None,
    ) -> None:
        """Serve the score API, worklist, forecast and KPIs; the champion loads at start-up."""
        import uvicorn

        from ledger.workspace import load_settings
        from serving.config import ServingSettings, resolve_session_secret

        if home is not None:
            # Workers are separate processes that build the app from the environment.
            os.environ["ENCAISSE_HOME"] = str(home)
        try:
            resolve_session_secret(ServingSettings(), load_settings(home).home_dir)
        except ValueError as exc:
            errors = getattr(exc, "errors", None)
            message = "; ".join(e["msg"].removeprefix("Value error, ") for e in errors()) if callable(errors) else str(exc)
            raise fail(message) from None
        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info", access_log=False)
