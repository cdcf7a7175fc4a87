"""Invoice features as of a date, for the invoices open at the start of ``as_of``.

``build_features(ledger, as_of)`` is the one function that training, backtests, batch scoring and
the API call: one row per open invoice, with its own features (``i_``), its client's (``c_``) and
the mapped attributes (``a_``). Pure and deterministic; never reads the clock or anything dated on
or after ``as_of``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.clients import REMINDER_STEPS, build_client_features
from ledger.contracts import Ledger

ID_COLUMNS = ["invoice_id", "client_id", "issue_date", "due_date", "amount", "currency"]
"""Identifying columns carried in feature frames; never used as model inputs."""

ATTRIBUTE_COLUMNS = ["company", "country", "terms", "currency"]
"""Mapped invoice attributes known when the invoice is issued: used as categorical features."""

SUSPECTED_LEAKS = ["disputed", "dunning_block", "credit_category"]
"""Source attributes that hold the state at *export* time, not at ``as_of``: off unless asked for.

A dispute or a dunning block recorded on the invoice may have been set after the date being
scored; the SAP extract's credit category and ratings are one value per customer taken at
extraction. Dated actions (``step == 'dispute'``, ``'dunning_block'``) carry the same facts safely.
"""

STEP_RANK = {s: i + 1 for i, s in enumerate(REMINDER_STEPS)}


def _days(later, earlier) -> pd.Series:
    return (later - earlier) / pd.Timedelta(days=1)


def open_invoices(ledger: Ledger, as_of: str | pd.Timestamp) -> pd.DataFrame:
    """Invoices issued before ``as_of`` and not paid before it (``doc_type == 'invoice'``)."""
    d = pd.Timestamp(as_of)
    inv = ledger.invoices
    mask = (inv["doc_type"] == "invoice") & (inv["issue_date"] < d) & ~(inv["paid_date"] < d)
    return inv[mask]


def build_features(
    ledger: Ledger,
    as_of: str | pd.Timestamp,
    extra_attributes: list[str] | None = None,
    include_suspected_leaks: bool = False,
    clients: pd.DataFrame | None = None,
    invoice_ids: pd.Index | list[str] | None = None,
) -> pd.DataFrame:
    """Feature rows for the invoices open at the start of ``as_of``.

    Args:
        ledger: the ledger; anything dated on or after ``as_of`` is ignored.
        as_of: the scoring day.
        extra_attributes: mapped extra invoice columns to use as categorical features.
        include_suspected_leaks: also use ``SUSPECTED_LEAKS`` attributes (for measuring them).
        clients: precomputed ``build_client_features(ledger, as_of)``, to save recomputing it.
        invoice_ids: restrict to these open invoices (default: all open ones).

    Returns:
        ``ID_COLUMNS`` then ``i_*`` (invoice), ``c_*`` (client) and ``a_*`` (attribute) columns,
        one row per open invoice, ordered by ``invoice_id``. ``i_days_to_due`` is negative for an
        invoice already overdue.
    """
    d = pd.Timestamp(as_of)
    known = ledger.known_at(d)
    inv = open_invoices(known, d)
    if invoice_ids is not None:
        inv = inv[inv["invoice_id"].isin(pd.Index(invoice_ids))]
    inv = inv.sort_values("invoice_id", kind="stable")
    if clients is None:
        clients = build_client_features(ledger, d)

    out = inv[ID_COLUMNS].reset_index(drop=True)
    src = inv.reset_index(drop=True)
    out["i_amount"] = src["amount"]
    out["i_log_amount"] = np.log1p(src["amount"].clip(lower=0))
    out["i_terms_days"] = _days(src["due_date"], src["issue_date"])
    out["i_days_to_due"] = _days(src["due_date"], pd.Series(d, index=src.index))
    out["i_age_days"] = _days(pd.Series(d, index=src.index), src["issue_date"])
    out["i_issue_dow"] = src["issue_date"].dt.day_of_week
    out["i_issue_month_end"] = (src["issue_date"].dt.day >= 25).astype(float)
    out["i_due_dow"] = src["due_date"].dt.day_of_week
    out["i_due_month"] = src["due_date"].dt.month
    out["i_due_month_end"] = (src["due_date"].dt.day >= 25).astype(float)
    out["i_due_august"] = (src["due_date"].dt.month == 8).astype(float)
    out["i_due_december"] = (src["due_date"].dt.month == 12).astype(float)
    _add_invoice_history(out, known, d)

    c = clients.reindex(out["client_id"]).reset_index(drop=True)
    out["i_amount_ratio"] = out["i_amount"] / c["c_amount_median"].where(c["c_amount_median"] > 0)
    out = pd.concat([out, c], axis=1)

    attrs = list(ATTRIBUTE_COLUMNS) + list(extra_attributes or [])
    if include_suspected_leaks:
        attrs += SUSPECTED_LEAKS
    for name in dict.fromkeys(attrs):
        if name in src.columns:
            s = src[name]
            out[f"a_{name}"] = s.astype("object").where(s.notna(), None).map(
                lambda v: None if v is None else str(v)
            )
    return out


def _map_dates(ids: pd.Series, dates: pd.Series) -> pd.Series:
    """``ids.map(dates)`` typed as dates even when ``dates`` is empty (no promise known yet)."""
    return pd.Series(ids.map(dates.to_dict()), index=ids.index, dtype="datetime64[s]")


def _add_invoice_history(out: pd.DataFrame, known: Ledger, d: pd.Timestamp) -> None:
    """Per-invoice actions and partial payments before ``as_of``."""
    act = known.actions
    ids = out["invoice_id"]
    if act.empty:
        out["i_n_actions"] = 0.0
        out["i_last_step_rank"] = 0.0
        out["i_days_since_action"] = np.nan
        out["i_promise_days"] = np.nan
    else:
        a = act[act["invoice_id"].notna()]
        g = a.groupby("invoice_id")
        out["i_n_actions"] = ids.map(g.size()).fillna(0.0).astype(float)
        rank = a["step"].map(STEP_RANK)
        out["i_last_step_rank"] = ids.map(rank.groupby(a["invoice_id"]).max()).fillna(0.0)
        out["i_days_since_action"] = _days(pd.Series(d, index=ids.index), _map_dates(ids, g["action_date"].max()))
        prom = a[(a["step"] == "promise") & a["promise_date"].notna()]
        latest = prom.sort_values("action_date", kind="stable").groupby("invoice_id")["promise_date"].last()
        # Days until the latest promised date (negative: the promise is past and unkept so far).
        out["i_promise_days"] = _days(_map_dates(ids, latest), pd.Series(d, index=ids.index))
    pay = known.payments
    if pay.empty:
        out["i_paid_share"] = 0.0
    else:
        got = pay.groupby("invoice_id")["amount"].sum()
        out["i_paid_share"] = (ids.map(got).fillna(0.0) / out["i_amount"]).clip(0, 1)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model input columns of a feature frame, in frame order."""
    return [c for c in frame.columns if c[:2] in ("i_", "c_", "a_")]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """Input columns holding categories (strings) rather than numbers."""
    return [c for c in feature_columns(frame) if c.startswith("a_") or c in ("c_segment", "c_sector")]

