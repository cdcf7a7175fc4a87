"""What the running service holds in memory: the store engine, the ledger, the champion, caches.

One ``ServiceState`` per app (``app.state.encaisse``), built in the lifespan. The ledger is loaded
once and reloaded after every write through the API (and on ``POST /v1/admin/reload``), so score
calls never read the database. Caches are keyed by the ledger's ``version`` and the model version,
so a write or a reload can never serve stale figures.

Score calls on stored invoices read ``open_rows``: per (ledger version, champion, ``as_of`` day),
the feature rows and encoded model input of every invoice open that day, built once by the batch
feature path (``serving.services.open_rows``); a call then scores only the rows it asks for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.contracts import Ledger
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
            if df.empty:
                return {}
            return df.reset_index(drop=True).groupby(col, sort=False, dropna=True).indices

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

    def knows_client(self, client_id: str) -> bool:
        return client_id in self.invoices_of_client or client_id in self.client_rows

    def collector_of(self, client_id: str) -> str | None:
        rows = self.client_rows.get(client_id)
        if rows is None or not len(rows):
            return None
        value = self.ledger.clients["collector"].iloc[rows[-1]]
        return None if pd.isna(value) else str(value)


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

    def clear_scoring_caches(self) -> None:
        """Forget everything computed from the ledger or the champion (after a write or a reload)."""
        with self.lock:
            self.client_features.clear()
            self.open_rows.clear()
            self.results.clear()
