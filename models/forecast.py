"""Cash-collection forecast (encaissements) per week or day, with backtested uncertainty bands.

From the payment-date distributions of the invoices open at the start of ``as_of`` (``EncaisseModel.score
(..., return_cdf=True)``), the forecast says how much cash comes in per period:

    * ``expected_amount``: the expectation, sum over invoices of open amount x P(paid in the period),
      computed exactly (it is what the mean over samples converges to, without its noise);
    * ``low``, ``median_amount``, ``high``: P10, P50, P90 of the period total over ``n_samples``
      joint draws of every invoice's payment day;
    * ``due_schedule_amount``: the naive schedule, each open amount on its due date (overdue amounts
      in the first period);
    * ``not_yet_issued_amount`` (optional): collections on invoices issued from ``as_of`` on, from a
      run rate (``build_run_rate``), spread over the days of each week by the same calendar as the
      open invoices (their countries' mix). An expectation only, never mixed into the bands.

Periods: ``freq="W"`` weeks starting on Monday (the first one is the week holding ``as_of`` and only
counts days from ``as_of`` on), ``freq="D"`` days. Amounts are in the ledger currency (EUR). Inside a
bin of several days, a payment falls on a day in proportion to how the ledger's payments fall on the
weekdays and on the holidays of the invoice's country (``PaymentDateModel.payment_calendar_``,
``features.calendar``): a clearing ledger records next to none on weekends or on Christmas Day.
The invoices' countries come in a ``country`` column of the scores (``invoice_countries``).

Dependence: a client pays its invoices in the same payment run, or stops paying all of them. Draws
use a Gaussian copula with one shared factor per client: ``u = Phi(sqrt(rho) z_client +
sqrt(1 - rho) e_invoice)``. Each invoice keeps its own distribution (the mean does not move); the
bands widen with ``rho``. A mean-one lognormal factor per period total (``period_noise``) adds the
model's own error. A small factor shared by the whole book (``portfolio_correlation``) lets every
invoice pay faster or slower together in a draw. The three defaults were chosen together on a
rolling-origin backtest of the SAP slice (six monthly cutoffs), on the mean 80% interval score of the
weekly totals, and checked again with the current payment-date model over those six and two later
cutoffs: none of the triples that score better on the six covers more of the later cutoffs' weeks
(``bench/bench_forecast.py rolling``, bench/BACKTESTS.md).

Backtest (``evaluate_collection_forecast``): the actual collections of the invoices open at
``as_of``, per period, observed until ``end``. Censoring: an invoice unpaid by ``end`` contributes
nothing to any observed period (its payment, if any, falls after ``end``), and only periods that end
on or before ``end`` are scored, so an observed period's actual total is complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from features.calendar import DayClock
from features.invoices import open_invoices
from ledger.contracts import Ledger, isin
from models.evaluation import build_baselines
from models.grid import count_le, interp_rows

log = logging.getLogger(__name__)

DEFAULT_CLIENT_CORRELATION = 0.8
"""Copula correlation between one client's invoices (chosen with the two below, see the module
docstring). The interval score is nearly flat in it: one client matters little among ~1,000."""

DEFAULT_PORTFOLIO_CORRELATION = 0.05
"""Weight of one factor shared by all invoices (see ``sample_period_totals``). Without it the band
misses whole weeks in which the book as a whole paid faster or slower than each invoice's forecast."""

DEFAULT_PERIOD_NOISE = 0.2
"""Sigma of the mean-one lognormal model-error factor on each period total (see
``build_collection_forecast``): timing draws from the model's own distributions leave out its error."""

FREQS = {"W": 7, "D": 1}
_DRAWS_PER_CHUNK = 4_000_000
"""Invoice x sample draws held in memory at once (about 100 MB of work arrays)."""


# -- geometry ------------------------------------------------------------------------------------

def build_periods(as_of, horizon: int = 13, freq: str = "W") -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Period starts and their edges in days after ``as_of``.

    Returns:
        ``starts`` (``horizon`` dates: Mondays for ``W``, days for ``D``) and ``edges`` (horizon + 1
        floats): period p holds the payment days t (days after as_of) with edges[p] <= t < edges[p + 1];
        edges[0] = 0.
    """
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {sorted(FREQS)}; got {freq!r}.")
    if int(horizon) < 1:
        raise ValueError(f"horizon must be a positive number of periods; got {horizon!r}.")
    d = pd.Timestamp(as_of).normalize()
    step = FREQS[freq]
    first = d - pd.Timedelta(days=d.weekday()) if freq == "W" else d
    starts = pd.DatetimeIndex([first + pd.Timedelta(days=step * p) for p in range(int(horizon))])
    offset = (first - d).days
    edges = np.array([max(offset + step * p, 0) for p in range(int(horizon) + 1)], dtype=float)
    return starts, edges


MAX_CALENDAR_DAYS = 3660
"""Days of the weights table at most (ten years; the payment-date model's grid stops at its horizon)."""


def build_period_cdf(days: np.ndarray, cdf: np.ndarray, edges: np.ndarray, horizon_days: float,
                     day_weights: np.ndarray | DayClock | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """P(paid before each period edge), per invoice: (n, len(edges)), non-decreasing along rows.

    Edges past the model's horizon are cut at it (mass beyond it means 'not paid within the horizon').
    Inside a bin of several days the CDF rises linearly in calendar days or, with ``day_weights``
    ((groups, days) from as_of on, ``PaymentCalendar.day_weights``, or their ``DayClock``; ``rows``:
    each invoice's group), in proportion to the weights of its days: a ledger that records no payment
    on Sundays or on Christmas Day puts none of a week-long bin there.
    """
    n = len(cdf)
    if n == 0:
        return np.zeros((0, len(edges)))
    x = np.minimum(np.asarray(edges, dtype=float), horizon_days)
    x = np.ascontiguousarray(np.broadcast_to(x[None, :], (n, len(edges))))
    xp = days.astype(float)
    if day_weights is not None:
        clock = day_weights if isinstance(day_weights, DayClock) else DayClock(day_weights)
        xp, x = clock.at(xp, rows), clock.at(x, rows)
    g = interp_rows(x, xp, cdf.astype(float))
    g[:, 0] = np.where(edges[0] <= 0, 0.0, g[:, 0])
    return np.maximum.accumulate(np.clip(g, 0.0, 1.0), axis=1)


# -- sampling ------------------------------------------------------------------------------------

def _validate_rho(rho: float, rho_all: float = 0.0) -> tuple[float, float]:
    r, g = float(rho), float(rho_all)
    if not 0.0 <= r < 1.0:
        raise ValueError(f"client_correlation must be a float in [0, 1); got {rho!r}.")
    if not 0.0 <= g < 1.0 - r:
        raise ValueError(f"portfolio_correlation must be a float in [0, 1 - client_correlation) = [0, {1 - r:g}); "
                         f"got {rho_all!r}.")
    return r, g


def sample_period_totals(
    amounts: np.ndarray,
    clients: np.ndarray,
    period_cdf: np.ndarray,
    n_samples: int = 1000,
    client_correlation: float = DEFAULT_CLIENT_CORRELATION,
    seed: int = 0,
    portfolio_correlation: float = 0.0,
) -> np.ndarray:
    """Joint draws of the collections per period: (n_samples, n_periods) in EUR.

    Args:
        amounts: open amount per invoice (n,).
        clients: client id per invoice (n,); invoices of one client share a copula factor.
        period_cdf: ``build_period_cdf`` output (n, n_periods + 1).
        n_samples: number of joint draws.
        client_correlation: copula correlation rho in [0, 1).
        seed: random seed.
        portfolio_correlation: weight of one factor shared by every invoice (the whole book paying
            faster or slower), in [0, 1 - rho).
    """
    rho, rho_all = _validate_rho(client_correlation, portfolio_correlation)
    n, h1 = period_cdf.shape
    h = h1 - 1
    out = np.zeros((int(n_samples), h))
    if n == 0 or n_samples <= 0:
        return out
    codes, uniq = pd.factorize(pd.Series(clients).astype(str), sort=False)
    amounts = np.asarray(amounts, dtype=float)
    # u = Phi(x) falls in period p when G[:, p] <= u < G[:, p + 1]: counting the edges G[:, 1:] <= u
    # gives p (h = past the horizon). Compared on the latent normal scale, Phi^-1(G) <= x, so the
    # draws never go through Phi; float32 halves the memory traffic at no cost in precision here.
    gn = np.ascontiguousarray(ndtri(np.clip(period_cdf[:, 1:], 0.0, 1.0)), dtype=np.float32)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(int(n_samples), _DRAWS_PER_CHUNK // max(n, 1)))
    a, b, c = (np.float32(np.sqrt(v)) for v in (rho, 1.0 - rho - rho_all, rho_all))
    for s0 in range(0, int(n_samples), chunk):
        m = min(chunk, int(n_samples) - s0)
        x = rng.standard_normal((n, m), dtype=np.float32)
        if rho > 0 or rho_all > 0:
            z = rng.standard_normal((len(uniq), m), dtype=np.float32)
            zg = rng.standard_normal(m, dtype=np.float32)
            x *= b
            x += a * z[codes]
            x += c * zg[None, :]
        p = count_le(gn, x)
        flat = (np.arange(m)[None, :] * (h + 1) + p).ravel()
        w = np.broadcast_to(amounts[:, None], (n, m)).ravel()
        sums = np.bincount(flat, weights=w, minlength=m * (h + 1)).reshape(m, h + 1)
        out[s0:s0 + m] = sums[:, :h]
    return out


# -- run rate for invoices not yet issued ----------------------------------------------------------

@dataclass(frozen=True)
class RunRate:
    """Collections on invoices not yet issued at ``as_of``.

    Attributes:
        daily_amount: average amount invoiced per calendar day over the last ``n_weeks`` (EUR/day).
        lag_share: lag_share[k] = historical share of an invoice's amount collected k days after issue.
        n_weeks: length of the issuance window, weeks.
    """

    daily_amount: float
    lag_share: np.ndarray
    n_weeks: int

    def period_amounts(self, edges: np.ndarray, day_weights: np.ndarray | None = None) -> np.ndarray:
        """Expected collections per period (edges in days after as_of) from invoices issued from as_of on.

        ``day_weights``: the weight of each day from as_of on (at least as many as the last edge): each
        run of seven days from as_of keeps its amount, spread over its days in proportion to them (a
        ledger that records nothing on Sundays gets none of it there). None: every day alike.
        """
        t_end = int(np.ceil(edges[-1]))
        share = np.zeros(t_end)
        k = min(t_end, len(self.lag_share))
        share[:k] = self.lag_share[:k]
        # Issued at rate r on each day s >= 0, collected on day t with share[t - s]: r * cumsum(share)[t].
        daily = self.daily_amount * np.cumsum(share)
        if day_weights is not None and t_end > 0:
            w = np.asarray(day_weights, dtype=float)[:t_end]
            if len(w) < t_end or not np.all(np.isfinite(w)) or (w < 0).any():
                raise ValueError(f"day_weights must hold {t_end} finite values >= 0; got {len(w)}.")
            block = np.arange(t_end) // 7
            total, weight = np.bincount(block, weights=daily), np.bincount(block, weights=w)
            spread = np.where(weight[block] > 0, w / np.where(weight[block] > 0, weight[block], 1.0), 1.0 / 7)
            daily = total[block] * spread
        cum = np.concatenate([[0.0], np.cumsum(daily)])
        e = np.clip(np.round(edges).astype(int), 0, t_end)
        return np.diff(cum[e])


def build_run_rate(ledger: Ledger, as_of, n_weeks: int = 13, lookback_days: int = 365,
                   max_lag_days: int = 365) -> RunRate:
    """The issuance run rate and the issue-to-collection lag profile, from what was known at ``as_of``.

    The lag share at lag k is estimated on the invoices issued in the last ``lookback_days`` whose
    lag-k outcome was observable before ``as_of`` (issued at least k + 1 days before), so recent
    invoices do not bias it towards quick payers.
    """
    d = pd.Timestamp(as_of)
    inv = ledger.known_at(d).invoices
    inv = inv[inv["doc_type"] == "invoice"]
    recent = inv[inv["issue_date"] >= d - pd.Timedelta(weeks=int(n_weeks))]
    daily = float(recent["amount"].sum()) / (7.0 * int(n_weeks)) if n_weeks > 0 else 0.0
    hist = inv[inv["issue_date"] >= d - pd.Timedelta(days=int(lookback_days))]
    lag_share = np.zeros(int(max_lag_days) + 1)
    if len(hist):
        age = ((d - hist["issue_date"]) / pd.Timedelta(days=1)).to_numpy().astype(int)  # >= 1
        amt = hist["amount"].to_numpy(dtype=float)
        lag = ((hist["paid_date"] - hist["issue_date"]) / pd.Timedelta(days=1)).to_numpy()
        cap = int(max_lag_days) + 1
        # Denominator at lag k: amount of invoices with age - 1 >= k.
        den = np.bincount(np.clip(age - 1, 0, cap - 1), weights=amt, minlength=cap)[::-1].cumsum()[::-1]
        paid = ~np.isnan(lag)
        lk = np.clip(lag[paid], 0, None).astype(int)
        keep = lk < cap
        num = np.bincount(lk[keep], weights=amt[paid][keep], minlength=cap)
        lag_share = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return RunRate(daily_amount=daily, lag_share=lag_share, n_weeks=int(n_weeks))


# -- forecast ------------------------------------------------------------------------------------

def build_open_amounts(scores: pd.DataFrame, ledger: Ledger, as_of) -> pd.Series:
    """Amount still due at the start of ``as_of`` per scored invoice: amount - payments before as_of (EUR)."""
    pay = ledger.known_at(as_of).payments
    paid = pay.groupby("invoice_id")["amount"].sum() if len(pay) else pd.Series(dtype=float)
    got = scores["invoice_id"].map(paid).fillna(0.0).to_numpy()
    return pd.Series(np.clip(scores["amount"].to_numpy(dtype=float) - got, 0.0, None), index=scores.index)


def _amounts(scores: pd.DataFrame) -> np.ndarray:
    col = "open_amount" if "open_amount" in scores.columns else "amount"
    return scores[col].to_numpy(dtype=float)


def _period_of_day(t: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Period index of payment days t (days after as_of); len(edges) - 1 = past the horizon."""
    return np.searchsorted(edges[1:], t, side="right")


def _schedule(t: np.ndarray, amounts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    h = len(edges) - 1
    p = _period_of_day(np.maximum(np.floor(t), 0), edges)
    return np.bincount(p, weights=amounts, minlength=h + 1)[:h]


def build_collection_forecast(
    scores: pd.DataFrame,
    days: np.ndarray,
    cdf: np.ndarray,
    payment_model,
    as_of,
    horizon: int = 13,
    freq: str = "W",
    n_samples: int = 1000,
    client_correlation: float = DEFAULT_CLIENT_CORRELATION,
    seed: int = 0,
    run_rate: RunRate | None = None,
    portfolio_correlation: float = DEFAULT_PORTFOLIO_CORRELATION,
    period_noise: float = DEFAULT_PERIOD_NOISE,
    quantiles: tuple[float, float, float] = (0.1, 0.5, 0.9),
) -> pd.DataFrame:
    """Expected collections per period from the open invoices, with P10/P50/P90 bands.

    Args:
        scores: ``EncaisseModel.score`` output for the invoices open at ``as_of``: ``invoice_id``,
            ``client_id``, ``due_date`` and ``amount``; an ``open_amount`` column (amount less partial
            payments, ``build_open_amounts``) is used instead of ``amount`` when present.
        days, cdf: the score's distributions, (n, edges): days after as_of, P(paid before that day).
        payment_model: the fitted ``PaymentDateModel`` (its ``horizon_days`` bounds the forecast).
        as_of: the forecast day (start of day).
        horizon: number of periods.
        freq: ``W`` (weeks from Monday) or ``D`` (days).
        n_samples: joint draws for the bands.
        client_correlation: copula rho between one client's invoices, in [0, 1).
        seed: random seed.
        run_rate: when given, adds ``not_yet_issued_amount`` (never part of the bands).
        portfolio_correlation: weight of the factor shared by all invoices, in [0, 1 - rho).
        period_noise: sigma of a mean-one lognormal factor on each sampled period total: the model's
            own error, which the timing draws alone leave out (chosen by backtest like rho; 0 = none).
        quantiles: the low, median and high quantiles of the bands.

    Returns:
        One row per period: ``period_start``, ``expected_amount``, ``low``, ``median_amount``,
        ``high``, ``due_schedule_amount`` (EUR), and ``not_yet_issued_amount`` with a run rate.
        ``attrs`` holds ``as_of``, ``freq``, ``client_correlation``, ``n_samples``, ``open_amount``,
        ``expected_beyond_horizon`` and the total's ``total_low`` / ``total_median`` / ``total_high``.
    """
    n = len(scores)
    if days.shape != cdf.shape or len(cdf) != n:
        raise ValueError(f"days and cdf must both have one row per score row ({n}); "
                         f"got {days.shape} and {cdf.shape}.")
    d = pd.Timestamp(as_of).normalize()
    starts, edges = build_periods(d, horizon, freq)
    horizon_days = float(getattr(payment_model, "horizon_days", np.inf))
    amounts = _amounts(scores)
    # The table covers every grid day (the bins around the last edge set its share); past its end
    # the clock goes on at its last day's weight.
    n_days = int(np.ceil(min(max(float(np.max(days, initial=0.0)), float(edges[-1])), MAX_CALENDAR_DAYS))) + 2
    countries = scores["country"].to_numpy(dtype=object) if "country" in scores else None
    clock = payment_model.day_clock(d, n_days, countries)  # the day's, kept by the model
    g = build_period_cdf(days, cdf, edges, horizon_days, *(clock or (None, None)))
    expected = amounts @ np.diff(g, axis=1) if n else np.zeros(len(starts))
    totals = sample_period_totals(amounts, scores["client_id"].to_numpy(), g, n_samples=n_samples,
                                  client_correlation=client_correlation, seed=seed,
                                  portfolio_correlation=portfolio_correlation)
    if period_noise > 0:
        rng = np.random.default_rng([seed, 1])
        totals = totals * np.exp(period_noise * rng.standard_normal(totals.shape) - period_noise ** 2 / 2)
    lo, med, hi = np.quantile(totals, quantiles, axis=0)
    t_due = ((scores["due_date"] - d) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    frame = pd.DataFrame({
        "period_start": starts,
        "expected_amount": expected,
        "low": lo,
        "median_amount": med,
        "high": hi,
        "due_schedule_amount": _schedule(t_due, amounts, edges),
    })
    if run_rate is not None:
        mix = None
        if clock is not None and n:
            # The book's day weights: each country's, by its share of the open amount.
            table, groups = clock[0].weights, clock[1]
            share = np.bincount(np.zeros(n, dtype=np.intp) if groups is None else groups, weights=amounts,
                                minlength=len(table))
            mix = share @ table / share.sum() if share.sum() > 0 else table.mean(axis=0)
        frame["not_yet_issued_amount"] = run_rate.period_amounts(edges, mix)
    tot = totals.sum(axis=1)
    frame.attrs.update(
        as_of=str(d.date()), freq=freq, client_correlation=float(client_correlation),
        portfolio_correlation=float(portfolio_correlation), period_noise=float(period_noise),
        n_samples=int(n_samples),
        open_amount=float(amounts.sum()), expected_beyond_horizon=float(amounts.sum() - expected.sum()),
        total_low=float(np.quantile(tot, quantiles[0])), total_median=float(np.quantile(tot, quantiles[1])),
        total_high=float(np.quantile(tot, quantiles[2])),
    )
    return frame


# -- baselines and backtest ----------------------------------------------------------------------

def build_baseline_schedules(scores: pd.DataFrame, ledger: Ledger, as_of, horizon: int = 13,
                             freq: str = "W") -> dict[str, pd.DataFrame]:
    """The two naive collection schedules the forecast must beat, from what was known at ``as_of``.

    * ``due_date``: each open amount on its due date (overdue amounts in the first period);
    * ``client_median_delay``: on due date + the client's median delay (days past due) over its
      invoices paid before as_of (all clients' median without history), or as_of if that is past.

    Returns:
        name -> frame with ``period_start`` and ``expected_amount`` (no band).
    """
    d = pd.Timestamp(as_of).normalize()
    starts, edges = build_periods(d, horizon, freq)
    amounts = _amounts(scores)
    base = build_baselines(ledger, d, scores)
    out = {}
    for name in ("due_date", "client_median_delay"):
        t = base[name]["p50_days"].to_numpy(dtype=float)
        out[name] = pd.DataFrame({"period_start": starts, "expected_amount": _schedule(t, amounts, edges)})
    return out


def build_actual_collections(ledger: Ledger, as_of, end, horizon: int = 13, freq: str = "W") -> pd.DataFrame:
    """What the invoices open at the start of ``as_of`` brought in per period, observed until ``end``.

    Cash is read from ``payments`` (dated in [as_of, end)) when the ledger records payments; otherwise
    (an extract with clearing dates only) each invoice's open amount counts on its ``paid_date``.

    Returns:
        ``period_start``, ``actual_amount`` (EUR) and ``observed``: the period ends on or before
        ``end``, so its total is complete (later periods hold only a part and are not scored).
    """
    d, e = pd.Timestamp(as_of).normalize(), pd.Timestamp(end).normalize()
    starts, edges = build_periods(d, horizon, freq)
    opened = open_invoices(ledger.known_at(d), d)
    ids = opened["invoice_id"]
    if len(ledger.payments):
        pay = ledger.payments
        pay = pay[isin(pay["invoice_id"], ids) & (pay["paid_date"] >= d).to_numpy() & (pay["paid_date"] < e).to_numpy()]
        t, amt = ((pay["paid_date"] - d) / pd.Timedelta(days=1)).to_numpy(dtype=float), pay["amount"].to_numpy(float)
    else:
        paid = ledger.invoices.set_index("invoice_id")["paid_date"].reindex(ids).to_numpy()
        paid = pd.Series(paid, index=opened.index)
        ok = (paid >= d) & (paid < e)
        t = ((paid[ok] - d) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        amt = opened.loc[ok, "amount"].to_numpy(dtype=float)
    period_end = (d + pd.to_timedelta(edges[1:], unit="D"))
    return pd.DataFrame({
        "period_start": starts,
        "actual_amount": _schedule(t, amt, edges),
        "observed": np.asarray(period_end <= e),
    })


def evaluate_collection_forecast(forecast_frame: pd.DataFrame, ledger: Ledger, as_of, end,
                                 freq: str = "W") -> dict:
    """Backtest metrics of a collection forecast (or a baseline schedule) against what was collected.

    Only periods that end on or before ``end`` count (censoring: a later period is only partly
    observed; an invoice unpaid by ``end`` adds nothing to any scored period).

    Returns:
        ``{prefix}_wape`` = sum |expected - actual| / sum actual over the scored periods,
        ``{prefix}_band_coverage`` = share of them with low <= actual <= high (None without a band),
        with prefix ``weekly`` or ``daily``; ``n_periods``, ``actual_total``, ``forecast_total`` and
        ``periods``: one dict per scored period (period_start, expected, low, high, actual).
    """
    prefix = {"W": "weekly", "D": "daily"}.get(freq)
    if prefix is None:
        raise ValueError(f"freq must be one of {sorted(FREQS)}; got {freq!r}.")
    fc = forecast_frame.reset_index(drop=True)
    actual = build_actual_collections(ledger, as_of, end, horizon=len(fc), freq=freq)
    if not (pd.DatetimeIndex(fc["period_start"]) == pd.DatetimeIndex(actual["period_start"])).all():
        raise ValueError(f"forecast_frame's period_start must be the {freq} periods from {pd.Timestamp(as_of).date()}; "
                         f"got {list(fc['period_start'][:3])}...")
    m = actual["observed"].to_numpy()
    f = fc.loc[m, "expected_amount"].to_numpy(dtype=float)
    a = actual.loc[m, "actual_amount"].to_numpy(dtype=float)
    has_band = {"low", "high"} <= set(fc.columns)
    res: dict = {"n_periods": int(m.sum()), "actual_total": float(a.sum()), "forecast_total": float(f.sum())}
    res[f"{prefix}_wape"] = float(np.abs(f - a).sum() / a.sum()) if a.sum() > 0 else None
    if has_band and m.any():
        lo, hi = fc.loc[m, "low"].to_numpy(dtype=float), fc.loc[m, "high"].to_numpy(dtype=float)
        res[f"{prefix}_band_coverage"] = float(((lo <= a) & (a <= hi)).mean())
    else:
        res[f"{prefix}_band_coverage"] = None
    rows = pd.DataFrame({"period_start": fc.loc[m, "period_start"].astype(str).to_numpy(), "expected": f, "actual": a})
    if has_band:
        rows["low"], rows["high"] = fc.loc[m, "low"].to_numpy(), fc.loc[m, "high"].to_numpy()
    res["periods"] = rows.to_dict("records")
    return res
