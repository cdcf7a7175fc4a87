"""Row-wise arithmetic on payment-day CDF grids: per invoice, days after as_of at the bin edges
(``days``, non-decreasing) and P(paid before each) (``cdf``), as ``PaymentDateModel.predict_cdf`` gives.

Inside a bin of several days the CDF rises linearly, either in calendar days or, given day weights
(``PaymentCalendar.day_weights``), on the calendar clock (``features.calendar.DayClock``): in
proportion to how the ledger's payments fall on the weekdays and holidays, so that a quantile does not
land on a Sunday when the ledger records next to no payment on Sundays.
"""

from __future__ import annotations

import numpy as np

from features.calendar import DayClock


def count_le(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row i and column j: how many entries of ``rows[i]`` (non-decreasing) are <= ``values[i, j]``.

    One flat ``searchsorted``: rows are shifted apart so that the flattened array stays sorted.
    """
    n, k = rows.shape
    if n == 0:
        return np.zeros(values.shape, dtype=np.int64)
    if k <= 40:
        # Few columns (weekly periods, the model's bins): comparing column by column is faster.
        count = np.zeros(values.shape, dtype=np.int16 if k < 32_000 else np.int64)
        for j in range(k):
            count += rows[:, j:j + 1] <= values
        return count
    finite = rows[np.isfinite(rows)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    # Infinite entries become sentinels outside the finite range, keeping every comparison's result:
    # a finite value never reaches a +inf entry (hi + 2), a +inf value (hi + 3) passes them all.
    r = np.nan_to_num(rows, posinf=hi + 2.0, neginf=lo - 2.0)
    v = np.where(np.isposinf(values), hi + 3.0, np.where(np.isneginf(values), lo - 3.0,
                                                          np.clip(values, lo - 1.0, hi + 1.0)))
    width = hi - lo + 7.0
    off = np.arange(n, dtype=float)[:, None] * width
    flat = (r - lo + 3.0 + off).ravel()
    v = v - lo + 3.0 + off
    pos = np.searchsorted(flat, v.ravel(), side="right").reshape(values.shape)
    return pos - np.arange(n)[:, None] * k


def interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Row-wise ``np.interp(x[i], xp[i], fp[i])`` without a loop over rows or columns."""
    n, k = xp.shape
    idx = count_le(xp, x)
    j = np.clip(idx, 1, k - 1)
    r = np.arange(n)[:, None]
    x0, x1, f0, f1 = xp[r, j - 1], xp[r, j], fp[r, j - 1], fp[r, j]
    w = np.where(x1 > x0, (x - x0) / np.where(x1 > x0, x1 - x0, 1.0), 1.0)
    return np.where(idx <= 0, fp[:, :1], np.where(idx >= k, fp[:, -1:], f0 + np.clip(w, 0, 1) * (f1 - f0)))


def sample_payment_days(days: np.ndarray, cdf: np.ndarray, u: np.ndarray, horizon_days: float) -> np.ndarray:
    """Payment days after as_of for uniform draws ``u`` (n, m); ``inf`` = not paid within the horizon.

    Inverse CDF, linear inside a bin: the payment day is ``floor`` of the returned value (a day-t
    payment is the CDF's rise over [t, t + 1)).
    """
    n, k = cdf.shape
    idx = count_le(cdf, u)  # first edge with cdf > u
    ok = idx < k
    j = np.clip(idx, 1, k - 1)
    r = np.arange(n)[:, None]
    lo, hi = cdf[r, j - 1], cdf[r, j]
    frac = np.where(hi > lo, (u - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    val = days[r, j - 1] + np.clip(frac, 0, 1) * (days[r, j] - days[r, j - 1])
    ok &= val <= horizon_days
    return np.where(ok, val, np.inf)


def grid_quantiles(days: np.ndarray, cdf: np.ndarray, qs, horizon_days: float,
                   day_weights: np.ndarray | DayClock | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """The q-quantiles of the payment day, in whole days after as_of; ``inf`` past ``horizon_days``.

    Payments fall on whole days: the day-t payment probability is the CDF's rise over [t, t + 1). The
    q-quantile is the first day t with P(paid on or before t) >= q. Inside a bin the CDF rises in
    calendar days or, with ``day_weights`` ((groups, days from as_of on) covering every day of the
    grid, or their ``DayClock``; ``rows``: each invoice's group, None: group 0), on the calendar
    clock, as the forecast's ``build_period_cdf`` spreads it: a day of weight 0 holds no quantile
    (mass the grid puts on such days goes to the next day of positive weight, or to the previous one
    at the table's end).
    """
    n, k = cdf.shape
    out = np.full((n, len(qs)), np.inf)
    if n == 0:
        return out
    xp = days.astype(float)
    if day_weights is not None:
        clock = day_weights if isinstance(day_weights, DayClock) else DayClock(day_weights)
        m = clock.n_days
        g = np.zeros(n, dtype=np.intp) if rows is None else np.asarray(rows, dtype=np.intp)
        if g.shape != (n,) or g.min() < 0 or g.max() >= clock.groups:
            raise ValueError(f"rows must give each of the {n} invoices a group in 0..{clock.groups - 1}.")
        finite = xp[np.isfinite(xp)]
        if finite.size and np.ceil(finite.max()) > m:
            raise ValueError(f"day weights cover {m} days; the CDF grid reaches day {finite.max():g}.")
    r = np.arange(n)
    # Per level, the grid edges the CDF reaches it between, and how far in; on the clock, the two edges
    # only (the whole grid's clock would cost ten times more), all levels in one call.
    found, x0, x1 = [], [], []
    for q in qs:
        reached = cdf >= q
        i = np.clip(np.argmax(reached, axis=1), 1, k - 1)
        lo, hi = cdf[r, i - 1], cdf[r, i]
        frac = np.clip(np.where(hi > lo, (q - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0), 0, 1)
        found.append((reached.any(axis=1), frac))
        x0.append(xp[r, i - 1])
        x1.append(xp[r, i])
    x0, x1 = np.column_stack(x0), np.column_stack(x1)
    if day_weights is not None:
        both = clock.at(np.concatenate([x0, x1], axis=1), g)
        x0, x1 = both[:, :len(qs)], both[:, len(qs):]
    for j, (any_, frac) in enumerate(found):
        val = x0[:, j] + frac * (x1[:, j] - x0[:, j])
        if day_weights is None:
            # The CDF reaches q at x (days): day ceil(x) - 1 is the first whose end has it.
            day = np.maximum(np.ceil(val - 1e-9) - 1, 0)
        else:
            # The first day whose end on the clock is at or past the clock's value at q, then the first
            # day from it that has a weight.
            flat = np.searchsorted(clock.ends, val - 1e-9 + g * clock.gap, side="left") - g * m
            day = np.where(flat < m, clock.first_open[g * m + np.minimum(flat, m - 1)], np.inf)
        ok = any_ & (day <= horizon_days)
        out[ok, j] = day[ok]
    return out
