"""The API tests' set-up: a small synthetic store, a model fitted on it in memory, keys and the app.

The champion is an ``EncaisseModel`` fitted in memory on the same ledger (seconds), handed to the
app through ``create_app(champion_loader=...)``. The ``api`` and ``fresh_api`` fixtures
(``conftest.py``) start it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient

from ledger.contracts import TABLES, Ledger
from ledger.engine import open_store
from ledger.synth import make_ledger
from ledger.workspace import Settings
from ledger.staged_upsert import upsert_frame
from models.scorer import EncaisseModel
from serving.app import create_app
from serving.config import ServingSettings
from serving.keys import ROLES, create_key

FIT_DAY = AS_OF = "2025-06-01"


@dataclass
class FakeChampion:
    model: EncaisseModel
    version: str = "7"
    run_id: str = "run-abc"
    as_of: str = FIT_DAY
    metrics: dict = field(default_factory=lambda: {"val_auc": 0.8})


class Loader:
    """A registry stand-in: gives ``champion``, or raises like an unreachable registry when ``fail``."""

    def __init__(self, champion):
        self.champion = champion
        self.fail: Exception | None = None

    def __call__(self, settings):
        if self.fail is not None:
            raise self.fail
        return self.champion


@lru_cache(maxsize=1)
def synthetic() -> tuple[Ledger, EncaisseModel]:
    """The test ledger and a model fitted on it (cached: every API test module shares one fit)."""
    ledger = make_ledger(20, seed=3, end_date="2025-07-31")
    model = EncaisseModel(max_snapshots=16, snapshot_freq_days=28, hazard_params={"n_estimators": 40},
                          risk_params={"n_estimators": 40}).fit(ledger, FIT_DAY)
    return ledger, model


def fill_store(home: Path, ledger: Ledger) -> Settings:
    settings = Settings(home=home)
    engine = open_store(settings.store_url)
    with engine.begin() as conn:
        for name in TABLES:
            upsert_frame(conn, name, getattr(ledger, name))
    engine.dispose()
    return settings


@dataclass
class Api:
    client: TestClient
    settings: Settings
    loader: Loader
    keys: dict[str, str]
    ledger: Ledger
    model: EncaisseModel

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def get(self, url: str, role: str = "admin", **kw):
        return self.client.get(url, headers=self.headers(role), **kw)

    def post(self, url: str, json=None, role: str = "admin", **kw):
        return self.client.post(url, json=json, headers=self.headers(role), **kw)


def collector_of_first_client(ledger: Ledger) -> tuple[str, str]:
    cl = ledger.clients.dropna(subset=["collector"]).sort_values("client_id").iloc[0]
    return str(cl["client_id"]), str(cl["collector"])


def start_api(home: Path, champion=None, serving: ServingSettings | None = None):
    """Store + keys + app; a context manager yielding ``Api`` (the lifespan runs inside)."""
    ledger, model = synthetic()
    settings = fill_store(home, ledger)
    engine = open_store(settings.store_url)
    _, collector = collector_of_first_client(ledger)
    keys = {role: create_key(engine, role, collector=collector if role == "collector" else None).token
            for role in ROLES}
    engine.dispose()
    loader = Loader(FakeChampion(model) if champion is None else champion)
    app = create_app(settings, serving=serving, champion_loader=loader)

    class _Ctx:
        def __enter__(self):
            self.tc = TestClient(app).__enter__()
            return Api(self.tc, settings, loader, keys, ledger, model)

        def __exit__(self, *exc):
            return self.tc.__exit__(*exc)

    return _Ctx()


def open_ids(ledger: Ledger, as_of: str = AS_OF) -> list[str]:
    inv = ledger.invoices
    d = pd.Timestamp(as_of)
    m = (inv["doc_type"] == "invoice") & (inv["issue_date"] < d) & ~(inv["paid_date"] < d)
    return inv.loc[m, "invoice_id"].tolist()


def start_site_store(home: Path, roles=("admin", "collector", "treasurer", "system")):
    """The web pages' store: the API's, plus a stored score run (with its forecast) as of ``AS_OF`` so the pages show that day.

    Returns:
        ``(settings, keys by role, ledger, model, collector of the collector key)``.
    """
    from ledger.run_forecasts import save_run_forecast
    from ledger.scores_store import save_scores
    from models.monitoring import build_run_forecast
    from models.scoring import build_scoring

    ledger, model = synthetic()
    settings = fill_store(home, ledger)
    engine = open_store(settings.store_url)
    scoring = build_scoring(model, ledger, AS_OF)
    run_id = save_scores(engine, scoring.worklist, scoring.client_scores, as_of=AS_OF, model_version="7")
    forecast = build_run_forecast(model, ledger, AS_OF, scoring.worklist)  # as `encaisse score` stores it
    save_run_forecast(engine, run_id, forecast.periods, forecast.invoices)
    _, collector = collector_of_first_client(ledger)
    keys = {role: create_key(engine, role, collector=collector if role == "collector" else None).token
            for role in roles}
    engine.dispose()
    return settings, keys, ledger, model, collector
