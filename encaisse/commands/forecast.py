"""`encaisse forecast`: expected cash collections per week or day, with P10-P90 bands, from the champion model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from encaisse.console import emit_json, fail, load_ledger_or_fail, out, parse_day, settings_for
from encaisse.options import HomeOption, JsonOption

log = logging.getLogger(__name__)


def _money(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.0f}".replace(",", " ")


CHART_SUFFIXES = (".png", ".svg", ".pdf")


def _chart_path(path: Path | None) -> Path | None:
    """``--chart`` ends in a format the chart is written in (else matplotlib would add ``.png`` or refuse)."""
    if path is not None and path.suffix.lower() not in CHART_SUFFIXES:
        raise typer.BadParameter(f"name a .png, .svg or .pdf file; got {str(path)!r}.")
    return path


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("forecast")
    def forecast(
        as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD): forecast from the start of that day.")],
        horizon: Annotated[int, typer.Option("--horizon", min=1, help="Number of periods (at most 366).")] = 13,
        freq: Annotated[str, typer.Option("--freq", help="W: weeks from Monday; D: days.")] = "W",
        out_file: Annotated[Path | None, typer.Option("--out", dir_okay=False,
                                                      help="Write the forecast as CSV here.")] = None,
        chart: Annotated[Path | None, typer.Option("--chart", dir_okay=False, callback=_chart_path,
                                                   help="Write a fan chart here (.png, .svg or .pdf).")] = None,
        samples: Annotated[int, typer.Option("--samples", min=10, help="Joint draws for the bands.")] = 1000,
        rho: Annotated[float | None, typer.Option(
            "--client-correlation", min=0.0, max=0.99,
            help="Copula correlation of one client's invoices (default: the backtested value).")] = None,
        run_rate_weeks: Annotated[int, typer.Option(
            "--run-rate-weeks", min=0,
            help="Weeks of issuance behind the not-yet-issued line; 0 leaves it out.")] = 13,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed of the draws.")] = 0,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Cash-collection forecast of the open invoices (expected, P10-P90) beside the due-date schedule."""
        from models.collection import PERIOD_COLUMNS, build_forecast, validate_horizon
        from pipelines.plots import plot_forecast
        from serving.frames import plain_dict, records

        day = parse_day(as_of)
        freq = freq.upper()
        try:
            validate_horizon(horizon, freq)
        except ValueError as exc:
            raise fail(f"--{exc}", code=2) from None
        settings = settings_for(home)
        ledger = load_ledger_or_fail(settings)
        try:
            from models.registry import load_champion

            champion = load_champion(settings)
        except Exception as exc:  # noqa: BLE001 - any failure to load means: no usable champion
            raise fail(f"no champion model could be loaded: {exc}") from None
        if pd.Timestamp(champion.as_of) > day:
            log.warning("the champion was trained as of %s, after --as-of %s: a backtest with it would see "
                        "the future", champion.as_of, day.date())

        fc = build_forecast(champion.model, ledger, day, horizon=horizon, freq=freq, n_samples=samples,
                            client_correlation=rho, seed=seed, run_rate_weeks=run_rate_weeks)
        if out_file is not None:
            out_file.write_text(fc.to_csv())
        if chart is not None:
            plot_forecast(fc.periods, chart, title=f"Collections from {day.date()} (model {champion.version})")
        totals = fc.totals
        if json_:
            emit_json({
                "as_of": str(day.date()), "model_version": champion.version, "run_id": champion.run_id,
                "freq": freq, "horizon": horizon, "client_correlation": fc.client_correlation,
                "n_invoices": fc.n_invoices, "periods": records(fc.periods, PERIOD_COLUMNS),
                "totals": plain_dict(totals),
                "out": None if out_file is None else str(out_file),
                "chart": None if chart is None else str(chart),
            })
            return
        table = Table(title=f"Collections forecast from {day.date()} ({fc.n_invoices} open invoices, "
                            f"model {champion.version})")
        for col in ("period", "expected", "P10", "P90", "due schedule", "not yet issued"):
            table.add_column(col, justify="left" if col == "period" else "right")
        for r in fc.periods.itertuples(index=False):
            table.add_row(r.period_start.strftime("%Y-%m-%d"), _money(r.expected_amount), _money(r.low),
                          _money(r.high), _money(r.due_schedule_amount), _money(r.not_yet_issued_amount))
        table.add_row("total", _money(totals["expected_amount"]), _money(totals["low"]), _money(totals["high"]),
                      _money(totals["due_schedule_amount"]), _money(totals["not_yet_issued_amount"]))
        out.print(table)
        out.print(f"Open amount {_money(totals['open_amount'])}; expected after the horizon or never: "
                  f"{_money(totals['expected_beyond_horizon'])}.")
