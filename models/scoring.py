"""Scoring in memory: score, profile, plan and rank the invoices open on a day.

``build_scoring(model, ledger, as_of)`` is the one path batch scoring (``pipelines.score``), the
Dask path and the API share: scores, client scores, dunning profiles, next steps, the ranked
worklist and French legal amounts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.legal import build_legal_amounts
from ledger.contracts import Ledger
from models.dunning import assign_profiles, next_steps
from models.policy import Policy, load_policy
from models.scorer import Scorer
from models.worklist import build_client_scores, rank_worklist

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


@dataclass
class Scoring:
    """Everything one scoring produces, in memory."""

    as_of: pd.Timestamp
    scores: pd.DataFrame
    client_scores: pd.DataFrame
    assignments: pd.DataFrame
    steps: pd.DataFrame
    worklist: pd.DataFrame
    payment_cdf: tuple[np.ndarray, np.ndarray] | None = None
    """``(days, cdf)`` of ``scores``' rows, in their order (``EncaisseModel.score(return_cdf=True)``)."""


def measured_step_uplifts(ledger: Ledger, as_of: pd.Timestamp, control) -> dict[str, dict]:
    """The steps whose uplift, measured on the ledger's control groups, the worklist uses (none when the
    ledger holds no held-back decision: then every step keeps its planning default)."""
    from models.uplift import HELD_BACK, evaluate_uplift

    act = ledger.actions
    if act is None or act.empty or "outcome" not in act.columns or not (act["outcome"] == HELD_BACK).any():
        return {}
    return evaluate_uplift(ledger, as_of, control)["measured"]


def build_scoring(
    model: Scorer,
    ledger: Ledger,
    as_of: pd.Timestamp | str,
    policy: Policy | None = None,
    previous: pd.DataFrame | None = None,
    capacity: float | None = None,
    portfolios=None,
    invoice_flags: bool = True,
    clients: pd.DataFrame | None = None,
    measured: dict[str, dict] | None = None,
    on_scores: Callable[[pd.DataFrame, tuple[np.ndarray, np.ndarray]], None] | None = None,
) -> Scoring:
    """Score, profile, plan and rank the invoices open at the start of ``as_of``.

    Args:
        model: a fitted ``EncaisseModel``, or another ``models.scorer.Scorer``.
        ledger: the ledger (anything dated on or after ``as_of`` is ignored by the features).
        as_of: the scoring day.
        policy: the dunning policy (default: the shipped one).
        previous: previous profile assignment (``client_id, profile``) for ``change_reason``.
        capacity: collector minutes per day (None: no limit).
        portfolios: client -> collector (default: ``ledger.clients.collector``).
        invoice_flags: pass the invoices' ``dunning_block`` and ``disputed`` columns to the
            policy as the current state. Right for today's scoring from a fresh export; turn off
            when scoring a past day from a later export (the flags then hold later knowledge).
        clients: client features as of ``as_of`` already built on this ledger or a larger one
            (``features.clients.build_client_features``); None: built here.
        measured: the steps' uplift measured on the whole ledger's control groups
            (:func:`measured_step_uplifts`); None: measured on ``ledger``, which is right only when
            it is the whole ledger (a client's own rows would measure that client alone).
        on_scores: called with the scores and their ``(days, cdf)`` as soon as the model has made
            them, before the profiles, steps and ranking (``run_score`` starts the run's forecast
            there, beside the rest). Neither may be modified.
    """
    d = pd.Timestamp(as_of).normalize()
    pol = policy or load_policy()
    feats = model.features(ledger, d, clients=clients)
    scores, payment_cdf = model.score(ledger, d, features=feats, return_cdf=True)
    if on_scores is not None and payment_cdf is not None:
        on_scores(scores, payment_cdf)
    # What was known at the start of d, once: the steps below take it as their ledger (their own
    # known_at of it keeps every row, instead of filtering the whole ledger again each).
    known = ledger.known_at(d)
    client_scores = build_client_scores(scores, feats, known, d)
    assignments = assign_profiles(client_scores, pol, previous=previous)
    inv = scores.copy()
    if invoice_flags:
        src = ledger.invoices.drop_duplicates("invoice_id").set_index("invoice_id")
        for col in ("dunning_block", "disputed"):
            if col in src.columns:
                inv[col] = inv["invoice_id"].map(src[col])
    steps = next_steps(inv, assignments, pol, d, actions=known.actions)
    if portfolios is None:
        portfolios = ledger.clients.drop_duplicates("client_id").set_index("client_id")["collector"]
    worklist = rank_worklist(scores, feats, assignments, steps, d, capacity=capacity, portfolios=portfolios,
                             measured=measured_step_uplifts(ledger, d, pol.control) if measured is None else measured)
    worklist = worklist.merge(steps[["invoice_id", "template"]], on="invoice_id", how="left")
    legal = build_legal_amounts(known, d)
    worklist = worklist.merge(legal[["invoice_id"] + LEGAL_COLUMNS], on="invoice_id", how="left")
    cl = client_scores.merge(assignments.rename(columns={"reason": "profile_reason"}), on="client_id", how="left")
    return Scoring(as_of=d, scores=scores, client_scores=cl, assignments=assignments, steps=steps,
                   worklist=worklist, payment_cdf=payment_cdf)
