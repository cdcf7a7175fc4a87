"""Calendar of the synthetic ledger: French business days, payment runs, month ends.

Days are int64 days since 1970-01-01.
"""

from __future__ import annotations

import numpy as np

from ledger.synth.params import NEVER


def _easter(year: int) -> np.datetime64:
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return np.datetime64(f"{year:04d}-{month:02d}-{day + 1:02d}")


def _next_true(mask: np.ndarray) -> np.ndarray:
    n = len(mask)
    idx = np.where(mask, np.arange(n), n - 1)
    return np.minimum.accumulate(idx[::-1])[::-1]


def _prev_true(mask: np.ndarray) -> np.ndarray:
    idx = np.where(mask, np.arange(len(mask)), 0)
    return np.maximum.accumulate(idx)


class BusinessCalendar:
    """Lookups over a day range; days outside the range are clamped (they are far past the end)."""

    def __init__(self, first: int, last: int):
        self.first = first
        days = np.arange(first, last + 1, dtype=np.int64)
        self.n = n = len(days)
        dt = days.astype("datetime64[D]")
        years = dt.astype("datetime64[Y]").astype(np.int64) + 1970
        months = dt.astype("datetime64[M]")
        self.month = (months.astype(np.int64) % 12 + 1).astype(np.int8)
        self.dom = ((dt - months.astype("datetime64[D]")).astype(np.int64) + 1).astype(np.int8)
        self.dow = ((days + 3) % 7).astype(np.int8)  # Monday = 0; 1970-01-01 was a Thursday
        holidays = []
        for y in range(int(years.min()), int(years.max()) + 1):
            holidays += [np.datetime64(f"{y:04d}-{md}") for md in
                         ("01-01", "05-01", "05-08", "07-14", "08-15", "11-01", "11-11", "12-25")]
            easter = _easter(y)
            holidays += [easter + 1, easter + 39, easter + 50]
        self.holiday = np.isin(dt, np.array(holidays, dtype="datetime64[D]"))
        self.business = (self.dow < 5) & ~self.holiday
        nb = _next_true(self.business)
        pb = _prev_true(self.business)
        self._next_business, self._prev_business = nb, pb
        after = nb[np.minimum(np.arange(n) + 1, n - 1)]
        before = pb[np.maximum(np.arange(n) - 1, 0)]
        month_end = self.business & (self.month[after] != self.month)

        def first_business_from(day: int) -> np.ndarray:
            return self.business & (self.dom >= day) & (
                (self.dom[before] < day) | (self.month[before] != self.month))

        tenth, twenty_fifth = first_business_from(10), first_business_from(25)
        runs = [self.business] + [self.business & (self.dow == k) for k in range(5)]
        runs += [month_end, tenth, tenth | twenty_fifth]
        self._runs = np.stack([_next_true(r) for r in runs]).astype(np.int32)
        self.month_end_2 = month_end | (self.business & month_end[after])

    def idx(self, day: np.ndarray) -> np.ndarray:
        return np.clip(day - self.first, 0, self.n - 1)

    def next_business(self, day: np.ndarray) -> np.ndarray:
        return np.where(day >= NEVER, day, self.first + self._next_business[self.idx(day)])

    def prev_business(self, day: np.ndarray) -> np.ndarray:
        return np.where(day >= NEVER, day, self.first + self._prev_business[self.idx(day)])

    def next_run(self, day: np.ndarray, pattern: np.ndarray) -> np.ndarray:
        return np.where(day >= NEVER, day, self.first + self._runs[pattern, self.idx(day)])
