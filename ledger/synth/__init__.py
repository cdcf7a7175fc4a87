"""Synthetic receivables ledger: realistic, seeded, vectorized.

``make_ledger(n_clients, years, seed, end_date)`` returns a :class:`~ledger.contracts.Ledger` whose
four tables follow the canonical contracts exactly. ``make_synthetic`` returns the same ledger with
the hidden truth beside it (each client's payer profile, each invoice's uncensored clearing day),
for tests and benchmarks that must judge a model against what really drove the data.

How the data is made (all days are calendar days, all amounts EUR):

* Clients get a segment (SME, mid-market, key account, public sector), a hidden payer profile
  (punctual, slightly late, chronic late, deteriorating, in difficulty, defaulting), main payment
  terms within the French LME limits (30 net, 45 end of month, 60 net), a payment-run habit (any
  business day, a fixed weekday, month end, the 10th, the 10th and 25th) and an activity window.
  Each has a billing contact (email, phone, postal address, language, opt-out; some only a phone, a
  few none: ``ledger.synth.contacts``).
* Invoices arrive as a Poisson process per client, heavier on the last business days of the month
  and lighter in August and over Christmas; amounts are lognormal around a client median that
  depends on the segment.
* Each invoice gets a *natural* payment day from the profile (delay after due, noise, heavy tail,
  a drift for deteriorating clients, a difficulty window, a default day after which nothing is
  paid), slowed in August and late December.
* Disputes (a few %) are raised days after issue, stop dunning and end in a credit note (full or
  partial) or a late payment.
* The dunning ladder (preventive J-5, reminder J+1, firmer reminder or call J+10..15, formal notice
  J+30, agency J+60..75) runs step by step, only while the invoice is still open on the action day.
  Each step may shorten the remaining delay of responsive profiles; calls and letters may yield a
  promise to pay, kept or broken depending on the profile.
* The final day is moved to the client's next payment run; some invoices are paid in parts
  (installment plans for clients in difficulty, short payments, a last partial payment before a
  default). Everything after ``end_date`` is cut: payments and actions are dropped and
  ``paid_date`` is empty (censored).

Outcomes in ``actions`` are what was known on the action day (no answer, a promise, a refusal, the
client saying the payment is on its way); a promise row's outcome is empty, since whether it was
kept is only known later and is read from ``payments``. ``disputed`` and ``dunning_block`` hold
the state at export, like a real extract.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ledger.contracts import ACTIONS, CLIENTS, INVOICES, PAYMENTS, Ledger, Table
from ledger.synth.control import ControlSim, true_uplift
from ledger.synth.generator import SyntheticLedger, _Generator
from ledger.synth.params import PROFILES

__all__ = ["PROFILES", "ControlSim", "SyntheticLedger", "make_ledger", "make_synthetic", "true_uplift", "write_ledger"]


def make_ledger(n_clients: int, years: int = 2, seed: int = 0, end_date: str = "2025-12-31") -> Ledger:
    """A realistic synthetic ledger of ``n_clients`` clients over ``years`` years up to ``end_date``.

    Same arguments, same ledger (and same CSV bytes through :func:`write_ledger`). About 47
    invoices per client over two years.
    """
    return make_synthetic(n_clients, years=years, seed=seed, end_date=end_date).ledger


def make_synthetic(
    n_clients: int, years: int = 2, seed: int = 0, end_date: str = "2025-12-31", control: ControlSim | None = None
) -> SyntheticLedger:
    """Like :func:`make_ledger`, with the hidden profiles and uncensored outcomes beside it.

    With ``control``, the dunning holds back control groups as the dunning run does, and the result
    carries each testable step's true effect (``control_truth``, :func:`true_uplift`). Without it,
    the ledger is the same as before control groups existed.
    """
    if isinstance(n_clients, bool) or not isinstance(n_clients, (int, np.integer)) or n_clients < 1:
        raise ValueError(f"n_clients must be an integer >= 1. Got {n_clients!r} instead.")
    if isinstance(years, bool) or not isinstance(years, (int, np.integer)) or not 1 <= years <= 20:
        raise ValueError(f"years must be an integer in [1, 20]. Got {years!r} instead.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0. Got {seed!r} instead.")
    try:
        end = pd.Timestamp(end_date).normalize()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"end_date must be a date like '2025-12-31'. Got {end_date!r} instead.") from exc
    return _Generator(int(n_clients), int(years), int(seed), end, control=control).run()


def write_ledger(ledger: Ledger, out_dir: str | Path) -> dict[str, Path]:
    """Write the ledger as canonical CSV files (``invoices.csv``, ...) in ``out_dir``.

    Dates are ISO days, amounts are rounded to cents, empty cells are empty. Byte-for-byte
    deterministic. Returns the written paths by table name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table, frame in ((INVOICES, ledger.invoices), (PAYMENTS, ledger.payments),
                         (CLIENTS, ledger.clients), (ACTIONS, ledger.actions)):
        path = out / f"{table.name}.csv"
        _to_csv_frame(frame, table).to_csv(path, index=False, lineterminator="\n")
        paths[table.name] = path
    return paths


def _to_csv_frame(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    cols = table.names + [c for c in frame.columns if c not in table.names]
    out = frame[cols].copy()
    for c in table.columns:
        if c.kind == "date":
            # Whole days: pandas then writes ISO days (and empty cells for NaT) on its fast path.
            out[c.name] = pd.to_datetime(out[c.name]).dt.floor("D")
        elif c.kind == "amount":
            out[c.name] = pd.to_numeric(out[c.name]).round(2)
    return out
