"""Training sets from snapshots: the invoices open on past dates, with what happened to them.

This is how the models are used: on a given day, score the invoices open that day (some not yet
due, some already overdue). A training set replays that on a series of past days.

Outcomes are read from the ledger as known at ``outcome_end`` (in a backtest, the as-of date of
the backtest): an invoice not paid before ``outcome_end`` is censored there, never dropped.
"""

from __future__ import annotations

import pandas as pd

from features.clients import LedgerArrays
from features.invoices import features_from_arrays
from ledger.contracts import Ledger

VERY_LATE_DAYS = 30
"""'Very late' = paid more than this many days after max(due date, as_of)."""


def snapshot_dates(
    ledger: Ledger, end: str | pd.Timestamp, freq_days: int = 14, min_history_days: int = 60,
    max_snapshots: int | None = None, include_month_starts: bool = True,
) -> list[pd.Timestamp]:
    """Snapshot days: every ``freq_days`` back from ``end`` (excluded), plus the month starts
    between the first of those and ``end``. ``max_snapshots`` caps the regular ones.

    The first snapshot is at least ``min_history_days`` after the ledger's history begins: the later
    of its first issue date and its first payment date (an extract that holds only items cleared
    after some day has no payment history before it, whatever the issue dates say).
    """
    end = pd.Timestamp(end)
    inv = ledger.invoices
    first_issue = inv.loc[inv["issue_date"] < end, "issue_date"].min()
    first_paid = inv.loc[inv["paid_date"] < end, "paid_date"].min()
    begin = max(first_issue, first_paid) if pd.notna(first_paid) else first_issue
    start = begin + pd.Timedelta(days=min_history_days)
    dates = []
    day = end - pd.Timedelta(days=freq_days)
    while day >= start and not (max_snapshots and len(dates) >= max_snapshots):
        dates.append(day)
        day -= pd.Timedelta(days=freq_days)
    if include_month_starts and dates:
        # Month starts are when month-end due dates have just rolled into 'overdue' and when
        # companies most often score; training on them keeps that situation represented.
        # Only inside the span of the regular snapshots, so max_snapshots bounds the span.
        dates += [d for d in pd.date_range(min(dates), end, freq="MS") if d < end]
    return sorted(set(dates))


def add_outcomes(frame: pd.DataFrame, ledger: Ledger, as_of: pd.Timestamp, outcome_end: pd.Timestamp) -> pd.DataFrame:
    """Add what happened to each invoice of a feature frame built as of ``as_of``.

    Columns added:
        ``as_of``; ``paid_date`` (empty if not paid before ``outcome_end``); ``duration_days``
        (days from as_of to payment, or to ``outcome_end`` when censored); ``event`` (1 paid, 0
        censored); ``y_late`` (paid after due; NaN when undetermined by ``outcome_end``, 1 for an
        invoice already overdue at as_of); ``y_very_late`` (paid more than VERY_LATE_DAYS after
        max(due, as_of); NaN when undetermined).
    """
    paid = ledger.invoices.set_index("invoice_id")["paid_date"]
    return _with_outcomes(frame, frame["invoice_id"].map(paid), as_of, outcome_end)


def _with_outcomes(frame: pd.DataFrame, paid: pd.Series, as_of: pd.Timestamp, outcome_end: pd.Timestamp) -> pd.DataFrame:
    """``add_outcomes`` given each row's paid date as the ledger holds it (``paid``, aligned on ``frame``)."""
    d, end = pd.Timestamp(as_of), pd.Timestamp(outcome_end)
    pd_ = paid.where(paid < end)
    out = frame.copy()
    out["as_of"] = d
    out["paid_date"] = pd_
    out["event"] = pd_.notna().astype(int)
    out["duration_days"] = ((pd_.fillna(end) - d) / pd.Timedelta(days=1)).astype(float)

    due = out["due_date"]
    late = pd.Series(float("nan"), index=out.index)
    late[pd_.notna()] = (pd_[pd_.notna()] > due[pd_.notna()]).astype(float)
    late[pd_.isna() & (due < end - pd.Timedelta(days=1))] = 1.0
    out["y_late"] = late

    limit = due.where(due > d, d) + pd.Timedelta(days=VERY_LATE_DAYS)
    very = pd.Series(float("nan"), index=out.index)
    very[pd_.notna()] = (pd_[pd_.notna()] > limit[pd_.notna()]).astype(float)
    very[pd_.isna() & (limit < end)] = 1.0
    out["y_very_late"] = very
    return out


def stack_snapshots(
    ledger: Ledger,
    dates: list[pd.Timestamp],
    outcome_end: str | pd.Timestamp,
    **feature_kwargs,
) -> pd.DataFrame:
    """Stack feature frames with outcomes for each snapshot day (a model's training set is built from
    these: ``EncaisseModel.build_training_set`` picks the days and the clients).

    Args:
        ledger: the ledger; outcomes come only from what is known before ``outcome_end``.
        dates: snapshot days, all before ``outcome_end``.
        outcome_end: the day outcomes stop being observed (censoring time).
        **feature_kwargs: passed to ``build_features``.

    The frames are ``build_features``' without its ``country`` column (not a model input).
    """
    end = pd.Timestamp(outcome_end)
    known = ledger.known_at(end)
    arrays = LedgerArrays.from_ledger(known)  # ids encoded once for every day
    paid = known.invoices["paid_date"].to_numpy()
    frames = []
    for day in dates:
        f, rows = features_from_arrays(arrays, day, with_country=False, **feature_kwargs)
        frames.append(_with_outcomes(f, pd.Series(paid[rows], index=f.index), day, end))
    if not frames:
        raise ValueError(f"No snapshot dates before {end.date()}: the ledger holds too little history.")
    return pd.concat(frames, ignore_index=True)
