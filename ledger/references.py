"""Rejected keys, and the rows that reference them.

An ingest keeps the key of every row it rejects, with the reason (``ingest_rejected_keys``). A
later row referencing such a key while no row of that key is stored (a payment of a rejected
invoice, an invoice of a rejected client) is rejected in turn, its reason naming the rejected
row's, instead of being stored dangling. Once the referenced row is stored (the file fixed and
sent again), the rows referencing it are accepted. A reference to a key never seen is not a
rejection: that row may come in a later file (``ledger.ingest`` reports unknown invoices).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.contracts import TABLES, Table
from ledger.rules import _Problems
from ledger.schema import LEDGER_TABLES, ingest_rejected_keys

REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "invoices": (("client_id", "clients"),),
    "payments": (("invoice_id", "invoices"),),
    "actions": (("invoice_id", "invoices"), ("client_id", "clients")),
    "clients": (),
}
"""For each table, (column, referenced table) pairs."""
CODE = "rejected_reference"
"""The tally code of rows rejected for a reference (summarised by ``reference_summaries``)."""
_BATCH = 10_000


def record_rejected_keys(conn: sa.Connection, table: Table, rejected: pd.DataFrame, source: str,
                         now: datetime) -> None:
    """Keep the keys of rejected rows (``key``, ``reason``; rows without a key are skipped), the
    latest reason winning, in the caller's transaction."""
    if not len(rejected):
        return
    rows = rejected.dropna(subset=["key"]).drop_duplicates("key", keep="last")
    if not len(rows):
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(ingest_rejected_keys)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ingest_rejected_keys.c.table_name, ingest_rejected_keys.c.key],
        set_={c: stmt.excluded[c] for c in ("reason", "source", "rejected_at")})
    values = [{"table_name": table.name, "key": str(k)[:64], "reason": str(r), "source": source[-1024:],
               "rejected_at": now} for k, r in zip(rows["key"], rows["reason"])]
    for start in range(0, len(values), _BATCH):
        conn.execute(stmt, values[start:start + _BATCH])


class RejectedReferences:
    """Finds the rows of a chunk whose reference names a rejected key that is not stored."""

    def __init__(self, conn: sa.Connection, table: Table) -> None:
        self.conn, self.table = conn, table
        refs = REFERENCES.get(table.name, ())
        held = set()
        if refs:
            q = (sa.select(ingest_rejected_keys.c.table_name).distinct()
                 .where(ingest_rejected_keys.c.table_name.in_([t for _, t in refs])))
            held = {r[0] for r in conn.execute(q)}
        self.refs = [(col, t) for col, t in refs if t in held]

    def __bool__(self) -> bool:
        return bool(self.refs)

    def _rejected(self, target: str, keys: list[str]) -> dict[str, tuple[str, str]]:
        """{key: (reason, source)} of ``keys`` rejected in ``target`` and not stored there."""
        t = LEDGER_TABLES[target]
        r = ingest_rejected_keys
        out: dict[str, tuple[str, str]] = {}
        for start in range(0, len(keys), _BATCH):
            batch = keys[start:start + _BATCH]
            q = (sa.select(r.c.key, r.c.reason, r.c.source)
                 .where(r.c.table_name == target, r.c.key.in_(batch))
                 .where(~sa.exists().where(t.c[TABLES[target].key] == r.c.key)))
            out.update({k: (reason, src) for k, reason, src in self.conn.execute(q)})
        return out

    def check(self, df: pd.DataFrame, rows: np.ndarray, problems: _Problems) -> None:
        """Flag the rows of the typed chunk ``df`` referencing a rejected key."""
        for col, target in self.refs:
            values = df[col].astype("object")
            keys = [str(k) for k in pd.unique(values.dropna())]
            rejected = self._rejected(target, keys) if keys else {}
            if not rejected:
                continue
            mask = values.isin(list(rejected)).to_numpy()
            noun = target.rstrip("s")
            problems.add(CODE, col, mask, lambda: values.map(
                lambda k: (f"{col} {k}: that {noun} was rejected by the ingest of "
                           f"{_name(rejected[k][1])} ({rejected[k][0]})") if k in rejected else ""), rows)


def _name(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def reference_summaries(tally: dict, examples: dict, table: Table, source: str) -> list[str]:
    """Take the rows rejected for a reference out of ``tally`` and say them in one line per column."""
    out = []
    for key in [k for k in tally if k[0] == CODE]:
        rows = np.sort(np.concatenate(tally.pop(key)))
        first = examples.pop(key)
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        noun = table.name if len(rows) != 1 else table.name.rstrip("s")
        out.append(f"{len(rows)} {noun} reference{'' if len(rows) != 1 else 's'} a rejected {key[1]}: "
                   f"row{'s' if len(rows) != 1 else ''} {shown} of {source}; fix and ingest the rejected "
                   f"rows first, then send this file again (first: {first})")
    return out
