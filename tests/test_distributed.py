"""Distributed features and scores (Dask, partitioned by client) equal the single-machine ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

from features.invoices import build_features
from ledger.synth import make_ledger
from models.scorer import EncaisseModel
from models.scoring import build_scoring
from pipelines.config import load_config
from pipelines.distributed import (
    DistributedModel,
    build_features_distributed,
    client_partition,
    partition_ledger,
    score_distributed,
)

AS_OF = pd.Timestamp("2025-11-03")
SMALL = dict(max_snapshots=10, snapshot_freq_days=21, hazard_params={"n_estimators": 30},
             risk_params={"n_estimators": 30})


@pytest.fixture(scope="module")
def ledger():
    return make_ledger(40, years=2, seed=11)


@pytest.fixture(scope="module")
def model(ledger):
    return EncaisseModel(**SMALL).fit(ledger, AS_OF)


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    with Client(cluster) as c:
        yield c
    cluster.close()


def test_partitions_hold_whole_clients_and_lose_nothing(ledger):
    parts = partition_ledger(ledger, 5)
    assert sum(len(p.invoices) for p in parts) == len(ledger.invoices)
    assert sum(len(p.payments) for p in parts) == len(ledger.payments)
    assert sum(len(p.actions) for p in parts) == len(ledger.actions)
    assert sum(len(p.clients) for p in parts) == len(ledger.clients)
    owners = [set(p.invoices["client_id"]) | set(p.clients["client_id"]) | set(p.actions["client_id"]) for p in parts]
    for i in range(len(owners)):
        for j in range(i + 1, len(owners)):
            assert not owners[i] & owners[j]
    for p in parts:  # a payment travels with its invoice
        assert set(p.payments["invoice_id"]) <= set(p.invoices["invoice_id"])
    assert sum(1 for p in parts if len(p.invoices)) > 1


def test_client_partition_is_stable_and_in_range():
    ids = pd.Series(["C00001", "C00002", "C00003", "C00001"])
    p = client_partition(ids, 3)
    assert p[0] == p[3] and ((p >= 0) & (p < 3)).all()
    np.testing.assert_array_equal(p, client_partition(ids.to_numpy(), 3))
    with pytest.raises(ValueError, match="n_partitions"):
        client_partition(ids, 0)


@pytest.mark.parametrize("n_partitions", [1, 3, 7])
def test_distributed_features_equal_single_machine(ledger, client, n_partitions):
    want = build_features(ledger, AS_OF)
    got = build_features_distributed(ledger, AS_OF, client, n_partitions)
    pd.testing.assert_frame_equal(got, want)


def test_distributed_scores_equal_single_machine(ledger, model, client):
    want, (days, cdf) = model.score(ledger, AS_OF, return_cdf=True)
    got, (gdays, gcdf) = score_distributed(model, ledger, AS_OF, client, 4, return_cdf=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gdays, days, rtol=0, atol=0)
    np.testing.assert_allclose(gcdf, cdf, rtol=1e-9, atol=1e-12)
    assert (got["reasons"] == want["reasons"]).all()


def test_the_shipped_configuration_scores_the_same_distributed(ledger, client):
    """The packaged default's feature groups and payment-date mixture, with small boosters."""
    params = load_config().model.estimator_params()
    assert params["feature_groups"] and params["payment_options"]["mixture"] != "model"
    params.update(SMALL, hazard_params={**params["hazard_params"], "n_estimators": 30},
                  risk_params={**params["risk_params"], "n_estimators": 30})
    model = EncaisseModel(**params).fit(ledger, AS_OF)
    assert model.payment_model_.siblings_
    want, (days, cdf) = model.score(ledger, AS_OF, return_cdf=True)
    assert "i_pay_dom_mode" in DistributedModel(model, client, 3).features(ledger, AS_OF).columns
    got, (gdays, gcdf) = score_distributed(model, ledger, AS_OF, client, 3, return_cdf=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gdays, days, rtol=0, atol=0)
    np.testing.assert_allclose(gcdf, cdf, rtol=1e-9, atol=1e-12)


def test_build_scoring_through_the_distributed_model_gives_the_same_worklist(ledger, model, client):
    want = build_scoring(model, ledger, AS_OF).worklist
    got = build_scoring(DistributedModel(model, client, 3), ledger, AS_OF).worklist
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-12)


def test_score_command_with_a_scheduler_stores_the_same_worklist(ledger, model, client, monkeypatch, tmp_path,
                                                                 _isolated_home):
    from dataclasses import dataclass, field

    from typer.testing import CliRunner

    import models.registry
    from encaisse.cli import app
    from ledger.contracts import TABLES
    from ledger.engine import open_store
    from ledger.staged_upsert import upsert_frame

    @dataclass
    class _Champion:
        model: EncaisseModel
        version: str = "3"
        run_id: str = "run-d"
        metrics: dict = field(default_factory=dict)
        as_of: str = str(AS_OF.date())

    monkeypatch.setattr(models.registry, "load_champion", lambda settings: _Champion(model))
    engine = open_store(f"sqlite:///{_isolated_home / 'ledger.db'}")
    with engine.begin() as conn:
        for name in TABLES:
            upsert_frame(conn, name, getattr(ledger, name))
    engine.dispose()
    runner = CliRunner()
    day = str(AS_OF.date())
    single, dist = tmp_path / "single.csv", tmp_path / "dist.csv"
    assert runner.invoke(app, ["score", "--as-of", day, "--out", str(single)]).exit_code == 0
    monkeypatch.setenv("ENCAISSE_DASK_SCHEDULER", client.scheduler.address)
    result = runner.invoke(app, ["score", "--as-of", day, "--out", str(dist), "--json"])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_csv(dist), pd.read_csv(single))
    assert len(pd.read_csv(dist)) > 0


def test_a_partition_holds_the_precomputed_rows_of_its_clients(ledger, model):
    from features.clients import build_client_features
    from pipelines.distributed import split_partitions

    feats = model.features(ledger, AS_OF)
    clients = build_client_features(ledger, AS_OF)
    parts = split_partitions(ledger, 4, features=feats, clients=clients)
    assert sum(len(p.features) for p in parts) == len(feats) and sum(len(p.clients) for p in parts) == len(clients)
    for p in parts:
        owners = set(p.ledger.invoices["client_id"])
        assert set(p.features["client_id"]) <= owners and set(p.clients.index) <= owners | set(p.ledger.clients["client_id"])
    assert split_partitions(ledger, 2)[0].features is None


def test_the_distributed_model_takes_precomputed_client_features(ledger, model, client):
    from features.clients import build_client_features

    clients = build_client_features(ledger, AS_OF)
    want = model.features(ledger, AS_OF, clients=clients)
    pd.testing.assert_frame_equal(DistributedModel(model, client, 3).features(ledger, AS_OF, clients=clients), want)
    assert not hasattr(DistributedModel(model, client, 3), "encode")  # no attribute forwarded to the model
