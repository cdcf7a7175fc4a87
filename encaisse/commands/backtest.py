"""`encaisse backtest`: train on what was known at D, score what was open at D, compare with what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from encaisse.commands.train import ConfigOption, load_config_or_fail
from encaisse.console import HomeOption, JsonOption, emit_json, fail, load_ledger_or_fail, out, parse_day, progress, settings_for


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("backtest")
    def backtest(
        as_of: Annotated[str, typer.Option("--as-of", help="Backtest day D (YYYY-MM-DD): training and features "
                                           "see nothing dated on or after it.")],
        end: Annotated[str | None, typer.Option("--end", help="Outcomes observed up to (excluded) this day; "
                                                "default: the day after the last date in the ledger.")] = None,
        config: ConfigOption = None,
        report: Annotated[Path | None, typer.Option("--report", help="Write report.md and PNG plots into "
                                                    "this folder.")] = None,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Backtest the model and three baselines (historical rate, due date, client median delay)."""
        from pipelines.backtest import build_backtest, evaluate_backtest, save_backtest_report
        from pipelines.validation import METRICS

        day = parse_day(as_of, "--as-of")
        end_day = parse_day(end, "--end") if end else None
        cfg = load_config_or_fail(config)
        settings = settings_for(home)
        with progress(disable=json_) as bar:
            task = bar.add_task("loading the ledger", total=3)
            ledger = load_ledger_or_fail(settings)
            bar.update(task, advance=1, description=f"fitting as of {day.date()}")
            try:
                bt = build_backtest(ledger, day, end_day, cfg)
            except ValueError as exc:
                raise fail(str(exc)) from None
            bar.update(task, advance=1, description="evaluating")
            result = evaluate_backtest(ledger, day, end_day, cfg, backtest=bt)
            path = save_backtest_report(bt, result, report) if report else None
            bar.update(task, advance=1)
        if json_:
            emit_json(result)
            return
        out.print(f"Backtest as of {result['as_of']}: {result['n_open']} open invoices, outcomes up to "
                  f"{bt.end.date()} (excluded)")
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        out.print("  " + "forecaster".ljust(22) + "".join(k.rjust(22) for k in METRICS))
        for name, vals in [("model", result["model"]), *result["baselines"].items()]:
            out.print("  " + name.ljust(22) + "".join(fmt(vals[k]).rjust(22) for k in METRICS))
        if path:
            out.print(f"Report: {path}")
