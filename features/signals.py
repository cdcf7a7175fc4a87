"""Optional feature groups: what tells apart open invoices that otherwise look alike.

``build_features(..., feature_groups=...)`` adds them; a model lists the groups it was trained with
(``EncaisseModel.feature_groups``), so training and scoring compute the same columns.

- ``stuck``: signs that the client pays *around* this invoice (a dispute, a missing PO, a stuck
  approval): its later invoices already paid while this one is open, its payments since this
  invoice fell due, and how far past due the invoice is against the client's usual delay.
- ``client_effect``: the client's own delay, recency-weighted and shrunk toward zero days when its
  history is short.
- ``pay_calendar``: the day of the month the client's payment runs usually fall on (many companies
  pay everything due on a set day each month); the payment-date model reads it against each bin's
  calendar (``models.hazard``: whether the bin holds that day, and how late the invoice is then).
- ``holidays``: the public holidays of the invoice's country (``features.calendar``) around its due
  date and in the next two weeks: an invoice due on Christmas Day is paid after it.

Every figure reads only invoices issued and paid before ``as_of`` (``ds``, in seconds), and only the
invoice's own client: a client partition computes the same columns as the whole ledger does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.calendar import holiday_dates, knows_country, weekend_days
from features.clients import DAY, LedgerArrays

FEATURE_GROUPS = ("stuck", "client_effect", "pay_calendar", "holidays")
"""The optional groups ``build_features`` knows."""

EFFECT_HALFLIFE_DAYS = 180.0
"""A payment's weight in the client effect halves every this many days before ``as_of``."""

EFFECT_PRIOR_WEIGHT = 3.0
"""Pseudo-payments at zero days of delay that the client effect starts from.

The prior is a fixed zero, not the population's mean: the population depends on which clients are in
the ledger (a client partition would see another), and a tree reads the shrunk value beside the
client's payment count anyway."""

EFFECT_CLIP_DAYS = (-60.0, 180.0)
"""Delays are clipped to this range first, so one invoice paid a year late does not make the client."""

PAY_CALENDAR_DAYS = 365
"""Payment runs counted for ``pay_calendar``: those of the last this many days before ``as_of``."""

PAY_CALENDAR_MIN_RUNS = 3
"""Runs a client needs for a usual payment day of its own (NaN below)."""

HOLIDAY_WINDOW_DAYS = 14
"""``holidays``: the weekday holidays counted from ``as_of`` on."""

NEXT_OPEN_MAX_DAYS = 15
"""``holidays``: the search for the first open day from the due date stops after this many days."""

_SPAN = 1_000_000
"""Days since 1970 are below this: (client, day) pairs pack into one integer."""


def validate_feature_groups(groups) -> tuple[str, ...]:
    """``groups`` as a tuple, or ValueError naming the unknown ones."""
    groups = tuple(groups or ())
    bad = [g for g in groups if g not in FEATURE_GROUPS]
    if bad:
        raise ValueError(f"Unknown feature groups {bad}: expected any of {list(FEATURE_GROUPS)}.")
    return groups


def _day(seconds: np.ndarray) -> np.ndarray:
    return np.floor(np.nan_to_num(seconds / DAY)).astype(np.int64)


def _count_in(sorted_keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How many of ``sorted_keys`` lie in [lo, hi)."""
    return (np.searchsorted(sorted_keys, hi, side="left") - np.searchsorted(sorted_keys, lo, side="left")).astype(float)


def add_stuck_signals(out: pd.DataFrame, t: LedgerArrays, rows: np.ndarray, ds: float) -> None:
    """Columns of the ``stuck`` group, for the open invoices ``rows`` of ``t`` (``out`` row for row).

    ``i_later_paid``: the client's invoices issued on a later day than this one (before ``ds``) and
    already paid; ``i_later_paid_share``: their share of the client's invoices issued later (NaN when
    none was); ``i_paid_since_due``: the client's invoices paid since this one's due date (0 while it is
    not yet due); ``i_overdue_vs_p90``: days overdue minus the client's 90th percentile delay
    (``c_delay_p90``, so ``out`` must hold it; negative: still within the client's usual range).
    """
    issued = np.flatnonzero(t.is_invoice & (t.issue < ds) & (t.doc_client >= 0))
    client = t.doc_client[issued].astype(np.int64) * _SPAN
    paid = t.paid[issued] < ds
    issue_keys = np.sort(client + _day(t.issue[issued]))
    paid_issue_keys = np.sort((client + _day(t.issue[issued]))[paid])
    paid_day_keys = np.sort((client + _day(t.paid[issued]))[paid])

    base = t.doc_client[rows].astype(np.int64) * _SPAN
    after = base + _day(t.issue[rows]) + 1
    end = base + _SPAN
    n_later = _count_in(issue_keys, after, end)
    later_paid = _count_in(paid_issue_keys, after, end)
    out["i_later_paid"] = later_paid
    out["i_later_paid_share"] = np.where(n_later > 0, later_paid / np.maximum(n_later, 1), np.nan)

    due = t.due[rows]
    ds_day = int(np.floor(ds / DAY))
    fell_due = due < ds
    since = _count_in(paid_day_keys, base + _day(due), base + ds_day)
    out["i_paid_since_due"] = np.where(np.isnan(due), np.nan, np.where(fell_due, since, 0.0))
    out["i_overdue_vs_p90"] = -out["i_days_to_due"].to_numpy(dtype=float) - out["c_delay_p90"].to_numpy(dtype=float)


def add_client_effect(out: pd.DataFrame, t: LedgerArrays, rows: np.ndarray, ds: float) -> None:
    """Columns of the ``client_effect`` group, for the open invoices ``rows`` of ``t``.

    ``c_delay_shrunk``: the recency-weighted mean delay (days past due, clipped to
    ``EFFECT_CLIP_DAYS``) of the client's invoices paid before ``ds``, shrunk toward zero by
    ``EFFECT_PRIOR_WEIGHT`` pseudo-payments; ``c_recent_weight``: the sum of those weights (the
    effective number of recent payments); ``c_late_shrunk``: the weighted share paid after the due
    date, shrunk toward one half the same way.
    """
    n = len(t.client_ids)
    by_day = t.paid_order()
    by_day = by_day[(t.issue[by_day] < ds) & (t.paid[by_day] < ds)]
    c = t.doc_client[by_day]
    delay = (t.paid[by_day] - t.due[by_day]) / DAY
    ok = ~np.isnan(delay)
    c, delay = c[ok], np.clip(delay[ok], *EFFECT_CLIP_DAYS)
    w = np.power(0.5, (ds - t.paid[by_day][ok]) / DAY / EFFECT_HALFLIFE_DAYS)
    sw = np.bincount(c, weights=w, minlength=n)
    swd = np.bincount(c, weights=w * delay, minlength=n)
    swl = np.bincount(c, weights=w * (delay > 0), minlength=n)
    k = EFFECT_PRIOR_WEIGHT
    rc = t.doc_client[rows]
    out["c_delay_shrunk"] = swd[rc] / (sw[rc] + k)
    out["c_late_shrunk"] = (swl[rc] + 0.5 * k) / (sw[rc] + k)
    out["c_recent_weight"] = sw[rc]


def add_pay_calendar(out: pd.DataFrame, t: LedgerArrays, rows: np.ndarray, ds: float) -> None:
    """Columns of the ``pay_calendar`` group, for the open invoices ``rows`` of ``t``.

    Reads the client's invoices issued and paid before ``ds``, paid within ``PAY_CALENDAR_DAYS``.
    ``i_pay_dom_mode``: the day of the month (1..31) with the most of them paid within one day of it,
    either side (a run moved to the next business day still counts; months wrap around);
    ``i_pay_dom_share``: the share of them paid within a day of it (about 0.1 for payments spread
    over the month). Both NaN for a client with fewer than ``PAY_CALENDAR_MIN_RUNS`` payment days.
    """
    n = len(t.client_ids)
    ds_day = int(np.floor(ds / DAY))
    paid = np.flatnonzero(t.is_invoice & (t.issue < ds) & (t.paid < ds) & (t.doc_client >= 0))
    day = _day(t.paid[paid])
    recent = day >= ds_day - PAY_CALENDAR_DAYS
    client, day = t.doc_client[paid][recent].astype(np.int64), day[recent]
    runs = np.bincount(np.unique(client * _SPAN + day) // _SPAN, minlength=n)
    dates = day.astype("datetime64[D]")
    dom = (dates - dates.astype("datetime64[M]")).astype(np.int64)
    counts = np.zeros((n, 31))
    np.add.at(counts, (client, dom), 1.0)
    near = counts + np.roll(counts, 1, axis=1) + np.roll(counts, -1, axis=1)
    few = runs < PAY_CALENDAR_MIN_RUNS
    mode = np.where(few, np.nan, near.argmax(axis=1) + 1.0)
    share = np.where(few, np.nan, near.max(axis=1) / np.maximum(counts.sum(axis=1), 1))
    rc = t.doc_client[rows]
    out["i_pay_dom_mode"] = mode[rc]
    out["i_pay_dom_share"] = share[rc]


def add_holiday_signals(out: pd.DataFrame, t: LedgerArrays, rows: np.ndarray, ds: float, countries) -> None:
    """Columns of the ``holidays`` group, for the open invoices ``rows`` of ``t`` (``out`` row for row).

    ``countries``: each row's, the invoice's, else its client's (``features.calendar.rows_countries``); public
    holidays are known in advance, so reading those after ``as_of`` leaks nothing.
    ``i_due_holiday``: 1 when the due date is a holiday of the country; ``i_due_next_open``: days from
    the due date to the first day on or after it that is neither a weekend day of the country (Saturday and
    Sunday unless the ``holidays`` package says otherwise) nor a holiday (0: the due date is open);
    ``i_holidays_next``: holidays on the country's working days in the ``HOLIDAY_WINDOW_DAYS`` from
    ``as_of``. The first and last are NaN for a country the ``holidays`` package does not know (or none);
    all three are NaN without a due date.
    """
    d = pd.Timestamp(ds, unit="s").normalize()
    countries = pd.Series(countries, dtype=object)
    due = pd.to_datetime(out["due_date"]).dt.normalize().to_numpy(dtype="datetime64[D]")
    n = len(out)
    due_holiday, next_open, ahead = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    today = np.datetime64(d.date(), "D")
    window = today + np.arange(HOLIDAY_WINDOW_DAYS)
    for country, idx in countries.groupby(countries.fillna(""), sort=False).groups.items():
        idx = np.asarray(idx)
        idx = idx[~np.isnat(due[idx])]
        if not len(idx):
            continue
        days = due[idx]
        # Only the years the due dates (and the search after them) fall in: a due date far ahead
        # costs one more year, not every year between.
        span = np.concatenate([days, days + NEXT_OPEN_MAX_DAYS, window]).astype("datetime64[Y]").astype(np.int64) + 1970
        hol = holiday_dates(country or None, np.unique(span))
        k = np.zeros(len(idx))
        weekend = weekend_days(country or None)
        shut = _closed(days, hol, weekend)
        for step in range(1, NEXT_OPEN_MAX_DAYS + 1):
            if not shut.any():
                break
            k[shut] += 1
            shut &= _closed(days + np.timedelta64(step, "D"), hol, weekend)
        next_open[idx] = k
        if country and knows_country(country):
            due_holiday[idx] = np.isin(days, hol).astype(float)
            ahead[idx] = float((np.isin(window, hol) & ~np.isin(_weekday(window), weekend)).sum())
    out["i_due_holiday"] = due_holiday
    out["i_due_next_open"] = next_open
    out["i_holidays_next"] = ahead


def _weekday(days: np.ndarray) -> np.ndarray:
    """Weekday of each ``datetime64[D]`` day, 0 = Monday (1970-01-01 was a Thursday)."""
    return (days.astype(np.int64) + 3) % 7


def _closed(days: np.ndarray, holidays: np.ndarray, weekend) -> np.ndarray:
    """Whether each ``datetime64[D]`` day is a ``weekend`` weekday (0 = Monday) or one of ``holidays``."""
    return np.isin(_weekday(days), weekend) | np.isin(days, holidays)


def add_feature_groups(out: pd.DataFrame, t: LedgerArrays, rows: np.ndarray, ds: float, groups,
                       countries=None) -> None:
    """Add the columns of each group in ``groups`` (``FEATURE_GROUPS``) to ``out``; NaN for an invoice
    without a client. ``countries``: each row's (``features.calendar.rows_countries``), for 'holidays'."""
    before = set(out.columns)
    if "stuck" in groups:
        add_stuck_signals(out, t, rows, ds)
    if "client_effect" in groups:
        add_client_effect(out, t, rows, ds)
    if "pay_calendar" in groups:
        add_pay_calendar(out, t, rows, ds)
    if "holidays" in groups:
        add_holiday_signals(out, t, rows, ds, countries)
    no_client = t.doc_client[rows] < 0
    if no_client.any():
        for name in out.columns.difference(list(before)):
            out.loc[no_client, name] = np.nan
