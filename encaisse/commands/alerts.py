"""`encaisse alerts`: credit-limit, risk-jump, broken-promise and due-soon alerts from the stored scores,
and the retrain alerts of `encaisse monitor` (realized accuracy below validation, drift)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from encaisse.console import emit_json, fail, out, parse_day, settings_for
from encaisse.options import HomeOption, JsonOption


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("alerts")
    def alerts(
        as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD): alerts at the start of that day.")],
        retrain: Annotated[bool, typer.Option("--retrain/--no-retrain", help="Also check whether the model needs "
                                              "retraining (realized accuracy, drift; as `encaisse monitor`).")] = True,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Alerts from the latest scoring run at or before a day (and the run before it, for risk jumps)."""
        import pandas as pd

        from ledger.scores_store import NoScoresError
        from pipelines.monitor import run_monitor
        from pipelines.score import run_alerts

        day = parse_day(as_of)
        settings = settings_for(home)
        try:
            result = run_alerts(settings, day)
        except NoScoresError as exc:
            raise fail(str(exc)) from exc
        a = result.alerts
        if retrain:
            model_alerts = run_monitor(settings, day).alerts
            if len(model_alerts):
                a = pd.concat([model_alerts, a], ignore_index=True)
        if json_:
            records = a.astype(object).where(a.notna(), None).to_dict(orient="records")
            emit_json({"as_of": result.as_of, "run_id": result.run_id, "run_as_of": result.run_as_of,
                       "previous_run_id": result.previous_run_id, "n_alerts": len(a),
                       "by_kind": {k: int(v) for k, v in a["kind"].value_counts().items()}, "alerts": records})
            return
        table = Table(title=f"Alerts as of {result.as_of} (scores of run {result.run_id}, {result.run_as_of})")
        for col in ("severity", "kind", "client", "invoice", "reason"):
            table.add_column(col)
        for r in a.itertuples(index=False):
            table.add_row(r.severity, r.kind, str(r.client_id), r.invoice_id if isinstance(r.invoice_id, str) else "",
                          r.reason)
        out.print(table)
        if result.previous_run_id is None:
            out.print("No earlier run is stored: risk jumps need two scoring runs.")
