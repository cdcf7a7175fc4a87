"""`encaisse backtest`: train on what was known at D, score what was open at D, compare with what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from encaisse.commands.train import load_config_or_fail
from encaisse.console import emit_json, fail, load_ledger_or_fail, out, parse_day, progress, settings_for
from encaisse.options import ConfigOption, HomeOption, JsonOption, ReportOption


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("backtest")
    def backtest(
        as_of: Annotated[str | None, typer.Option("--as-of", help="Backtest day D (YYYY-MM-DD): training and "
                                                  "features see nothing dated on or after it.")] = None,
        cutoffs: Annotated[str | None, typer.Option("--cutoffs", help="Rolling origin: comma-separated cutoff "
                                                    "days D1,D2,..; each is trained on its own past.")] = None,
        from_: Annotated[str | None, typer.Option("--from", help="Rolling origin: the first cutoff day.")] = None,
        to: Annotated[str | None, typer.Option("--to", help="Rolling origin: the last cutoff day (included).")] = None,
        every: Annotated[str, typer.Option("--every", help="Rolling origin: the step between --from and --to "
                                           "(1M, 2W, 14D).")] = "1M",
        end: Annotated[str | None, typer.Option("--end", help="Outcomes observed up to (excluded) this day; "
                                                "default: the day after the last date in the ledger.")] = None,
        config: ConfigOption = None,
        report: ReportOption = None,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Backtest the model and three baselines (historical rate, due date, client median delay).

        One day with --as-of, or rolling origin over many cutoffs (--cutoffs, or --from/--to/--every):
        the report then shows each cutoff, the mean and the worst cutoff.
        """
        from pipelines.backtest import build_backtest, evaluate_backtest, save_backtest_report
        from pipelines.validation import METRICS

        ranged = from_ is not None or to is not None
        if sum(x is not None for x in (as_of, cutoffs)) + ranged != 1:
            raise fail("Give one of --as-of D, --cutoffs D1,D2,.. or --from D --to D [--every 1M].", code=2)
        end_day = parse_day(end, "--end") if end else None
        cfg = load_config_or_fail(config)
        settings = settings_for(home)
        if as_of is None:
            _rolling(settings, cfg, cutoffs, from_, to, every, end_day, report, json_)
            return
        day = parse_day(as_of, "--as-of")
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
            from pipelines.rolling import evaluate_buckets, evaluate_calibration

            result["buckets"] = evaluate_buckets(bt.predictions, bt)
            result["calibration"] = evaluate_calibration(bt)
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
            out.print("  " + name.ljust(22) + "".join(fmt(vals.get(k)).rjust(22) for k in METRICS))
        if path:
            out.print(f"Report: {path}")


def _rolling(settings, cfg, cutoffs, from_, to, every, end_day, report, json_) -> None:
    """``encaisse backtest`` over many cutoffs (rolling origin)."""
    from pipelines.rolling import build_cutoffs, run_rolling_backtest
    from pipelines.validation import METRICS

    try:
        if cutoffs is not None:
            days = build_cutoffs([parse_day(c, "--cutoffs") for c in cutoffs.split(",") if c.strip()])
        else:
            if from_ is None or to is None:
                raise ValueError("--from and --to go together.")
            days = build_cutoffs(start=parse_day(from_, "--from"), stop=parse_day(to, "--to"), every=every)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    with progress(disable=json_) as bar:
        task = bar.add_task("loading the ledger", total=len(days) + 1)
        ledger = load_ledger_or_fail(settings)

        def on_cutoff(day, i, n):
            bar.update(task, completed=i + 1, description=f"cutoff {i + 1}/{n}: fitting as of {day.date()}")

        try:
            result = run_rolling_backtest(ledger, days, end_day, cfg, report=report, on_cutoff=on_cutoff)
        except ValueError as exc:
            raise fail(str(exc)) from None
        bar.update(task, completed=len(days) + 1)
    if json_:
        emit_json(result)
        return
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    out.print(f"Rolling-origin backtest: {len(days)} cutoffs, outcomes up to {result['end']} (excluded)")
    keys = [k for k in (*METRICS, "weekly_wape", "weekly_band_coverage") if k in result["model"]]
    out.print("  " + "cutoff".ljust(12) + "".join(k[:18].rjust(19) for k in keys))
    for d, r in result["cutoffs"].items():
        out.print("  " + d.ljust(12) + "".join(fmt(r["model"].get(k)).rjust(19) for k in keys))
    out.print("  " + "mean".ljust(12) + "".join(fmt(result["model"].get(k)).rjust(19) for k in keys))
    out.print("  " + "worst".ljust(12) + "".join(fmt(result["worst"].get(k, {}).get("value")).rjust(19) for k in keys))
    if report:
        out.print(f"Report: {Path(report) / 'report.md'}")
