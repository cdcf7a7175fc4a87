"""The monitoring answer for the API and the pages: ``models.monitoring.load_monitoring`` on the loaded state.

Cached per (ledger version, champion, day, stored runs, language): the drift reuses the day's
encoded open invoices (``serving.invoice_scores.open_rows``), so it costs one scoring of rows
already built. Without a champion the runs are still judged; drift is left out.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from ledger.schema import score_runs
from models.monitoring import Monitoring, load_monitoring
from serving.current import NoModelError, current_ledger, current_model, day_of
from serving.invoice_scores import open_rows
from serving.state import ServiceState


def _runs_key(engine: sa.Engine) -> tuple:
    with engine.connect() as conn:
        n, last = conn.execute(sa.select(sa.func.count(), sa.func.max(score_runs.c.created_at))).one()
    return int(n), str(last)


def monitoring(state: ServiceState, as_of: date | pd.Timestamp | None, lang: str = "en") -> Monitoring:
    """Every stored run's realized figures as of ``as_of``, today's drift against the champion, retrain alerts."""
    index = current_ledger(state)
    d = day_of(as_of)
    try:
        champion = current_model(state)
    except NoModelError:
        champion = None
    version = None if champion is None else str(champion.version)
    key = ("monitoring", index.version, version, d, _runs_key(state.engine), lang)
    with state.lock:
        hit = state.results.get_or_none(key)
    if hit is not None:
        return hit
    features = scores = None
    if champion is not None:
        rows = open_rows(state, champion, d).rows
        features = rows.features
        scores = champion.model.score(None, d, rows=rows, n_reasons=0)
    hit = load_monitoring(state.settings, state.engine, index.ledger, d, champion, features=features, scores=scores,
                          lang=lang)
    with state.lock:
        state.results.put(key, hit)
    return hit
