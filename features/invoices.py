"""Invoice features as of a date, for the invoices open at the start of ``as_of``.

``build_features(ledger, as_of)`` is the one function that training, backtests, batch scoring and
the API call: one row per open invoice, with its own features (``i_``), its client's (``c_``) and
the mapped attributes (``a_``). Pure and deterministic; never reads the clock or anything dated on
or after ``as_of``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.clients import (
    DAY,
    REMINDER_STEPS,  # noqa: F401  (re-exported: the ladder's steps, for callers of this module)
    STEP_RANK,  # noqa: F401
    LedgerArrays,
    _seconds_of,
    client_features_from_arrays,
)
from features.calendar import rows_countries
from features.signals import add_feature_groups, validate_feature_groups
from ledger.contracts import Ledger, isin

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
    feature_groups: tuple[str, ...] | list[str] = (),
) -> pd.DataFrame:
    """Feature rows for the invoices open at the start of ``as_of``.

    Args:
        ledger: the ledger; anything dated on or after ``as_of`` is ignored.
        as_of: the scoring day.
        extra_attributes: mapped extra invoice columns to use as categorical features.
        include_suspected_leaks: also use ``SUSPECTED_LEAKS`` attributes (for measuring them).
        clients: precomputed ``build_client_features(ledger, as_of)``, to save recomputing it.
        invoice_ids: restrict to these open invoices (default: all open ones).
        feature_groups: optional groups of columns (``features.signals.FEATURE_GROUPS``).

    Returns:
        ``ID_COLUMNS`` then ``i_*`` (invoice), ``c_*`` (client) and ``a_*`` (attribute) columns, and
        ``country`` (the invoice's, else its client's; not a model input), one row per open invoice,
        ordered by ``invoice_id``. ``i_days_to_due`` is negative for an
        invoice already overdue.
    """
    return features_from_arrays(LedgerArrays.from_ledger(ledger), as_of, extra_attributes,
                                include_suspected_leaks, clients, invoice_ids, feature_groups)[0]


def features_from_arrays(
    t: LedgerArrays,
    as_of: str | pd.Timestamp,
    extra_attributes: list[str] | None = None,
    include_suspected_leaks: bool = False,
    clients: pd.DataFrame | None = None,
    invoice_ids: pd.Index | list[str] | None = None,
    feature_groups: tuple[str, ...] | list[str] = (),
    with_country: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """``build_features`` on encoded arrays (a training set replays many days on the same ones).

    ``with_country``: add the ``country`` column (scoring needs it; a training set, not a model input,
    goes without its strings).

    Returns:
        The feature frame and, for each of its rows, the row of ``t.ledger.invoices`` it describes.
    """
    d = pd.Timestamp(as_of)
    ds = _seconds_of(d)
    invoices = t.ledger.invoices
    rows = np.flatnonzero(t.is_invoice & (t.issue < ds) & ~(t.paid < ds))
    ids = invoices["invoice_id"].take(rows)
    if invoice_ids is not None:
        keep = isin(ids, pd.Index(invoice_ids))
        rows, ids = rows[keep], ids[keep]
    rows = rows[ids.reset_index(drop=True).sort_values(kind="stable").index.to_numpy()]
    slots = None
    if clients is None:
        clients, slot = client_features_from_arrays(t, d)
        slots = slot[t.doc_client[rows]]

    src = invoices.take(rows).reset_index(drop=True)
    if "paid_date" in src.columns:  # as known at as_of: these invoices were open then
        src["paid_date"] = src["paid_date"].where(src["paid_date"] < d)
    out = src[ID_COLUMNS]
    out["i_amount"] = src["amount"]
    out["i_log_amount"] = np.log1p(src["amount"].clip(lower=0))
    out["i_terms_days"] = _days(src["due_date"], src["issue_date"])
    out["i_days_to_due"] = _days(src["due_date"], pd.Series(d, index=src.index))
    out["i_age_days"] = _days(pd.Series(d, index=src.index), src["issue_date"])
    out["i_issue_dow"] = src["issue_date"].dt.day_of_week
    out["i_issue_month_end"] = (src["issue_date"].dt.day >= 25).astype(float)
    out["i_due_dow"] = src["due_date"].dt.day_of_week
    out["i_due_month"] = src["due_date"].dt.month
    out["i_due_dom"] = src["due_date"].dt.day
    out["i_due_month_end"] = (src["due_date"].dt.day >= 25).astype(float)
    out["i_due_august"] = (src["due_date"].dt.month == 8).astype(float)
    out["i_due_december"] = (src["due_date"].dt.month == 12).astype(float)
    _add_invoice_history(out, t, t.doc_key[rows], ds)
    _add_payment_run(out, t, rows, ds)

    if slots is None:
        c = clients.reindex(out["client_id"]).reset_index(drop=True)
    else:
        c = clients.take(slots).reset_index(drop=True)
    out["i_amount_ratio"] = out["i_amount"] / c["c_amount_median"].where(c["c_amount_median"] > 0)
    out = pd.concat([out, c], axis=1)
    groups = validate_feature_groups(feature_groups) if feature_groups else ()
    # The invoice's country, else its client's: read by the 'holidays' group and kept for scoring.
    countries = rows_countries(src, t.ledger.clients) if with_country or "holidays" in groups else None
    if groups:
        add_feature_groups(out, t, rows, ds, groups, countries)

    attrs = list(ATTRIBUTE_COLUMNS) + list(extra_attributes or [])
    if include_suspected_leaks:
        attrs += SUSPECTED_LEAKS
    for name in dict.fromkeys(attrs):
        if name in src.columns:
            out[f"a_{name}"] = _as_text(src[name])
    # Not a model input: the country whose weekdays and holidays the invoice's payment day follows
    # (``EncaisseModel.payment_quantiles``).
    if with_country:
        out["country"] = countries
    return out, rows


def _as_text(s: pd.Series) -> pd.Series:
    """Each value as ``str(value)``, None where missing (each distinct value converted once)."""
    codes, uniques = pd.factorize(s.astype("object"))
    text = np.empty(len(uniques) + 1, dtype=object)
    text[:-1] = [str(v) for v in uniques]
    text[-1] = None  # code -1: missing
    return pd.Series(text[codes], index=s.index)


def _add_invoice_history(out: pd.DataFrame, t: LedgerArrays, keys: np.ndarray, ds: float) -> None:
    """Per-invoice actions and partial payments before ``as_of`` (``ds``, in seconds)."""
    known = t.act_date < ds
    if not known.any():
        out["i_n_actions"] = 0.0
        out["i_last_step_rank"] = 0.0
        out["i_days_since_action"] = np.nan
        out["i_promise_days"] = np.nan
    else:
        sel = known & (t.act_key >= 0)
        k = t.act_key[sel]
        out["i_n_actions"] = np.bincount(k, minlength=t.n_keys)[keys].astype(np.float64)
        rank = np.full(t.n_keys, np.nan)
        np.fmax.at(rank, k, t.act_rank[sel])
        out["i_last_step_rank"] = np.nan_to_num(rank[keys], nan=0.0)
        last = np.full(t.n_keys, np.nan)
        np.fmax.at(last, k, t.act_date[sel])
        out["i_days_since_action"] = (ds - last[keys]) / DAY
        # The latest promise (by action day; the later row on a tie) and the day it promised.
        prom = np.flatnonzero(sel & t.is_promise & ~np.isnan(t.act_promise_date))
        prom = prom[np.lexsort((t.act_date[prom], t.act_key[prom]))]
        pk = t.act_key[prom]
        is_last = np.ones(len(pk), dtype=bool)
        is_last[:-1] = pk[1:] != pk[:-1]
        promised = np.full(t.n_keys, np.nan)
        promised[pk[is_last]] = t.act_promise_date[prom[is_last]]
        # Days until the latest promised date (negative: the promise is past and unkept so far).
        out["i_promise_days"] = (promised[keys] - ds) / DAY
    n_known_pay, _, pay_total = t.payments_before(ds)
    if not n_known_pay:
        out["i_paid_share"] = 0.0
    else:
        got = pd.Series(pay_total[keys], index=out.index)  # 0 where nothing was paid yet
        out["i_paid_share"] = (got / out["i_amount"]).clip(0, 1)


_DUE_SPAN = 1_000_000
"""Due days (since 1970) are below this: (client, due day) pairs pack into one integer."""


def _add_payment_run(out: pd.DataFrame, t: LedgerArrays, rows: np.ndarray, ds: float) -> None:
    """Where the invoice stands among its client's invoices of the same due date, at ``ds``.

    A client clears invoices in payment runs: an invoice whose siblings (same client, same due
    date) were already paid but which is still open was left out of the run (disputed, blocked,
    lost) and tends to be paid much later; one whose siblings are open too waits for the same run.
    An invoice behind older open invoices of the same client waits for them.

    Columns: ``i_siblings`` (other invoices issued before ``ds`` with the same client and due
    date), ``i_siblings_paid_share`` (the share of them paid before ``ds``; NaN without
    siblings), ``i_older_open`` (the client's open invoices due strictly earlier).
    """
    issued = np.flatnonzero(t.is_invoice & (t.issue < ds) & (t.doc_client >= 0))
    due_day = np.floor(np.nan_to_num(t.due / DAY)).astype(np.int64)
    key = t.doc_client.astype(np.int64) * _DUE_SPAN + due_day
    k_all = key[issued]
    paid = t.paid[issued] < ds
    uniq, inv = np.unique(k_all, return_inverse=True)
    n_group = np.bincount(inv, minlength=len(uniq)).astype(float)
    n_paid = np.bincount(inv, weights=paid.astype(float), minlength=len(uniq))
    k_rows = key[rows]
    pos = np.clip(np.searchsorted(uniq, k_rows), 0, max(len(uniq) - 1, 0))
    found = (len(uniq) > 0) & (uniq[pos] == k_rows) if len(uniq) else np.zeros(len(rows), dtype=bool)
    siblings = np.where(found, n_group[pos] - 1, 0.0) if len(uniq) else np.zeros(len(rows))
    got = np.where(found, n_paid[pos], 0.0) if len(uniq) else np.zeros(len(rows))
    out["i_siblings"] = siblings
    out["i_siblings_paid_share"] = np.where(siblings > 0, got / np.maximum(siblings, 1), np.nan)
    open_keys = np.sort(k_all[~paid])
    client_start = t.doc_client[rows].astype(np.int64) * _DUE_SPAN
    out["i_older_open"] = (np.searchsorted(open_keys, k_rows, side="left")
                           - np.searchsorted(open_keys, client_start, side="left")).astype(float)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model input columns of a feature frame, in frame order."""
    return [c for c in frame.columns if c[:2] in ("i_", "c_", "a_")]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """Input columns holding categories (strings) rather than numbers."""
    return [c for c in feature_columns(frame) if c.startswith("a_") or c in ("c_segment", "c_sector")]
