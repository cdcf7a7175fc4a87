"""Receivables KPIs as known at the start of a day: aging, DSO, CEI and doubtful receivables.

Every function here is a pure function of (ledger, ``as_of``): it first takes
``ledger.known_at(as_of)``, so documents issued on or after ``as_of`` and payments, paid dates and
actions dated on or after ``as_of`` are invisible. Nothing reads the clock.

Conventions used throughout (amounts in the document currency, assumed to be one currency):

* **outstanding** of a document = ``amount`` minus the payments applied to it before ``as_of``,
  floored at 0; 0 when its ``paid_date`` is before ``as_of``. Sub-cent remainders count as paid.
* **sign**: ``credit_note`` documents reduce what the client owes (sign -1); every other
  ``doc_type`` increases it (sign +1).
* **days past due** = ``as_of - due_date`` in days. At the start of the due date itself the invoice
  is not yet past due (0 days): the client may still pay that day.
* **aging** uses ``doc_type == 'invoice'`` rows only; credit notes and other movements count in the
  open balance (total receivables) but not in the buckets.
* **credit sales** of a period = signed amounts of ``invoice``, ``debit_note`` and ``credit_note``
  documents issued in the period (credit notes negative).
* **current receivables** = outstanding of open invoices not yet past due (the ``not_due`` bucket).
* **total receivables** (``open_balance``) = signed outstanding of every open document.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ledger.contracts import Ledger, isin

BUCKETS = ("not_due", "0-30", "31-60", "61-90", "90+")
"""Aging buckets by days past due: <= 0, 1-30, 31-60, 61-90, > 90."""

_BUCKET_EDGES = [-np.inf, 0, 30, 60, 90, np.inf]

TOTAL = "__total__"
"""``client_id`` of the all-clients rows in :func:`build_aging`."""

CREDIT_DOC_TYPES = frozenset({"credit_note"})
"""Document types that reduce the client's balance."""

SALES_DOC_TYPES = frozenset({"invoice", "debit_note", "credit_note"})
"""Document types that make up credit sales (credit notes with a minus sign)."""

DEFAULT_LOSS_RATES: Mapping[int, float] = {0: 0.10, 90: 0.25, 180: 0.50, 365: 1.00}
"""Default expected-loss rate by days past due, for doubtful receivables without a model score.

Read as "more than N days past due -> rate": 1-90 days 10 % (only reached by disputed invoices or
clients with a collection agency), 91-180 days 25 %, 181-365 days 50 %, more than a year 100 %.
An invoice not yet past due (a disputed one) takes the rate of the smallest threshold. These are
prudent accounting conventions, not a statistical estimate: pass ``loss_rates`` to change them or
``p_loss`` to use per-invoice probabilities.
"""

DOUBTFUL_DAYS = 90
"""An open invoice more than this many days past due is a doubtful-receivable candidate."""

_CENT = 0.005


def _day(as_of: pd.Timestamp | str) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


def build_open_items(ledger: Ledger, as_of: pd.Timestamp | str) -> pd.DataFrame:
    """Documents open at the start of ``as_of``, with what is still owed on each.

    Returns:
        One row per open document (any ``doc_type``): ``invoice_id, client_id, doc_type, currency,
        issue_date, due_date, amount, outstanding`` (>= 0, currency units), ``signed_outstanding``
        (negative for credit notes) and ``days_past_due`` (int days, <= 0 when not yet due).
    """
    d = _day(as_of)
    known = ledger.known_at(d)
    inv = known.invoices
    # Payments count only against documents still open (a paid one owes nothing): grouping those
    # alone sums each one's payments as grouping them all does, at a tenth of a long ledger's rows.
    is_open = inv["paid_date"].isna()
    open_ids = inv["invoice_id"][is_open]
    pays = known.payments
    pays = pays[isin(pays["invoice_id"], open_ids)] if len(pays) else pays
    paid = pays.groupby("invoice_id")["amount"].sum() if len(pays) else pd.Series(dtype=float)
    applied = pd.Series(0.0, index=inv.index)
    applied[is_open] = open_ids.map(paid).fillna(0.0).astype(float)
    outstanding = (inv["amount"].astype(float) - applied).clip(lower=0.0)
    outstanding = outstanding.where(is_open, 0.0)
    sign = np.where(inv["doc_type"].isin(CREDIT_DOC_TYPES), -1.0, 1.0)
    out = pd.DataFrame({
        "invoice_id": inv["invoice_id"],
        "client_id": inv["client_id"],
        "doc_type": inv["doc_type"],
        "currency": inv["currency"],
        "issue_date": inv["issue_date"],
        "due_date": inv["due_date"],
        "amount": inv["amount"].astype(float),
        "outstanding": outstanding,
        "signed_outstanding": outstanding * sign,
        "days_past_due": (d - inv["due_date"]).dt.days.astype("int64"),
    })
    return out[out["outstanding"] > _CENT].reset_index(drop=True)


def build_aging(ledger: Ledger, as_of: pd.Timestamp | str) -> pd.DataFrame:
    """The aging balance of open invoices at the start of ``as_of``, per client and in total.

    Only ``doc_type == 'invoice'`` rows are aged (see the module docstring for the conventions).

    Returns:
        Long frame ``client_id, bucket, amount, count``: one row per client and bucket (all five
        buckets, zeros included, in :data:`BUCKETS` order), then the all-clients rows with
        ``client_id == TOTAL``. ``amount`` is the outstanding in currency units.
    """
    items = build_open_items(ledger, as_of)
    items = items[items["doc_type"] == "invoice"]
    bucket = pd.cut(items["days_past_due"], _BUCKET_EDGES, labels=list(BUCKETS), right=True)
    frame = pd.DataFrame({"client_id": items["client_id"], "bucket": bucket, "amount": items["outstanding"]})
    clients = sorted(frame["client_id"].unique())
    full = pd.MultiIndex.from_product([clients, list(BUCKETS)], names=["client_id", "bucket"])
    per_client = (
        frame.groupby(["client_id", "bucket"], observed=True)["amount"].agg(["sum", "count"])
        .reindex(full, fill_value=0)
        .reset_index()
        .rename(columns={"sum": "amount"})
    )
    totals = frame.groupby("bucket", observed=False)["amount"].agg(["sum", "count"]).reindex(list(BUCKETS))
    totals = totals.fillna(0).reset_index().rename(columns={"sum": "amount"})
    totals.insert(0, "client_id", TOTAL)
    out = pd.concat([per_client, totals], ignore_index=True)
    out["bucket"] = out["bucket"].astype(str)
    out["amount"] = out["amount"].astype(float)
    out["count"] = out["count"].astype("int64")
    return out[["client_id", "bucket", "amount", "count"]]


def build_credit_sales(ledger: Ledger, start: pd.Timestamp | str, end: pd.Timestamp | str) -> float:
    """Credit sales issued in ``[start, end)``: invoices + debit notes - credit notes (currency units)."""
    inv = ledger.invoices
    s, e = _day(start), _day(end)
    rows = inv[inv["doc_type"].isin(SALES_DOC_TYPES) & (inv["issue_date"] >= s) & (inv["issue_date"] < e)]
    sign = np.where(rows["doc_type"].isin(CREDIT_DOC_TYPES), -1.0, 1.0)
    return float((rows["amount"].astype(float) * sign).sum())


def evaluate_countback_dso(ledger: Ledger, as_of: pd.Timestamp | str, max_months: int = 120) -> dict:
    """Days sales outstanding by the countback method, at the start of ``as_of``.

    Start from the total receivables R at ``as_of``. Walk back one calendar month at a time:
    month k is ``[as_of - k months, as_of - (k-1) months)`` (anchored on ``as_of`` so that month
    lengths do not drift; its length in days is its real length, 28 to 31). With S_k the credit
    sales of month k:

    * if S_k < R (or S_k <= 0): the whole month is "outstanding": DSO += days(k); R -= max(S_k, 0);
    * otherwise the balance is exhausted within month k: DSO += R / S_k * days(k); stop.

    Example: R = 13,400, sales March 6,200 (31 d), February 4,500 (28 d), January 3,000 (31 d):
    March and February are used up (31 + 28 days, 2,700 left), then 2,700 / 3,000 * 31 = 27.9
    days of January: DSO = 86.9 days.

    Returns:
        ``{"dso": days, "complete": bool, "months": n}``. ``complete`` is False when the history
        (first issue date, or ``max_months``) ran out before the balance was exhausted; ``dso`` is
        then a lower bound.
    """
    d = _day(as_of)
    known = ledger.known_at(d)
    remaining = float(build_open_items(known, d)["signed_outstanding"].sum())
    if remaining <= _CENT:
        return {"dso": 0.0, "complete": True, "months": 0}
    first = known.invoices["issue_date"].min()
    dso = 0.0
    for k in range(1, max_months + 1):
        end = d - pd.DateOffset(months=k - 1)
        start = d - pd.DateOffset(months=k)
        days = (end - start).days
        sales = build_credit_sales(known, start, end)
        if sales > 0 and sales >= remaining:
            return {"dso": dso + remaining / sales * days, "complete": True, "months": k}
        dso += days
        remaining -= max(sales, 0.0)
        if pd.isna(first) or start <= first:
            return {"dso": dso, "complete": False, "months": k}
    return {"dso": dso, "complete": False, "months": max_months}


def build_open_disputes(actions: pd.DataFrame, as_of: pd.Timestamp | str) -> pd.DataFrame:
    """Disputes open at the start of ``as_of``, from dated actions (never the export-time flag).

    A dispute is opened by an action with ``step == 'dispute'`` or ``outcome == 'dispute'`` and
    closed by a later action on the same invoice (or client, for client-level disputes with an
    empty ``invoice_id``) with ``step == 'dispute_resolved'`` or ``outcome == 'resolved'``.

    Returns:
        ``client_id, invoice_id, dispute_date``; ``invoice_id`` is None for a client-level dispute.
    """
    d = _day(as_of)
    act = actions[actions["action_date"] < d]
    cols = ["client_id", "invoice_id", "dispute_date"]
    if act.empty:
        return pd.DataFrame(columns=cols)
    act = act.assign(invoice_id=act["invoice_id"].where(act["invoice_id"].notna() & (act["invoice_id"] != ""), None))
    opened = (act["step"] == "dispute") | (act["outcome"] == "dispute")
    closed = (act["step"] == "dispute_resolved") | (act["outcome"] == "resolved")
    sub = act[opened | closed]
    last = sub.assign(_key=sub["invoice_id"].fillna(""), _open=sub["action_date"].where(opened[opened | closed]),
                      _close=sub["action_date"].where(closed[opened | closed]))
    last = last.groupby(["client_id", "_key"], sort=True)[["_open", "_close"]].max()
    last = last[last["_open"].notna() & (last["_close"].isna() | (last["_close"] < last["_open"]))]
    rows = zip(last.index.get_level_values(0).tolist(), [k or None for k in last.index.get_level_values(1).tolist()],
               last["_open"].tolist())
    return pd.DataFrame(list(rows), columns=cols)


def build_agency_clients(actions: pd.DataFrame, as_of: pd.Timestamp | str) -> set[str]:
    """Clients handed to a collection agency before ``as_of`` (``step`` or ``channel`` 'agency')."""
    act = actions[actions["action_date"] < _day(as_of)]
    return set(act.loc[(act["step"] == "agency") | (act["channel"] == "agency"), "client_id"])


def _validate_loss_rates(loss_rates: Mapping[int, float]) -> list[tuple[int, float]]:
    if not loss_rates:
        raise ValueError("loss_rates must hold at least one {days_past_due: rate} entry; got none.")
    bad = {k: v for k, v in loss_rates.items() if not 0.0 <= float(v) <= 1.0}
    if bad:
        raise ValueError(f"loss_rates must be probabilities in [0, 1]; got {bad}.")
    return sorted((int(k), float(v)) for k, v in loss_rates.items())


def _rate_for(days: int, table: list[tuple[int, float]]) -> float:
    rate = table[0][1]
    for threshold, r in table:
        if days > threshold:
            rate = r
    return rate


def build_doubtful(
    ledger: Ledger,
    as_of: pd.Timestamp | str,
    p_loss: pd.DataFrame | None = None,
    loss_rates: Mapping[int, float] | None = None,
) -> pd.DataFrame:
    """Doubtful-receivable candidates (créances douteuses) and a suggested provision.

    A candidate is an open invoice that, at the start of ``as_of``, is more than
    :data:`DOUBTFUL_DAYS` days past due, or is under an open dispute (see
    :func:`build_open_disputes`), or belongs to a client handed to a collection agency.

    The suggested provision is ``outstanding x expected loss``. The expected loss is the invoice's
    ``p_loss`` when ``p_loss`` (a frame ``invoice_id, p_loss`` in [0, 1]) holds it, else the rate
    of ``loss_rates`` (default :data:`DEFAULT_LOSS_RATES`) for its days past due. Amounts are the
    gross (tax-included) outstanding; a tax provision is computed on the amount excluding VAT.

    Returns:
        ``invoice_id, client_id, due_date, days_past_due, outstanding, reasons, loss_rate,
        loss_source`` ('p_loss' or 'aging'), ``provision``; largest provision first.
    """
    d = _day(as_of)
    known = ledger.known_at(d)
    table = _validate_loss_rates(DEFAULT_LOSS_RATES if loss_rates is None else loss_rates)
    items = build_open_items(known, d)
    items = items[items["doc_type"] == "invoice"]
    disputes = build_open_disputes(known.actions, d)
    disputed_invoices = set(disputes["invoice_id"].dropna())
    disputed_clients = set(disputes.loc[disputes["invoice_id"].isna(), "client_id"])
    agency = build_agency_clients(known.actions, d)

    def reasons(row) -> str:
        r = []
        if row.days_past_due > 365:
            r.append("over 1 year past due")
        elif row.days_past_due > DOUBTFUL_DAYS:
            r.append(f"over {DOUBTFUL_DAYS} days past due")
        if row.invoice_id in disputed_invoices or row.client_id in disputed_clients:
            r.append("in dispute")
        if row.client_id in agency:
            r.append("client with collection agency")
        return "; ".join(r)

    cols = ["invoice_id", "client_id", "due_date", "days_past_due", "outstanding", "reasons",
            "loss_rate", "loss_source", "provision"]
    if items.empty:
        return pd.DataFrame(columns=cols)
    items = items.assign(reasons=[reasons(r) for r in items.itertuples(index=False)])
    items = items[items["reasons"] != ""].copy()
    rates = items["days_past_due"].map(lambda n: _rate_for(int(n), table)).astype(float)
    source = pd.Series("aging", index=items.index, dtype=object)
    if p_loss is not None:
        missing = {"invoice_id", "p_loss"} - set(p_loss.columns)
        if missing:
            raise ValueError(f"p_loss must have columns invoice_id, p_loss; missing {sorted(missing)}.")
        bad = p_loss[~p_loss["p_loss"].between(0.0, 1.0)]
        if len(bad):
            raise ValueError(f"p_loss must be in [0, 1]; {len(bad)} rows are not, e.g. invoice "
                             f"{bad['invoice_id'].iloc[0]!r} = {bad['p_loss'].iloc[0]}.")
        given = items["invoice_id"].map(p_loss.drop_duplicates("invoice_id", keep="last")
                                        .set_index("invoice_id")["p_loss"])
        source = source.where(given.isna(), "p_loss")
        rates = given.fillna(rates).astype(float)
    items["loss_rate"] = rates
    items["loss_source"] = source
    items["provision"] = items["outstanding"] * items["loss_rate"]
    items = items.sort_values(["provision", "invoice_id"], ascending=[False, True], kind="stable")
    return items[cols].reset_index(drop=True)


def evaluate_kpis(
    ledger: Ledger,
    as_of: pd.Timestamp | str,
    period_days: int = 90,
    p_loss: pd.DataFrame | None = None,
    loss_rates: Mapping[int, float] | None = None,
) -> dict:
    """Collection KPIs at the start of ``as_of`` (only what was known then).

    Args:
        ledger: the ledger; only ``ledger.known_at(as_of)`` is used.
        as_of: the day; the KPIs describe the start of that day.
        period_days: length in days of the period ``[as_of - period_days, as_of)`` used for
            best possible DSO and CEI.
        p_loss: optional per-invoice loss probabilities (``invoice_id, p_loss``), see
            :func:`build_doubtful`.
        loss_rates: optional aging-based loss-rate table, see :data:`DEFAULT_LOSS_RATES`.

    Returns:
        A JSON-ready dict (amounts in currency units, durations in days):

        * ``open_balance``: total receivables, signed (credit notes reduce it);
        * ``current_receivables``: open invoices not yet past due;
        * ``overdue_amount`` / ``overdue_share``: open invoices past due, and their share of the
          open invoice amount (0 when nothing is open);
        * ``dso``: countback DSO (:func:`evaluate_countback_dso`), ``dso_complete``;
        * ``credit_sales``: credit sales of the period;
        * ``best_possible_dso`` = current receivables / credit sales x ``period_days``;
        * ``average_days_delinquent`` = ``dso - best_possible_dso``;
        * ``cei`` = (beginning receivables + credit sales - ending total receivables) /
          (beginning receivables + credit sales - ending current receivables) x 100, with
          beginning receivables = total receivables at the start of ``as_of - period_days``;
        * ``aging``: ``{bucket: {"amount", "count"}}`` over all clients;
        * ``doubtful``: candidate rows (:func:`build_doubtful`), ``doubtful_amount``,
          ``suggested_provision``.

        Ratios whose denominator is 0 are None.
    """
    if period_days <= 0:
        raise ValueError(f"period_days must be a positive number of days; got {period_days}.")
    d = _day(as_of)
    known = ledger.known_at(d)
    begin = d - pd.Timedelta(days=period_days)
    items = build_open_items(known, d)
    invoices = items[items["doc_type"] == "invoice"]
    open_balance = float(items["signed_outstanding"].sum())
    open_invoices = float(invoices["outstanding"].sum())
    current = float(invoices.loc[invoices["days_past_due"] <= 0, "outstanding"].sum())
    overdue = open_invoices - current
    sales = build_credit_sales(known, begin, d)
    beginning = float(build_open_items(known, begin)["signed_outstanding"].sum())
    countback = evaluate_countback_dso(known, d)
    bpdso = current / sales * period_days if sales > 0 else None
    cei_den = beginning + sales - current
    cei = (beginning + sales - open_balance) / cei_den * 100 if abs(cei_den) > _CENT else None
    aging = build_aging(known, d)
    totals = aging[aging["client_id"] == TOTAL]
    doubtful = build_doubtful(known, d, p_loss=p_loss, loss_rates=loss_rates)
    doubtful_records = [
        {**r, "due_date": r["due_date"].date().isoformat(), "days_past_due": int(r["days_past_due"]),
         "outstanding": float(r["outstanding"]), "loss_rate": float(r["loss_rate"]),
         "provision": float(r["provision"])}
        for r in doubtful.to_dict("records")
    ]
    return {
        "as_of": d.date().isoformat(),
        "period_days": int(period_days),
        "open_balance": open_balance,
        "open_invoices": int(len(invoices)),
        "current_receivables": current,
        "overdue_amount": overdue,
        "overdue_share": overdue / open_invoices if open_invoices > _CENT else None,
        "credit_sales": sales,
        "beginning_receivables": beginning,
        "dso": float(countback["dso"]),
        "dso_complete": bool(countback["complete"]),
        "best_possible_dso": bpdso,
        "average_days_delinquent": float(countback["dso"]) - bpdso if bpdso is not None else None,
        "cei": cei,
        "aging": {r.bucket: {"amount": float(r.amount), "count": int(r.count)} for r in totals.itertuples()},
        "doubtful": doubtful_records,
        "doubtful_amount": float(doubtful["outstanding"].sum()) if len(doubtful) else 0.0,
        "suggested_provision": float(doubtful["provision"].sum()) if len(doubtful) else 0.0,
        **_currency_note(items),
    }


def _currency_note(items: pd.DataFrame) -> dict:
    """The open amount per currency (``build_open_items``), and a note when there are several: no exchange
    rate is applied."""
    per = items["signed_outstanding"].groupby(items["currency"].astype("object").fillna("?").to_numpy()).sum()
    currencies = {str(k): float(v) for k, v in per.sort_values(ascending=False).items()}
    note = None
    if len(currencies) > 1:
        note = (f"The open items are in {len(currencies)} currencies ({', '.join(currencies)}); every amount here "
                "adds them as they are, with no exchange rate: read `currencies` for the open amount in each.")
    return {"currencies": currencies, "note": note}
