"""Shared test fixtures: workspace isolation, real data paths, the PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from helpers import unavailable
from models.openmp import use_passive_waiting

use_passive_waiting()  # as the CLI does, before any test imports LightGBM

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PG_URL = os.environ.get("ENCAISSE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own workspace; nothing touches the developer's ./.encaisse."""
    home = tmp_path / "home"
    monkeypatch.setenv("ENCAISSE_HOME", str(home))
    for var in ("ENCAISSE_DATABASE_URL", "ENCAISSE_MLFLOW_TRACKING_URI", "ENCAISSE_SMTP_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="module")
def quick_config():
    """The packaged quick training configuration (small models: tests that train)."""
    from pipelines.config import QUICK_CONFIG, load_config

    return load_config(QUICK_CONFIG)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A read-only API (``api_helpers.start_api``) shared by a module's read tests."""
    from api_helpers import start_api

    with start_api(tmp_path_factory.mktemp("api")) as a:
        yield a


@pytest.fixture
def fresh_api(tmp_path):
    """An API of its own, for tests that write."""
    from api_helpers import start_api

    with start_api(tmp_path / "home") as a:
        yield a


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets in ../shared/data."""
    if not SHARED_DATA.is_dir():
        unavailable(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def pg_url():
    """A URL to a fresh, empty schema on the real PostgreSQL server; dropped afterwards."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any connection error means "not reachable"
        engine.dispose()
        unavailable(f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'create schema "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'drop schema "{schema}" cascade'))
    engine.dispose()


@pytest.fixture
def failing_chunk_write(monkeypatch):
    """Make ``ledger.writers._write_chunk`` raise "disk full" on its third call during an ingest.

    Returns ``calls`` (``calls["n"]``: the calls so far); ``calls["restore"]()`` puts the real
    function back for the rest of the test.
    """
    import ledger.writers as writers_mod

    real = writers_mod._write_chunk
    calls = {"n": 0}

    def flaky(staged, columns):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        real(staged, columns)

    monkeypatch.setattr(writers_mod, "_write_chunk", flaky)
    calls["restore"] = lambda: monkeypatch.setattr(writers_mod, "_write_chunk", real)
    return calls


SLOW_MODULES = {"test_browser", "test_notebook", "test_demo", "test_pipelines", "test_registry", "test_distributed",
                "test_rolling", "test_api_fuzz", "test_synth", "test_abuse_ingest", "test_models"}
"""Modules whose tests train models, start servers or browsers, or read large files: outside the fast tier."""


def pytest_collection_modifyitems(config, items):
    """Mark the tests of ``SLOW_MODULES`` slow: ``make test-fast`` (``-m "not slow"``) leaves them out."""
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
