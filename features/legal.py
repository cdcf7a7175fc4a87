"""French legal amounts and flags on receivables, as known at the start of a day.

Rules implemented (France, B2B, Code de commerce as amended by the LME, loi du 4 août 2008):

* **Late-payment penalties** (art. L441-10): ``outstanding x (ECB rate + 10 points) x days late /
  365``. The ECB rate is the main refinancing operations rate in force on 1 January or 1 July of
  the half-year; it is a parameter (:data:`DEFAULT_ECB_RATE`, update it each half-year from the
  Banque de France publication). Contracts may set another rate (at least 3 x the legal interest
  rate); pass it as ``ecb_rate``/``margin_points``.
* **Fixed recovery indemnity** (art. L441-10, D441-5): 40 EUR per invoice paid late.
* **Payment terms** (art. L441-10 I): at most 60 days from the issue date, or 45 days end of
  month. Both readings of "45 days end of month" are accepted by the DGCCRF (end of month of issue
  + 45 days, or issue + 45 days then end of month), so a due date is flagged only when it is later
  than all three limits. Sector exceptions (transport, perishable goods: 30 days) are not modelled.
* **Prescription** (art. L110-4): commercial claims prescribe 5 years after they fall due. A
  partial payment is an acknowledgement of the debt and restarts the period (art. 2240 Code civil);
  other interruptions (court claims, injonction de payer) are not in the ledger and not modelled.
  A formal notice (mise en demeure) does not interrupt prescription.

Days late = ``as_of - due_date`` in days, as in :mod:`features.kpis` (0 on the due date itself).
Amounts are the gross outstanding, in the invoice currency; the indemnity is in EUR.
"""

from __future__ import annotations

import pandas as pd

from features.kpis import _day, build_open_items
from ledger.contracts import Ledger, isin

DEFAULT_ECB_RATE = 2.15
"""ECB main refinancing rate in percent: 2.15 % since 11 June 2025 (rate for H2 2025)."""

PENALTY_MARGIN_POINTS = 10.0
"""Points added to the ECB rate for the legal late-payment penalty rate."""

RECOVERY_INDEMNITY_EUR = 40.0
"""Fixed indemnity for recovery costs, per invoice paid late (EUR)."""

LME_MAX_NET_DAYS = 60
LME_MAX_EOM_DAYS = 45
PRESCRIPTION_YEARS = 5
PRESCRIPTION_WARNING_MONTHS = 6


def build_terms_flags(invoices: pd.DataFrame) -> pd.DataFrame:
    """Flag payment terms beyond the LME limits, from ``issue_date`` and ``due_date``.

    Returns:
        ``invoice_id, terms_days`` (due - issue, days), ``lme_limit_date`` (the latest due date the
        law allows: max of issue + 60 days, end of issue month + 45 days, end of month of issue +
        45 days) and ``lme_terms_exceeded`` (due_date later than that limit).
    """
    issue = pd.to_datetime(invoices["issue_date"])
    due = pd.to_datetime(invoices["due_date"])
    net = issue + pd.Timedelta(days=LME_MAX_NET_DAYS)
    eom_then_45 = issue + pd.offsets.MonthEnd(0) + pd.Timedelta(days=LME_MAX_EOM_DAYS)
    plus_45_then_eom = issue + pd.Timedelta(days=LME_MAX_EOM_DAYS) + pd.offsets.MonthEnd(0)
    limit = pd.concat([net, eom_then_45, plus_45_then_eom], axis=1).max(axis=1)
    return pd.DataFrame({
        "invoice_id": invoices["invoice_id"].to_numpy(),
        "terms_days": (due - issue).dt.days.to_numpy(),
        "lme_limit_date": limit.to_numpy(),
        "lme_terms_exceeded": (due > limit).to_numpy(),
    })


def build_legal_amounts(
    ledger: Ledger,
    as_of: pd.Timestamp | str,
    ecb_rate: float = DEFAULT_ECB_RATE,
    margin_points: float = PENALTY_MARGIN_POINTS,
    indemnity: float = RECOVERY_INDEMNITY_EUR,
) -> pd.DataFrame:
    """Penalties, indemnity and legal flags for each invoice open and past due at the start of ``as_of``.

    Args:
        ledger: the ledger; only ``ledger.known_at(as_of)`` is used.
        as_of: the day.
        ecb_rate: ECB reference rate, in percent (e.g. 2.15).
        margin_points: points added to it (10 by law).
        indemnity: fixed recovery indemnity per late invoice, EUR.

    Returns:
        One row per open ``invoice`` with ``days_late > 0``: ``invoice_id, client_id, issue_date,
        due_date, outstanding, days_late, penalty_rate`` (percent per year), ``late_penalty``
        (rounded to cents), ``recovery_indemnity``, the :func:`build_terms_flags` columns,
        ``prescription_start`` (due date, or the last partial payment before ``as_of`` when later),
        ``prescription_date`` (start + 5 years) and ``prescription_status``: 'prescribed' (on or
        after the prescription date), 'prescription_within_6_months', or 'ok'.
    """
    if ecb_rate < 0 or margin_points < 0 or indemnity < 0:
        raise ValueError(f"ecb_rate, margin_points and indemnity must be >= 0; got {ecb_rate}, "
                         f"{margin_points}, {indemnity}.")
    d = _day(as_of)
    known = ledger.known_at(d)
    items = build_open_items(known, d)
    items = items[(items["doc_type"] == "invoice") & (items["days_past_due"] > 0)].reset_index(drop=True)
    rate = float(ecb_rate) + float(margin_points)
    out = items[["invoice_id", "client_id", "issue_date", "due_date", "outstanding"]].copy()
    out["days_late"] = items["days_past_due"].astype("int64")
    out["penalty_rate"] = rate
    out["late_penalty"] = (out["outstanding"] * rate / 100.0 * out["days_late"] / 365.0).round(2)
    out["recovery_indemnity"] = float(indemnity)
    flags = build_terms_flags(items)
    for col in ("terms_days", "lme_limit_date", "lme_terms_exceeded"):
        out[col] = flags[col].to_numpy()
    # Only the late invoices' payments: grouping every payment of the ledger and mapping through a
    # dict of timestamps made this step the slowest of a dunning day on a large ledger.
    pays = known.payments[isin(known.payments["invoice_id"], out["invoice_id"])]
    last_payment = pays.groupby("invoice_id")["paid_date"].max()
    paid_on = pd.Series(last_payment.reindex(out["invoice_id"]).to_numpy(), index=out.index, dtype="datetime64[s]")
    start = out["due_date"].where(paid_on.isna() | (paid_on <= out["due_date"]), paid_on)
    out["prescription_start"] = start
    out["prescription_date"] = start + pd.DateOffset(years=PRESCRIPTION_YEARS)
    warn_from = out["prescription_date"] - pd.DateOffset(months=PRESCRIPTION_WARNING_MONTHS)
    out["prescription_status"] = "ok"
    out.loc[d >= warn_from, "prescription_status"] = "prescription_within_6_months"
    out.loc[d >= out["prescription_date"], "prescription_status"] = "prescribed"
    return out
