"""Client behaviour as of a date: what the company knew about each client at the start of ``as_of``.

Every function here is pure: (ledger, as_of) -> frame. Nothing dated on or after ``as_of`` is read
(``Ledger.known_at`` hides it), and the clock is never read.

Censoring: an invoice still open at ``as_of`` has no payment date *yet*. It is not dropped: the late
rate counts every invoice due before ``as_of`` (paid late or still unpaid past due = late), and open
overdue invoices add their days overdue so far as lower bounds of their delay. Dropping them would
make a client who stopped paying look punctual.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ledger.contracts import Ledger

RECENT_DAYS = 90
"""Window (days before as_of) for the 'recent' delay, compared with older history for a trend."""

PROMISE_GRACE_DAYS = 3
"""A promise to pay counts as kept when the invoice is paid at most this many days after it."""

REMINDER_STEPS = ("preventive", "reminder", "reminder_1", "reminder_2", "call", "formal_notice", "agency")


def _days(later: pd.Series, earlier: pd.Series | pd.Timestamp) -> pd.Series:
    """Whole days from ``earlier`` to ``later`` as floats (NaN where either is missing)."""
    return (later - earlier) / pd.Timedelta(days=1)


def build_client_features(ledger: Ledger, as_of: str | pd.Timestamp) -> pd.DataFrame:
    """Per-client behaviour figures known at the start of ``as_of``.

    Args:
        ledger: the full ledger; anything dated on or after ``as_of`` is ignored.
        as_of: the day the features describe (start of day).

    Returns:
        One row per client seen on a document issued before ``as_of``, indexed by ``client_id``.
        Columns start with ``c_``; days are calendar days, amounts are in the ledger currency.
    """
    d = pd.Timestamp(as_of)
    known = ledger.known_at(d)
    docs = known.invoices
    inv = docs[docs["doc_type"] == "invoice"]
    clients = pd.Index(docs["client_id"].unique(), name="client_id")
    out = pd.DataFrame(index=clients)

    g_all = inv.groupby("client_id")
    out["c_n_invoices"] = g_all.size()
    out["c_amount_median"] = g_all["amount"].median()
    out["c_amount_total"] = g_all["amount"].sum()
    out["c_tenure_days"] = _days(pd.Series(d, index=clients), g_all["issue_date"].min())
    out["c_invoices_90d"] = inv[inv["issue_date"] >= d - pd.Timedelta(days=RECENT_DAYS)].groupby("client_id").size()

    # Invoices due before as_of: their on-time / late status is fully known, paid or not.
    due = inv[inv["due_date"] < d]
    late = due["paid_date"].isna() | (due["paid_date"] > due["due_date"])
    out["c_n_due"] = due.groupby("client_id").size()
    out["c_late_rate"] = late.groupby(due["client_id"]).mean()
    out["c_late_amount_share"] = (due["amount"] * late).groupby(due["client_id"]).sum() / due.groupby(
        "client_id"
    )["amount"].sum()

    paid = inv[inv["paid_date"].notna()].copy()
    paid["delay"] = _days(paid["paid_date"], paid["due_date"])
    paid["dtp"] = _days(paid["paid_date"], paid["issue_date"])
    gp = paid.groupby("client_id")
    out["c_n_paid"] = gp.size()
    out["c_delay_mean"] = gp["delay"].mean()
    out["c_delay_median"] = gp["delay"].median()
    out["c_delay_p90"] = gp["delay"].quantile(0.9)
    out["c_delay_std"] = gp["delay"].std()
    out["c_dtp_mean"] = gp["dtp"].mean()
    w = paid["amount"]
    out["c_delay_wmean"] = (paid["delay"] * w).groupby(paid["client_id"]).sum() / w.groupby(paid["client_id"]).sum()
    recent_mask = paid["paid_date"] >= d - pd.Timedelta(days=RECENT_DAYS)
    out["c_delay_recent"] = paid.loc[recent_mask].groupby("client_id")["delay"].mean()
    out["c_delay_older"] = paid.loc[~recent_mask].groupby("client_id")["delay"].mean()
    out["c_delay_trend"] = out["c_delay_recent"] - out["c_delay_older"]
    out["c_last3_delay"] = (
        paid.sort_values("paid_date", kind="stable").groupby("client_id").tail(3).groupby("client_id")["delay"].mean()
    )
    out["c_days_since_last_payment"] = _days(pd.Series(d, index=clients), gp["paid_date"].max())
    _add_payment_run_features(out, paid)

    # Open invoices: censored at as_of.
    open_ = inv[inv["paid_date"].isna()].copy()
    received = _partial_received(known, open_)
    open_["remaining"] = (open_["amount"] - received).clip(lower=0)
    open_["overdue_days"] = _days(pd.Series(d, index=open_.index), open_["due_date"])
    overdue = open_[open_["overdue_days"] > 0]
    go = open_.groupby("client_id")
    out["c_n_open"] = go.size()
    out["c_open_amount"] = go["remaining"].sum()
    out["c_n_open_overdue"] = overdue.groupby("client_id").size()
    out["c_overdue_amount"] = overdue.groupby("client_id")["remaining"].sum()
    out["c_overdue_share"] = out["c_overdue_amount"] / out["c_open_amount"]
    out["c_open_overdue_days_max"] = overdue.groupby("client_id")["overdue_days"].max()
    out["c_open_overdue_days_mean"] = overdue.groupby("client_id")["overdue_days"].mean()

    credit = docs[(docs["doc_type"] == "credit_note")]
    out["c_credit_note_rate"] = credit.groupby("client_id").size() / out["c_n_invoices"]

    _add_payment_features(out, known, inv)
    _add_action_features(out, known, inv, d)
    _add_master_features(out, known)

    counts = [c for c in out.columns if c.startswith("c_n_") or c in ("c_invoices_90d", "c_promises",
              "c_promises_kept", "c_promises_broken", "c_reminders_365", "c_disputes")]
    out[counts] = out[counts].fillna(0).astype("float64")  # one dtype whatever the data
    for col in ("c_open_amount", "c_overdue_amount"):
        out[col] = out[col].fillna(0.0)
    return out.sort_index()


def _add_payment_run_features(out: pd.DataFrame, paid: pd.DataFrame) -> None:
    """When a client pays: its usual weekday and how regular its payment runs are."""
    days = paid[["client_id", "paid_date"]].drop_duplicates()
    dow = days["paid_date"].dt.day_of_week
    counts = pd.crosstab(days["client_id"], dow)
    out["c_pay_dow_mode"] = counts.idxmax(axis=1).astype(float)
    out["c_pay_dow_share"] = counts.max(axis=1) / counts.sum(axis=1)
    out["c_pay_month_end_share"] = (days["paid_date"].dt.day >= 25).groupby(days["client_id"]).mean()
    gaps = days.sort_values(["client_id", "paid_date"]).groupby("client_id")["paid_date"].diff()
    out["c_pay_gap_median"] = (gaps / pd.Timedelta(days=1)).groupby(days["client_id"]).median()
    out["c_pay_run_due_in"] = out["c_pay_gap_median"] - out["c_days_since_last_payment"]


def _partial_received(known: Ledger, open_: pd.DataFrame) -> pd.Series:
    """Amount already received (partial payments before as_of) on each open invoice."""
    pay = known.payments
    if pay.empty or open_.empty:
        return pd.Series(0.0, index=open_.index)
    got = pay.groupby("invoice_id")["amount"].sum()
    return open_["invoice_id"].map(got).fillna(0.0)


def _add_payment_features(out: pd.DataFrame, known: Ledger, inv: pd.DataFrame) -> None:
    """Partial-payment behaviour from the payments table (payments before as_of only)."""
    pay = known.payments
    if pay.empty:
        out["c_partial_rate"] = np.nan
        return
    n_parts = pay.groupby("invoice_id").size()
    parts = inv[["invoice_id", "client_id"]].assign(n=inv["invoice_id"].map(n_parts))
    parts = parts[parts["n"].notna()]
    out["c_partial_rate"] = (parts["n"] > 1).groupby(parts["client_id"]).mean()


def _add_action_features(out: pd.DataFrame, known: Ledger, inv: pd.DataFrame, d: pd.Timestamp) -> None:
    """Reminders received, the response to them, promises kept or broken, disputes."""
    act = known.actions
    cols = ["c_reminders_365", "c_reminder_response", "c_promises", "c_promises_kept",
            "c_promises_broken", "c_disputes", "c_dispute_rate"]
    if act.empty:
        for c in cols:
            out[c] = np.nan
        return
    year_ago = d - pd.Timedelta(days=365)
    step = act["step"].astype(str)
    reminders = act[step.isin(REMINDER_STEPS)]
    out["c_reminders_365"] = reminders[reminders["action_date"] >= year_ago].groupby("client_id").size()

    # Response: share of reminded invoices paid within 14 days of their first reminder, judged only
    # where those 14 days lie before as_of.
    first = reminders.dropna(subset=["invoice_id"]).groupby("invoice_id")["action_date"].min()
    r = inv[["invoice_id", "client_id", "paid_date"]].assign(first=inv["invoice_id"].map(first))
    r = r[r["first"].notna() & (r["first"] + pd.Timedelta(days=14) < d)]
    responded = r["paid_date"].notna() & (r["paid_date"] <= r["first"] + pd.Timedelta(days=14))
    out["c_reminder_response"] = responded.groupby(r["client_id"]).mean()

    prom = act[(step == "promise") & act["promise_date"].notna()]
    out["c_promises"] = prom.groupby("client_id").size()
    if not prom.empty:
        paid_on = prom["invoice_id"].map(inv.set_index("invoice_id")["paid_date"])
        deadline = prom["promise_date"] + pd.Timedelta(days=PROMISE_GRACE_DAYS)
        kept = paid_on.notna() & (paid_on <= deadline)
        broken = ~kept & (deadline < d)
        out["c_promises_kept"] = kept.groupby(prom["client_id"]).sum()
        out["c_promises_broken"] = broken.groupby(prom["client_id"]).sum()
    else:
        out["c_promises_kept"] = np.nan
        out["c_promises_broken"] = np.nan
    disputes = act[step == "dispute"]
    out["c_disputes"] = disputes.groupby("client_id").size()
    out["c_dispute_rate"] = disputes.groupby("client_id")["invoice_id"].nunique() / out["c_n_invoices"]


def _add_master_features(out: pd.DataFrame, known: Ledger) -> None:
    """Client master data: credit-limit use, strategic flag, segment."""
    cl = known.clients.drop_duplicates("client_id").set_index("client_id")
    limit = cl["credit_limit"].reindex(out.index)
    out["c_credit_use"] = out["c_open_amount"].fillna(0.0) / limit.where(limit > 0)
    out["c_strategic"] = cl["strategic"].reindex(out.index).astype("Float64").astype("float64")
    out["c_segment"] = cl["segment"].reindex(out.index)
    out["c_sector"] = cl["sector"].reindex(out.index)
