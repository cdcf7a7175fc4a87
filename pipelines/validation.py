"""Forecasts of the invoices open on given days, judged on what happened up to an outcome day.

Shared by ``train`` (validation on the latest period), ``tune`` and ``backtest``. Metrics come
from ``models.evaluation`` (truncated at the censoring day; see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import invoice_countries
from features.invoices import open_invoices
from ledger.contracts import Ledger
from models.evaluation import PINBALL_LEVELS, QUANTILE_COLUMNS, build_baselines, build_truth, evaluate_forecasts
from models.scorer import EncaisseModel

METRICS = ("auc_p_late", "brier_p_late", "mae_days", "bias_days", "within_7d", "interval_coverage",
           "interval_width_days", "pinball_days", "auc_p_very_late", "brier_p_very_late")
"""The headline metrics, in report order."""

BASELINES = ("historical_rate", "due_date", "client_median_delay")

FORECAST_COLUMNS = ["p_late", "p10_days", "p50_days", "p90_days"]
"""What every forecaster gives, the baselines too; the model also gives ``p_very_late`` (``MODEL_COLUMNS``)."""

MODEL_COLUMNS = [*FORECAST_COLUMNS, "p_very_late"]


@dataclass
class EvaluationSet:
    """The invoices open on each of ``days``, with their outcomes up to ``outcome_end``.

    Attributes:
        days: the scoring days.
        outcome_end: outcomes are observed up to (excluded) this day.
        rows: one row per (day, open invoice): ``as_of``, ``invoice_id``, ``client_id``, ``due_date``.
        truth: aligned with ``rows`` (``models.evaluation.build_truth`` columns).
        baselines: name -> forecasts aligned with ``rows`` (``FORECAST_COLUMNS``).
    """

    days: list[pd.Timestamp]
    outcome_end: pd.Timestamp
    rows: pd.DataFrame
    truth: pd.DataFrame
    baselines: dict[str, pd.DataFrame]

    @property
    def days_to_due(self) -> np.ndarray:
        """Due date - scoring day, in days (negative: overdue)."""
        return ((self.rows["due_date"] - self.rows["as_of"]) / pd.Timedelta(days=1)).to_numpy()


def build_evaluation_set(ledger: Ledger, days, outcome_end) -> EvaluationSet:
    """Open invoices on each day (features see only what was known then), outcomes until ``outcome_end``.

    Args:
        ledger: the ledger; payments dated on or after ``outcome_end`` are not seen.
        days: scoring days, each before ``outcome_end``.
        outcome_end: the censoring day.
    """
    end = pd.Timestamp(outcome_end)
    days = sorted(pd.Timestamp(d) for d in days)
    if not days or days[-1] >= end:
        raise ValueError(f"Scoring days must be non-empty and before the outcome day {end.date()}; got {days}.")
    known = ledger.known_at(end)
    rows, truths, bases = [], [], {name: [] for name in BASELINES}
    for day in days:
        open_ = open_invoices(known, day).sort_values("invoice_id", kind="stable")
        frame = open_[["invoice_id", "client_id", "due_date"]].reset_index(drop=True)
        frame.insert(0, "as_of", day)
        rows.append(frame)
        truths.append(build_truth(frame, known, day, end))
        for name, b in build_baselines(known, day, frame).items():
            bases[name].append(b[FORECAST_COLUMNS])
    rows_f = pd.concat(rows, ignore_index=True)
    return EvaluationSet(
        days=days, outcome_end=end, rows=rows_f,
        truth=pd.concat(truths, ignore_index=True),
        baselines={k: pd.concat(v, ignore_index=True) for k, v in bases.items()},
    )


def predict_evaluation_set(model: EncaisseModel, ledger: Ledger, es: EvaluationSet) -> pd.DataFrame:
    """``model``'s forecasts for ``es.rows``: ``MODEL_COLUMNS``, ``QUANTILE_COLUMNS`` and ``pit``
    (F(payment day), paid rows).

    The model scores each day from the ledger as known at that day (``score`` enforces it).
    """
    known = ledger.known_at(es.outcome_end)
    parts = []
    for day in es.days:
        ids = es.rows.loc[es.rows["as_of"] == day, "invoice_id"]
        sc, (grid, cdf) = model.score(known, day, invoice_ids=ids, n_reasons=0, return_cdf=True)
        part = sc[["invoice_id", *MODEL_COLUMNS]].copy()
        q = model.payment_quantiles(grid, cdf, day, PINBALL_LEVELS, invoice_countries(known, sc["invoice_id"]))
        for j, name in enumerate(QUANTILE_COLUMNS):
            part[name] = np.minimum(q[:, j], model.payment_model_.horizon_days)
        part["as_of"] = day
        truth = es.truth.loc[ids.index]
        dur = pd.Series(truth["duration_days"].to_numpy(), index=ids.to_numpy()).reindex(sc["invoice_id"]).to_numpy()
        paid = pd.Series(truth["event"].to_numpy(), index=ids.to_numpy()).reindex(sc["invoice_id"]).to_numpy() == 1
        pit = np.full(len(sc), np.nan)
        for i in np.flatnonzero(paid):
            pit[i] = np.interp(dur[i] + 0.5, grid[i], cdf[i])
        part["pit"] = pit
        parts.append(part)
    pred = (pd.concat(parts, ignore_index=True) if parts
            else pd.DataFrame(columns=["as_of", "invoice_id", *MODEL_COLUMNS, *QUANTILE_COLUMNS, "pit"]))
    out = es.rows[["as_of", "invoice_id"]].merge(pred, on=["as_of", "invoice_id"], how="left", validate="one_to_one")
    missing = int(out["p_late"].isna().sum())
    if missing:
        raise ValueError(f"The model did not score {missing} of the {len(out)} open invoices of the evaluation set.")
    return out[[*MODEL_COLUMNS, *QUANTILE_COLUMNS, "pit"]]


def headline(metrics: dict) -> dict:
    """The ``METRICS`` of a ``models.evaluation.evaluate_forecasts`` result (None when not forecast)."""
    return {k: metrics.get(k) for k in METRICS}


def evaluate_predictions(pred: pd.DataFrame, es: EvaluationSet) -> dict:
    """``models.evaluation.evaluate_forecasts`` of ``pred`` on ``es`` (all keys, None = not forecast)."""
    return evaluate_forecasts(pred[[c for c in (*MODEL_COLUMNS, *QUANTILE_COLUMNS) if c in pred.columns]], es.truth)


def evaluate_baselines(es: EvaluationSet) -> dict[str, dict]:
    """Metrics of the three baselines on ``es``."""
    return {name: evaluate_forecasts(b, es.truth) for name, b in es.baselines.items()}


def truncated_errors(pred: pd.DataFrame, es: EvaluationSet) -> np.ndarray:
    """Signed error min(P50, C) - min(T, C), days (the quantity ``mae_days`` averages)."""
    c = es.truth["censor_days"].to_numpy()
    t = np.minimum(es.truth["duration_days"].to_numpy(), c)
    return np.minimum(pred["p50_days"].to_numpy(dtype=float), c) - t


DUE_GROUPS = ((-np.inf, -30, "overdue > 30 d"), (-30, 0, "overdue 1-30 d"), (0, 31, "due in 0-30 d"),
              (31, np.inf, "due in > 30 d"))
"""Days-to-due groups [lo, hi) at the scoring day."""


def coverage_by_group(forecasts: dict[str, pd.DataFrame], es: EvaluationSet) -> pd.DataFrame:
    """Interval coverage and MAE per days-to-due group, per forecaster with a payment-date forecast."""
    dtd = es.days_to_due
    rows = []
    for lo, hi, label in DUE_GROUPS:
        m = (dtd >= lo) & (dtd < hi)
        if not m.any():
            continue
        for name, pred in forecasts.items():
            if pred["p50_days"].isna().all():
                continue
            sub = EvaluationSet(es.days, es.outcome_end, es.rows[m], es.truth[m], {})
            r = evaluate_forecasts(pred.loc[m, FORECAST_COLUMNS], sub.truth)
            rows.append({"group": label, "forecaster": name, "n": int(m.sum()),
                         "interval_coverage": r["interval_coverage"], "mae_days": r["mae_days"]})
    return pd.DataFrame(rows, columns=["group", "forecaster", "n", "interval_coverage", "mae_days"])


def risk_outcomes(es: EvaluationSet) -> np.ndarray:
    """Mask of the rows the risk metrics use (not due at the scoring day, lateness known)."""
    return es.truth["not_due"].to_numpy() & es.truth["y_late"].notna().to_numpy()
