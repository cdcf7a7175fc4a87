"""Writes through the API: validated like ``encaisse ingest``, waiting for the store's lock, never lost.

A write runs in one transaction (``ledger.writes.write_transaction``): it waits for SQLite's write
lock within ``ENCAISSE_SERVING_WRITE_TIMEOUT_SECONDS`` (an ingest commits a batch at a time, so the
wait is short), and past it raises ``StoreBusyError`` (503 with ``Retry-After``) with nothing
written. Once committed, the rows it changed go to ``state.pending`` and the next read folds them
into the loaded ledger: no reload of the whole ledger per write. Today's scoring caches are rebuilt
in one background thread, once for a burst of writes.

Actions keep an audit trail (``ledger.action_history``): an edit adds a version superseding the
stored one, which is kept. A collector may only write actions of their portfolio: the stored row
an ``action_id`` names is checked as well as the new one.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from ledger.action_history import record_versions, stored_actions
from ledger.changes import writing_as
from ledger.contracts import ACTIONS, INVOICES, PAYMENTS, Table
from ledger.parsing import validate_frame
from ledger.payment_checks import OVERPAID_TOLERANCE, problem_lines
from ledger.rules import OddRows
from ledger.schema import ingest_runs
from ledger.staged_upsert import Upserted, upsert_rows
from ledger.writes import StoreBusyError, write_transaction
from serving.keys import Principal
from serving.current import current_ledger
from serving.invoice_scores import warm_today
from serving.outcomes import RowsRejected, WriteOutcome, outcome_of
from serving.state import ServiceState

log = logging.getLogger(__name__)

__all__ = ["NotYours", "StoreBusyError", "record_action", "write_rows"]

SPECS: dict[str, Table] = {"invoices": INVOICES, "payments": PAYMENTS, "actions": ACTIONS}


class NotYours(PermissionError):
    """A collector tried to write an action outside their portfolio (403)."""


def _by(principal: Principal | None, source: str) -> str:
    if principal is None:
        return source
    who = f"key {principal.prefix} ({principal.role}"
    return who + (f", collector {principal.collector})" if principal.collector else ")")


def _check_owner(stored: pd.DataFrame, principal: Principal | None) -> None:
    if principal is None or principal.role != "collector" or stored.empty:
        return
    for row in stored.itertuples():
        if row.collector != principal.collector:
            raise NotYours(f"Action {row.action_id!r} is stored for client {row.client_id!r}, not in the portfolio of "
                           f"collector {principal.collector!r}: it cannot be changed with this key.")


def write_rows(state: ServiceState, table: str, rows: list[dict], allow_rejects: bool = False,
               source: str | None = None, principal: Principal | None = None) -> WriteOutcome:
    """Validate rows like ``encaisse ingest`` and upsert the good ones in one transaction.

    Re-sending the same rows changes nothing (``unchanged``). The rows that changed are folded into
    the service's ledger at the next read.

    Raises:
        RowsRejected: some rows were rejected and ``allow_rejects`` is False; nothing was stored.
        NotYours: a collector's action names a stored action of another portfolio; nothing was stored.
        StoreBusyError: the store's write lock stayed held past the bound; nothing was stored.
    """
    spec = SPECS[table]
    started = datetime.now(UTC)
    df = pd.DataFrame.from_records(rows, columns=spec.names)
    good, rejects = validate_frame(spec, df)
    outcome = outcome_of(spec.name, len(df), rejects)
    if outcome.rejected and not allow_rejects:
        raise RowsRejected(outcome)
    keys = good[spec.key].astype(str).tolist()
    source = source or f"api:{table}"
    odd = OddRows(spec.name)
    odd.add(good, spec.key)

    def work(conn: sa.Connection) -> tuple[int, int, int, list[str]]:
        if spec.name == "actions":
            stored = stored_actions(conn, keys)
            _check_owner(stored, principal)
            record_versions(conn, good, stored, _by(principal, source), now=started)
        done = upsert_rows(conn, spec, good, now=started) if len(good) else Upserted(0, 0, 0, [])
        ins, upd, same = done.inserted, done.updated, done.unchanged
        conn.execute(ingest_runs.insert().values(
            started_at=started, finished_at=datetime.now(UTC), source=source, mapping=None,
            table_name=spec.name, status="stored", read=len(df), inserted=ins, updated=upd, unchanged=same,
            rejected=outcome.rejected, filtered=0, rejects_file=None))
        # The keys the merge wrote (what another writer stored meanwhile included), or all when too many to list.
        changed = done.keys if done.keys is not None else keys
        return ins, upd, same, changed

    def committed(result: tuple[int, int, int, list[str]]) -> None:
        if result[3]:  # under the commit lock: numbered in commit order
            state.add_own_write(spec.name, good[good[spec.key].astype(str).isin(set(result[3]))])

    with writing_as(state.writer):  # the change log's rows of this write are skipped by this process's reads
        ins, upd, same, changed = write_transaction(state.engine, work, timeout=state.serving.write_timeout_seconds,
                                                    commit_lock=state.commit_lock, committed=committed)
    outcome.inserted, outcome.updated, outcome.unchanged = ins, upd, same
    outcome.stored = True
    outcome.keys = keys
    if spec.name == "payments" and len(good):
        outcome.warnings += _unknown_invoices(state, good)
    if spec.name in ("payments", "invoices") and changed:
        outcome.warnings += _payment_problems(state, good.loc[good[spec.key].astype(str).isin(set(changed)),
                                                              "invoice_id"].astype(str).unique())
    outcome.warnings += odd.lines()
    if changed:
        warm_soon(state)
    return outcome


def _unknown_invoices(state: ServiceState, good: pd.DataFrame) -> list[str]:
    index = current_ledger(state)
    ids = good["invoice_id"].astype(str)
    unknown = sorted(set(ids[index.invoice_pos.get_indexer(ids.tolist()) < 0]))
    if not unknown:
        return []
    shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
    return [f"{len(unknown)} payment(s) name an invoice not in the store: {shown} (stored all the same)."]


def _payment_problems(state: ServiceState, invoice_ids) -> list[str]:
    """``ledger.payment_checks``' lines for the invoices a write touched, read in the served ledger (this
    write folded in) rather than the store: nothing on a write's path waits for another writer's tables."""
    index = current_ledger(state)
    inv, pay = index.ledger.invoices, index.ledger.payments
    issued, amounts = inv["issue_date"].to_numpy(), inv["amount"].to_numpy()
    paid_days, paid_amounts = pay["paid_date"].to_numpy(), pay["amount"].to_numpy()
    early: list[str] = []
    over: list[str] = []
    ids = list(invoice_ids)
    for invoice_id, at in zip(ids, index.invoice_pos.get_indexer(ids)):
        rows = index.payments_of_invoice.get(invoice_id)
        if at < 0 or rows is None:
            continue
        if paid_days[rows].min() < issued[at]:
            early.append(invoice_id)
        if float(paid_amounts[rows].sum()) > float(amounts[at]) + OVERPAID_TOLERANCE:
            over.append(invoice_id)
    return problem_lines(early, over)


def warm_soon(state: ServiceState) -> None:
    """Rebuild today's scoring caches in the background: one thread, however many writes arrive."""
    if not state.serving.warm_today or not state.warming.acquire(blocking=False):
        return

    def run() -> None:
        try:
            while True:
                version = current_ledger(state).version
                warm_today(state)
                if current_ledger(state).version == version:
                    break  # no write arrived meanwhile
        finally:
            state.warming.release()

    threading.Thread(target=run, name="warm-today", daemon=True).start()


def record_action(state: ServiceState, row: dict, principal: Principal | None = None) -> WriteOutcome:
    """Record one collector action (validated like the ledger's actions); features use it from then on.

    Raises:
        LookupError: the client, or the invoice for that client, is not in the store.
        NotYours: a collector key names a stored action of another portfolio.
        RowsRejected: the row fails the ledger's validation.
        StoreBusyError: the store stayed busy past the bound; nothing was stored.
    """
    index = current_ledger(state)
    client_id = row["client_id"]
    if not index.knows_client(client_id):
        raise LookupError(f"Client {client_id!r} is not in the store.")
    invoice_id = row.get("invoice_id")
    if invoice_id is not None:
        pos = index.invoice_pos.get_indexer([invoice_id])[0]
        if pos < 0 or str(index.ledger.invoices["client_id"].iloc[pos]) != client_id:
            raise LookupError(f"Invoice {invoice_id!r} of client {client_id!r} is not in the store.")
    return write_rows(state, "actions", [row], source="api:actions", principal=principal)
