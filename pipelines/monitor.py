"""Monitoring step: load the store, the champion and the registry's figures; build and report the answer.

``run_monitor`` is what ``encaisse monitor`` and ``encaisse alerts`` call; the answer itself is
``models.monitoring.load_monitoring`` (the API and the pages call it too).
``save_monitor_report`` writes it as Markdown and JSON.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ledger.engine import open_store
from ledger.reader import load_store_ledger
from ledger.workspace import Settings
from models.monitoring import Monitoring, load_monitoring
from models.registry import NoChampionError, load_champion

log = logging.getLogger(__name__)


def run_monitor(settings: Settings, as_of, lang: str = "en") -> Monitoring:
    """The monitoring answer as of a day for the workspace (drift left out when no champion is registered).

    Raises:
        ledger.reader.EmptyStoreError: the store holds no invoices.
    """
    d = pd.Timestamp(as_of).normalize()
    ledger = load_store_ledger(settings.store_url)
    try:
        champion = load_champion(settings)
    except NoChampionError:
        champion = None
        log.warning("no champion model: drift is not measured")
    engine = open_store(settings.store_url)
    try:
        return load_monitoring(settings, engine, ledger, d, champion, lang=lang)
    finally:
        engine.dispose()


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


RUN_COLUMNS = ("auc_p_late", "brier_p_late", "calibration_ece", "mae_days", "bias_days", "interval_coverage",
               "capture_top10", "weekly_wape", "weekly_band_coverage")


def build_report(mon: Monitoring) -> str:
    """The monitoring answer as Markdown: runs per model version, weeks, drift, alerts."""
    lines = [f"# Monitoring as of {mon.as_of.date()}", "",
             "Each stored run is judged on the outcomes known at the start of that day with the backtest's metric "
             "functions (an invoice still open is censored there; weeks count once fully observed).", ""]
    head = "| run day | invoices | days of outcomes | " + " | ".join(RUN_COLUMNS) + " |"
    for v in mon.versions:
        lines += [f"## Model v{v['model_version']} ({v['n_runs']} runs, {v['first_run']} .. {v['last_run']})", "",
                  "Validation: " + ", ".join(f"{k} {_fmt(x)}" for k, x in v["validation"].items()), "",
                  head, "| --- |" + " --- |" * (len(RUN_COLUMNS) + 2)]
        for r in mon.runs:
            if r["model_version"] == v["model_version"]:
                lines.append(f"| {r['as_of']} | {r['n_invoices']} | {r['window_days']} | "
                             + " | ".join(_fmt(r.get(k)) for k in RUN_COLUMNS) + " |")
        lines.append("")
    lines += ["## Forecast vs actual, per week", "", "| run day | week | expected | P10 | P90 | actual |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in mon.runs:
        for w in r["weeks"]:
            lines.append(f"| {r['as_of']} | {w['period_start']} | {w['expected']:,.0f} | {w['low']:,.0f} | "
                         f"{w['high']:,.0f} | {w['actual']:,.0f} |")
    lines += ["", f"## Drift of today's {mon.n_open} open invoices vs model v{mon.drift_model_version}'s training rows",
              "", "| kind | name | PSI | status | in words (training → today, means) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.kind} | {r.name} | {r.psi:.3f} | {r.status} | {r.words} |" for r in mon.drift.itertuples()]
    lines += ["", "## Alerts", ""]
    lines += [f"- **{r.severity}** {r.kind}: {r.reason}" for r in mon.alerts.itertuples()] or ["None."]
    return "\n".join(lines) + "\n"


def save_monitor_report(mon: Monitoring, out_dir: str | Path) -> Path:
    """Write ``report.md`` and ``monitoring.json`` into ``out_dir``; return the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "monitoring.json").write_text(json.dumps({**mon.to_json(), "versions": mon.versions}, indent=1),
                                         encoding="utf-8")
    path = out / "report.md"
    path.write_text(build_report(mon), encoding="utf-8")
    return path
