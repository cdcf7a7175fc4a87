"""`encaisse monitor`: realized accuracy of every stored run, drift, and retrain alerts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from encaisse.console import emit_json, fail, out, parse_day, settings_for
from encaisse.options import HomeOption, JsonOption, ReportOption


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


SHORT = {"auc_p_late": "AUC", "brier_p_late": "Brier", "calibration_ece": "ECE", "mae_days": "MAE d",
         "bias_days": "bias d", "interval_coverage": "P10-90", "capture_top10": "top10%", "weekly_wape": "WAPE",
         "weekly_band_coverage": "in band"}
"""Run figures shown, with their short column names."""

COMPARED_KEYS = ("auc_p_late", "brier_p_late", "mae_days", "interval_coverage")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("monitor")
    def monitor(
        as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD): outcomes known at its start.")],
        report: ReportOption = None,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """How every stored scoring run came true, drift since training, and whether to retrain."""
        from ledger.reader import EmptyStoreError
        from pipelines.monitor import run_monitor, save_monitor_report

        day = parse_day(as_of)
        try:
            mon = run_monitor(settings_for(home), day)
        except EmptyStoreError as exc:
            raise fail(str(exc)) from exc
        written = str(save_monitor_report(mon, report)) if report is not None else None
        if json_:
            emit_json(mon.to_json())
            return
        if not mon.runs:
            out.print(f"No scoring run is stored before {day.date()}: run `encaisse score --as-of YYYY-MM-DD` first.")
        else:
            table = Table(title=f"Stored runs judged on the outcomes known on {mon.as_of.date()}")
            for col in ("run day", "model", "days", *SHORT.values()):
                table.add_column(col, justify="right")
            for r in mon.runs:
                table.add_row(r["as_of"], f"v{r['model_version']}", str(r["window_days"]),
                              *(_fmt(r.get(k)) for k in SHORT))
            out.print(table)
            table = Table(title="Per model version: validation (at training) | mean realized")
            for col in ("model", "runs", *(SHORT[k] for k in COMPARED_KEYS)):
                table.add_column(col, justify="right")
            for v in mon.versions:
                table.add_row(f"v{v['model_version']}", str(v["n_runs"]),
                              *(f"{_fmt(v['validation'].get(k))} | {_fmt(v['realized'].get(k))}" for k in COMPARED_KEYS))
            out.print(table)
        if len(mon.drift):
            table = Table(title=f"Drift of {mon.n_open} open invoices vs model v{mon.drift_model_version}'s training rows")
            for col in ("kind", "name", "PSI", "status", "in words"):
                table.add_column(col)
            for r in mon.drift.head(10).itertuples():
                table.add_row(r.kind, r.name, f"{r.psi:.3f}", r.status, r.words)
            out.print(table)
        for r in mon.alerts.itertuples():
            out.print(f"[bold]{r.severity}[/bold] {r.kind}: {r.reason}")
        if not len(mon.alerts):
            out.print("No retrain alert.")
        if written:
            out.print(f"Report: {written}")
