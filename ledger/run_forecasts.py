"""What a scoring run forecast, stored beside the run (tables of migration 0007).

``save_run_forecast`` keeps a run's weekly collection forecast and, per invoice, its worklist rank
and payment-day quantiles; ``load_run_forecast`` reads them back. Monitoring judges these stored
figures against what came in, so forecast-vs-actual is exact whatever model is loaded later.
Nothing is updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ledger.schema import QUANTILE_LEVELS, run_forecasts, run_invoice_forecasts
from ledger.scores_store import _insert_many

QUANTILE_DAY_COLUMNS = [f"q{q}_days" for q in QUANTILE_LEVELS]
"""Per-invoice payment-day quantiles, days after the run's as_of."""

PERIOD_COLUMNS = ["period_start", "expected_amount", "low", "median_amount", "high", "due_schedule_amount"]


@dataclass
class RunForecast:
    """A run's stored forecast.

    Attributes:
        periods: one row per week (``PERIOD_COLUMNS``; ``period_start`` as ``datetime64``), EUR.
        invoices: one row per scored invoice: ``invoice_id``, ``rank`` (worklist order, 1 first)
            and ``QUANTILE_DAY_COLUMNS``.
    """

    periods: pd.DataFrame
    invoices: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.periods.empty and self.invoices.empty


def _float_rows(df: pd.DataFrame, cols: list[str]) -> dict[str, list]:
    out = {}
    for c in cols:
        v = pd.to_numeric(df[c]).astype("float64").to_numpy()
        values = np.array(v.tolist(), dtype=object)  # Python floats
        values[~np.isfinite(v)] = None
        out[c] = values.tolist()
    return out


def save_run_forecast(engine: sa.Engine, run_id: str, periods: pd.DataFrame, invoices: pd.DataFrame) -> None:
    """Store a run's forecast (in one transaction).

    Args:
        engine: an engine on the store (revision 0007 or later).
        run_id: the stored run (``score_runs.run_id``) the forecast belongs to.
        periods: ``period_start``, ``expected_amount``, ``low``, ``high`` and optionally
            ``median_amount``, ``due_schedule_amount`` (a ``build_collection_forecast`` frame).
        invoices: ``invoice_id``, ``rank`` (may be missing) and ``QUANTILE_DAY_COLUMNS``.

    Raises:
        ValueError: a required column is missing or an invoice appears twice.
    """
    need = {"period_start", "expected_amount", "low", "high"} - set(periods.columns)
    need |= {"invoice_id", *QUANTILE_DAY_COLUMNS} - set(invoices.columns)
    if need:
        raise ValueError(f"Cannot store the forecast of run {run_id}: missing column(s) {sorted(need)}.")
    if invoices["invoice_id"].duplicated().any():
        dups = invoices.loc[invoices["invoice_id"].duplicated(), "invoice_id"].head(5).tolist()
        raise ValueError(f"save_run_forecast needs one row per invoice_id; duplicated: {dups}.")
    pcols = [c for c in PERIOD_COLUMNS[1:] if c in periods.columns]
    pvals = _float_rows(periods, pcols)
    starts = pd.to_datetime(periods["period_start"]).dt.date.tolist()
    prows = [{"run_id": run_id, "period_start": s, **{c: pvals[c][i] for c in pcols}} for i, s in enumerate(starts)]
    qvals = _float_rows(invoices, QUANTILE_DAY_COLUMNS)
    ranks = (pd.to_numeric(invoices["rank"]).astype("Int64").astype("object").where(invoices["rank"].notna(), None)
             .tolist() if "rank" in invoices.columns else [None] * len(invoices))
    names = ["invoice_id", "rank", *QUANTILE_DAY_COLUMNS]
    values = [[str(iid) for iid in invoices["invoice_id"].tolist()], [None if r is None else int(r) for r in ranks],
              *(qvals[c] for c in QUANTILE_DAY_COLUMNS)]
    for j, name in enumerate(names):  # as a Core insert binds them
        process = run_invoice_forecasts.c[name].type.bind_processor(engine.dialect)
        if process is not None:
            values[j] = [None if x is None else process(x) for x in values[j]]
    with engine.begin() as conn:
        if prows:
            conn.execute(run_forecasts.insert(), prows)
        if len(invoices):  # one prepared statement, the driver's executemany (ledger.scores_store)
            _insert_many(conn, run_invoice_forecasts, run_id, names, values)


def load_run_forecast(engine: sa.Engine, run_id: str) -> RunForecast:
    """A run's stored forecast (empty frames when the run was stored without one)."""
    with engine.connect() as conn:
        p = conn.execute(sa.select(run_forecasts).where(run_forecasts.c.run_id == run_id)
                         .order_by(run_forecasts.c.period_start)).all()
        i = conn.execute(sa.select(run_invoice_forecasts).where(run_invoice_forecasts.c.run_id == run_id)).all()
    periods = pd.DataFrame(p, columns=[c.name for c in run_forecasts.columns]).drop(columns="run_id")
    periods["period_start"] = pd.to_datetime(periods["period_start"]).astype("datetime64[s]")
    for c in PERIOD_COLUMNS[1:]:
        periods[c] = pd.to_numeric(periods[c]).astype("float64")
    invoices = pd.DataFrame(i, columns=[c.name for c in run_invoice_forecasts.columns]).drop(columns="run_id")
    invoices["rank"] = pd.to_numeric(invoices["rank"]).astype("Int64")
    for c in QUANTILE_DAY_COLUMNS:
        invoices[c] = pd.to_numeric(invoices[c]).astype("float64")
    return RunForecast(periods=periods, invoices=invoices)


__all__ = ["QUANTILE_DAY_COLUMNS", "RunForecast", "load_run_forecast", "save_run_forecast"]
