"""Shared CLI helpers: workspace settings, JSON result lines, error exits, progress bars (options: ``encaisse.options``)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.workspace import Settings, load_settings

err = Console(stderr=True)
out = Console()

def settings_for(home: Path | None) -> Settings:
    """Workspace settings for a command, honouring ``--home``."""
    return load_settings(home)


def parse_day(value: str, flag: str = "--as-of") -> pd.Timestamp:
    """A YYYY-MM-DD option as a day within the ledger's days (``ledger.rules.parse_iso_day``), or a usage
    error (exit 2)."""
    from ledger.rules import FIRST_DAY, LAST_DAY, parse_iso_day

    day = parse_iso_day(value)
    if day is None:
        raise fail(f"{flag} must be a date like 2025-04-01 (YYYY-MM-DD, from {FIRST_DAY.date()} to {LAST_DAY.date()}); "
                   f"got {value!r}.", code=2)
    return day


def load_ledger_or_fail(settings: Settings):
    """The whole stored ledger, or a clean error when the store holds no invoice yet."""
    from ledger.reader import EmptyStoreError, load_store_ledger

    try:
        return load_store_ledger(settings.store_url)
    except EmptyStoreError as exc:
        raise fail(str(exc)) from None


def emit_json(payload: dict[str, Any]) -> None:
    """Print ``payload`` as the last line of standard output, for scripts."""
    sys.stdout.write(json.dumps(payload, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` to standard error and return an exit to raise."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def progress(disable: bool = False) -> Progress:
    """A progress bar on standard error (so ``--json`` output stays clean)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=disable or not err.is_terminal,
        transient=True,
    )


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
