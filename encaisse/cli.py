"""The ``encaisse`` command line. Each command lives in ``encaisse.commands.<name>``."""

from __future__ import annotations

from typing import Annotated

import typer

from encaisse import __version__
from encaisse.console import setup_logging
from models.openmp import use_passive_waiting

use_passive_waiting()  # before any command imports LightGBM (the server's workers inherit it)

app = typer.Typer(
    name="encaisse",
    help="Receivables risk scoring, payment-date forecasts, worklists and cash-collection forecasts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """Encaisse command line."""
    setup_logging(verbose)


def _register() -> None:
    from encaisse.commands import (alerts, backtest, demo, dunning, forecast, ingest, keys, kpis, monitor, sample, score,
                                   serve, train, tune, uplift)

    for module in (ingest, sample, kpis, forecast, score, alerts, dunning, monitor, train, backtest, tune, uplift, serve,
                   keys, demo):
        module.register(app)


_register()
