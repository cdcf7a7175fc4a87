"""What routes and web pages share: the current ledger and model, scoring, worklist, forecast, KPIs, writes.

Every function takes the ``ServiceState`` and returns frames or plain values; HTTP lives in the
routes. This is the one module of ``serving`` that reaches the model registry and batch scoring
(``models.registry``, ``models.scoring``).

Fast scoring: client features (``features.clients.build_client_features``) are computed once per
``as_of`` on the whole stored ledger and cached. On top of them, ``open_rows`` builds, once per
(ledger version, champion, ``as_of``), the feature rows of every invoice open that day with the
batch feature path (``features.invoices.build_features``) and encodes them
(``EncaisseModel.encode``). A score call on stored invoices then runs
``EncaisseModel.predict_encoded`` at its rows only (numpy and one-thread LightGBM, no feature building):
each row is scored on its own, so the scores equal ``EncaisseModel.score`` on the full ledger
(``tests/test_api.py``, ``tests/test_api_fast.py``). The first call of a day builds the entry
(about the time of the batch feature step on the open invoices); today's is built at start-up
and after each write. Sent invoice rows and stateless calls build their own features.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.clients import build_client_features
from features.invoices import build_features
from features.kpis import evaluate_kpis
from ledger.contracts import CLIENTS, INVOICES, PAYMENTS, Ledger
from ledger.ingest import validate_frame
from ledger.scores_store import latest_run, load_run
from ledger.store import load_ledger
from ledger.workspace import Settings
from models.collection import CollectionForecast, build_forecast, validate_horizon
from models.scorer import SCORE_COLUMNS, EncodedRows
from models.registry import ChampionModel, NoChampionError, load_champion
from models.scoring import build_scoring
from serving.frames import column_values, float_values, plain
from serving.keys import Principal
from serving.state import LedgerIndex, ServiceState

SERVER_THREADS = 1
"""LightGBM prediction threads of a small call: requests run concurrently, each on one core."""

LARGE_CALL_ROWS = 200
"""From this many invoices a call predicts on every core (its LightGBM work dwarfs thread start-up;
waiting OpenMP threads sleep, see ``models/__init__.py``, so concurrent small calls keep their core)."""


def _threads(n_rows: int) -> int:
    """LightGBM prediction threads for a call scoring ``n_rows`` invoices (0: every core)."""
    return 0 if n_rows >= LARGE_CALL_ROWS else SERVER_THREADS

log = logging.getLogger(__name__)

__all__ = [
    "ChampionModel", "NoChampionError", "NoModelError", "RowsRejected", "default_loader", "today",
    "current_ledger", "current_model", "refresh_ledger", "reload_champion", "store_reachable",
    "score_invoices", "score_client", "worklist_rows", "forecast", "kpis",
    "client_features", "open_rows", "warm_today",
]


class NoModelError(LookupError):
    """No champion is loaded: nothing can be scored."""


class RowsRejected(ValueError):
    """Rows failed the ledger's validation; nothing was stored. ``outcome`` lists them."""

    def __init__(self, outcome: "WriteOutcome"):
        super().__init__(f"{outcome.rejected} of {outcome.received} {outcome.table} rows were rejected")
        self.outcome = outcome


def default_loader(settings: Settings) -> ChampionModel:
    """The champion from the registry (``load_champion``)."""
    return load_champion(settings)


def today() -> pd.Timestamp:
    """The default ``as_of``: the start of the current day (UTC)."""
    return pd.Timestamp(datetime.now(UTC).date())


def day_of(as_of: date | str | pd.Timestamp | None) -> pd.Timestamp:
    """``as_of`` as the start of a day (today when None)."""
    return today() if as_of is None else pd.Timestamp(as_of).normalize()


# --- current state --------------------------------------------------------------------------------


def refresh_ledger(state: ServiceState) -> LedgerIndex:
    """Reload the ledger from the store (at start-up, or on reload); caches are dropped with it.

    Writes pending when the load began are in what it read; later ones stay pending (folding a
    row in twice replaces it by itself).
    """
    with state.lock:
        n_pending = len(state.pending)
    ledger = load_ledger(state.engine)
    with state.lock:
        version = (state.index.version + 1) if state.index is not None else 1
        state.index = LedgerIndex.build(ledger, version)
        del state.pending[:n_pending]
        state.clear_scoring_caches()
    log.info("ledger loaded: %d invoices, %d payments, %d actions (version %d)", len(ledger.invoices),
             len(ledger.payments), len(ledger.actions), version)
    return state.index


def current_ledger(state: ServiceState) -> LedgerIndex:
    """The loaded ledger and its look-ups (loaded on first use), with the API's writes folded in."""
    if state.index is None:
        return refresh_ledger(state)
    if not state.pending:
        return state.index
    with state.lock:
        if state.pending:
            index = state.index
            for table, rows in state.pending:
                index = index.with_rows(table, rows, index.version + 1)
            state.pending.clear()
            state.index = index
            state.clear_scoring_caches()
        return state.index


def current_model(state: ServiceState) -> ChampionModel:
    """The loaded champion.

    Raises:
        NoModelError: none is loaded (and why).
    """
    champion = state.champion
    if champion is None:
        raise NoModelError(state.champion_error or "No champion model is loaded.")
    return champion


def reload_champion(state: ServiceState) -> tuple[bool, str]:
    """Load the champion again from the registry; keep the current one if that fails.

    Returns:
        ``(loaded, message)``: ``loaded`` False means the registry could not give a model and the
        service still serves what it had (the message says which version, or that there is none).
    """
    try:
        champion = state.loader(state.settings)
    except Exception as exc:  # noqa: BLE001 - an unreachable registry must never take the service down
        kept = state.champion
        what = f"still serving version {kept.version}" if kept is not None else "no model is loaded"
        message = f"Could not load the champion ({exc.__class__.__name__}: {exc}); {what}."
        log.warning("%s", message)
        if kept is None:
            state.champion_error = message
        return False, message
    with state.lock:
        previous = state.champion
        state.champion = champion
        state.champion_error = None
        state.clear_scoring_caches()
    was = f" (was {previous.version})" if previous is not None else ""
    return True, f"Serving version {champion.version}{was}."


def store_reachable(state: ServiceState) -> str | None:
    """None when the store answers; otherwise why not."""
    try:
        with state.engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"The ledger store is not reachable: {exc.__class__.__name__}."
    return None


# --- scoring --------------------------------------------------------------------------------------


class _ClientFeaturesGiven:
    """The champion, with its feature step handed precomputed client features.

    ``EncaisseModel.score`` builds features through ``self.features``; this wrapper routes that
    call to ``build_features(..., clients=...)`` and delegates everything else to the model, so
    the scoring code that runs is the model's own, including inside ``build_scoring``, which asks
    the model for its features.
    """

    def __init__(self, model, clients: pd.DataFrame | None):
        self._model = model
        self._clients = clients

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def features(self, ledger: Ledger, as_of, invoice_ids=None) -> pd.DataFrame:
        m = self._model
        return build_features(ledger, as_of, extra_attributes=list(m.extra_attributes),
                              include_suspected_leaks=m.include_suspected_leaks, clients=self._clients,
                              invoice_ids=invoice_ids)

    def score(self, *args, **kwargs):
        return type(self._model).score(self, *args, **kwargs)


def client_features(state: ServiceState, as_of: pd.Timestamp) -> pd.DataFrame:
    """Client features of the stored ledger as of a day (cached per ledger version and day)."""
    index = current_ledger(state)
    key = (index.version, as_of)
    with state.lock:
        cached = state.client_features.get_or_none(key)
    if cached is None:
        # Built outside the lock, which every cache look-up takes: seconds on a large ledger.
        # Two first calls may both build it; the results are equal.
        cached = build_client_features(index.ledger, as_of)
        with state.lock:
            state.client_features.put(key, cached)
    return cached


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
        model = _ClientFeaturesGiven(champion.model, client_features(state, as_of))
        f = model.features(index.ledger, as_of)
        rows = champion.model.encode(f)
        identity = {c: column_values(rows.features[c]) for c in SCORE_IDENTITY}
        hit = OpenRows(key=key, rows=rows, position={str(i): p for p, i in enumerate(f["invoice_id"])},
                       build_seconds=time.perf_counter() - started, identity=identity)
        with state.lock:
            state.open_rows.put(key, hit)
    settle_heap()  # outside the build lock: a full collection (~200 ms at 1M invoices) holds no one else's build
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


def settle_heap() -> None:
    """Keep what the service holds for long (ledger, model, caches) out of the garbage collector's scans.

    A full collection walks every tracked object: ~360k for a 1M-invoice ledger, ~200 ms, paid by
    whichever request happens to trigger it (a 1,000-invoice call went from 125 to 317 ms). Frozen
    objects are skipped by later collections. Each call unfreezes, collects and freezes again, so
    caches replaced since the last call are still collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _take(df: pd.DataFrame, groups: dict, keys) -> pd.DataFrame:
    parts = [groups[k] for k in keys if k in groups]
    if not parts:
        return df.iloc[:0]
    return df.iloc[np.sort(np.concatenate(parts))]


def clients_ledger(index: LedgerIndex, client_ids) -> Ledger:
    """Everything stored about some clients: their documents, payments, actions and master rows."""
    led = index.ledger
    inv = _take(led.invoices, index.invoices_of_client, client_ids)
    return Ledger(invoices=inv, payments=_take(led.payments, index.payments_of_invoice, inv["invoice_id"].tolist()),
                  clients=_take(led.clients, index.client_rows, client_ids),
                  actions=_take(led.actions, index.actions_of_client, client_ids))


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
        raise RowsRejected(_outcome(table.name, len(df), rejects, what=what))
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


# --- clients and worklist -------------------------------------------------------------------------


@dataclass
class ClientView:
    """One client as of a day: master data, behaviour figures, profile and scored open invoices."""

    client_id: str
    as_of: pd.Timestamp
    master: dict[str, Any]
    behaviour: dict[str, Any]
    profile: dict[str, Any] | None
    invoices: pd.DataFrame


def score_client(state: ServiceState, client_id: str, as_of: date | pd.Timestamp | None) -> ClientView:
    """Profile, scenario, behaviour figures and open invoices (scored, with next steps) of a client.

    The client's own rows go through the same ``build_scoring`` as the batch run (the ranking is
    left out: it only means something across a portfolio).

    Raises:
        LookupError: the store has no such client.
        NoModelError: no champion.
    """
    champion = current_model(state)
    index = current_ledger(state)
    if not index.knows_client(client_id):
        raise LookupError(f"Client {client_id!r} is not in the store.")
    d = day_of(as_of)
    feats = client_features(state, d)
    ledger = clients_ledger(index, [client_id])
    model = _ClientFeaturesGiven(champion.model, feats)
    scoring = build_scoring(model, ledger, d)
    master = {}
    if len(ledger.clients):
        row = ledger.clients.iloc[-1]
        master = {c: plain(row[c]) for c in CLIENTS.names}
    behaviour = {}
    if client_id in feats.index:
        behaviour = {k: plain(v) for k, v in feats.loc[client_id].items() if k.startswith("c_")}
    profile = None
    cs = scoring.client_scores
    if len(cs):
        r = cs.iloc[0]
        profile = {k: plain(r.get(k)) for k in ("profile", "scenario", "profile_reason", "p_late_mean",
                                                   "p_very_late_max", "overdue_share", "open_amount",
                                                   "in_difficulty", "in_payment_plan")}
    wl = scoring.worklist.drop(columns=["priority", "rank", "collector_priority"], errors="ignore")
    return ClientView(client_id=client_id, as_of=d, master=master, behaviour=behaviour, profile=profile,
                      invoices=wl.sort_values("due_date", kind="stable").reset_index(drop=True))


@dataclass
class WorklistView:
    """Ranked worklist rows and where they come from."""

    as_of: pd.Timestamp
    source: str  # "stored" (a stored score run) or "computed" (scored now)
    run_id: str | None
    run_as_of: pd.Timestamp
    model_version: str
    rows: pd.DataFrame


def order_worklist(rows: pd.DataFrame, by: str | None = None, descending: bool = False) -> pd.DataFrame:
    """Worklist rows in order: by ``priority`` (unranked rows last, then the likelier very late first), or
    by the column ``by`` (missing values last), ties by priority and invoice id."""
    if by is not None:
        return rows.sort_values([by, "priority", "invoice_id"], ascending=[not descending, True, True],
                                na_position="last", kind="stable")
    rows = rows.copy()
    rows["_has"] = rows["priority"].isna()
    rows = rows.sort_values(["_has", "priority", "p_very_late", "invoice_id"], ascending=[True, True, False, True],
                            kind="stable")
    return rows.drop(columns="_has").reset_index(drop=True)


def visible_collector(principal: Principal, asked: str | None = None) -> str | None:
    """The collector whose worklist rows a caller sees: a collector key, its own; any other key, ``asked``
    (None: every row).

    Raises:
        PermissionError: a collector key asked for another collector's rows.
    """
    if principal.role != "collector":
        return asked
    if asked is not None and asked != principal.collector:
        raise PermissionError(f"A collector key sees its own portfolio only ({principal.collector!r}).")
    return principal.collector


def collector_rows(rows: pd.DataFrame, collector: str | None) -> pd.DataFrame:
    """The rows of one collector (all rows when None)."""
    return rows if collector is None else rows[rows["collector"] == collector]


def worklist_rows(state: ServiceState, as_of: date | pd.Timestamp | None) -> WorklistView:
    """The worklist of the latest stored score run at or before ``as_of``; scored now if none.

    Raises:
        NoModelError: no stored run and no champion to score with.
    """
    d = day_of(as_of)
    run = latest_run(state.engine, d)
    if run is not None:
        key = ("stored-worklist", run["run_id"])  # a saved run never changes: its rows are cached
        with state.lock:
            rows = state.results.get_or_none(key)
        if rows is None:
            rows = order_worklist(load_run(state.engine, run).invoices)
            with state.lock:
                state.results.put(key, rows)
        return WorklistView(as_of=d, source="stored", run_id=run["run_id"], run_as_of=pd.Timestamp(run["as_of"]),
                            model_version=str(run["model_version"]), rows=rows)
    champion = current_model(state)
    index = current_ledger(state)
    key = ("worklist", index.version, champion.version, d)
    with state.lock:
        rows = state.results.get_or_none(key)
    if rows is None:
        model = _ClientFeaturesGiven(champion.model, client_features(state, d))
        rows = order_worklist(build_scoring(model, index.ledger, d).worklist)
        with state.lock:
            state.results.put(key, rows)
    return WorklistView(as_of=d, source="computed", run_id=None, run_as_of=d, model_version=str(champion.version),
                        rows=rows)


# --- forecast and KPIs ----------------------------------------------------------------------------


def forecast(state: ServiceState, as_of: date | pd.Timestamp | None, horizon: int = 13, freq: str = "W",
             n_samples: int = 1000, seed: int = 0) -> CollectionForecast:
    """``models.collection.build_forecast`` on the loaded ledger, from the day's encoded open invoices (cached).

    Raises:
        NoModelError: no champion.
        ValueError: ``horizon`` or ``freq`` out of range.
    """
    champion = current_model(state)
    index = current_ledger(state)
    d = day_of(as_of)
    key = ("forecast", index.version, champion.version, d, horizon, freq, n_samples, seed)
    with state.lock:
        hit = state.results.get_or_none(key)
    if hit is not None:
        return hit
    validate_horizon(horizon, freq)
    scored = champion.model.score_encoded(open_rows(state, champion, d).rows, d, return_cdf=True, n_reasons=0)
    hit = build_forecast(champion.model, index.ledger, d, horizon=horizon, freq=freq, n_samples=n_samples, seed=seed,
                         scored=scored)
    with state.lock:
        state.results.put(key, hit)
    return hit


def kpis(state: ServiceState, as_of: date | pd.Timestamp | None, period_days: int = 90) -> dict:
    """``features.kpis.evaluate_kpis`` on the loaded ledger (cached per ledger version)."""
    index = current_ledger(state)
    d = day_of(as_of)
    key = ("kpis", index.version, d, period_days)
    with state.lock:
        hit = state.results.get_or_none(key)
    if hit is None:
        hit = evaluate_kpis(index.ledger, d, period_days=period_days)
        with state.lock:
            state.results.put(key, hit)
    return hit


# --- write outcomes (the writes themselves: serving.writes) ----------------------------------------


@dataclass
class WriteOutcome:
    """What a write did: counts, and every rejected row with its 1-based position and reason."""

    table: str
    received: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    stored: bool = False
    keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _outcome(table: str, received: int, rejects: pd.DataFrame, what: str | None = None) -> WriteOutcome:
    spec_key = {"invoices": "invoice_id", "payments": "payment_id", "actions": "action_id", "clients": "client_id"}[table]
    listed = [{"row": int(r["source_row"]), "key": None if pd.isna(r.get(spec_key)) else str(r.get(spec_key)),
               "reason": _short(str(r["reason"]))} for r in rejects.to_dict("records")]
    return WriteOutcome(table=what or table, received=received, rejected=len(listed), rejects=listed)


def _short(text: str, limit: int = 300) -> str:
    """A reason cut to ``limit`` characters: an answer never echoes large input back."""
    return text if len(text) <= limit else text[:limit] + "..."
