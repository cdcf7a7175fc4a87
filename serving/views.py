"""The answers the API and the pages share: a client's view, the worklist, the forecast and the KPIs.

Each is assembled here once (and cached per ledger version, champion and day); the routes and
the pages only serialize it. The worklist's collector rule and ordering live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from features.kpis import evaluate_kpis
from ledger.contracts import CLIENTS
from ledger.scores_store import latest_run, load_run
from models.collection import CollectionForecast, build_forecast, validate_horizon
from models.scoring import build_scoring
from serving.current import client_features, clients_ledger, current_ledger, current_model, day_of
from serving.frames import plain
from serving.invoice_scores import open_rows
from serving.keys import Principal
from serving.state import ServiceState


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
    scoring = build_scoring(champion.model, ledger, d, clients=feats, measured=measured_uplifts(state, d))
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


STALE_RUN_DAYS = 3
"""A stored run older than this many days is flagged to its readers (a Friday run read on Monday is not)."""


@dataclass
class WorklistView:
    """Ranked worklist rows and where they come from."""

    as_of: pd.Timestamp
    source: str  # "stored" (a stored score run) or "computed" (scored now)
    run_id: str | None
    run_as_of: pd.Timestamp
    model_version: str
    rows: pd.DataFrame

    @property
    def stale_days(self) -> int:
        """Days between the stored run and the day asked, when more than ``STALE_RUN_DAYS``; else 0."""
        days = (self.as_of - self.run_as_of).days if self.source == "stored" else 0
        return days if days > STALE_RUN_DAYS else 0

    @property
    def note(self) -> str | None:
        """What a reader of these rows should know about where they come from (None: nothing)."""
        if self.source != "stored":
            return (f"No score run is stored at or before {self.as_of.date()}: scored now with model "
                    f"{self.model_version} (run `encaisse score` daily to keep an audit trail).")
        if self.stale_days:
            return (f"The latest stored score run is of {self.run_as_of.date()}, {self.stale_days} days before "
                    f"{self.as_of.date()}: its amounts, days overdue and next actions are those of that day. Run "
                    f"`encaisse score --as-of {self.as_of.date()}` (is its daily job running?).")
        return None


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
        rows = order_worklist(build_scoring(champion.model, index.ledger, d, clients=client_features(state, d)).worklist)
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
    scored = champion.model.score(None, d, rows=open_rows(state, champion, d).rows, return_cdf=True, n_reasons=0)
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


# --- measured uplift ------------------------------------------------------------------------------


def measured_uplifts(state: ServiceState, as_of: date | pd.Timestamp | None) -> dict[str, dict]:
    """The steps whose uplift measured on the whole loaded ledger the worklist uses (cached per ledger
    version and day), for scoring a subset of clients the way the whole worklist is scored."""
    from models.policy import load_policy
    from models.scoring import measured_step_uplifts

    index = current_ledger(state)
    d = day_of(as_of)
    key = ("measured-uplift", index.version, d)
    with state.lock:
        hit = state.results.get_or_none(key)
    if hit is None:
        hit = measured_step_uplifts(index.ledger, d, load_policy().control)
        with state.lock:
            state.results.put(key, hit)
    return hit


def uplift(state: ServiceState, as_of: date | pd.Timestamp | None, history_months: int = 12) -> dict:
    """``models.uplift.evaluate_uplift`` on the loaded ledger at ``as_of``, and the same estimate at the
    first day of each of the ``history_months`` months before it (how the estimates moved), cached per
    ledger version and day."""
    from models.policy import load_policy
    from models.uplift import evaluate_uplift

    index = current_ledger(state)
    d = day_of(as_of)
    key = ("uplift", index.version, d, history_months)
    with state.lock:
        hit = state.results.get_or_none(key)
    if hit is not None:
        return hit
    control = load_policy().control
    hit = evaluate_uplift(index.ledger, d, control, engine=state.engine)
    history = []
    first = d.to_period("M").to_timestamp()
    days = [first - pd.DateOffset(months=k) for k in range(history_months - 1, -1, -1)]
    for day in (x for x in days if x < d):
        past = evaluate_uplift(index.ledger, day, control)
        history.append({"as_of": str(day.date()),
                        "steps": {s: e["window_days"].get(str(control.window_days), {})
                                  for s, e in past["steps"].items()}})
    hit["history"] = history
    with state.lock:
        state.results.put(key, hit)
    return hit


def uplift_charts(u: dict) -> dict[str, dict]:
    """Per step, the worklist window's estimate and interval by month (the history, then the estimate
    at the page's day), in points of probability, as the uplift chart of ``static/charts.js`` reads it:
    ``{step: {"x": [unix seconds], "uplift": [...], "low": [...], "high": [...]}}`` (None where unknown)."""
    w = str(u["worklist_window_days"])
    points = [(h["as_of"], h["steps"]) for h in u.get("history", [])]
    points.append((u["as_of"], {s: e["window_days"].get(w, {}) for s, e in u["steps"].items()}))
    x = (pd.to_datetime([p[0] for p in points]).astype("datetime64[s]").astype("int64")).tolist()

    def col(step: str, field: str) -> list[float | None]:
        vals = [(p[1].get(step) or {}).get(field) for p in points]
        return [None if v is None else round(100 * float(v), 2) for v in vals]

    return {step: {"x": x, "uplift": col(step, "uplift"), "low": col(step, "low"), "high": col(step, "high")}
            for step in u["steps"]}
