"""The dunning journal: every message the daily run plans, sends and records (tables of migration 0006).

A message (one client, one step, the invoices it lists) moves through statuses:

* ``planned``: written before anything leaves; ``sending``: written just before the transport is
  called (``attempts`` + 1); ``sent``: written after it returned, in the same transaction as the
  ledger's action rows of its invoices, so a message is sent in the journal exactly when its
  actions are in the ledger;
* ``failed``: the transport raised; retried by the next run; ``unconfirmed``: found ``sending``
  again after a resend (two interrupted attempts), not sent a third time: a person checks;
* ``task``: a call task for a collector (a call step, or a client without a usable contact), no
  message sent; ``cancelled``: planned but no longer due (paid, blocked...) when a run came back.

A row found ``sending`` at the start of a run was interrupted between the send and its record: it
is sent once more and reported. Writes go through ``ledger.writes.write_transaction``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from ledger.action_history import record_versions, stored_actions
from ledger.contracts import ACTIONS
from ledger.parsing import validate_frame
from ledger.schema import dunning_message_invoices as msg_invoices
from ledger.schema import dunning_messages as messages
from ledger.schema import ingest_runs
from ledger.staged_upsert import upsert_frame
from ledger.writes import write_transaction

PLANNED, SENDING, SENT, FAILED, UNCONFIRMED, TASK, CANCELLED = (
    "planned", "sending", "sent", "failed", "unconfirmed", "task", "cancelled")
PENDING = (PLANNED, SENDING, FAILED)
"""Statuses a later run picks up again (the same message id)."""
DONE = (SENT, TASK)
"""Statuses that mean the step was handled for the message's invoices."""

MESSAGE_COLUMNS = [c.name for c in messages.columns]


def _now() -> datetime:
    return datetime.now(UTC)


def load_messages(engine: sa.Engine, *, statuses: Iterable[str] | None = None, client_id: str | None = None,
                  message_id: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Journal rows, newest first, with ``invoice_ids`` (a list per message)."""
    q = sa.select(messages)
    if statuses is not None:
        q = q.where(messages.c.status.in_(list(statuses)))
    if client_id is not None:
        q = q.where(messages.c.client_id == client_id)
    if message_id is not None:
        q = q.where(messages.c.message_id == message_id)
    q = q.order_by(messages.c.updated_at.desc(), messages.c.message_id)
    if limit is not None:
        q = q.limit(limit)
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).mappings().all(), columns=MESSAGE_COLUMNS)
        ids = df["message_id"].tolist()
        pairs = []
        for start in range(0, len(ids), 5_000):
            part = ids[start:start + 5_000]
            pairs += conn.execute(sa.select(msg_invoices.c.message_id, msg_invoices.c.invoice_id)
                                  .where(msg_invoices.c.message_id.in_(part))).all()
    by_message: dict[str, list[str]] = {}
    for mid, inv in pairs:
        by_message.setdefault(mid, []).append(inv)
    df["invoice_ids"] = [sorted(by_message.get(m, [])) for m in df["message_id"]]
    df["as_of"] = pd.to_datetime(df["as_of"])
    return df


def load_message_invoices(engine: sa.Engine, client_id: str | None = None) -> pd.DataFrame:
    """Every (message, invoice) pair with the message's ``client_id, step, status, as_of``: what was done.

    Args:
        client_id: only this client's messages.
    """
    q = (sa.select(msg_invoices.c.message_id, msg_invoices.c.invoice_id, messages.c.client_id, messages.c.step,
                   messages.c.channel, messages.c.status, messages.c.as_of, messages.c.attempts)
         .select_from(msg_invoices.join(messages, messages.c.message_id == msg_invoices.c.message_id)))
    if client_id is not None:
        q = q.where(messages.c.client_id == client_id)
    cols = ["message_id", "invoice_id", "client_id", "step", "channel", "status", "as_of", "attempts"]
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).all(), columns=cols)
    df["as_of"] = pd.to_datetime(df["as_of"])
    return df


def save_planned(engine: sa.Engine, rows: list[dict], invoices: dict[str, list[str]]) -> None:
    """Record the intent: insert new message rows (``planned``), or update reused pending ones.

    Args:
        rows: journal rows (``message_id, as_of, client_id, step, channel, ...``); a row whose
            ``message_id`` is stored is updated (its status kept) and its invoices replaced.
        invoices: message id -> the invoice ids it lists.
    """
    now = _now()

    def work(conn: sa.Connection) -> None:
        ids = [r["message_id"] for r in rows]
        stored = set()
        for start in range(0, len(ids), 5_000):
            stored |= {m for (m,) in conn.execute(sa.select(messages.c.message_id)
                                                  .where(messages.c.message_id.in_(ids[start:start + 5_000])))}
        new = [{"status": PLANNED, "attempts": 0, "created_at": now, "updated_at": now, **r}
               for r in rows if r["message_id"] not in stored]
        if new:
            conn.execute(messages.insert(), new)
        for r in rows:
            if r["message_id"] in stored:
                values = {k: v for k, v in r.items() if k not in ("message_id", "status", "attempts")}
                conn.execute(messages.update().where(messages.c.message_id == r["message_id"])
                             .values(**values, updated_at=now))
        for start in range(0, len(ids), 5_000):
            conn.execute(msg_invoices.delete().where(msg_invoices.c.message_id.in_(ids[start:start + 5_000])))
        pairs = [{"message_id": m, "invoice_id": i} for m in ids for i in invoices[m]]
        if pairs:
            conn.execute(msg_invoices.insert(), pairs)

    write_transaction(engine, work)


def _set(engine: sa.Engine, message_id: str, **values) -> None:
    def work(conn: sa.Connection) -> None:
        conn.execute(messages.update().where(messages.c.message_id == message_id).values(**values, updated_at=_now()))

    write_transaction(engine, work)


def mark_sending(engine: sa.Engine, message_id: str, **content) -> None:
    """Just before the transport is called: ``sending``, one more attempt, the rendered content."""
    def work(conn: sa.Connection) -> None:
        conn.execute(messages.update().where(messages.c.message_id == message_id).values(
            status=SENDING, attempts=messages.c.attempts + 1, error=None, updated_at=_now(), **content))

    write_transaction(engine, work)


def mark_failed(engine: sa.Engine, message_id: str, error: str) -> None:
    """The transport raised: ``failed`` with the error; the next run tries again."""
    _set(engine, message_id, status=FAILED, error=error[:2000])


def mark_status(engine: sa.Engine, message_ids: list[str], status: str, note: str | None = None) -> None:
    """Set ``status`` (and a note) on several messages, e.g. ``cancelled`` or ``unconfirmed``."""
    if not message_ids:
        return

    def work(conn: sa.Connection) -> None:
        conn.execute(messages.update().where(messages.c.message_id.in_(message_ids))
                     .values(status=status, note=note, updated_at=_now()))

    write_transaction(engine, work)


def validate_actions(rows: pd.DataFrame) -> pd.DataFrame:
    """Action rows validated and typed with the ingest's rules (``row_hash`` added), once for a run.

    Raises:
        ValueError: a row fails validation (names the rows and reasons).
    """
    good, rejects = validate_frame(ACTIONS, rows)
    if len(rejects):
        detail = "; ".join(f"row {r.source_row}: {r.reason}" for r in rejects.head(5).itertuples())
        raise ValueError(f"{len(rejects)} dunning action row(s) failed validation: {detail}")
    return good


def store_actions(conn: sa.Connection, good: pd.DataFrame, by: str, now: datetime | None = None) -> pd.DataFrame:
    """Upsert validated action rows (:func:`validate_actions`) in the caller's transaction, as API writes do.

    Same path as ``serving.writes.write_rows`` for actions: the action history
    (``record_versions``), ``upsert_frame`` and an ``ingest_runs`` row.

    Returns:
        ``good``, as stored.
    """
    now = now or _now()
    keys = good["action_id"].astype(str).tolist()
    stored = stored_actions(conn, keys)
    record_versions(conn, good, stored, by, now=now)
    ins, upd, same = upsert_frame(conn, ACTIONS, good, now=now)
    conn.execute(ingest_runs.insert().values(
        started_at=now, finished_at=_now(), source=by, mapping=None, table_name="actions", status="stored",
        read=len(good), inserted=ins, updated=upd, unchanged=same, rejected=0, filtered=0, rejects_file=None))
    return good


def mark_sent(engine: sa.Engine, message_id: str, actions: pd.DataFrame, location: str | None,
              by: str = "dunning run", status: str = SENT) -> pd.DataFrame:
    """After the transport returned: ``sent`` (or ``task``) and the action rows, in one transaction.

    Args:
        actions: one validated action row per invoice (:func:`validate_actions`); empty for a task.

    Returns:
        The typed action rows stored.
    """
    now = _now()

    def work(conn: sa.Connection) -> pd.DataFrame:
        good = store_actions(conn, actions, by, now=now) if len(actions) else actions
        for inv, aid in zip(actions.get("invoice_id", []), actions.get("action_id", [])):
            conn.execute(msg_invoices.update().where((msg_invoices.c.message_id == message_id)
                                                     & (msg_invoices.c.invoice_id == inv)).values(action_id=aid))
        conn.execute(messages.update().where(messages.c.message_id == message_id).values(
            status=status, location=location, sent_at=now, updated_at=now, error=None))
        return good

    return write_transaction(engine, work)
