"""`encaisse dunning run`: send the day's due dunning steps, by channel, and record them.

Exit codes (the convention of `encaisse ingest`): 0 every planned message sent or recorded (or a
dry run); 1 some messages failed (recorded as failed, retried by the next run); 2 bad input or
usage (bad date or option, bad ENCAISSE_SMTP_URL or policy, empty store, no stored score run);
3 the store stayed busy, the run stopped; 4 unexpected failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from encaisse.console import emit_json, err, fail, out, parse_day, progress, settings_for
from encaisse.options import HomeOption, JsonOption, PolicyOption

EXIT_OK, EXIT_FAILED_MESSAGES, EXIT_BAD_INPUT, EXIT_BUSY, EXIT_UNEXPECTED = 0, 1, 2, 3, 4

dunning_app = typer.Typer(help="The daily dunning run: reminders by email, SMS and letter; call tasks.",
                          no_args_is_help=True)


@dunning_app.command("run")
def run(
    as_of: Annotated[str, typer.Option("--as-of", help="Day (YYYY-MM-DD): send the steps due on or before it.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and count only: nothing sent or recorded.")] = False,
    client: Annotated[str | None, typer.Option("--client", help="Only this client.")] = None,
    policy: PolicyOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Send the dunning steps due on a day (email over SMTP or to the outbox, SMS, letters, call tasks).

    Plans from the latest stored score run on or before --as-of (run `encaisse score` first, e.g. in
    the same cron job). Idempotent: a rerun sends nothing already sent.
    """
    import logging

    from ledger.scores_store import NoScoresError
    from ledger.writes import StoreBusyError, is_busy_error
    from models.policy import PolicyError

    day = parse_day(as_of)
    settings = settings_for(home)
    try:
        result, where = _run(settings, day, dry_run, client, policy, json_)
    except (DunningInputError, NoScoresError, PolicyError) as exc:
        raise fail(str(exc), code=EXIT_BAD_INPUT) from None
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (-v logs it)
        if isinstance(exc, StoreBusyError) or is_busy_error(exc):
            raise fail("the store stayed busy (another process holds its write lock); the run stopped. "
                       "What was sent is recorded; run again to send the rest.", code=EXIT_BUSY) from None
        logging.getLogger(__name__).debug("dunning run failed", exc_info=True)
        raise fail(f"dunning run failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]} "
                   "(run with -v for the details).", code=EXIT_UNEXPECTED) from None
    summary = result.summary()
    summary["outbox"]["email_to"] = where
    if not json_:
        _print(result, summary)
    for mid in result.resent_after_crash:
        err.print(f"[yellow]warning:[/] message {mid} had been interrupted after it was handed over; sent once more")
    failed = summary["failed"]["total"]
    if failed:
        err.print(f"[bold red]error:[/] {failed} message(s) failed; they are recorded as failed, not sent, "
                  "and the next run tries them again.", soft_wrap=True)
    if json_:
        emit_json(summary)
    if failed:
        raise typer.Exit(EXIT_FAILED_MESSAGES)


class DunningInputError(ValueError):
    """Something the run needs is missing or malformed (exit 2)."""


def _run(settings, day, dry_run: bool, client: str | None, policy_path: Path | None, quiet: bool):
    import logging
    import time

    from ledger.engine import open_store
    from ledger.outbox_transports import OutboxProvider, email_transport
    from ledger.reader import load_ledger
    from ledger.scores_store import require_latest_scores
    from models.dunning_run import Delivery, control_salt, run_dunning
    from models.messages import CompanyError, load_company
    from models.policy import load_policy

    pol = load_policy(policy_path)
    try:
        company = load_company(settings.home_dir)
    except CompanyError as exc:
        raise DunningInputError(str(exc)) from None
    outbox_dir = settings.outbox_dir
    try:
        email = None if dry_run else email_transport(settings.smtp_url, outbox_dir)
    except ValueError as exc:
        raise DunningInputError(str(exc)) from None
    where = (f"smtp://{email.config.host}:{email.config.port}" if hasattr(email, "config")
             else str(outbox_dir / "email"))
    log = logging.getLogger(__name__)
    started = time.perf_counter()
    engine = open_store(settings.store_url)
    try:
        stored = require_latest_scores(engine, day, settings.store_url)
        # Only the invoices open on the day are planned and written about; a dry run reads no
        # payments either (they give the amounts still owed that the messages state).
        ledger = load_ledger(engine, tables=("invoices", "clients", "actions") if dry_run else None, open_on=day)
        log.info("loaded the ledger (%d invoices) and score run %s of %s in %.1f s", len(ledger.invoices),
                 stored.run_id[:8], stored.run["as_of"], time.perf_counter() - started)
        if ledger.invoices.empty:
            raise DunningInputError("The store holds no invoices; run `encaisse ingest` first.")
        if client is not None and not (ledger.clients["client_id"].eq(client).any()
                                       or ledger.invoices["client_id"].eq(client).any()):
            raise DunningInputError(f"--client {client!r} is neither a client of the store nor one with an invoice "
                                    f"open on {day.date()}; check the id (ids are case-sensitive).")
        delivery = None if dry_run else Delivery(email=email, sms=OutboxProvider(outbox_dir / "sms"),
                                                 letter=OutboxProvider(outbox_dir / "letter"),
                                                 mail_from=settings.mail_from)
        with progress(disable=quiet or dry_run) as bar:
            task = bar.add_task("sending", total=None)
            result = run_dunning(engine, ledger, stored.invoices, stored.clients, pol, day, delivery,
                                 dry_run=dry_run, company=company, overrides_dir=settings.home_dir / "templates",
                                 client_id=client, by="cli:dunning run",
                                 control_salt=control_salt(pol, settings.home_dir),
                                 on_message=lambda done, total: bar.update(task, completed=done, total=total))
    finally:
        if email is not None:
            email.close()
        engine.dispose()
    return result, where


def _print(result, summary: dict) -> None:
    from rich.table import Table

    o = result.outcomes
    if len(o):
        table = Table(title=f"Dunning run as of {summary['as_of']}: {len(o)} message(s)")
        for col in ("client", "step", "channel", "status", "detail"):
            table.add_column(col)
        for r in o.head(30).itertuples(index=False):
            table.add_row(str(r.client_id), str(r.step), str(r.channel), str(r.status), str(r.error or r.location or ""))
        out.print(table)

    def counts(d: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items() if k != "total" and isinstance(v, int) and v) or "none"

    word = "would send" if summary["dry_run"] else "sent"
    out.print(f"as of {summary['as_of']}: planned {summary['planned']['total']} ({counts(summary['planned'])}); "
              f"{word} {summary['sent']['total']} ({counts(summary['sent'])}); "
              f"failed {summary['failed']['total']}; skipped {summary['skipped']['total']} "
              f"({counts(summary['skipped']['reasons'])}); held invoices: {counts(summary['skipped']['held_invoices'])}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(dunning_app, name="dunning")
