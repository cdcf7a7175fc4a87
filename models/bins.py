"""The person-period rows of the payment-date model (``models.hazard``): the bins' own columns.

Each row is (invoice, bin of the days-past-due axis); the booster reads the invoice's inputs, then
the bin's: where it starts and how wide it is, its weekdays and weekend days, its calendar (day of the
month, month and year ends) and, when the model has them, where the client's usual payment weekday
and day of the month fall in it.
"""

from __future__ import annotations

import numpy as np

BIN_INPUTS = ("i_due_dow", "i_due_month", "i_due_dom", "c_pay_dow_mode", "i_pay_dom_mode")
"""Invoice inputs the bin columns are computed from (``c_pay_dow_mode`` and ``i_pay_dom_mode`` when the
model has them)."""

# Day of the year at which each month starts, in a year of 365 days (a leap day shifts a bin's
# calendar by one day at most, for the rest of that year).
_MONTH_START = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])

# _WEEKEND[s, r]: weekend days among r consecutive days starting on weekday s (0 = Monday).
_WEEKEND = np.array([[sum(((s + i) % 7) >= 5 for i in range(r)) for r in range(7)] for s in range(7)])


def bin_columns(edges: np.ndarray, src, rows: np.ndarray, bins: np.ndarray, a0: np.ndarray) -> dict:
    """The bin's own columns (``h_*``) of person-period rows (invoice ``rows[i]``, bin ``bins[i]``).

    ``src``: the invoices' ``BIN_INPUTS`` (a frame, or a dict of arrays).
    """
    a = a0[rows]
    start = np.maximum(edges[bins], a)
    end = edges[bins + 1]
    width = end - start
    dow0 = np.nan_to_num(np.asarray(src["i_due_dow"], dtype=float))[rows].astype(int)
    sdow = (dow0 + start.astype(int)) % 7
    w = width.astype(int)
    full = w // 7
    # weekend days in [start, end): two per full week plus those in the remainder
    rem_start = (sdow + 7 * full) % 7
    weekend = 2 * full + _WEEKEND[rem_start, w % 7]
    month0 = np.nan_to_num(np.asarray(src["i_due_month"], dtype=float))[rows] - 1
    cols = {
        "h_bin": bins.astype(float),
        "h_start": start,
        "h_width": width,
        "h_since_as_of": start - a,
        "h_start_dow": sdow.astype(float),
        "h_weekend_share": weekend / np.maximum(width, 1),
        "h_month": ((month0 + np.floor(start / 30.44)) % 12 + 1).astype(float),
    }
    if "i_due_dom" in src:
        day = start_day(month0 + 1, np.nan_to_num(np.asarray(src["i_due_dom"], dtype=float))[rows], start)
        cols.update(calendar_columns(day, start, end))
        if "i_pay_dom_mode" in src:
            cols.update(pay_day_columns(day, np.asarray(src["i_pay_dom_mode"], dtype=float)[rows], start, width))
    if "c_pay_dow_mode" in src:
        mode = np.asarray(src["c_pay_dow_mode"], dtype=float)[rows]
        # Does the bin hold the client's usual payment weekday (its payment run)?
        cols["h_pay_dow_in_bin"] = np.where(np.isnan(mode), np.nan,
                                            ((mode - sdow) % 7 < np.maximum(width, 1)).astype(float))
    return cols


def person_period_rows(Z: np.ndarray, inputs: np.ndarray, bin_columns: dict, slots: dict[str, int]) -> np.ndarray:
    """Fill ``Z`` (rows, booster columns) with person-period rows: the invoices' inputs first, then
    their bins' columns where the booster has them, missing in any column left (``Z``'s old values
    never show through)."""
    m = inputs.shape[1]
    Z[:, :m] = inputs
    written = np.zeros(Z.shape[1], dtype=bool)
    written[:m] = True
    for name, values in bin_columns.items():
        if name in slots:  # a model fitted before a bin column existed does not have it
            Z[:, slots[name]] = values
            written[slots[name]] = True
    if not written.all():
        Z[:, ~written] = np.nan
    return Z


def start_day(due_month: np.ndarray, due_dom: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The day ``start`` days past the due date: its number counted from 1 January of the due date's
    year (0 = that 1 January; 365 and on: the next years), its day of the month (1..31) and the length
    of its month (in a year of 365 days)."""
    m = np.clip(due_month.astype(int), 1, 12)
    doy0 = _MONTH_START[m - 1] + np.clip(due_dom, 1, 31) - 1
    s = (doy0 + np.floor(start)).astype(np.int64)
    s_in = s % 365
    month_of = np.searchsorted(_MONTH_START, s_in, side="right") - 1
    return s, s_in - _MONTH_START[month_of] + 1, np.diff(_MONTH_START)[month_of]


def pay_day_columns(day: tuple, mode: np.ndarray, start: np.ndarray, width: np.ndarray) -> dict:
    """Where the client's usual payment day (``mode``, day of the month, NaN: none) falls in the bin
    [start, start + width) whose first day is ``day`` (``start_day``).

    ``h_pay_dom_next``: days from the bin's start to the next day within one day of ``mode`` (0 when
    the bin starts on one); ``h_pay_dom_in_bin``: whether the bin holds such a day;
    ``h_pay_dom_delay``: the invoice's days past due on that day: a company that pays on a set day
    pays then what is due by then, and the next month what falls due after.
    """
    _, dom, length = day
    target = np.nan_to_num(mode) - 1  # the window's first day
    ahead = np.mod(target - dom, length)
    nxt = np.where(ahead >= length - 2, 0.0, ahead)  # the bin starts inside the 3-day window
    none = np.isnan(mode)
    return {
        "h_pay_dom_next": np.where(none, np.nan, nxt),
        "h_pay_dom_in_bin": np.where(none, np.nan, (nxt < np.maximum(width, 1)).astype(float)),
        "h_pay_dom_delay": np.where(none, np.nan, start + nxt),
    }


def calendar_columns(day: tuple, start: np.ndarray, end: np.ndarray) -> dict:
    """Calendar of the bin [start, end) (days past due) whose first day is ``day`` (``start_day``):
    day of the month at its start, and whether it holds a month end or the year end.

    Companies pay in runs on set days of the month and close their books at month, quarter and
    year end; the weekday alone does not say that.
    """
    s, dom, _ = day
    e = s + (np.ceil(end) - 1 - np.floor(start)).astype(np.int64)  # the bin's last day
    # Month ends crossed: month starts (day of year) in (s, e + 1], counted over whole years.
    ends_to = lambda x: (x // 365) * 12 + np.searchsorted(_MONTH_START[1:], x % 365, side="right")  # noqa: E731
    return {
        "h_start_dom": dom.astype(float),
        "h_month_end_in_bin": (ends_to(e + 1) > ends_to(s)).astype(float),
        "h_year_end_in_bin": ((e + 1) // 365 > s // 365).astype(float),
    }
