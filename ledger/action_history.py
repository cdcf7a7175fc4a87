"""The audit trail of actions: who wrote which version of an action, and which version replaced which.

``record_versions`` runs in the writer's transaction, before the rows are upserted into
``actions``: a new action adds its first version; an edit (same ``action_id``, other values) adds
the new version and marks the stored one superseded (that version is first copied here if it came
from a file and was never recorded); an unchanged re-send adds nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from ledger.contracts import ACTIONS
from ledger.schema import action_history, actions, clients


def stored_actions(conn: sa.Connection, action_ids: list[str]) -> pd.DataFrame:
    """The stored rows of ``action_ids`` with their ``row_hash`` and their client's ``collector``."""
    cols = [actions.c[n] for n in ACTIONS.names] + [actions.c.row_hash, clients.c.collector]
    q = (sa.select(*cols).select_from(actions.outerjoin(clients, clients.c.client_id == actions.c.client_id))
         .where(actions.c.action_id.in_(action_ids)))
    rows = conn.execute(q).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[*ACTIONS.names, "row_hash", "collector"])


def _data(row: dict) -> str:
    def plain(v):
        if v is None or (isinstance(v, float) and v != v) or v is pd.NaT:
            return None
        if isinstance(v, pd.Timestamp | datetime):
            return v.date().isoformat()
        return v.isoformat() if hasattr(v, "isoformat") else v

    return json.dumps({n: plain(row.get(n)) for n in ACTIONS.names}, default=str, sort_keys=True)


def record_versions(conn: sa.Connection, rows: pd.DataFrame, stored: pd.DataFrame, by: str,
                    now: datetime | None = None) -> dict[str, int]:
    """Add the versions ``rows`` (typed, with ``row_hash``) write, superseding the stored ones they change.

    Returns:
        ``{"new": n, "edited": n, "unchanged": n}``.
    """
    now = now or datetime.now(UTC)
    before = stored.set_index("action_id") if len(stored) else None
    counts = {"new": 0, "edited": 0, "unchanged": 0}
    for row in rows.to_dict("records"):
        aid = str(row["action_id"])
        old = before.loc[aid] if before is not None and aid in before.index else None
        if old is not None and old["row_hash"] == row["row_hash"]:
            counts["unchanged"] += 1
            continue
        current_id = None
        if old is not None:
            current = conn.execute(sa.select(action_history.c.id).where(
                action_history.c.action_id == aid, action_history.c.superseded_at.is_(None))
                .order_by(action_history.c.id.desc())).first()
            if current is None:  # the stored version came from a file: kept here before it is replaced
                current_id = conn.execute(action_history.insert().values(
                    action_id=aid, row_hash=old["row_hash"], data=_data({"action_id": aid, **old.to_dict()}),
                    recorded_at=now, recorded_by="store (before its first edit)")).inserted_primary_key[0]
            else:
                current_id = current[0]
        new_id = conn.execute(action_history.insert().values(
            action_id=aid, row_hash=row["row_hash"], data=_data(row), recorded_at=now, recorded_by=by,
        )).inserted_primary_key[0]
        if current_id is None:
            counts["new"] += 1
            continue
        counts["edited"] += 1
        conn.execute(action_history.update().where(action_history.c.id == current_id)
                     .values(superseded_at=now, superseded_by=new_id))
    return counts


def action_versions(conn: sa.Connection, action_id: str) -> list[dict]:
    """Every recorded version of an action, oldest first (``data`` decoded)."""
    rows = conn.execute(sa.select(action_history).where(action_history.c.action_id == action_id)
                        .order_by(action_history.c.id)).mappings().all()
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]
