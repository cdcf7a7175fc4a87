"""`encaisse uplift`: the measured effect of each testable dunning step, from its control group."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from encaisse.console import emit_json, fail, load_ledger_or_fail, out, parse_day, settings_for
from encaisse.options import HomeOption, JsonOption, PolicyOption


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f}"


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("uplift")
    def uplift(
        as_of: Annotated[str | None, typer.Option("--as-of", help="Day (YYYY-MM-DD): what is known at its "
                                                  "start; default: the day after the ledger's last date.")] = None,
        policy: PolicyOption = None,
        confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999,
                                                  help="Confidence of the intervals.")] = 0.9,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Per testable step: the change in the chance of being paid within 7, 14 and 30 days of the step,
        sent against held back, with its interval; and the steps whose measured uplift the worklist uses."""
        import pandas as pd

        from ledger.engine import open_store
        from models.policy import PolicyError, load_policy
        from models.uplift import evaluate_uplift

        try:
            pol = load_policy(policy)
        except PolicyError as exc:
            raise fail(str(exc), code=2) from None
        settings = settings_for(home)
        ledger = load_ledger_or_fail(settings)
        if as_of is None:
            last = max(pd.to_datetime(ledger.invoices[c]).max() for c in ("issue_date", "paid_date"))
            if len(ledger.actions):
                last = max(last, pd.to_datetime(ledger.actions["action_date"]).max())
            day = pd.Timestamp(last).normalize() + pd.Timedelta(days=1)
        else:
            day = parse_day(as_of)
        engine = open_store(settings.store_url)
        result = evaluate_uplift(ledger, day, pol.control, engine=engine, confidence=confidence)
        if json_:
            emit_json(result)
            return
        table = Table(title=f"Uplift of each testable step at the start of {result['as_of']} "
                            f"({confidence:.0%} intervals, points of probability of being paid)")
        for col in ("step", "sent", "held back", "7 days", "14 days", "30 days", "worklist"):
            table.add_column(col, justify="left" if col in ("step", "worklist") else "right")
        for step, e in result["steps"].items():
            cells = []
            for w in ("7", "14", "30"):
                x = e["window_days"].get(w)
                cells.append("-" if not x or x["uplift"] is None else
                             f"{_pct(x['uplift'])} [{_pct(x['low'])}, {_pct(x['high'])}]")
            m = result["measured"].get(step)
            table.add_row(step, str(e["n_treated"]), str(e["n_control"]), *cells,
                          f"measured ({m['why']})" if m else "default (not enough evidence yet)")
        out.print(table)
