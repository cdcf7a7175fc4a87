"""`encaisse sample`: write a synthetic ledger as canonical CSV files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from encaisse.console import emit_json, fail, out, progress
from encaisse.options import JsonOption

log = logging.getLogger(__name__)


def sample(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write invoices.csv, payments.csv, "
                                           "clients.csv and actions.csv into (created if needed).")],
    clients: Annotated[int, typer.Option("--clients", min=1, help="Number of clients (~47 invoices "
                                         "each over two years).")] = 300,
    years: Annotated[int, typer.Option("--years", min=1, max=20, help="Years of history up to the end "
                                       "date.")] = 2,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed: same arguments, same "
                                      "bytes.")] = 0,
    end_date: Annotated[str, typer.Option("--end-date", help="Export day (YYYY-MM-DD): later "
                                          "payments and actions are cut, open invoices censored.")]
    = "2025-12-31",
    control_share: Annotated[float, typer.Option("--control-share", min=0.0, max=0.5, help="Share of the "
                                                 "preventive, reminder_1 and reminder_2 decisions held back as "
                                                 "control groups (0 = none). The true effect of each step is "
                                                 "written to truth/control_truth.csv.")] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Generate a realistic synthetic receivables ledger (hidden payer profiles, dunning, disputes)."""
    from ledger.synth import ControlSim, make_synthetic, write_ledger

    control = ControlSim(share=control_share, salt=f"synthetic-{seed}") if control_share > 0 else None
    try:
        with progress(disable=as_json) as bar:
            task = bar.add_task("generating ledger", total=2)
            synthetic = make_synthetic(clients, years=years, seed=seed, end_date=end_date, control=control)
            ledger = synthetic.ledger
            bar.update(task, advance=1, description="writing CSV files")
            paths = write_ledger(ledger, out_dir)
            if synthetic.control_truth is not None:
                # The hidden answer, outside the ledger's files: not to be ingested.
                (Path(out_dir) / "truth").mkdir(exist_ok=True)
                synthetic.control_truth.to_csv(Path(out_dir) / "truth" / "control_truth.csv", index=False)
            bar.update(task, advance=1)
    except ValueError as exc:
        raise fail(str(exc), code=2) from exc

    inv = ledger.invoices
    is_invoice = inv["doc_type"] == "invoice"
    counts = {
        "clients": len(ledger.clients),
        "invoices": int(is_invoice.sum()),
        "credit_notes": int((inv["doc_type"] == "credit_note").sum()),
        "open_invoices": int((is_invoice & inv["paid_date"].isna()).sum()),
        "payments": len(ledger.payments),
        "actions": len(ledger.actions),
    }
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    if as_json:
        emit_json({"out": str(out_dir), "seed": seed, "years": years, "end_date": end_date, **counts})
        return
    out.print(f"Wrote a synthetic ledger to [bold]{out_dir}[/] (seed {seed}, {years} years to {end_date}):")
    for name, value in counts.items():
        out.print(f"  {name.replace('_', ' ')}: {value:,}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("sample")(sample)
