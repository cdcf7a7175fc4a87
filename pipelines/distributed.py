"""Batch features and scoring on a Dask cluster, partitioned by client.

Every feature of an invoice depends only on its own client's history (invoices, payments, actions,
master row), so a ledger split by client scores exactly like the whole: each partition holds whole
client histories (a stable hash of ``client_id`` modulo ``n_partitions``), a worker runs the usual
single-machine code on it (``build_features``, ``EncaisseModel.score``), and the results are
concatenated and put back in the single-machine order (by ``invoice_id``). A task is given its
``Partition`` explicitly: the partition's ledger and, when the caller has them, its rows of the
precomputed invoice features and client features. The fitted model is broadcast to the workers once
per call.

A cluster is a ``dask.distributed.Client``: a ``LocalCluster`` for one machine, or a scheduler
address (``tcp://host:8786``, ``encaisse score --scheduler`` or ``ENCAISSE_DASK_SCHEDULER``) for a
real one. See docs/distributed.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ledger.contracts import Ledger
from models.scorer import EncaisseModel


DEFAULT_PARTITIONS_PER_WORKER = 4
"""Partitions per worker when ``n_partitions`` is not given: enough to balance uneven clients."""


def client_partition(client_ids: pd.Series | pd.Index, n_partitions: int) -> np.ndarray:
    """The partition (0 .. n_partitions - 1) of each client id: a stable hash, the same on every machine."""
    if int(n_partitions) < 1:
        raise ValueError(f"n_partitions must be an integer >= 1; got {n_partitions!r}.")
    ids = pd.Series(np.asarray(client_ids, dtype=object)).astype("str")
    return (pd.util.hash_pandas_object(ids, index=False).to_numpy() % np.uint64(n_partitions)).astype(np.int64)


def partition_ledger(ledger: Ledger, n_partitions: int) -> list[Ledger]:
    """Split a ledger into ``n_partitions`` ledgers of whole clients (some may be empty).

    Invoices, clients and actions go with their ``client_id``; payments with their invoice's client.
    Payments of unknown invoices (no client) are dropped: no feature reads them.
    """
    inv_part = client_partition(ledger.invoices["client_id"], n_partitions)
    by_invoice = pd.Series(inv_part, index=ledger.invoices["invoice_id"].to_numpy())
    by_invoice = by_invoice[~by_invoice.index.duplicated()]
    pay_part = ledger.payments["invoice_id"].map(by_invoice).fillna(-1).to_numpy(dtype=np.int64)
    cl_part = client_partition(ledger.clients["client_id"], n_partitions)
    act_part = client_partition(ledger.actions["client_id"], n_partitions)
    return [
        Ledger(invoices=ledger.invoices[inv_part == p], payments=ledger.payments[pay_part == p],
               clients=ledger.clients[cl_part == p], actions=ledger.actions[act_part == p])
        for p in range(n_partitions)
    ]


@dataclass
class Partition:
    """One task's work: the ledger of whole clients, and the precomputed frames of those clients."""

    ledger: Ledger
    features: pd.DataFrame | None = None
    """Invoice feature rows of these clients (``EncaisseModel.features``), or None: built by the task."""
    clients: pd.DataFrame | None = None
    """Client features of these clients (``build_client_features``, by ``client_id``), or None."""


def split_partitions(ledger: Ledger, n_partitions: int, features: pd.DataFrame | None = None,
                     clients: pd.DataFrame | None = None) -> list[Partition]:
    """``partition_ledger`` with the precomputed frames split by the same client partitions."""
    parts = partition_ledger(ledger, n_partitions)
    if features is not None:
        at = client_partition(features["client_id"], n_partitions)
        feats = [features[at == p].reset_index(drop=True) for p in range(n_partitions)]
    else:
        feats = [None] * n_partitions
    if clients is not None:
        at = client_partition(clients.index, n_partitions)
        cls = [clients[at == p] for p in range(n_partitions)]
    else:
        cls = [None] * n_partitions
    return [Partition(ledger=lp, features=f, clients=c) for lp, f, c in zip(parts, feats, cls)]


def _n_partitions(client, n_partitions: int | None) -> int:
    if n_partitions is not None:
        return int(n_partitions)
    workers = len(client.scheduler_info().get("workers", {})) or 1
    return DEFAULT_PARTITIONS_PER_WORKER * workers


def _ordered(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray]:
    """Concatenate partition frames in single-machine order (by ``invoice_id``); also the row order."""
    nonempty = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(nonempty, ignore_index=True)
    order = np.argsort(out["invoice_id"].to_numpy(dtype=object), kind="stable")
    return out.take(order).reset_index(drop=True), order


# -- worker tasks (module-level so they pickle by reference) ---------------------------------------

def _features_task(part: Partition, as_of, kwargs: dict) -> pd.DataFrame:
    from features.invoices import build_features

    return build_features(part.ledger, as_of, clients=part.clients, **kwargs)


def _score_task(model: EncaisseModel, part: Partition, as_of, kwargs: dict):
    out, (days, cdf) = model.score(part.ledger, as_of, return_cdf=True, features=part.features, **kwargs)
    return out, days, cdf


def _scatter(client, parts: list[Partition]):
    # Unique keys (hash=False): with content-hashed keys, two clients scattering the same data share
    # keys, and one releasing them cancels the other's futures.
    return client.scatter(parts, hash=False)


def build_features_distributed(ledger: Ledger, as_of, client, n_partitions: int | None = None,
                               clients: pd.DataFrame | None = None, **feature_kwargs) -> pd.DataFrame:
    """``build_features(ledger, as_of)`` computed on a Dask cluster, one task per client partition.

    Args:
        ledger: the ledger (anything dated on or after ``as_of`` is ignored, as single-machine).
        as_of: the scoring day (start of day).
        client: a ``dask.distributed.Client``.
        n_partitions: client partitions (default: 4 per worker).
        clients: precomputed client features as of ``as_of``; each task gets its partition's rows.
        **feature_kwargs: passed to ``build_features`` (``extra_attributes``, ...).

    Returns:
        The same frame as ``build_features(ledger, as_of, **feature_kwargs)``, row for row.
    """
    n = _n_partitions(client, n_partitions)
    parts = _scatter(client, split_partitions(ledger, n, clients=clients))
    futures = [client.submit(_features_task, p, pd.Timestamp(as_of), feature_kwargs, pure=False) for p in parts]
    frames = client.gather(futures)
    return _ordered(frames)[0]


def score_distributed(model: EncaisseModel, ledger: Ledger, as_of, client, n_partitions: int | None = None,
                      return_cdf: bool = False, features: pd.DataFrame | None = None, **score_kwargs):
    """``model.score(ledger, as_of)`` on a Dask cluster: the model is broadcast once, one task per partition.

    Args:
        model: a fitted ``EncaisseModel``.
        ledger, as_of: as for ``EncaisseModel.score``.
        client: a ``dask.distributed.Client``.
        n_partitions: client partitions (default: 4 per worker).
        return_cdf: also return ``(days, cdf)`` in the rows' order, as ``score`` does.
        features: the feature frame already built for these invoices; split by the same client
            partitions and sent along, so the workers do not build it again.
        **score_kwargs: ``n_reasons``, ``lang``, ``invoice_ids``.

    Returns:
        The same frame (and CDFs) as ``model.score(ledger, as_of)``, row for row.
    """
    n = _n_partitions(client, n_partitions)
    remote_model = client.scatter(model, broadcast=True, hash=False)
    parts = _scatter(client, split_partitions(ledger, n, features=features))
    futures = [client.submit(_score_task, remote_model, p, pd.Timestamp(as_of), score_kwargs, pure=False)
               for p in parts]
    results = client.gather(futures)
    keep = [r for r in results if len(r[0])] or results[:1]
    out, order = _ordered([r[0] for r in keep])
    if not return_cdf:
        return out
    days = np.concatenate([r[1] for r in keep])[order]
    cdf = np.concatenate([r[2] for r in keep])[order]
    return out, (days, cdf)


@dataclass
class DistributedModel:
    """A fitted model's ``features`` and ``score`` run on a Dask cluster (a ``models.scorer.Scorer``).

    What ``models.scoring.build_scoring`` asks of a model, nothing more (no attribute is forwarded
    to ``model``): precomputed client features or invoice features given to it are split by client
    partition and each task is given its share (``Partition``).
    """

    model: EncaisseModel
    client: object
    n_partitions: int | None = None

    def score(self, ledger: Ledger, as_of, invoice_ids=None, n_reasons: int = 3, lang: str = "en",
              return_cdf: bool = False, features: pd.DataFrame | None = None, num_threads: int = 0):
        return score_distributed(self.model, ledger, as_of, self.client, self.n_partitions, return_cdf=return_cdf,
                                 features=features, invoice_ids=invoice_ids, n_reasons=n_reasons, lang=lang,
                                 num_threads=num_threads)

    def features(self, ledger: Ledger, as_of, invoice_ids=None, clients: pd.DataFrame | None = None) -> pd.DataFrame:
        return build_features_distributed(ledger, as_of, self.client, self.n_partitions, invoice_ids=invoice_ids,
                                          clients=clients, **self.model.feature_options())


def connect(scheduler: str | None = None, n_workers: int = 2, memory_limit: str = "2GiB"):
    """A Dask client: to the scheduler at ``scheduler`` (``tcp://host:8786``), or a local cluster."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    return Client(LocalCluster(n_workers=n_workers, threads_per_worker=1, memory_limit=memory_limit,
                               dashboard_address=None))
