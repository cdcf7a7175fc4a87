"""Score calls: invoices scored as of a day with the champion, answered as plain rows.

A call on stored invoices runs ``EncaisseModel.predict_encoded`` at its rows of the day's
``open_rows``: the feature rows of every invoice open that day, built once per (ledger version,
champion, day) by the batch feature path (``EncaisseModel.features`` on the cached client
features) and encoded (``EncaisseModel.encode``). Each row is scored on its own, so the scores equal
``EncaisseModel.score`` on the full ledger, and a call builds no features. Today's entry is built at
start-up and after each write; sent invoice rows and stateless calls build their own features.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ledger.contracts import INVOICES, PAYMENTS, Ledger
from ledger.parsing import validate_frame
from models.encoded import EncodedRows
from models.registry import ChampionModel
from models.scorer import SCORE_COLUMNS
from serving.current import (
    NoModelError,
    client_features,
    clients_ledger,
    current_ledger,
    current_model,
    day_of,
    settle_heap,
    today,
)
from serving.frames import column_values, float_values
from serving.outcomes import RowsRejected, outcome_of
from serving.state import ServiceState

log = logging.getLogger(__name__)

SERVER_THREADS = 1
"""LightGBM prediction threads of a small call: requests run concurrently, each on one core."""

LARGE_CALL_ROWS = 200
"""From this many invoices a call predicts on every core (its LightGBM work dwarfs thread start-up;
waiting OpenMP threads sleep, see ``models/openmp.py``, so concurrent small calls keep their core)."""


def _threads(n_rows: int) -> int:
    """LightGBM prediction threads for a call scoring ``n_rows`` invoices (0: every core)."""
    return 0 if n_rows >= LARGE_CALL_ROWS else SERVER_THREADS


@dataclass
class OpenRows:
    """The invoices open at the start of a day in the stored ledger, built and encoded for a champion.

    Attributes:
        key: (ledger version, champion version, model identity, day).
        rows: ``EncaisseModel.encode`` of ``build_features`` on the stored ledger (ordered by id).
        position: ``invoice_id`` -> row of ``rows`` (a dict: one look-up per asked id).
        build_seconds: how long building took (logged; the cold cost of a day).
        identity: the answer's identity columns (``SCORE_IDENTITY``) of every row, as plain values
            (converted once here, not at every call).
    """

    key: tuple
    rows: EncodedRows
    position: dict[str, int]
    build_seconds: float
    identity: dict[str, list]


def open_rows(state: ServiceState, champion: ChampionModel, as_of: pd.Timestamp) -> OpenRows:
    """The open invoices as of a day, built and encoded (cached per ledger version, champion and day).

    Built by the batch path: ``build_features`` on the whole stored ledger with the cached client
    features, then ``EncaisseModel.encode``. Concurrent first calls for a day build it once.
    """
    index = current_ledger(state)
    key = (index.version, str(champion.version), id(champion.model), as_of)
    with state.lock:
        hit = state.open_rows.get_or_none(key)
    if hit is not None:
        return hit
    with state.build_lock:
        with state.lock:
            hit = state.open_rows.get_or_none(key)
        if hit is not None:
            return hit
        started = time.perf_counter()
        f = champion.model.features(index.ledger, as_of, clients=client_features(state, as_of))
        rows = champion.model.encode(f)
        identity = {c: column_values(rows.features[c]) for c in SCORE_IDENTITY}
        hit = OpenRows(key=key, rows=rows, position={str(i): p for p, i in enumerate(f["invoice_id"])},
                       build_seconds=time.perf_counter() - started, identity=identity)
        with state.lock:
            state.open_rows.put(key, hit)
    settle_heap()  # outside the build lock: a full collection of a large ledger holds no one else's build
    log.info("open invoices as of %s built for scoring: %d rows in %.2f s (ledger version %d, model %s)",
             as_of.date(), len(rows), hit.build_seconds, index.version, champion.version)
    return hit


def warm_today(state: ServiceState) -> None:
    """Build today's client features and open invoices for score calls (best effort: errors are logged)."""
    try:
        champion = current_model(state)
        rows = open_rows(state, champion, today())
        if len(rows.rows):  # the reasons' path credits are read from the model on first use
            champion.model.very_late_model_.contributions_matrix(rows.rows.matrix[:1], num_threads=1)
    except NoModelError:
        return
    except Exception:  # noqa: BLE001 - warming is best effort; the first call builds what is missing
        log.exception("could not warm today's scoring caches")


def _not_open_reason(row, d: pd.Timestamp) -> str | None:
    if row.doc_type != "invoice":
        return f"not an invoice (doc_type {row.doc_type}): only invoices are scored"
    if not row.issue_date < d:
        return f"issued on {row.issue_date.date()}, not before as_of {d.date()}"
    if row.paid_date < d:
        return f"paid on {row.paid_date.date()}, before as_of {d.date()}"
    return None


SCORE_IDENTITY = ("invoice_id", "client_id", "amount", "currency", "due_date")
"""The scored invoice's own columns in a score answer (``ScoreOut``), before the model's figures."""


@dataclass
class ScoreBatch:
    """Scores of a batch, in the order asked, and the invoices that could not be scored (with why).

    ``scores``: one JSON-ready dict per scored invoice (``serving.schemas.ScoreOut``'s fields).
    """

    as_of: pd.Timestamp
    scores: list[dict[str, Any]]
    not_scored: list[dict[str, str]] = field(default_factory=list)
    champion: Any = None


def _reason_list(reasons) -> list[list[str]]:
    return [[t for t in r.split("; ") if t] if isinstance(r, str) else [] for r in reasons]


def _answer(identity: dict[str, list], p_late: np.ndarray, p_very_late: np.ndarray, days_q: np.ndarray,
            dates: np.ndarray, beyond_horizon: np.ndarray, reasons) -> list[dict[str, Any]]:
    """Answer rows (``serving.schemas.ScoreOut``'s fields): the invoices' own columns, then the model's
    figures (``EncodedScores``'s, ``days_q`` and ``dates`` as (n, 3) P10 / P50 / P90)."""
    dates = np.asarray(dates).astype("datetime64[D]")
    cols = dict(identity)
    cols.update(p_late=float_values(p_late), p_very_late=float_values(p_very_late), payment_date_p10=dates[:, 0].tolist(),
                payment_date_p50=dates[:, 1].tolist(), payment_date_p90=dates[:, 2].tolist(),
                p10_days=float_values(days_q[:, 0]), p50_days=float_values(days_q[:, 1]), p90_days=float_values(days_q[:, 2]),
                beyond_horizon=[bool(v) for v in beyond_horizon], reasons=_reason_list(reasons))
    names = list(cols)
    return [dict(zip(names, values)) for values in zip(*cols.values())]


def _frame_answer(s: pd.DataFrame) -> list[dict[str, Any]]:
    """``EncaisseModel.score``'s frame as answer rows."""
    dates = [s[c].to_numpy(dtype="datetime64[s]") for c in ("payment_date_low", "expected_payment_date",
                                                             "payment_date_high")]
    return _answer({c: column_values(s[c]) for c in SCORE_IDENTITY}, s["p_late"].to_numpy(dtype=float),
                   s["p_very_late"].to_numpy(dtype=float),
                   s[["p10_days", "p50_days", "p90_days"]].to_numpy(dtype=float).reshape(-1, 3),
                   np.column_stack(dates).reshape(-1, 3), s["beyond_horizon"].to_numpy(dtype=bool), s["reasons"])


def _frame(table, rows: list[dict]) -> pd.DataFrame:
    """Rows from JSON as a frame with the table's canonical columns."""
    return pd.DataFrame.from_records(rows, columns=table.names)


def _validated(table, rows: list[dict], what: str) -> pd.DataFrame:
    df = _frame(table, rows)
    good, rejects = validate_frame(table, df)
    if len(rejects):
        raise RowsRejected(outcome_of(table.name, len(df), rejects, what=what))
    return good


def score_invoices(
    state: ServiceState,
    as_of: date | pd.Timestamp | None,
    invoice_ids: list[str] | None = None,
    invoices: list[dict] | None = None,
    history: list[dict] | None = None,
    payments: list[dict] | None = None,
    n_reasons: int = 3,
) -> ScoreBatch:
    """Score a batch of invoices as of a day with the champion.

    Args:
        state: the service state.
        as_of: the scoring day (None: today).
        invoice_ids: invoices known to the store, scored with the store's history.
        invoices: full invoice rows (canonical columns). Without ``history``, their clients'
            history comes from the store (a sent row replaces a stored one with the same id);
            with ``history`` (stateless mode), only what the request carries is used.
        history: the clients' other invoice rows (stateless mode).
        payments: payment rows (stateless mode; optional).
        n_reasons: reasons given per invoice.

    Returns:
        The scores (answer rows, ``serving.schemas.ScoreOut``'s fields), one per scorable invoice
        in the order asked, and the ones not scored with the reason.

    Raises:
        NoModelError: no champion.
        RowsRejected: sent rows fail the ledger's validation.
    """
    champion = current_model(state)
    d = day_of(as_of)
    sent = list(invoices or [])
    wanted = list(dict.fromkeys([*(invoice_ids or []), *(r["invoice_id"] for r in sent)]))
    if history is not None:
        rows = _validated(INVOICES, [*history, *sent], "invoices and history")[INVOICES.names]
        pay = _validated(PAYMENTS, payments or [], "payments")
        ledger = Ledger(invoices=rows.reset_index(drop=True), payments=pay)
        model = champion.model
    elif sent:
        # Sent rows replace stored ones; their clients' history (and the listed ids') comes from the store.
        index = current_ledger(state)
        rows = _validated(INVOICES, sent, "invoices")[INVOICES.names]
        pos = index.invoice_pos.get_indexer(invoice_ids or [])
        id_clients = index.ledger.invoices["client_id"].iloc[pos[pos >= 0]].tolist()
        stored = clients_ledger(index, list(dict.fromkeys([*rows["client_id"], *id_clients])))
        others = stored.invoices[~stored.invoices["invoice_id"].isin(rows["invoice_id"])]
        ledger = Ledger(invoices=pd.concat([others, rows], ignore_index=True), payments=stored.payments,
                        clients=stored.clients, actions=stored.actions)
        model = champion.model
    else:
        return _score_stored(state, champion, d, wanted, n_reasons)

    inv = ledger.invoices.drop_duplicates("invoice_id", keep="last").set_index("invoice_id", drop=False)
    not_scored, scorable = [], []
    for i in wanted:
        if i not in inv.index:
            not_scored.append({"invoice_id": i, "reason": "unknown invoice_id (not in the store)"})
            continue
        why = _not_open_reason(inv.loc[i], d)
        if why:
            not_scored.append({"invoice_id": i, "reason": why})
        else:
            scorable.append(i)
    if scorable:
        scores = model.score(ledger, d, invoice_ids=scorable, n_reasons=n_reasons, num_threads=_threads(len(scorable)))
        scores = scores.set_index("invoice_id", drop=False).loc[scorable].reset_index(drop=True)
    else:
        scores = pd.DataFrame(columns=SCORE_COLUMNS)
    return ScoreBatch(as_of=d, scores=_frame_answer(scores), not_scored=not_scored, champion=champion)


def _score_stored(state: ServiceState, champion: ChampionModel, d: pd.Timestamp, wanted: list[str],
                  n_reasons: int) -> ScoreBatch:
    """Stored invoices by id: their rows of the day's ``open_rows``, scored alone."""
    cached = open_rows(state, champion, d)
    pos = np.fromiter((cached.position.get(i, -1) for i in wanted), dtype=np.intp, count=len(wanted))
    not_scored = []
    if (pos < 0).any():
        index = current_ledger(state)
        inv = index.ledger.invoices
        stored = index.invoice_pos.get_indexer([i for i, p in zip(wanted, pos) if p < 0])
        for i, p in zip([i for i, p in zip(wanted, pos) if p < 0], stored):
            why = "unknown invoice_id (not in the store)" if p < 0 else _not_open_reason(inv.iloc[p], d)
            not_scored.append({"invoice_id": i, "reason": why or f"not open at the start of {d.date()}"})
    pos = pos[pos >= 0]
    # Only the asked rows are scored, and answered from arrays: no frame is built per call.
    r = champion.model.predict_encoded(cached.rows, d, positions=pos, n_reasons=n_reasons, num_threads=_threads(len(pos)))
    identity = {c: [values[p] for p in pos.tolist()] for c, values in cached.identity.items()}
    answer = _answer(identity, r.p_late, r.p_very_late, r.days_q, r.dates, r.beyond_horizon, r.reasons)
    return ScoreBatch(as_of=d, scores=answer, not_scored=not_scored, champion=champion)
