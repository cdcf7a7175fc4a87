"""`encaisse score`: score open invoices with the champion, rank the worklist, store the run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from encaisse.console import emit_json, fail, out, parse_day, settings_for
from encaisse.options import HomeOption, JsonOption, PolicyOption

SHOWN_ROWS = 20


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("score")
    def score(
        as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD): score at the start of that day.")],
        out_file: Annotated[Path | None, typer.Option("--out", dir_okay=False, help="Write the worklist here (CSV, "
                                                      "or Parquet for .parquet).")] = None,
        capacity: Annotated[float | None, typer.Option("--capacity", min=1, help="Minutes per collector per "
                                                       "day: each collector's list stops there.")] = None,
        policy: PolicyOption = None,
        scheduler: Annotated[str | None, typer.Option("--scheduler", envvar="ENCAISSE_DASK_SCHEDULER",
                                                      help="Dask scheduler (tcp://host:8786): score on that "
                                                      "cluster, partitioned by client.")] = None,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Score every open invoice and client, plan next steps, rank the worklist and store the run."""
        from models.policy import PolicyError
        from pipelines.score import run_score

        day = parse_day(as_of)
        settings = settings_for(home)
        try:
            result = run_score(settings, day, out=out_file, capacity=capacity, policy_path=policy, scheduler=scheduler)
        except PolicyError as exc:  # bad input, as in `encaisse dunning run`
            raise fail(str(exc), code=2) from None
        except (ValueError, LookupError) as exc:  # no invoices, no champion
            raise fail(str(exc)) from None

        if json_:
            emit_json({"as_of": result.as_of, "model_version": result.model_version,
                       "n_invoices": result.n_invoices, "n_clients": result.n_clients,
                       "run_id": result.run_id, "out": result.out})
            return
        wl = result.worklist
        due = wl[wl["priority"].notna()]
        table = Table(title=f"Worklist as of {result.as_of} (model {result.model_version}): "
                            f"{len(due)} actions today of {len(wl)} open invoices")
        for col in ("#", "collector", "invoice", "client", "open", "P(very late)", "next action", "why"):
            table.add_column(col, justify="right" if col in ("#", "open", "P(very late)") else "left")
        for r in due.head(SHOWN_ROWS).itertuples(index=False):
            table.add_row(str(r.priority), str(r.collector), str(r.invoice_id), str(r.client_id),
                          f"{r.amount_remaining:,.0f}", f"{r.p_very_late:.0%}", str(r.next_action), str(r.why))
        out.print(table)
        counts = wl["queue"].value_counts()
        out.print("Queues: " + ", ".join(f"{q} {n}" for q, n in counts.items()))
        out.print(f"Stored as run {result.run_id}" + (f"; worklist written to {result.out}" if result.out else ""))
