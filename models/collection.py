"""The collection forecast as one answer: periods and totals, built here for the CLI, the API and the pages.

``build_forecast`` scores the open invoices (or takes their scores), adds the not-yet-issued line
and returns a ``CollectionForecast``; each caller only serializes it (``to_csv`` for the CSV the
CLI writes and the page offers, ``serving.frames.records`` for JSON).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import invoice_countries
from ledger.contracts import Ledger
from models.forecast import DEFAULT_CLIENT_CORRELATION, build_collection_forecast, build_open_amounts, build_run_rate

PERIOD_COLUMNS = ["period_start", "expected_amount", "low", "high", "due_schedule_amount", "not_yet_issued_amount"]
"""The columns of a period in every serialization of the forecast (CSV, JSON, page table)."""

MAX_HORIZON = 366
"""Most periods a forecast may cover (a year of days)."""

FREQS = ("W", "D")
"""W: weeks from Monday; D: days."""


@dataclass(frozen=True)
class CollectionForecast:
    """Expected collections per period with P10-P90 bands, and their totals.

    Attributes:
        as_of: the forecast day (start of day).
        freq, horizon: the periods (``FREQS``) and how many.
        n_invoices: open invoices behind it.
        client_correlation: the copula rho the bands were drawn with.
        periods: one row per period: ``PERIOD_COLUMNS`` and ``median_amount`` (EUR;
            ``not_yet_issued_amount`` NaN when no run rate was asked).
        totals: ``expected_amount``, ``due_schedule_amount``, ``not_yet_issued_amount`` (sums of the
            periods), ``low`` and ``high`` (P10/P90 of the total), ``open_amount`` and
            ``expected_beyond_horizon`` (EUR).
    """

    as_of: pd.Timestamp
    freq: str
    horizon: int
    n_invoices: int
    client_correlation: float
    periods: pd.DataFrame
    totals: dict[str, float]

    def to_csv(self) -> str:
        """The periods as CSV (``PERIOD_COLUMNS``, days as YYYY-MM-DD, amounts to the cent, empty when missing)."""
        csv = self.periods[PERIOD_COLUMNS].copy()
        csv["period_start"] = csv["period_start"].dt.strftime("%Y-%m-%d")
        return csv.to_csv(index=False, float_format="%.2f", lineterminator="\n")


def validate_horizon(horizon: int, freq: str) -> None:
    """Raises ValueError when ``horizon`` or ``freq`` is out of range (the message says what was expected)."""
    if freq not in FREQS:
        raise ValueError(f"freq must be W (weeks) or D (days); got {freq!r}.")
    if not 1 <= int(horizon) <= MAX_HORIZON:
        raise ValueError(f"horizon must be 1 to {MAX_HORIZON} periods; got {horizon}.")


def build_forecast(model, ledger: Ledger, as_of, *, horizon: int = 13, freq: str = "W", n_samples: int = 1000,
                   client_correlation: float | None = None, seed: int = 0, run_rate_weeks: int = 13,
                   scored: tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]] | None = None,
                   countries: np.ndarray | None = None) -> CollectionForecast:
    """The collection forecast of the invoices open at ``as_of``.

    Args:
        model: a fitted ``EncaisseModel`` (its ``payment_model_`` bounds the horizon).
        ledger: the ledger; only what is known at ``as_of`` is used.
        as_of: the forecast day (start of day).
        horizon, freq: number of periods, ``W`` or ``D`` (see ``validate_horizon``).
        n_samples: joint draws for the bands.
        client_correlation: copula rho of one client's invoices (None: the backtested default).
        seed: random seed of the draws.
        run_rate_weeks: weeks of issuance behind the not-yet-issued line; 0 leaves it out.
        scored: the open invoices' ``(scores, (days, cdf))`` when already scored; else the model scores them here.
        countries: ``features.calendar.invoice_countries`` of the scored invoices, when the caller has them
            already; else read here.
    """
    validate_horizon(horizon, freq)
    d = pd.Timestamp(as_of).normalize()
    known = ledger.known_at(d)
    scores, (days, cdf) = scored if scored is not None else model.score(known, d, return_cdf=True, n_reasons=0)
    scores["open_amount"] = build_open_amounts(scores, known, d)
    scores["country"] = invoice_countries(known, scores["invoice_id"]) if countries is None else countries
    run_rate = build_run_rate(known, d, n_weeks=run_rate_weeks) if run_rate_weeks > 0 else None
    rho = DEFAULT_CLIENT_CORRELATION if client_correlation is None else client_correlation
    frame = build_collection_forecast(scores, days, cdf, model.payment_model_, d, horizon=horizon, freq=freq,
                                      n_samples=n_samples, client_correlation=rho, seed=seed, run_rate=run_rate)
    if "not_yet_issued_amount" not in frame.columns:
        frame["not_yet_issued_amount"] = np.nan
    totals = {c: float(frame[c].sum()) for c in ("expected_amount", "due_schedule_amount", "not_yet_issued_amount")}
    totals.update(low=frame.attrs["total_low"], high=frame.attrs["total_high"], open_amount=frame.attrs["open_amount"],
                  expected_beyond_horizon=frame.attrs["expected_beyond_horizon"])
    return CollectionForecast(as_of=d, freq=freq, horizon=int(horizon), n_invoices=len(scores),
                              client_correlation=frame.attrs["client_correlation"], periods=frame, totals=totals)
