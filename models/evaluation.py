"""Backtest metrics for the model and the baselines it must beat.

Censoring: outcomes are observed until ``outcome_end`` (C days after ``as_of``). An invoice unpaid
by then is censored: its payment day T is only known to be >= C. Payment-date metrics are computed
on the truncated variable min(T, C), which is known for every invoice; the quantiles of min(T, C)
are min(q, C), so a forecast is judged on what could be observed and nothing is dropped:
    * ``mae_days``: mean |min(P50, C) - min(T, C)|;
    * ``within_7d``: share with that error <= 7 days;
    * ``interval_coverage``: share with min(P10, C) <= min(T, C) <= min(P90, C);
    * ``interval_width_days``: mean P90 - P10 (untruncated, clipped to the horizon);
    * ``bias_days``: mean signed error min(P50, C) - min(T, C) (negative: forecast too early);
    * ``pinball_days``: the mean quantile (pinball) loss of min(q_tau, C) against min(T, C) over
      tau = 0.1, 0.2, .., 0.9: a proper scoring rule for the distribution of min(T, C) (twice its
      mean over tau approximates the CRPS), so the sharpest calibrated forecast scores lowest.
      Forecasts with only P10/P50/P90 are interpolated linearly between them (flat outside).
Risk metrics use invoices not yet due at ``as_of`` whose lateness is known by ``outcome_end``
(paid, or still unpaid after the due date): ``auc_p_late``, ``brier_p_late``; and every invoice whose
very-lateness is known (paid, or unpaid more than 30 days after the later of the due date and
``as_of``; the training label of ``features.snapshots``): ``auc_p_very_late``, ``brier_p_very_late``,
for forecasts that carry ``p_very_late``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from features.clients import build_client_features
from features.snapshots import add_outcomes
from ledger.contracts import Ledger


PINBALL_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Quantile levels of ``pinball_days``; a forecast frame may carry them as ``q10_days`` .. ``q90_days``."""

QUANTILE_COLUMNS = [f"q{round(100 * t)}_days" for t in PINBALL_LEVELS]


def quantile_matrix(pred: pd.DataFrame) -> np.ndarray:
    """(n, len(PINBALL_LEVELS)) payment-day quantiles, days after as_of.

    From ``QUANTILE_COLUMNS`` when the frame has them, else interpolated between ``p10_days``,
    ``p50_days`` and ``p90_days``.
    """
    if set(QUANTILE_COLUMNS) <= set(pred.columns):
        return pred[QUANTILE_COLUMNS].to_numpy(dtype=float)
    p = pred[["p10_days", "p50_days", "p90_days"]].to_numpy(dtype=float)
    cols = []
    for t in PINBALL_LEVELS:
        if t <= 0.5:
            w = (t - 0.1) / 0.4
            cols.append(p[:, 0] + w * (p[:, 1] - p[:, 0]))
        else:
            w = (t - 0.5) / 0.4
            cols.append(p[:, 1] + w * (p[:, 2] - p[:, 1]))
    return np.column_stack(cols)


def pinball_loss(q: np.ndarray, t: np.ndarray, c: np.ndarray | float) -> np.ndarray:
    """Per row, the mean pinball loss over ``PINBALL_LEVELS`` of truncated quantiles (days).

    Args:
        q: (n, levels) quantiles of the payment day; ``inf`` past the horizon.
        t: (n,) truncated outcomes min(T, C).
        c: censoring days C (scalar or (n,)).
    """
    c = np.broadcast_to(np.asarray(c, dtype=float), t.shape)
    qt = np.minimum(q, c[:, None])
    tau = np.asarray(PINBALL_LEVELS)[None, :]
    diff = t[:, None] - qt
    return np.mean(np.maximum(tau * diff, (tau - 1.0) * diff), axis=1)


def build_baselines(ledger: Ledger, as_of, open_frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The three baselines' forecasts for the invoices of ``open_frame``, from history before as_of.

    * ``historical_rate``: P(late) = the client's share of invoices paid late (all clients' share
      when the client has no history); no payment-date forecast.
    * ``due_date``: paid on the due date (or today, when already overdue); P(late) = 0.
    * ``client_median_delay``: paid on due date + the client's median delay, interval from the
      client's P10/P90 delays; P(late) = 1 when the median delay is positive.

    Returns:
        name -> frame indexed like ``open_frame`` with ``p_late``, ``p10_days``, ``p50_days``,
        ``p90_days`` (days after as_of; NaN when the baseline does not forecast it).
    """
    d = pd.Timestamp(as_of)
    known = ledger.known_at(d)
    cf = build_client_features(known, d)
    inv = known.invoices
    paid = inv[(inv["doc_type"] == "invoice") & inv["paid_date"].notna()]
    delay = (paid["paid_date"] - paid["due_date"]) / pd.Timedelta(days=1)
    g = delay.groupby(paid["client_id"])
    q = pd.DataFrame({"p10": g.quantile(0.1), "p50": g.median(), "p90": g.quantile(0.9)})
    glob = delay.quantile([0.1, 0.5, 0.9]).to_numpy() if len(delay) else np.zeros(3)
    rate_all = float(cf["c_late_rate"].mean()) if cf["c_late_rate"].notna().any() else 0.5

    cid = open_frame["client_id"]
    days_to_due = ((open_frame["due_date"] - d) / pd.Timedelta(days=1)).to_numpy()
    nan = np.full(len(open_frame), np.nan)
    out = {}
    rate = cid.map(cf["c_late_rate"]).fillna(rate_all).to_numpy()
    out["historical_rate"] = pd.DataFrame({"p_late": rate, "p10_days": nan, "p50_days": nan, "p90_days": nan},
                                          index=open_frame.index)
    due = np.maximum(days_to_due, 0)
    out["due_date"] = pd.DataFrame({"p_late": np.zeros(len(open_frame)), "p10_days": due, "p50_days": due,
                                    "p90_days": due}, index=open_frame.index)
    cq = q.reindex(cid)
    p10 = cq["p10"].fillna(glob[0]).to_numpy()
    p50 = cq["p50"].fillna(glob[1]).to_numpy()
    p90 = cq["p90"].fillna(glob[2]).to_numpy()
    out["client_median_delay"] = pd.DataFrame({
        "p_late": (p50 > 0).astype(float),
        "p10_days": np.maximum(days_to_due + p10, 0),
        "p50_days": np.maximum(days_to_due + p50, 0),
        "p90_days": np.maximum(days_to_due + p90, 0),
    }, index=open_frame.index)
    return out


def evaluate_forecasts(pred: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float | None]:
    """Backtest metrics of one set of forecasts.

    Args:
        pred: ``p_late``, ``p10_days``, ``p50_days``, ``p90_days`` per invoice (NaN = not forecast).
        truth: aligned with ``pred``: ``duration_days`` (min(T, C)), ``event`` (1 if paid before
            C), ``censor_days`` (C), ``y_late`` (NaN when unknown), ``not_due`` (bool); optionally
            ``y_very_late`` (NaN when unknown), judged when ``pred`` has ``p_very_late``.
    """
    res: dict[str, float | None] = {}
    m = truth["not_due"].to_numpy() & truth["y_late"].notna().to_numpy() & pred["p_late"].notna().to_numpy()
    y = truth.loc[m, "y_late"].to_numpy().astype(int)
    res["n_risk"] = int(m.sum())
    res["late_rate"] = float(y.mean()) if len(y) else None
    res["auc_p_late"], res["brier_p_late"] = _auc_brier(y, pred.loc[m, "p_late"].to_numpy())
    res["auc_p_very_late"] = res["brier_p_very_late"] = None
    if "p_very_late" in pred.columns and "y_very_late" in truth.columns:
        m = truth["y_very_late"].notna().to_numpy() & pred["p_very_late"].notna().to_numpy()
        res["auc_p_very_late"], res["brier_p_very_late"] = _auc_brier(
            truth.loc[m, "y_very_late"].to_numpy().astype(int), pred.loc[m, "p_very_late"].to_numpy())

    if pred["p50_days"].isna().all():
        res.update(mae_days=None, within_7d=None, interval_coverage=None, interval_width_days=None,
                   bias_days=None, pinball_days=None)
        return res
    c = truth["censor_days"].to_numpy()
    t = np.minimum(truth["duration_days"].to_numpy(), c)
    p50 = np.minimum(pred["p50_days"].to_numpy(), c)
    signed = p50 - t
    err = np.abs(signed)
    res["mae_days"] = float(err.mean())
    res["bias_days"] = float(signed.mean())
    res["pinball_days"] = float(pinball_loss(quantile_matrix(pred), t, c).mean())
    res["within_7d"] = float((err <= 7).mean())
    obs = truth["event"].to_numpy() == 1
    res["mae_days_paid"] = float(err[obs].mean()) if obs.any() else None
    lo = np.minimum(pred["p10_days"].to_numpy(), c)
    hi = np.minimum(pred["p90_days"].to_numpy(), c)
    res["interval_coverage"] = float(((lo <= t) & (t <= hi)).mean())
    res["interval_width_days"] = float((pred["p90_days"] - pred["p10_days"]).mean())
    return res


def _auc_brier(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    """AUC and Brier score of probabilities ``p`` for outcomes ``y`` (None, None unless both outcomes occur)."""
    if len(np.unique(y)) < 2:
        return None, None
    return float(roc_auc_score(y, p)), float(brier_score_loss(y, np.clip(p, 0, 1)))


def build_truth(open_frame: pd.DataFrame, ledger: Ledger, as_of, outcome_end) -> pd.DataFrame:
    """What happened to the invoices open at ``as_of``, observed until ``outcome_end``: the training
    rows' outcomes (``features.snapshots.add_outcomes``), one definition of late and very late."""
    d, end = pd.Timestamp(as_of), pd.Timestamp(outcome_end)
    o = add_outcomes(open_frame[["invoice_id", "due_date"]], ledger, d, end)
    return pd.DataFrame({
        "duration_days": o["duration_days"].astype(float), "event": o["event"].astype(int),
        "censor_days": float((end - d) / pd.Timedelta(days=1)), "y_late": o["y_late"], "y_very_late": o["y_very_late"],
        "not_due": (open_frame["due_date"] >= d).to_numpy(), "paid_date": o["paid_date"],
    }, index=open_frame.index)


def calibration_table(y, p, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate in ``n_bins`` equal-count bins of ``p`` (ties kept together)."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(p, dtype=float)}).dropna()
    if frame.empty:
        return pd.DataFrame(columns=["p_mean", "y_rate", "n"])
    bins = pd.qcut(frame["p"].rank(method="first"), q=min(n_bins, len(frame)), labels=False)
    g = frame.groupby(bins)
    return pd.DataFrame({"p_mean": g["p"].mean(), "y_rate": g["y"].mean(), "n": g.size()}).reset_index(drop=True)


def evaluate_calibration_bins(y, p, n_bins: int = 10) -> dict:
    """P(late) calibration: equal-count bins (predicted, observed, n) and the expected calibration error."""
    if len(y) == 0:
        return {"ece": None, "bins": []}
    table = calibration_table(y, p, n_bins=n_bins).rename(columns={"p_mean": "predicted", "y_rate": "observed"})
    ece = float((table["n"] * (table["observed"] - table["predicted"]).abs()).sum() / table["n"].sum())
    return {"ece": ece, "bins": [{"predicted": float(r.predicted), "observed": float(r.observed), "n": int(r.n)}
                                 for r in table.itertuples()]}
