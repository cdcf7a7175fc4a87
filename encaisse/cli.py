"""The ``encaisse`` command line. Each command lives in ``encaisse.commands.<name>``."""

from __future__ import annotations

import errno
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


SETUP_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                          errno.EEXIST, errno.ENOSPC})
"""Errors of a path the user gave or set up (permissions, a read-only or full disk, a file where a folder goes)."""


def run() -> None:
    """The ``encaisse`` script: the app, with a folder or store it cannot open reported in one line.

    A workspace on a read-only disk, a ``--home`` under a folder that cannot be created, an output
    path in a folder without write permission: the user's setup, not a bug, so no traceback (``-v``
    still logs it).
    """
    import logging
    import sys

    from sqlalchemy.exc import OperationalError

    from encaisse.console import err

    try:
        app()
    except OSError as exc:
        if not exc.filename or exc.errno not in SETUP_ERRNOS:  # a network error, a missing packaged file: not setup
            raise
        logging.getLogger(__name__).debug("OS error", exc_info=True)
        err.print(f"[bold red]error:[/] cannot use {exc.filename}: {exc.strerror or exc}. Check that the folder exists and "
                  "that you may write to it (--home or ENCAISSE_HOME for the workspace).", soft_wrap=True)
        sys.exit(2)
    except OperationalError as exc:
        text = str(exc.orig)
        if not any(s in text for s in ("unable to open database file", "readonly database")):
            raise
        logging.getLogger(__name__).debug("store error", exc_info=True)
        err.print(f"[bold red]error:[/] cannot open the ledger store ({text}). SQLite writes beside its file: the "
                  "workspace folder must be writable (--home or ENCAISSE_HOME).", soft_wrap=True)
        sys.exit(2)
