"""Batch scoring: score every open invoice and client, plan the next steps, rank, store, export.

Steps: ``load_ledger`` -> ``load_champion`` -> :func:`build_scoring` (scores, client scores,
profiles, next steps, worklist, legal amounts) -> ``save_scores`` -> :func:`save_worklist`. The
middle step is a pure function of (model, ledger, as_of), testable in memory. :func:`save_forecast`
keeps what the run forecast beside it (for ``encaisse monitor``).

:func:`run_alerts` reads the stored run as of a day and the one before it, and raises alerts.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ledger.run_forecasts import save_run_forecast
from ledger.scores_store import latest_run, load_latest_scores, load_run_clients, require_latest_scores, save_scores
from ledger.engine import open_store
from ledger.reader import load_ledger, load_store_ledger
from ledger.workspace import Settings
from models.alerts import build_alerts
from models.policy import load_policy

log = logging.getLogger(__name__)

# The registry (MLflow), the model and its scoring (scikit-learn, SciPy, LightGBM) are imported when
# first needed, not with this module: seconds of imports, which ``run_score`` spends while the
# ledger is being read.

@dataclass
class ScoreResult:
    """What ``run_score`` did: the stored run and where the worklist went."""

    run_id: str
    as_of: str
    model_version: str
    n_invoices: int
    n_clients: int
    out: str | None
    worklist: pd.DataFrame = field(repr=False)
    client_scores: pd.DataFrame = field(repr=False)


def save_worklist(worklist: pd.DataFrame, path: str | Path) -> Path:
    """Write the worklist as CSV, or Parquet when ``path`` ends in ``.parquet``/``.pq``."""
    from models.scoring import EXPORT_COLUMNS

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in EXPORT_COLUMNS if c in worklist.columns]
    frame = worklist[cols]
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


def run_score(
    settings: Settings,
    as_of: pd.Timestamp | str,
    out: str | Path | None = None,
    capacity: float | None = None,
    policy_path: str | Path | None = None,
    scheduler: str | None = None,
    n_partitions: int | None = None,
) -> ScoreResult:
    """Score the store's ledger as of a day with the champion, store the run, export the worklist.

    Args:
        scheduler: a Dask scheduler address (``tcp://host:8786``): features and scores are computed
            on that cluster, partitioned by client (``pipelines.distributed``); storage and export
            stay here. The workers need this package installed, not access to the store.
        n_partitions: client partitions on the cluster (default: ``pipelines.distributed``'s).

    Raises:
        ledger.reader.EmptyStoreError: the store holds no invoices.
        models.registry.NoChampionError: no champion model yet.
    """
    d = pd.Timestamp(as_of).normalize()
    # The champion is loaded (and its trees compiled, or loaded compiled) beside the ledger: reading
    # the store is mostly a child process's work, which this one waits for.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="champion") as pool:
        loading = pool.submit(_load_scoring_champion, settings, compiled=not scheduler)
        ledger = load_store_ledger(settings.store_url)
        champion = loading.result()
    if pd.Timestamp(champion.as_of) > d:
        log.warning("the champion was trained as of %s, after %s: its scores of that day saw what came later "
                    "(train as of that day to score the past)", champion.as_of, d.date())
    policy = load_policy(policy_path)
    from models.monitoring import build_run_forecast, with_ranks
    from models.scoring import build_scoring

    engine = open_store(settings.store_url)
    client = None
    try:
        model = champion.model
        if scheduler:
            from pipelines.distributed import DistributedModel, connect

            client = connect(scheduler)
            model = DistributedModel(model, client, n_partitions)
        before = latest_run(engine, d - pd.Timedelta(days=1))  # its profiles only, not its invoice rows
        previous = load_run_clients(engine, before)[["client_id", "profile"]] if before is not None else None
        # The run's forecast (NumPy draws, mostly outside the GIL) is computed from the run's own CDFs
        # as soon as the champion has made them here, beside the profiles, steps, ranking and storing
        # of the run; the worklist's ranks are added to it at the end. A cluster's scores come without
        # CDFs: the forecast is then computed here from the champion, as it always was.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast") as pool:
            forecasting = []

            def start_forecast(scores: pd.DataFrame, cdf) -> None:
                # Its own scores frame (a shallow copy, copy-on-write): pandas does not promise that two
                # threads may read one frame while either consolidates or caches in it. The ledger is
                # only read there, by its own known_at, off this thread.
                if client is None:
                    forecasting.append(pool.submit(build_run_forecast, champion.model, ledger, d,
                                                   scored=(scores.copy(deep=False), cdf)))

            scoring = build_scoring(model, ledger, d, policy=policy, previous=previous, capacity=capacity,
                                    on_scores=start_forecast)
            if not forecasting:
                forecasting.append(pool.submit(build_run_forecast, champion.model, ledger, d))
            run_id = save_scores(engine, scoring.worklist, scoring.client_scores, as_of=d,
                                 model_version=str(champion.version), model_run_id=champion.run_id,
                                 policy=policy.name)
            fc = with_ranks(forecasting[0].result(), scoring.worklist)
        save_run_forecast(engine, run_id, fc.periods, fc.invoices)
    finally:
        if client is not None:
            client.close()
        engine.dispose()
    written = str(save_worklist(scoring.worklist, out)) if out else None
    log.info("scored %d invoices of %d clients as of %s%s (run %s)", len(scoring.worklist),
             len(scoring.client_scores), d.date(), f" on {scheduler}" if scheduler else "", run_id)
    return ScoreResult(run_id=run_id, as_of=str(d.date()), model_version=str(champion.version),
                       n_invoices=len(scoring.worklist), n_clients=len(scoring.client_scores), out=written,
                       worklist=scoring.worklist, client_scores=scoring.client_scores)


def _load_scoring_champion(settings: Settings, compiled: bool = True):
    """The champion, ready to score here: with its payment-date trees compiled (``models.compiled``,
    cached in the workspace's artifacts) when ``compiled``, and the scoring modules imported."""
    import models.monitoring  # noqa: F401 -- imported here, beside the ledger's read
    import models.scoring  # noqa: F401
    from models import registry  # MLflow: seconds to import

    champion = registry.load_champion(settings)
    model = champion.model
    if compiled and hasattr(model, "use_compiled_trees"):
        model.use_compiled_trees(settings.artifact_dir / "compiled")
    return champion


def save_forecast(engine, run_id: str, model, ledger, as_of, worklist: pd.DataFrame, scored=None) -> None:
    """Store what run ``run_id`` forecast (weekly collections, invoice quantiles and ranks), for monitoring.

    ``scored``: the run's ``(scores, (days, cdf))`` from the champion, not computed again (the
    payment-date model is most of a score's cost); None: computed with the champion here, as when
    the scores came from a cluster.
    """
    from models.monitoring import build_run_forecast

    fc = build_run_forecast(model, ledger, as_of, worklist, scored=scored)
    save_run_forecast(engine, run_id, fc.periods, fc.invoices)


@dataclass
class AlertsResult:
    """Alerts as of a day, from the stored run they are based on."""

    as_of: str
    run_id: str
    run_as_of: str
    previous_run_id: str | None
    alerts: pd.DataFrame = field(repr=False)


def run_alerts(settings: Settings, as_of: pd.Timestamp | str) -> AlertsResult:
    """Alerts as of a day from the latest stored run at or before it and the run before that one.

    Raises:
        NoScoresError: no run is stored at or before ``as_of`` (run ``encaisse score`` first).
    """
    d = pd.Timestamp(as_of).normalize()
    engine = open_store(settings.store_url)
    try:
        current = require_latest_scores(engine, d, settings.store_url)
        run_day = pd.Timestamp(current.run["as_of"])
        previous = load_latest_scores(engine, run_day - pd.Timedelta(days=1))
        ledger = load_ledger(engine)
    finally:
        engine.dispose()
    alerts = build_alerts(current.clients, current.invoices, ledger, d,
                          previous_client_scores=previous.clients if previous is not None else None)
    return AlertsResult(as_of=str(d.date()), run_id=current.run_id, run_as_of=str(run_day.date()),
                        previous_run_id=previous.run_id if previous is not None else None, alerts=alerts)
