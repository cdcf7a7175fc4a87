"""Client behaviour as of a date: what the company knew about each client at the start of ``as_of``.

Every function here is pure: (ledger, as_of) -> frame. Nothing dated on or after ``as_of`` is read
(the same cut as ``Ledger.known_at``), and the clock is never read.

Censoring: an invoice still open at ``as_of`` has no payment date *yet*. It is not dropped: the late
rate counts every invoice due before ``as_of`` (paid late or still unpaid past due = late), and open
overdue invoices add their days overdue so far as lower bounds of their delay. Dropping them would
make a client who stopped paying look punctual.

The figures are computed on :class:`LedgerArrays` (ids as integer codes, dates as seconds), built once
per ledger: a training set replays many days on the same arrays. Float aggregates (sums, means,
medians, quantiles, standard deviations) go through pandas' grouped reductions on those integer
codes, over the same rows in the same order as a grouping on the ids would see them, so the figures
are the same to the last bit; rows outside a subset are NaN, which those reductions skip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ledger.contracts import Ledger

RECENT_DAYS = 90
"""Window (days before as_of) for the 'recent' delay, compared with older history for a trend."""

PROMISE_GRACE_DAYS = 3
"""A promise to pay counts as kept when the invoice is paid at most this many days after it."""

REMINDER_STEPS = ("preventive", "reminder", "reminder_1", "reminder_2", "call", "formal_notice", "agency")

STEP_RANK = {s: i + 1 for i, s in enumerate(REMINDER_STEPS)}
"""Rank of each dunning-ladder step (1 = gentlest); other actions have none."""

DAY = 86_400.0
"""Seconds in a day: dates are held as seconds since 1970 in :class:`LedgerArrays`."""

_COUNT_COLUMNS = ("c_invoices_90d", "c_promises", "c_promises_kept", "c_promises_broken", "c_reminders_365",
                  "c_disputes")


def _factorize_text(*columns: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of the columns' values end to end (codes by first appearance, -1 where
    missing; the distinct values as an object array), hashed by Arrow when every value is text or
    missing: the same codes and values, without a Python string per cell of Arrow-held ids."""
    import pyarrow as pa

    try:
        parts = [pa.array(c.array if isinstance(c.dtype, pd.StringDtype) else c.to_numpy(dtype=object),
                          type=pa.string(), from_pandas=True) for c in columns]
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # something else than text: as pandas always did
        return pd.factorize(np.concatenate([c.to_numpy(dtype=object) for c in columns]))
    chunks = [c.cast(pa.string()) for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])]
    encoded = pa.chunked_array(chunks, type=pa.string()).combine_chunks().dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy().astype(np.intp)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False)


def _seconds(dates: pd.Series) -> np.ndarray:
    """A date column as float seconds since 1970, NaN where empty (NaN compares False, like NaT)."""
    a = dates.to_numpy(dtype="datetime64[s]")
    out = a.astype(np.int64).astype(np.float64)
    out[np.isnat(a)] = np.nan
    return out


def _seconds_of(day: pd.Timestamp) -> float:
    return float(pd.Timestamp(day).to_datetime64().astype("datetime64[s]").astype(np.int64))


@dataclass(eq=False)
class LedgerArrays:
    """A ledger's columns as numpy arrays, for computing features on one day or many.

    Client ids are codes into ``client_ids`` (the sorted ids of every document's client); invoice ids
    are codes ("keys") shared by the invoices, payments and actions tables, ``-1`` where empty or, for
    payments and actions, not a document of the ledger. Dates are float seconds since 1970, NaN where
    empty. Built once with :meth:`from_ledger`; a day's features mask the rows dated before it.
    """

    ledger: Ledger
    client_ids: np.ndarray
    n_keys: int
    doc_client: np.ndarray
    doc_key: np.ndarray
    is_invoice: np.ndarray
    is_credit_note: np.ndarray
    issue: np.ndarray
    due: np.ndarray
    paid: np.ndarray
    amount: np.ndarray
    pay_key: np.ndarray
    pay_date: np.ndarray
    pay_amount: np.ndarray
    act_client: np.ndarray
    act_key: np.ndarray
    act_id: np.ndarray
    act_date: np.ndarray
    act_promise_date: np.ndarray
    act_rank: np.ndarray
    is_reminder: np.ndarray
    is_promise: np.ndarray
    is_dispute: np.ndarray
    _payments: dict = field(default_factory=dict, repr=False)
    _paid_order: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_ledger(cls, ledger: Ledger) -> "LedgerArrays":
        """Encode ``ledger`` (not copied: its frames must not change while the arrays are in use)."""
        inv, pay, act = ledger.invoices, ledger.payments, ledger.actions
        n_docs = len(inv)

        # Clients: codes into the sorted ids of the documents' clients; an action's client that has
        # no document gets -1 (client features describe clients seen on documents).
        codes, uniques = _factorize_text(inv["client_id"], act["client_id"])
        n_doc_clients = int(codes[:n_docs].max()) + 1 if n_docs else 0
        doc_uniques = np.asarray(uniques[:n_doc_clients], dtype=object)
        order = np.argsort(doc_uniques, kind="stable")
        rank = np.full(len(uniques) + 1, -1, dtype=np.intp)  # last slot: code -1 (empty id)
        rank[order] = np.arange(n_doc_clients)
        codes = rank[codes]

        # Invoice ids: one code space for the three tables; ids met only in payments or actions get
        # codes >= n_keys (kept for the actions, which count distinct disputed ids).
        keys, _ = _factorize_text(inv["invoice_id"], pay["invoice_id"], act["invoice_id"])
        doc_key = keys[:n_docs]
        n_keys = int(doc_key.max()) + 1 if n_docs else 0
        pay_key = keys[n_docs:n_docs + len(pay)]
        act_id = keys[n_docs + len(pay):]
        pay_key = np.where(pay_key < n_keys, pay_key, -1)
        act_key = np.where(act_id < n_keys, act_id, -1)
        if (doc_key < 0).any():  # documents without an id: a key of their own, which nothing else has
            doc_key = np.where(doc_key < 0, n_keys, doc_key)
            n_keys += 1

        doc_type = inv["doc_type"].to_numpy(dtype=object)
        step_codes, steps = pd.factorize(act["step"].to_numpy(dtype=object))
        step_names = np.append(np.asarray([str(s) for s in steps], dtype=object), "nan")  # code -1: empty step
        step_rank = np.asarray([STEP_RANK.get(s, np.nan) for s in steps] + [np.nan], dtype=np.float64)
        return cls(
            ledger=ledger, client_ids=doc_uniques[order], n_keys=n_keys,
            doc_client=codes[:n_docs], doc_key=doc_key,
            is_invoice=doc_type == "invoice", is_credit_note=doc_type == "credit_note",
            issue=_seconds(inv["issue_date"]), due=_seconds(inv["due_date"]), paid=_seconds(inv["paid_date"]),
            amount=inv["amount"].to_numpy(dtype=np.float64),
            pay_key=pay_key, pay_date=_seconds(pay["paid_date"]),
            pay_amount=pay["amount"].to_numpy(dtype=np.float64),
            act_client=codes[n_docs:], act_key=act_key, act_id=act_id,
            act_date=_seconds(act["action_date"]), act_promise_date=_seconds(act["promise_date"]),
            act_rank=step_rank[step_codes],
            is_reminder=np.isin(step_names, REMINDER_STEPS)[step_codes],
            is_promise=(step_names == "promise")[step_codes], is_dispute=(step_names == "dispute")[step_codes],
        )

    def paid_order(self) -> np.ndarray:
        """Rows of the paid invoices, by client, paid date, then row (computed once, for every day)."""
        if self._paid_order is None:
            rows = np.flatnonzero(self.is_invoice & ~np.isnan(self.paid) & (self.doc_client >= 0))
            self._paid_order = rows[np.lexsort((self.paid[rows], self.doc_client[rows]))]
        return self._paid_order

    def payments_before(self, ds: float) -> tuple[int, np.ndarray, np.ndarray]:
        """Payments dated before ``ds`` (seconds): how many, and per invoice key their count and sum.

        The sum is pandas' grouped sum over the payments in table order, as a grouping on the ids gives.
        That sum is compensated (Kahan), which for one or two amounts is plain left-to-right addition:
        only invoices paid in three parts or more, or with an amount missing, go through pandas.
        """
        if ds not in self._payments:
            known = self.pay_date < ds
            sel = known & (self.pay_key >= 0)
            keys = self.pay_key[sel]
            amounts = self.pay_amount[sel]
            count = np.bincount(keys, minlength=self.n_keys)
            missing = np.isnan(amounts)
            total = np.bincount(keys, weights=np.where(missing, 0.0, amounts), minlength=self.n_keys)
            has_missing = np.zeros(self.n_keys, dtype=bool)
            has_missing[keys[missing]] = True
            redo = (count[keys] > 2) | has_missing[keys]
            if redo.any():
                s = pd.Series(amounts[redo]).groupby(keys[redo]).sum()
                total[s.index.to_numpy()] = s.to_numpy()
            self._payments.clear()  # one day at a time: keep the memory of one
            self._payments[ds] = (int(known.sum()), count, total)
        return self._payments[ds]


def _scatter(result: pd.Series | pd.DataFrame, n: int) -> np.ndarray:
    """A grouped result (indexed by codes 0..n-1, some missing) as a full array, NaN where missing."""
    shape = (n,) if isinstance(result, pd.Series) else (n, result.shape[1])
    out = np.full(shape, np.nan)
    out[np.asarray(result.index, dtype=np.intp)] = result.to_numpy(dtype=np.float64)
    return out


def _count(codes: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(codes if mask is None else codes[mask], minlength=n).astype(np.float64)


def _nan_where(empty: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values``, NaN where the group had no rows (what aligning a grouped result gives)."""
    return np.where(empty, np.nan, values)


def _masked(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(mask, values, np.nan)


def build_client_features(ledger: Ledger, as_of: str | pd.Timestamp) -> pd.DataFrame:
    """Per-client behaviour figures known at the start of ``as_of``.

    Args:
        ledger: the full ledger; anything dated on or after ``as_of`` is ignored.
        as_of: the day the features describe (start of day).

    Returns:
        One row per client seen on a document issued before ``as_of``, indexed by ``client_id``.
        Columns start with ``c_``; days are calendar days, amounts are in the ledger currency.
    """
    return client_features_from_arrays(LedgerArrays.from_ledger(ledger), as_of)[0]


def client_features_from_arrays(t: LedgerArrays, as_of: str | pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray]:
    """``build_client_features`` on encoded arrays.

    Returns:
        The client frame and, for each client code, its row in the frame (-1: not in it).
    """
    d = pd.Timestamp(as_of)
    ds = _seconds_of(d)
    docs = np.flatnonzero((t.issue < ds) & (t.doc_client >= 0))
    present = np.zeros(len(t.client_ids), dtype=bool)
    present[t.doc_client[docs]] = True
    slot = np.where(present, np.cumsum(present) - 1, -1)
    n = int(present.sum())
    index = pd.Index(t.client_ids[present], name="client_id")

    doc_slot = slot[t.doc_client[docs]]
    inv_mask = t.is_invoice[docs]
    rows = docs[inv_mask]
    c = doc_slot[inv_mask]
    amount, issue, due = t.amount[rows], t.issue[rows], t.due[rows]
    paid = t.paid[rows]
    paid = np.where(paid < ds, paid, np.nan)  # paid on or after as_of: still open then

    cols: dict[str, np.ndarray] = {}
    n_inv = _count(c, n)
    no_inv = n_inv == 0
    is_due = due < ds
    late = is_due & (np.isnan(paid) | (paid > due))
    is_paid = ~np.isnan(paid)
    delay = (paid - due) / DAY
    recent = paid >= ds - RECENT_DAYS * DAY
    is_open = ~is_paid
    n_known_pay, pay_count, pay_total = t.payments_before(ds)
    received = pay_total[t.doc_key[rows]] if n_known_pay else np.zeros(len(rows))
    remaining = amount - received
    remaining = np.where((remaining >= 0) | np.isnan(remaining), remaining, 0.0)  # Series.clip(lower=0)
    overdue_days = (ds - due) / DAY
    is_overdue = is_open & (overdue_days > 0)

    g = pd.DataFrame({
        "amount": amount,
        "issue": issue,
        "late": _masked(is_due, late.astype(np.float64)),
        "due_amount": _masked(is_due, amount),
        "late_amount": _masked(is_due, amount * late),
        "delay": delay,
        "dtp": (paid - issue) / DAY,
        "delay_w": delay * amount,
        "paid_amount": _masked(is_paid, amount),
        "delay_recent": _masked(recent, delay),
        "delay_older": _masked(is_paid & ~recent, delay),
        "paid": paid,
        "open_amount": _masked(is_open, remaining),
        "overdue_amount": _masked(is_overdue, remaining),
        "overdue_days": _masked(is_overdue, overdue_days),
    }).groupby(c)
    sums = _scatter(g[["amount", "late_amount", "due_amount", "delay_w", "paid_amount", "open_amount",
                       "overdue_amount"]].sum(), n)
    means = _scatter(g[["late", "delay", "dtp", "delay_recent", "delay_older", "overdue_days"]].mean(), n)
    medians = _scatter(g[["amount", "delay"]].median(), n)
    maxima = _scatter(g[["paid", "overdue_days"]].max(), n)

    n_due = _count(c, n, is_due)
    n_paid = _count(c, n, is_paid)
    n_open = _count(c, n, is_open)
    n_overdue = _count(c, n, is_overdue)
    cols["c_n_invoices"] = n_inv
    cols["c_amount_median"] = medians[:, 0]
    cols["c_amount_total"] = _nan_where(no_inv, sums[:, 0])
    cols["c_tenure_days"] = (ds - _scatter(g["issue"].min(), n)) / DAY
    cols["c_invoices_90d"] = _count(c, n, issue >= ds - RECENT_DAYS * DAY)
    cols["c_n_due"] = n_due
    cols["c_late_rate"] = means[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["c_late_amount_share"] = _nan_where(n_due == 0, sums[:, 1] / sums[:, 2])
        cols["c_n_paid"] = n_paid
        cols["c_delay_mean"] = means[:, 1]
        cols["c_delay_median"] = medians[:, 1]
        cols["c_delay_p90"] = _scatter(g["delay"].quantile(0.9), n)
        cols["c_delay_std"] = _scatter(g["delay"].std(), n)
        cols["c_dtp_mean"] = means[:, 2]
        cols["c_delay_wmean"] = _nan_where(n_paid == 0, sums[:, 3] / sums[:, 4])
        cols["c_delay_recent"] = means[:, 3]
        cols["c_delay_older"] = means[:, 4]
        cols["c_delay_trend"] = means[:, 3] - means[:, 4]
        # The payments known at as_of, by client and paid date (ties: table order).
        by_day = t.paid_order()
        by_day = by_day[(t.issue[by_day] < ds) & (t.paid[by_day] < ds)]
        pc, pp = slot[t.doc_client[by_day]], t.paid[by_day]
        cols["c_last3_delay"] = _last3_delay(pc, (pp - t.due[by_day]) / DAY, n)
        cols["c_days_since_last_payment"] = (ds - maxima[:, 0]) / DAY
        _add_payment_run_features(cols, pc, pp, n)

        # Open invoices: censored at as_of.
        cols["c_n_open"] = n_open
        cols["c_open_amount"] = _nan_where(n_open == 0, sums[:, 5])
        cols["c_n_open_overdue"] = n_overdue
        cols["c_overdue_amount"] = _nan_where(n_overdue == 0, sums[:, 6])
        cols["c_overdue_share"] = cols["c_overdue_amount"] / cols["c_open_amount"]
        cols["c_open_overdue_days_max"] = maxima[:, 1]
        cols["c_open_overdue_days_mean"] = means[:, 5]

        n_inv_or_nan = _nan_where(no_inv, n_inv)
        n_credit = _count(doc_slot, n, t.is_credit_note[docs])
        cols["c_credit_note_rate"] = _nan_where(n_credit == 0, n_credit / n_inv_or_nan)

        _add_payment_features(cols, t, rows, c, n, n_known_pay, pay_count)
        _add_action_features(cols, t, rows, c, paid, slot, n, n_inv_or_nan, ds)

    for name in cols:
        if name.startswith("c_n_") or name in _COUNT_COLUMNS:
            cols[name] = np.nan_to_num(cols[name], nan=0.0)  # one dtype whatever the data
    for name in ("c_open_amount", "c_overdue_amount"):
        cols[name] = np.nan_to_num(cols[name], nan=0.0)
    out = pd.DataFrame(cols, index=index)
    _add_master_features(out, t.ledger.clients)
    return out, slot


def _last3_delay(c: np.ndarray, delay: np.ndarray, n: int) -> np.ndarray:
    """Mean delay of each client's last three payments; rows by client then paid date (ties: later rows last)."""
    size = np.bincount(c, minlength=n)
    start = np.cumsum(size) - size
    from_end = size[c] - (np.arange(len(c)) - start[c])
    last3 = from_end <= 3
    return _scatter(pd.Series(delay[last3]).groupby(c[last3]).mean(), n)


def _add_payment_run_features(cols: dict, c: np.ndarray, paid: np.ndarray, n: int) -> None:
    """When a client pays: its usual weekday and how regular its payment runs are.

    ``c`` and ``paid``: the payments known, by client then paid date.
    """
    first = np.ones(len(c), dtype=bool)
    first[1:] = (c[1:] != c[:-1]) | (paid[1:] != paid[:-1])
    cs, ps = c[first], paid[first]  # each client's payment days, in order
    day_number = np.floor(ps / DAY).astype(np.int64)
    dow = (day_number + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    counts = np.bincount(cs * 7 + dow, minlength=n * 7).reshape(n, 7)
    total = counts.sum(axis=1)
    none = total == 0
    cols["c_pay_dow_mode"] = _nan_where(none, counts.argmax(axis=1).astype(np.float64))
    cols["c_pay_dow_share"] = _nan_where(none, counts.max(axis=1) / total)
    days = day_number.astype("datetime64[D]")
    month_end = (days - days.astype("datetime64[M]")).astype(np.int64) + 1 >= 25
    cols["c_pay_month_end_share"] = _nan_where(none, np.bincount(cs[month_end], minlength=n) / total)
    gaps = np.full(len(cs), np.nan)
    same = np.flatnonzero(cs[1:] == cs[:-1]) + 1
    gaps[same] = (ps[same] - ps[same - 1]) / DAY
    cols["c_pay_gap_median"] = _scatter(pd.Series(gaps).groupby(cs).median(), n)
    cols["c_pay_run_due_in"] = cols["c_pay_gap_median"] - cols["c_days_since_last_payment"]


def _add_payment_features(cols: dict, t: LedgerArrays, rows: np.ndarray, c: np.ndarray, n: int,
                          n_known_pay: int, pay_count: np.ndarray) -> None:
    """Partial-payment behaviour from the payments table (payments before as_of only)."""
    if not n_known_pay:
        cols["c_partial_rate"] = np.full(n, np.nan)
        return
    parts = pay_count[t.doc_key[rows]]
    has = parts > 0
    n_has = _count(c, n, has)
    cols["c_partial_rate"] = _nan_where(n_has == 0, _count(c, n, has & (parts > 1)) / n_has)


def _add_action_features(cols: dict, t: LedgerArrays, rows: np.ndarray, c: np.ndarray, paid: np.ndarray,
                         slot: np.ndarray, n: int, n_inv_or_nan: np.ndarray, ds: float) -> None:
    """Reminders received, the response to them, promises kept or broken, disputes."""
    known = t.act_date < ds
    if not known.any():
        for name in ("c_reminders_365", "c_reminder_response", "c_promises", "c_promises_kept",
                     "c_promises_broken", "c_disputes", "c_dispute_rate"):
            cols[name] = np.full(n, np.nan)
        return
    act_slot = np.where(t.act_client >= 0, slot[t.act_client], -1)
    mine = known & (act_slot >= 0)  # actions of the clients described
    reminder = known & t.is_reminder
    cols["c_reminders_365"] = _count(act_slot, n, mine & t.is_reminder & (t.act_date >= ds - 365 * DAY))

    # Response: share of reminded invoices paid within 14 days of their first reminder, judged only
    # where those 14 days lie before as_of.
    sel = reminder & (t.act_key >= 0)
    first = np.full(t.n_keys, np.nan)
    np.fmin.at(first, t.act_key[sel], t.act_date[sel])
    limit = first[t.doc_key[rows]] + 14 * DAY
    judged = limit < ds
    responded = judged & (paid <= limit)
    n_judged = _count(c, n, judged)
    cols["c_reminder_response"] = _nan_where(n_judged == 0, _count(c, n, responded) / n_judged)

    prom = mine & t.is_promise & ~np.isnan(t.act_promise_date)
    cols["c_promises"] = _count(act_slot, n, prom)
    paid_on = np.full(t.n_keys, np.nan)
    paid_on[t.doc_key[rows]] = paid
    on = np.where(t.act_key >= 0, paid_on[t.act_key], np.nan)
    deadline = t.act_promise_date + PROMISE_GRACE_DAYS * DAY
    kept = on <= deadline
    cols["c_promises_kept"] = _count(act_slot, n, prom & kept)
    cols["c_promises_broken"] = _count(act_slot, n, prom & ~kept & (deadline < ds))

    dispute = mine & t.is_dispute
    n_disputes = _count(act_slot, n, dispute)
    cols["c_disputes"] = n_disputes
    ids = dispute & (t.act_id >= 0)
    pairs = np.unique(np.stack([act_slot[ids], t.act_id[ids]]), axis=1)
    cols["c_dispute_rate"] = _nan_where(n_disputes == 0, _count(pairs[0], n) / n_inv_or_nan)


def _add_master_features(out: pd.DataFrame, clients: pd.DataFrame) -> None:
    """Client master data: credit-limit use, strategic flag, segment."""
    cl = clients.drop_duplicates("client_id").set_index("client_id")
    limit = cl["credit_limit"].reindex(out.index)
    out["c_credit_use"] = out["c_open_amount"].fillna(0.0) / limit.where(limit > 0)
    out["c_strategic"] = cl["strategic"].reindex(out.index).astype("Float64").astype("float64")
    out["c_segment"] = cl["segment"].reindex(out.index)
    out["c_sector"] = cl["sector"].reindex(out.index)
