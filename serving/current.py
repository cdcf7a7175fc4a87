"""The service's current state: the loaded ledger and champion, and the client features cached on them.

Every function takes the ``ServiceState``; HTTP lives in the routes. Writes arriving through the
API are folded into the loaded ledger here (``current_ledger``), so a write is seen without a reload;
so are, within ``serving.sync_seconds``, those other processes store (``sync_changes``).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.clients import build_client_features
from ledger.changes import KEEP, last_change_id, read_changes
from ledger.contracts import TABLES, Ledger
from ledger.reader import load_ledger, read_keys
from ledger.workspace import Settings
from models.registry import ChampionModel, load_champion
from serving.state import LedgerIndex, ServiceState

log = logging.getLogger(__name__)


class NoModelError(LookupError):
    """No champion is loaded: nothing can be scored."""


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

    One load at a time (``state.reloading``), so a later load has read the store after an earlier one.
    The change log is read again from where it stood when the load began (``sync_changes``).
    Writes acknowledged before the load began are in what it reads. Those acknowledged while it runs
    may or may not be, so they stay pending until it is installed and are folded in again (folding a
    row in twice replaces it by itself).
    """
    with state.reloading:
        try:
            with state.engine.connect() as conn:
                # One point for both marks: a write of this service acknowledged (numbered) after it is
                # folded in again; one stored elsewhere after it has a change id past change_began and
                # is read again from the log. The connection is taken first: nothing under the commit
                # lock waits for the pool (writers holding connections may wait for that lock).
                with state.commit_lock:
                    with state.lock:
                        began = state.load_began = state.write_seq
                    change_began = last_change_id(conn)
            ledger = load_ledger(state.engine)
        except BaseException:
            with state.lock:
                state.load_began = None
                state.drop_folded()
            raise
        with state.lock:  # the load stops protecting its entries only once it is installed
            state.load_began = None
            version = (state.index.version + 1) if state.index is not None else 1
            index = LedgerIndex.build(ledger, version)
            for seq, table, rows in state.pending:
                if seq > began:
                    index = index.with_rows(table, rows, index.version + 1)
            state.index = index
            state.folded_seq = state.write_seq
            state.drop_folded()
            state.clear_scoring_caches()
            # Changes past the load's start are read again: a row folded in above may be older than
            # what the load read, and the next read of the log brings the store's newest.
            state.change_seen = change_began
            state.change_read_at = time.monotonic()
    log.info("ledger loaded: %d invoices, %d payments, %d actions (version %d)", len(ledger.invoices),
             len(ledger.payments), len(ledger.actions), version)
    return index


def start_periodic_reload(state: ServiceState, stop: threading.Event,
                          after: Callable[[], None] | None = None) -> threading.Thread:
    """Reload the ledger every ``serving.reload_seconds`` until ``stop`` is set (a daemon thread), then
    call ``after`` (the app warms today's scoring caches there, so no request pays for the reload).

    What this process was sent is served at once; this brings in, within the delay, what other
    processes stored. A failed reload is logged and the ledger held is kept.
    """
    def step() -> None:
        refresh_ledger(state)
        if after is not None:
            after()

    return _every(state.serving.reload_seconds, stop, step, "ledger-reload",
                  "periodic ledger reload failed; serving the ledger loaded before")


def _every(seconds: float, stop: threading.Event, step: Callable[[], None], name: str,
           failed: str) -> threading.Thread:
    """Run ``step`` every ``seconds`` until ``stop`` is set, in a daemon thread; a failure is logged
    (a store briefly unreachable must not end the loop)."""
    def run() -> None:
        while not stop.wait(seconds):
            try:
                step()
            except Exception:  # noqa: BLE001 - logged, and tried again at the next turn
                log.warning("%s", failed, exc_info=True)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


SYNC_PAGE = 100
"""Change rows read from the log at a time (each may name up to ``ledger.changes.KEYS_MAX`` keys)."""
SYNC_ROWS_MAX = 20_000
"""Rows one read of the log folds in; more, and the whole ledger is read again."""


def _changed_keys(state: ServiceState) -> tuple[dict[str, set[str]], int, str | None]:
    """What the log names past ``state.change_seen`` that others stored: ``(keys by table, the last id
    read, why the whole ledger must be read again or None)``."""
    if time.monotonic() - state.change_read_at > KEEP.total_seconds() / 2:
        return {}, state.change_seen, "the change log was not read for too long"
    keys_of: dict[str, set[str]] = {}
    last = state.change_seen
    while True:
        with state.engine.connect() as conn:
            page = read_changes(conn, last, limit=SYNC_PAGE)
        for change in page:
            if change.writer == state.writer:  # folded in already, when it was acknowledged
                continue
            if change.keys is None:
                return {}, last, "a bulk write"
            keys_of.setdefault(change.table, set()).update(change.keys)
            if sum(len(k) for k in keys_of.values()) > SYNC_ROWS_MAX:
                return {}, last, f"more than {SYNC_ROWS_MAX} rows changed"
        if page:
            last = page[-1].id
        if len(page) < SYNC_PAGE:
            return keys_of, last, None


def sync_changes(state: ServiceState) -> int | None:
    """Fold in what other processes stored since the change log was last read (``ledger.changes``).

    The rows the log names are read again by key and go to ``state.pending``, as the API's writes do;
    this service's own changes are skipped (``state.writer``: folded in already). A bulk write, rows
    removed, more than ``SYNC_ROWS_MAX`` rows, or a log not read for half of ``ledger.changes.KEEP``
    (pruned rows may be missed): the whole ledger is read again.

    The rows are read without the commit lock (a read may wait for a table an ingest holds, and the
    ingest for a writer of this service waiting for that lock). A key this service wrote while they
    were read keeps its write's row: it is the newer, or what the store held when read; what others
    store after it is past the log's last id read, and read at the next call.

    Returns:
        The rows folded in (0: nothing new, or a load is running and will read them), or None when
        the whole ledger was read again.
    """
    if state.index is None or state.change_seen is None:
        refresh_ledger(state)
        return None
    if not state.reloading.acquire(blocking=False):
        return 0  # a load runs: it reads the store, then the log from where it stood
    try:
        keys_of, last, reload = _changed_keys(state)
        if reload is None:
            with state.commit_lock:
                own_before = state.own_writes
            rows = {}
            if keys_of:
                with state.engine.connect() as conn:
                    rows = {table: read_keys(conn, table, keys) for table, keys in keys_of.items()}
            folded = 0
            with state.commit_lock:
                since = state.own_writes - own_before
                if since > len(state.own_log):
                    return 0  # too many of its own writes meanwhile to tell their keys: read again next time
                written: dict[str, set[str]] = {}
                for table, keys in list(state.own_log)[len(state.own_log) - since:]:
                    written.setdefault(table, set()).update(keys)
                for table, frame in rows.items():
                    if table in written:
                        frame = frame[~frame[TABLES[table].key].astype(str).isin(written[table])]
                    if len(frame):
                        state.add_pending(table, frame)
                        folded += len(frame)
                state.change_seen = last
            state.change_read_at = time.monotonic()
            return folded
    finally:
        state.reloading.release()
    log.info("reading the whole ledger again: %s since the last read of the change log", reload)
    refresh_ledger(state)
    return None


def start_change_sync(state: ServiceState, stop: threading.Event,
                      after: Callable[[], None] | None = None) -> threading.Thread:
    """Read the change log every ``serving.sync_seconds`` until ``stop`` is set (a daemon thread), and
    call ``after`` when something was folded in (the app warms today's scoring caches there).

    A failed read is logged; the next one reads from where the last good one stopped.
    """
    def step() -> None:
        if sync_changes(state) != 0 and after is not None:
            after()

    return _every(state.serving.sync_seconds, stop, step, "ledger-changes",
                  "reading the store's change log failed; trying again")


def current_ledger(state: ServiceState) -> LedgerIndex:
    """The loaded ledger and its look-ups (loaded on first use), with the API's writes folded in."""
    if state.index is None:
        return refresh_ledger(state)
    if state.folded_seq == state.write_seq:
        return state.index
    with state.lock:
        if state.folded_seq != state.write_seq:
            index = state.index
            for seq, table, rows in state.pending:
                if seq > state.folded_seq:
                    index = index.with_rows(table, rows, index.version + 1)
            state.index = index
            state.folded_seq = state.write_seq
            state.drop_folded()
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


def settle_heap() -> None:
    """Keep what the service holds for long (ledger, model, caches) out of the garbage collector's scans.

    A full collection walks every tracked object, and whichever request happens to trigger it pays
    for the walk over the whole ledger (bench/RESULTS.md, garbage collection). Frozen
    objects are skipped by later collections. Each call unfreezes, collects and freezes again, so
    caches replaced since the last call are still collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
