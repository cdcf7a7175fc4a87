"""Batch scoring: score every open invoice and client, plan the next steps, rank, store, export.

Steps: ``load_ledger`` -> ``load_champion`` -> :func:`build_scoring` (scores, client scores,
profiles, next steps, worklist, legal amounts) -> ``save_scores`` -> :func:`save_worklist`. The
middle step is a pure function of (model, ledger, as_of), testable in memory.

:func:`run_alerts` reads the stored run as of a day and the one before it, and raises alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.legal import build_legal_amounts
from ledger.contracts import Ledger
from ledger.scores_store import load_latest_scores, save_scores
from ledger.store import load_ledger, open_store
from ledger.workspace import Settings
from models.alerts import build_alerts
from models.policy import Policy, assign_profiles, load_policy, next_steps
from models.worklist import build_client_scores, rank_worklist

log = logging.getLogger(__name__)

EXPORT_COLUMNS = [
    "priority", "collector", "collector_priority", "queue", "invoice_id", "client_id", "amount", "amount_remaining",
    "currency", "issue_date", "due_date", "days_overdue", "p_late", "p_very_late", "expected_payment_date",
    "payment_date_low", "payment_date_high", "beyond_horizon", "profile", "scenario", "next_action",
    "next_action_date", "channel", "template", "expected_gain", "gain_per_minute", "effort_minutes", "why",
    "reasons", "late_penalty", "recovery_indemnity", "penalty_rate", "days_late", "lme_terms_exceeded",
    "prescription_date", "prescription_status", "rank",
]
"""Columns of the exported worklist, in order."""

LEGAL_COLUMNS = ["late_penalty", "recovery_indemnity", "penalty_rate", "days_late", "lme_terms_exceeded",
                 "prescription_date", "prescription_status"]
"""From :func:`features.legal.build_legal_amounts`; empty for invoices not past due."""


class NoScoresError(LookupError):
    """No stored scoring run at or before the requested day."""


def load_champion(settings: Settings):
    """The champion model (``pipelines.registry.load_champion``); a seam tests replace."""
    from pipelines.registry import load_champion as _load

    return _load(settings)


@dataclass
class Scoring:
    """Everything one scoring produces, in memory."""

    as_of: pd.Timestamp
    scores: pd.DataFrame
    client_scores: pd.DataFrame
    assignments: pd.DataFrame
    steps: pd.DataFrame
    worklist: pd.DataFrame


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


def build_scoring(
    model,
    ledger: Ledger,
    as_of: pd.Timestamp | str,
    policy: Policy | None = None,
    previous: pd.DataFrame | None = None,
    capacity: float | None = None,
    portfolios=None,
    invoice_flags: bool = True,
) -> Scoring:
    """Score, profile, plan and rank the invoices open at the start of ``as_of``.

    Args:
        model: a fitted ``EncaisseModel``.
        ledger: the ledger (anything dated on or after ``as_of`` is ignored by the features).
        as_of: the scoring day.
        policy: the dunning policy (default: the shipped one).
        previous: previous profile assignment (``client_id, profile``) for ``change_reason``.
        capacity: collector minutes per day (None: no limit).
        portfolios: client -> collector (default: ``ledger.clients.collector``).
        invoice_flags: pass the invoices' ``dunning_block`` and ``disputed`` columns to the
            policy as the current state. Right for today's scoring from a fresh export; turn off
            when scoring a past day from a later export (the flags then hold later knowledge).
    """
    d = pd.Timestamp(as_of).normalize()
    pol = policy or load_policy()
    scores = model.score(ledger, d)
    feats = model.features(ledger, d)
    client_scores = build_client_scores(scores, feats, ledger, d)
    assignments = assign_profiles(client_scores, pol, previous=previous)
    inv = scores.copy()
    if invoice_flags:
        src = ledger.invoices.drop_duplicates("invoice_id").set_index("invoice_id")
        for col in ("dunning_block", "disputed"):
            if col in src.columns:
                inv[col] = inv["invoice_id"].map(src[col])
    known = ledger.known_at(d)
    steps = next_steps(inv, assignments, pol, d, actions=known.actions)
    if portfolios is None:
        portfolios = ledger.clients.drop_duplicates("client_id").set_index("client_id")["collector"]
    worklist = rank_worklist(scores, feats, assignments, steps, d, capacity=capacity, portfolios=portfolios)
    worklist = worklist.merge(steps[["invoice_id", "template"]], on="invoice_id", how="left")
    legal = build_legal_amounts(ledger, d)
    worklist = worklist.merge(legal[["invoice_id"] + LEGAL_COLUMNS], on="invoice_id", how="left")
    cl = client_scores.merge(assignments.rename(columns={"reason": "profile_reason"}), on="client_id", how="left")
    return Scoring(as_of=d, scores=scores, client_scores=cl, assignments=assignments, steps=steps,
                   worklist=worklist)


def save_worklist(worklist: pd.DataFrame, path: str | Path) -> Path:
    """Write the worklist as CSV, or Parquet when ``path`` ends in ``.parquet``/``.pq``."""
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
) -> ScoreResult:
    """Score the store's ledger as of a day with the champion, store the run, export the worklist.

    Raises:
        ValueError: the store holds no invoices.
        pipelines.registry.NoChampionError: no champion model yet.
    """
    d = pd.Timestamp(as_of).normalize()
    engine = open_store(settings.store_url)
    try:
        ledger = load_ledger(engine)
        if ledger.invoices.empty:
            raise ValueError(f"The store {settings.store_url} holds no invoices; load some with `encaisse ingest` "
                             "first.")
        champion = load_champion(settings)
        policy = load_policy(policy_path)
        before = load_latest_scores(engine, d - pd.Timedelta(days=1))
        previous = before.clients[["client_id", "profile"]] if before is not None else None
        scoring = build_scoring(champion.model, ledger, d, policy=policy, previous=previous, capacity=capacity)
        run_id = save_scores(engine, scoring.worklist, scoring.client_scores, as_of=d,
                             model_version=str(champion.version), model_run_id=champion.run_id, policy=policy.name)
    finally:
        engine.dispose()
    written = str(save_worklist(scoring.worklist, out)) if out else None
    log.info("scored %d invoices of %d clients as of %s (run %s)", len(scoring.worklist),
             len(scoring.client_scores), d.date(), run_id)
    return ScoreResult(run_id=run_id, as_of=str(d.date()), model_version=str(champion.version),
                       n_invoices=len(scoring.worklist), n_clients=len(scoring.client_scores), out=written,
                       worklist=scoring.worklist, client_scores=scoring.client_scores)


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
        current = load_latest_scores(engine, d)
        if current is None:
            raise NoScoresError(f"No scoring run is stored as of {d.date()} or earlier in {settings.store_url}; "
                                f"run `encaisse score --as-of {d.date()}` first.")
        run_day = pd.Timestamp(current.run["as_of"])
        previous = load_latest_scores(engine, run_day - pd.Timedelta(days=1))
        ledger = load_ledger(engine)
    finally:
        engine.dispose()
    alerts = build_alerts(current.clients, current.invoices, ledger, d,
                          previous_client_scores=previous.clients if previous is not None else None)
    return AlertsResult(as_of=str(d.date()), run_id=current.run_id, run_as_of=str(run_day.date()),
                        previous_run_id=previous.run_id if previous is not None else None, alerts=alerts)
