"""What the running service holds in memory: the store engine, the ledger, the champion, caches.

One ``ServiceState`` per app (``app.state.encaisse``), built in the lifespan. The ledger is loaded
once (and again on ``POST /v1/admin/reload``), so score calls never read the database. A write
through the API leaves its stored rows in ``pending``; the next read folds them into the loaded
ledger (``LedgerIndex.with_rows``: new rows appended, changed ones replaced), never reloading the
whole ledger. What other processes store reaches ``pending`` the same way, through the store's change
log (``serving.current.sync_changes``). Caches are keyed by the ledger's ``version`` and the model version, so a write or a
reload can never serve stale figures.

Score calls on stored invoices read ``open_rows``: per (ledger version, champion, ``as_of`` day),
the feature rows and encoded model input of every invoice open that day, built once by the batch
feature path (``serving.invoice_scores.open_rows``); a call then scores only the rows it asks for.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.contracts import COMPACT_TABLES, TABLES, Ledger, coerce_frame, compact_frame
from ledger.workspace import Settings
from serving.config import ServingSettings


@dataclass
class LedgerIndex:
    """The store's ledger and positional look-ups by id (so one invoice is found without a scan).

    Attributes:
        ledger: the full ledger (every table, as loaded).
        version: increases at every reload.
        invoice_pos: ``invoice_id`` -> row position in ``ledger.invoices``.
        invoices_of_client, payments_of_invoice, actions_of_invoice, actions_of_client,
        client_rows: row positions, by key.
    """

    ledger: Ledger
    version: int
    invoice_pos: pd.Index = field(repr=False)
    invoices_of_client: dict[Any, np.ndarray] = field(repr=False)
    payments_of_invoice: dict[Any, np.ndarray] = field(repr=False)
    actions_of_invoice: dict[Any, np.ndarray] = field(repr=False)
    actions_of_client: dict[Any, np.ndarray] = field(repr=False)
    client_rows: dict[Any, np.ndarray] = field(repr=False)

    @classmethod
    def build(cls, ledger: Ledger, version: int) -> "LedgerIndex":
        def groups(df: pd.DataFrame, col: str) -> dict[Any, np.ndarray]:
            return positions_by_value(df[col]) if len(df) else {}

        inv = ledger.invoices.reset_index(drop=True)
        ledger = Ledger(invoices=inv, payments=ledger.payments.reset_index(drop=True),
                        clients=ledger.clients.reset_index(drop=True), actions=ledger.actions.reset_index(drop=True))
        return cls(
            ledger=ledger, version=version, invoice_pos=pd.Index(inv["invoice_id"].astype(str)),
            invoices_of_client=groups(inv, "client_id"),
            payments_of_invoice=groups(ledger.payments, "invoice_id"),
            actions_of_invoice=groups(ledger.actions, "invoice_id"),
            actions_of_client=groups(ledger.actions, "client_id"),
            client_rows=groups(ledger.clients, "client_id"),
        )

    def with_rows(self, table: str, rows: pd.DataFrame, version: int) -> "LedgerIndex":
        """This ledger with ``rows`` of ``table`` written (typed canonical rows, keys unique, and the
        invoices' extras as columns if they have them), as ``version``.

        New keys are appended and their positions added to the look-ups; a key already loaded is
        replaced (its table's look-ups are then rebuilt). The other tables are shared, not copied.
        """
        spec = TABLES[table]
        old = getattr(self.ledger, table)
        new = coerce_frame(rows[[c for c in rows.columns if c in spec.names]], spec)
        if table in COMPACT_TABLES:
            new = compact_frame(new, spec)
        extras = [c for c in rows.columns if c not in spec.names and c != "row_hash"] if table == "invoices" else []
        for c in extras:  # the invoices' mapped extras, when the rows carry them (read from the store)
            new[c] = rows[c].to_numpy()
        for c in old.columns:
            if c not in new.columns:
                new[c] = None
        new = new[list(old.columns) + [c for c in new.columns if c not in old.columns]]
        for c in new.columns:  # one dtype per column, so the concatenation keeps the loaded ones
            if c in old.columns and new[c].dtype != old[c].dtype:
                try:
                    new[c] = new[c].astype(old[c].dtype)
                except (TypeError, ValueError):
                    pass
        keys = new[spec.key].astype(str)
        if table == "invoices":
            replaced = self.invoice_pos.get_indexer(keys) >= 0
            replaced = bool(replaced.any())
        else:
            replaced = bool(old[spec.key].isin(set(keys)).any()) if len(old) else False
        kept = old[~old[spec.key].isin(set(keys))] if replaced else old
        frame = pd.concat([kept, new], ignore_index=True) if len(kept) else new.reset_index(drop=True)
        frames = {name: getattr(self.ledger, name) for name in TABLES}
        frames[table] = frame
        ledger = Ledger(**frames)
        start = len(old)
        out = LedgerIndex(ledger=ledger, version=version, invoice_pos=self.invoice_pos,
                          invoices_of_client=self.invoices_of_client, payments_of_invoice=self.payments_of_invoice,
                          actions_of_invoice=self.actions_of_invoice, actions_of_client=self.actions_of_client,
                          client_rows=self.client_rows)
        lookups = {"invoices": [("invoices_of_client", "client_id")],
                   "payments": [("payments_of_invoice", "invoice_id")],
                   "actions": [("actions_of_invoice", "invoice_id"), ("actions_of_client", "client_id")],
                   "clients": [("client_rows", "client_id")]}[table]
        if replaced:  # positions moved: this table's look-ups are rebuilt, the others' kept
            for attr, col in lookups:
                setattr(out, attr, positions_by_value(frame[col]) if len(frame) else {})
            if table == "invoices":
                out.invoice_pos = pd.Index(frame["invoice_id"].astype(str))
            return out
        for attr, col in lookups:
            groups = dict(getattr(self, attr))
            for k, pos in positions_by_value(new[col]).items():
                at = pos + start
                groups[k] = np.concatenate([groups[k], at]) if k in groups else at
            setattr(out, attr, groups)
        if table == "invoices":
            out.invoice_pos = self.invoice_pos.append(pd.Index(keys.tolist()))
        return out

    def knows_client(self, client_id: str) -> bool:
        return client_id in self.invoices_of_client or client_id in self.client_rows

    def collector_of(self, client_id: str) -> str | None:
        rows = self.client_rows.get(client_id)
        if rows is None or not len(rows):
            return None
        value = self.ledger.clients["collector"].iloc[rows[-1]]
        return None if pd.isna(value) else str(value)


def positions_by_value(values: pd.Series) -> dict[Any, np.ndarray]:
    """The row positions of each value (missing values left out), ascending: ``groupby(...).indices``
    without its Python call per group on Arrow-held text (bench/RESULTS.md, the change log)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    order = np.argsort(codes, kind="stable")
    order = order[np.searchsorted(codes[order], 0):]  # missing values (code -1) sort first
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return dict(zip(uniques.tolist(), np.split(order.astype(np.intp, copy=False), bounds))) if len(order) else {}


class LRU(OrderedDict):
    """A small least-recently-used dict."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or_none(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class ServiceState:
    """The service's memory (see the module docstring).

    Attributes:
        settings: the workspace settings (store and registry).
        serving: the service settings.
        engine: the store.
        index: the loaded ledger and its look-ups (None before the first load).
        champion: the loaded champion (``ChampionModel``), None when there is none yet.
        champion_error: why there is no champion (or why the last reload failed).
        loader: ``settings -> ChampionModel``; raises when the registry has none or is unreachable.
        client_features: client features per (ledger version, day).
        open_rows: the day's open invoices built and encoded (``OpenRows``) per (ledger version,
            champion, day).
        results: other computed answers (worklists, forecasts, KPIs).
        build_lock: held while ``open_rows`` builds an entry, so concurrent first calls build it once.
        pending: ``(seq, table, rows)`` stored through the API (``add_pending``), numbered in the order
            they were acknowledged. ``serving.current.current_ledger`` folds those past ``folded_seq``
            into ``index``; an entry is kept while a ledger load that began before it is running, which
            folds it again into what it read (the load may have read the store before the write).
        write_seq: the number of the last entry added to ``pending``.
        folded_seq: the number of the last entry folded into ``index``.
        load_began: the ``write_seq`` at which the running ledger load began (None: none runs; one at a
            time: ``reloading``).
        reloading: held by a ledger load from its start to its install, and by a read of the change log
            (``serving.current.sync_changes``): one at a time.
        warming: held while today's caches are built in the background after writes.
        writer: this service's name in the store's change log (``ledger.changes``): the log's reads skip
            its rows, which ``pending`` holds already.
        change_seen: the last change-log id whose rows the loaded ledger holds (None before the first load).
        change_read_at: when the change log was last read, or the ledger loaded (``time.monotonic``).
        commit_lock: held by an API write from just before its commit until its rows are in ``pending``
            (``add_own_write``): its writes are numbered in commit order. Held, nothing waits for another
            writer or for the pool (the commit itself, and the reload's read of the log's last id, take no
            lock another writer holds).
        own_writes, own_log: how many writes this service committed, and the keys of the latest
            (table, keys), for ``serving.current.sync_changes``.
        session_secret: the secret signing the pages' session cookie
            (``serving.config.resolve_session_secret``); empty signs and accepts nothing.
    """

    settings: Settings
    serving: ServingSettings
    engine: sa.Engine
    loader: Callable[[Settings], Any]
    index: LedgerIndex | None = None
    champion: Any = None
    champion_error: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    client_features: LRU = field(default_factory=lambda: LRU(8), repr=False)
    open_rows: LRU = field(default_factory=lambda: LRU(4), repr=False)
    results: LRU = field(default_factory=lambda: LRU(32), repr=False)
    build_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    session_secret: str = field(default="", repr=False)
    pending: list = field(default_factory=list, repr=False)
    write_seq: int = 0
    folded_seq: int = 0
    load_began: int | None = None
    reloading: threading.Lock = field(default_factory=threading.Lock, repr=False)
    warming: threading.Lock = field(default_factory=threading.Lock, repr=False)
    writer: str = field(default_factory=lambda: f"service:{uuid.uuid4().hex}")
    change_seen: int | None = None
    change_read_at: float = 0.0
    commit_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    own_writes: int = 0
    own_log: deque = field(default_factory=lambda: deque(maxlen=4096), repr=False)

    def add_own_write(self, table: str, rows: pd.DataFrame) -> None:
        """Record a write this service committed (commit lock held): its rows go to ``pending``, and their
        keys to ``own_log``, which a read of the change log running meanwhile leaves to it."""
        self.own_writes += 1
        self.own_log.append((table, frozenset(rows[TABLES[table].key].astype(str))))
        self.add_pending(table, rows)

    def add_pending(self, table: str, rows: pd.DataFrame) -> None:
        """Record rows committed to the store through the service: the next read folds them in."""
        with self.lock:
            self.write_seq += 1
            self.pending.append((self.write_seq, table, rows))

    def drop_folded(self) -> None:
        """Forget the pending entries that ``index`` holds and no running load needs (lock held)."""
        keep_after = self.folded_seq if self.load_began is None else min(self.folded_seq, self.load_began)
        if self.pending and self.pending[0][0] <= keep_after:
            self.pending = [entry for entry in self.pending if entry[0] > keep_after]

    def clear_scoring_caches(self) -> None:
        """Forget everything computed from the ledger or the champion (after a write or a reload)."""
        with self.lock:
            self.client_features.clear()
            self.open_rows.clear()
            self.results.clear()
