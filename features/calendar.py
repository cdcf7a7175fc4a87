"""When a ledger's payments can fall: its weekdays, and its countries' public holidays.

A clearing ledger records next to no payment on weekends, and on the days its banks are closed.
``payment_calendar(ledger, as_of)`` reads both from the payments known before ``as_of``:

    * the weight of each weekday, relative to a day of the mean, per country (shrunk to the ledger's
      weekdays: a Swedish ledger pays little on Tuesdays, a Dutch one most on Thursdays and Fridays);
    * per country, each holiday's weight relative to an ordinary day of the same weekday, read from
      its occurrences in the lookback and shrunk to the country's holidays as a whole (and those
      to all of the ledger's holidays): a holiday on which the banks stayed open (the Netherlands' King's
      Day) keeps most of its payments, one that closed them (Christmas) keeps next to none, and a
      holiday not seen yet weighs what the country's others weighed.

``PaymentCalendar.day_weights`` gives the weight of each day from a date on, per country; the cash
forecast spreads a payment-date bin's probability over its days in proportion to them
(``models.forecast.build_period_cdf``).

Holidays come from the ``holidays`` package: the public holidays, and the de facto days off where the
package lists them (Sweden's Midsummer, Christmas and New Year's Eves). Countries are ISO 3166
alpha-2 codes as the ledger's ``country`` column holds them (the invoice's, else its client's); a
country the package does not know, or an invoice without a country, gets the weekdays only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import holidays
import numpy as np
import pandas as pd

from ledger.contracts import Ledger

WEEKDAY_MIN_PAYMENTS = 200
"""Clearings and payments a ledger needs over the lookback before its weekdays are told apart."""

HOLIDAY_CATEGORIES = ("public", "de_facto")
"""The ``holidays`` categories read: the days off by law, and those off in practice."""

WEEKDAY_PRIOR_PAYMENTS = 100.0
"""Shrinkage of a country's weekdays: its payments count against this many spread as the ledger's."""

HOLIDAY_PRIOR_PAYMENTS = 20.0
"""Shrinkage of a holiday's weight: its observed payments count against this many expected payments
at the weight of the level above (the country's holidays, then all holidays, then 1: no effect)."""


@functools.lru_cache(maxsize=4096)
def _country_holidays(country: str, year: int) -> tuple[tuple[pd.Timestamp, str], ...]:
    """(day, name) of a country's holidays in a year; none for a country ``holidays`` does not know."""
    try:
        supported = holidays.country_holidays(country).supported_categories
    except NotImplementedError:
        return ()
    categories = tuple(c for c in HOLIDAY_CATEGORIES if c in supported)
    days = holidays.country_holidays(country, years=year, categories=categories)
    return tuple(sorted((pd.Timestamp(day), name) for day, name in days.items()))


@functools.lru_cache(maxsize=512)
def knows_country(country: str) -> bool:
    """Whether the ``holidays`` package has a calendar for ``country`` (an ISO 3166 alpha-2 code)."""
    code = _code(country)
    if code is None:
        return False
    try:
        holidays.country_holidays(code)
    except NotImplementedError:
        return False
    return True


@functools.lru_cache(maxsize=512)
def weekend_days(country: str | None) -> tuple[int, ...]:
    """The weekdays (0 = Monday) that are a country's weekend, as the ``holidays`` package knows them
    (Friday and Saturday in Saudi Arabia or Israel); Saturday and Sunday for a country it does not know."""
    code = _code(country)
    if code is not None:
        try:
            return tuple(sorted(holidays.country_holidays(code).weekend))
        except NotImplementedError:
            pass
    return (5, 6)


def _code(country) -> str | None:
    """``country`` as an upper-case code; None when missing or empty."""
    if country is None or (not isinstance(country, str) and pd.isna(country)):
        return None
    return str(country).strip().upper() or None


def holidays_between(country: str | None, start, end) -> dict[pd.Timestamp, str]:
    """A country's holidays on the days in [start, end), by day (names as ``holidays`` gives them)."""
    code = _code(country)
    if code is None:
        return {}
    lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    return {day: name for year in range(lo.year, hi.year + 1)
            for day, name in _country_holidays(code, year) if lo <= day < hi}


def _clean_countries(values: pd.Series) -> pd.Series:
    """Upper-case codes; None where empty."""
    s = values.astype("string").str.strip().str.upper()
    s = s.mask(s == "")
    return pd.Series(s.to_numpy(dtype=object, na_value=None), index=values.index, dtype=object)


def invoice_countries(ledger: Ledger, invoice_ids) -> np.ndarray:
    """The country of each invoice in ``invoice_ids``: the invoice's own, else its client's; None
    when neither says (or the invoice is not in the ledger)."""
    inv = ledger.invoices
    index = pd.Index(inv["invoice_id"])
    asked = np.asarray(invoice_ids, dtype=object)
    if index.is_unique:
        pos = index.get_indexer(asked)
    else:  # an id given twice: its first row, as everywhere else
        first = np.flatnonzero(~index.duplicated())
        pos = index[first].get_indexer(asked)
        pos = np.where(pos >= 0, first[pos], -1)
    found = pos >= 0
    out = np.full(len(pos), None, dtype=object)
    # Only the rows asked for: cleaning a whole ledger's countries costs seconds at a million invoices.
    out[found] = rows_countries(inv.iloc[pos[found]], ledger.clients)
    return out


def rows_countries(invoices: pd.DataFrame, clients: pd.DataFrame | None) -> np.ndarray:
    """The country of each row of ``invoices``: its own ``country``, else its client's; None when
    neither says."""
    own = (_clean_countries(invoices["country"]) if "country" in invoices
           else pd.Series(None, index=invoices.index, dtype=object))
    if clients is not None and "country" in clients and len(clients):
        by_client = pd.Series(_clean_countries(clients["country"]).to_numpy(), index=clients["client_id"].to_numpy())
        by_client = by_client[~by_client.index.duplicated()]
        own = own.where(own.notna(), invoices["client_id"].map(by_client))
    return own.astype("string").to_numpy(dtype=object, na_value=None)


def holiday_dates(country: str | None, years) -> np.ndarray:
    """A country's holidays in ``years``, as sorted ``datetime64[D]`` (none for an unknown country)."""
    code = _code(country)
    if code is None:
        return np.array([], dtype="datetime64[D]")
    return np.array(sorted(day for year in sorted(set(int(y) for y in years))
                           for day, _ in _country_holidays(code, year)), dtype="datetime64[D]")


@dataclass(eq=False)
class PaymentCalendar:
    """Relative weight of each day for a payment, by weekday and by country's holiday.

    Attributes:
        weekday_weights: 7 weights, Monday first, of mean 1: the ledger's.
        country_weekday_weights: per country, its own 7 weights (a country without: the ledger's, its
            weekend moved to the country's when the ``holidays`` package says it is not Saturday-Sunday).
        holiday_weights: per country, per holiday name, the weight of that holiday relative to an
            ordinary day of its weekday (0 to about 1).
        country_weights: per country, the weight of a holiday of it that has no weight of its own.
        default_holiday_weight: the weight of a holiday of a country not seen in the ledger.
    """

    weekday_weights: np.ndarray
    country_weekday_weights: dict[str, np.ndarray] = field(default_factory=dict)
    holiday_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    country_weights: dict[str, float] = field(default_factory=dict)
    default_holiday_weight: float = 1.0

    def __post_init__(self):
        self.weekday_weights = _valid_weekdays(self.weekday_weights)
        self.country_weekday_weights = {c: _valid_weekdays(w, c) for c, w in self.country_weekday_weights.items()}

    def holiday_weight(self, country: str, name: str) -> float:
        """The weight of holiday ``name`` of ``country`` relative to an ordinary day."""
        own = self.holiday_weights.get(country, {})
        return float(own.get(name, self.country_weights.get(country, self.default_holiday_weight)))

    def day_weights(self, start, n_days: int, countries) -> np.ndarray:
        """(len(countries), n_days): the weight of day k after ``start`` (day 0) for an invoice of each
        country (None: the weekdays only). Every weight is > 0 when the weekdays' are."""
        d = pd.Timestamp(start).normalize()
        days = pd.date_range(d, periods=int(n_days), freq="D")
        dow = days.day_of_week.to_numpy()
        out = np.tile(self.weekday_weights[dow], (len(countries), 1))
        end = d + pd.Timedelta(days=int(n_days))
        for i, country in enumerate(countries):
            code = _code(country)
            own = self.country_weekday_weights.get(code) if code else None
            if own is None and code is not None:
                own = weekend_moved(self.weekday_weights, code)  # not seen in the ledger
            if own is not None:
                out[i] = own[dow]
            for day, name in holidays_between(code, d, end).items():
                out[i, (day - d).days] *= self.holiday_weight(code, name)
        return out


def weekend_moved(weights: np.ndarray, country: str) -> np.ndarray:
    """Weekday ``weights`` (Monday first) of a ledger whose weekend is Saturday-Sunday, for a country
    whose weekend is other days (``weekend_days``): the mean of the working days on its working days,
    the weekend's mean on its weekend; the same weights for a Saturday-Sunday country."""
    weekend = weekend_days(country)
    if weekend == (5, 6):
        return weights
    return np.where(np.isin(np.arange(7), weekend), weights[5:].mean(), weights[:5].mean())


def _valid_weekdays(weights, country: str | None = None) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (7,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        whose = f" of {country}" if country else ""
        raise ValueError(f"weekday weights{whose} must be 7 finite values >= 0, not all 0 (Monday first); "
                         f"got {w.tolist()}.")
    return w


def _payment_days(ledger: Ledger, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """The day and country of every document cleared and payment received in [lo, hi)."""
    inv = ledger.invoices
    parts = []
    if "paid_date" in inv:
        paid = pd.to_datetime(inv["paid_date"])
        m = (paid >= lo) & (paid < hi)
        parts.append(pd.DataFrame({"day": paid[m].to_numpy(), "country": rows_countries(inv[m], ledger.clients)}))
    pays = ledger.payments
    if pays is not None and "paid_date" in pays and len(pays):
        paid = pd.to_datetime(pays["paid_date"])
        m = (paid >= lo) & (paid < hi)
        parts.append(pd.DataFrame({"day": paid[m].to_numpy(),
                                   "country": invoice_countries(ledger, pays.loc[m, "invoice_id"])}))
    if not parts:
        return pd.DataFrame({"day": pd.Series(dtype="datetime64[ns]"), "country": pd.Series(dtype=object)})
    out = pd.concat(parts, ignore_index=True)
    out["day"] = pd.to_datetime(out["day"]).dt.normalize()
    return out


def payment_calendar(ledger: Ledger, as_of, lookback_days: int = 365) -> PaymentCalendar | None:
    """The ledger's payment calendar from the payments of the ``lookback_days`` before ``as_of``.

    Reads only what was known then. Weekdays: the documents cleared and payments received on each,
    plus one each so that none weighs nothing; per country, its payments per ordinary day (not a
    holiday) of each weekday, plus ``WEEKDAY_PRIOR_PAYMENTS`` spread as the ledger's (its weekend moved to
    the country's, ``weekend_moved``). Holidays: per
    country, the payments on each of its holidays between its first and last payment in the window,
    against the country's payments on an ordinary day of that weekday, shrunk by
    ``HOLIDAY_PRIOR_PAYMENTS``. Returns None with fewer than ``WEEKDAY_MIN_PAYMENTS`` payments.
    """
    d = pd.Timestamp(as_of).normalize()
    pays = _payment_days(ledger, d - pd.Timedelta(days=int(lookback_days)), d)
    if len(pays) < WEEKDAY_MIN_PAYMENTS:
        return None
    counts = np.bincount(pays["day"].dt.day_of_week.to_numpy(dtype=int), minlength=7)[:7] + 1.0
    weekdays = counts / counts.mean()

    seen = {}  # country -> [(holiday name, payments on it, payments expected on an ordinary day)]
    country_weekdays = {}
    share = counts / counts.sum()
    for country, group in pays.dropna(subset=["country"]).groupby("country"):
        # The country's own history only: days before its first payment or after its last are not
        # taken for closed, nor counted as ordinary days without payments.
        window = pd.date_range(group["day"].min(), group["day"].max(), freq="D")
        hol = holidays_between(country, window[0], window[-1] + pd.Timedelta(days=1))
        daily = group["day"].value_counts().reindex(window, fill_value=0).to_numpy(dtype=float)
        is_hol = window.isin(list(hol))
        dow = window.day_of_week.to_numpy()
        n_ordinary = np.bincount(dow[~is_hol], minlength=7)[:7]
        # Payments per ordinary day of each weekday: a weekday that often falls on a holiday (Monday)
        # has fewer ordinary days, not a lower weight.
        rate = np.bincount(dow[~is_hol], weights=daily[~is_hol], minlength=7)[:7] / np.maximum(n_ordinary, 1)
        own = rate * len(window) / 7 + WEEKDAY_PRIOR_PAYMENTS * weekend_moved(share, country)
        country_weekdays[country] = own / own.mean()
        if hol:
            seen[country] = [(name, float(daily[(day - window[0]).days]), float(rate[day.day_of_week]))
                             for day, name in hol.items()]

    a = HOLIDAY_PRIOR_PAYMENTS
    obs = sum(o for rows in seen.values() for _, o, _ in rows)
    exp = sum(e for rows in seen.values() for _, _, e in rows)
    overall = (obs + a) / (exp + a)
    country_w, holiday_w = {}, {}
    for country, rows in seen.items():
        c_obs, c_exp = sum(o for _, o, _ in rows), sum(e for _, _, e in rows)
        cw = country_w[country] = (c_obs + a * overall) / (c_exp + a)
        by_name: dict[str, list[float]] = {}
        for name, o, e in rows:
            by_name.setdefault(name, [0.0, 0.0])
            by_name[name][0] += o
            by_name[name][1] += e
        holiday_w[country] = {name: (o + a * cw) / (e + a) for name, (o, e) in by_name.items()}
    return PaymentCalendar(weekday_weights=weekdays, country_weekday_weights=country_weekdays, holiday_weights=holiday_w,
                           country_weights=country_w, default_holiday_weight=overall)


class DayClock:
    """A table of day weights made ready to read: checked once, its running sums taken once.

    ``weights``: (groups, days) weights >= 0 of the days from as_of on (``PaymentCalendar.day_weights``),
    no group all 0. A server reads the same day's table at every request: ``PaymentDateModel.day_clock``
    keeps the clock, so a call pays for its own rows only.

    Attributes (flat arrays, group after group, read-only: shared between a server's threads):
        starts, ends: the clock at the start and at the end of each day; ``ends`` of group g are
            shifted by g * ``gap`` (more than any group's total), so that one search covers every group.
        first_open: per group and day, the first day from it with a weight (the last such day when
            none follows).
    """

    def __init__(self, weights: np.ndarray):
        w = np.array(weights, dtype=float)  # a copy: made read-only below, not the caller's table
        if w.ndim != 2 or w.shape[1] == 0 or not np.all(np.isfinite(w)) or (w < 0).any() or (w.sum(axis=1) <= 0).any():
            raise ValueError("day weights must be a (groups, days) table of finite values >= 0, no row all 0; "
                             f"got shape {w.shape}.")
        self.weights = _frozen(w)
        self.groups, self.n_days = groups, m = w.shape
        ends = np.cumsum(w, axis=1)
        # Exclusive sums from the same running sum: a day's start is its previous day's end exactly.
        self.starts = _frozen(np.concatenate([np.zeros((groups, 1)), ends[:, :-1]], axis=1).ravel())
        self.gap = float(ends.max()) + 1.0
        self.ends = _frozen((ends + self.gap * np.arange(groups)[:, None]).ravel())
        # A reverse running minimum over the indices of the days with a weight.
        day = np.broadcast_to(np.arange(m), w.shape)
        nxt = np.minimum.accumulate(np.where(w > 0, day, m)[:, ::-1], axis=1)[:, ::-1]
        last = np.where(w > 0, day, -1).max(axis=1, keepdims=True)
        self.first_open = _frozen(np.where(nxt < m, nxt, last).ravel())

    def at(self, t: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Weight of the days in [0, t), day k of row i weighing ``weights[rows[i], k]``; linear inside a
        day, so ``t`` may hold fractions (and beyond the table's ends, at the weight of its first or last day).

        Args:
            t: days after as_of, any shape; with ``rows``, (n, m) or (n,).
            rows: the group of each row of ``t`` (None: group 0 for every value).
        """
        t = np.asarray(t, dtype=float)
        if not np.all(np.isfinite(t)):
            raise ValueError("the calendar clock needs finite days.")
        whole = np.clip(np.floor(t), 0, self.n_days - 1)
        idx = whole.astype(np.intp)
        if rows is not None:  # one flat table: a group's days follow the previous group's
            idx += np.asarray(rows, dtype=np.intp).reshape((-1,) + (1,) * (t.ndim - 1)) * self.n_days
        out = t - whole
        out *= self.weights.ravel()[idx]
        out += self.starts[idx]
        return out


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # shared between a server's threads
    return a
