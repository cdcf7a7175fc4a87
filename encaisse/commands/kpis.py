"""`encaisse kpis`: collection KPIs (aging, DSO, CEI, doubtful receivables) as of a day."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from encaisse.console import emit_json, err, load_ledger_or_fail, out, parse_day, settings_for
from encaisse.options import HomeOption, JsonOption


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}".replace(",", " ")


def _num(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:.1f}{unit}"


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("kpis")
    def kpis(
        as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD): KPIs at the start of that day.")],
        period_days: Annotated[int, typer.Option("--period-days", min=1, max=36500,
                                                 help="Period for best possible DSO and CEI, days.")] = 90,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Aging, countback DSO, best possible DSO, CEI and doubtful receivables from the ledger store."""
        from features.kpis import evaluate_kpis

        day = parse_day(as_of)
        ledger = load_ledger_or_fail(settings_for(home))
        result = evaluate_kpis(ledger, day, period_days=period_days)

        table = Table(title=f"Receivables KPIs at the start of {result['as_of']}", show_header=False)
        table.add_column("KPI")
        table.add_column("value", justify="right")
        table.add_row("Open balance", _money(result["open_balance"]))
        table.add_row("Current (not yet due)", _money(result["current_receivables"]))
        share = result["overdue_share"]
        table.add_row("Overdue", f"{_money(result['overdue_amount'])} ({_num(None if share is None else 100 * share, ' %')})")
        table.add_row("DSO (countback)", _num(result["dso"], " d") + ("" if result["dso_complete"] else " (lower bound)"))
        table.add_row("Best possible DSO", _num(result["best_possible_dso"], " d"))
        table.add_row("Average days delinquent", _num(result["average_days_delinquent"], " d"))
        table.add_row(f"CEI ({result['period_days']} d)", _num(result["cei"], " %"))
        table.add_row("Doubtful receivables", f"{_money(result['doubtful_amount'])} ({len(result['doubtful'])} invoices)")
        table.add_row("Suggested provision", _money(result["suggested_provision"]))
        aging = Table(title="Aging (open invoices)")
        for col in ("bucket", "amount", "count"):
            aging.add_column(col, justify="left" if col == "bucket" else "right")
        for bucket, v in result["aging"].items():
            aging.add_row(bucket, _money(v["amount"]), str(v["count"]))
        if json_:
            emit_json(result)
        else:
            out.print(table)
            out.print(aging)
            if result["note"]:
                err.print(f"[bold yellow]note:[/] {result['note']} "
                          + ", ".join(f"{c} {_money(v)}" for c, v in result["currencies"].items()), soft_wrap=True)
