"""Shared set-up of the fault-and-abuse tests: a small store, keys, and the app over it (no model needed)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi.testclient import TestClient

from api_helpers import fill_store
from ledger.contracts import Ledger
from ledger.engine import open_store
from ledger.synth import make_ledger
from ledger.workspace import Settings
from serving.app import create_app
from serving.config import ServingSettings
from serving.keys import create_key


@lru_cache(maxsize=1)
def small_ledger() -> Ledger:
    return make_ledger(20, seed=3, end_date="2025-07-31")


def no_model(settings):
    raise LookupError("no champion in this test")


def make_store(home: Path, ledger: Ledger | None = None) -> Settings:
    """A workspace whose store holds ``ledger`` (default: the small synthetic one)."""
    return fill_store(home, small_ledger() if ledger is None else ledger)


def two_collectors(ledger: Ledger) -> dict[str, str]:
    """A client of each of two collectors: {collector: client_id}."""
    cl = ledger.clients.dropna(subset=["collector"]).sort_values("client_id")
    out: dict[str, str] = {}
    for row in cl.itertuples():
        out.setdefault(str(row.collector), str(row.client_id))
        if len(out) == 2:
            break
    assert len(out) == 2, "the test ledger needs two collectors"
    return out


def client(settings: Settings, serving: ServingSettings | None = None) -> TestClient:
    """A test client of the app over ``settings`` (enter it to run the lifespan)."""
    return TestClient(create_app(settings, serving=serving, champion_loader=no_model))


def key(settings: Settings, role: str = "admin", collector: str | None = None) -> str:
    engine = open_store(settings.store_url)
    try:
        return create_key(engine, role, collector=collector).token
    finally:
        engine.dispose()
