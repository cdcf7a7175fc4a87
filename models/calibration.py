"""Calibration of the payment-date distribution: which rows show how it errs, and the maps that fix it.

``PaymentDateModel.fit_calibration`` turns probability-integral-transform (PIT) values into maps G
(one overall, one per days-overdue group), fitted by Kaplan-Meier so that censored PIT values count
as lower bounds. The rows they are read from (``calibration_slice``):

* ``held_out``: the later slice the model was early-stopped on; each invoice is followed a few weeks.
* ``all``: every snapshot, in sample (over-confident: the booster has learnt those rows).
* ``cross_fit``: every snapshot, each client's rows predicted by a model fitted on the other clients
  (``cross_fit_folds`` folds of clients); each invoice is followed up to the training day, so the
  tail of an invoice already long overdue is seen.
* ``mixed``: held-out maps up to ``MIXED_CROSS_FIT_AFTER_DAYS`` overdue, cross-fitted ones beyond.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

CALIBRATION_ROWS = 60_000
"""Snapshot rows the calibration reads at most when it reads every snapshot."""

MIXED_CROSS_FIT_AFTER_DAYS = 30
"""With ``mixed``: groups of invoices more overdue than this take the cross-fitted maps."""


def stable_sample(n: int, k: int, seed: int) -> np.ndarray:
    """At most ``k`` of ``range(n)``, sorted, the same for the same arguments."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def calibrate_payment_model(pm, X: pd.DataFrame, ts: pd.DataFrame, fit_m: np.ndarray, age: np.ndarray,
                            held_out: tuple, seed: int = 0) -> None:
    """Fit ``pm``'s calibration maps from the rows its ``calibration_slice`` names.

    Args:
        pm: the fitted ``PaymentDateModel``.
        X, ts: the encoded training rows and the training set (``duration_days``, ``event``,
            ``client_id``, ``i_days_to_due``), aligned.
        fit_m: rows the booster was fitted on (the others were its held-out slice).
        age: per row, days from its snapshot to the training day.
        held_out: (X, duration, event) of the held-out slice.
    """
    how = pm.calibration_slice
    if how == "cross_fit":
        _cross_fit(pm, X, ts, fit_m, age, seed)
    elif how == "mixed":
        pm.recalibrate(*held_out, seed=seed)
        near, near_groups = pm.calibration_, dict(pm.group_calibration_)
        _cross_fit(pm, X, ts, fit_m, age, seed)
        bounds = np.asarray(pm.calibration_groups, dtype=float)
        far = {k for k in pm.group_calibration_ if k >= 1 and bounds[k - 1] >= MIXED_CROSS_FIT_AFTER_DAYS}
        pm.calibration_ = near
        pm.group_calibration_ = {**{k: g for k, g in near_groups.items() if k not in far},
                                 **{k: g for k, g in pm.group_calibration_.items() if k in far}}
    elif how == "all":
        keep = stable_sample(len(ts), CALIBRATION_ROWS, seed)
        pm.recalibrate(X.iloc[keep], ts["duration_days"].iloc[keep], ts["event"].iloc[keep], seed=seed)
    else:
        pm.recalibrate(*held_out, seed=seed)


def fit_by_siblings(pm, X: pd.DataFrame, ts: pd.DataFrame, fit_m: np.ndarray, age: np.ndarray, seed: int = 0) -> None:
    """Fit ``pm`` as the mixture of its cross-fit siblings alone (``mixture: siblings``), with no booster
    fitted on every client: the first sibling's booster becomes its own, the others its ``siblings_``,
    and the maps are read from their out-of-fold predictions as with ``cross_fit``.

    Arguments as for ``calibrate_payment_model``.
    """
    first, *rest = _cross_fit(pm, X, ts, fit_m, age, seed)
    for stale in ("layout_", "compiled_"):  # read from, or compiled for, a booster ``pm`` no longer has
        pm.__dict__.pop(stale, None)
    own = ("calibration_", "group_calibration_")  # just fitted on ``pm`` by ``_cross_fit``
    pm.__dict__.update({k: v for k, v in vars(first).items() if k.endswith("_") and k not in own})
    pm.n_rows_expanded_ = first.n_rows_expanded_ + sum(s.n_rows_expanded_ for s in rest)
    pm.siblings_ = rest


def _cross_fit(pm, X: pd.DataFrame, ts: pd.DataFrame, fit_m: np.ndarray, age: np.ndarray, seed: int) -> list:
    """Maps from every snapshot's rows, each client's predicted by a sibling model fitted without it.

    The clients fall into ``pm.cross_fit_folds`` folds by a hash of their id; each fold's rows are
    predicted by a sibling fitted on the other folds (more folds: siblings closer to ``pm``, more fits).
    With ``pm.mixture == "model_and_siblings"`` the siblings stay in ``pm.siblings_`` and predict with it.
    Returns the fitted siblings.
    """
    clients = ts["client_id"].astype(str)
    k = int(pm.cross_fit_folds)
    fold = pd.util.hash_pandas_object(clients, index=False).to_numpy() % k
    keep = np.zeros(len(ts), dtype=bool)
    keep[stable_sample(len(ts), CALIBRATION_ROWS, seed)] = True
    parts, siblings = [], []
    for side in range(k):
        train = fold != side
        sib = clone(pm).set_params(refit_full=False, mixture="model")
        ho = train & ~fit_m
        sib.fit(X[train & fit_m], ts.loc[train & fit_m, "duration_days"], ts.loc[train & fit_m, "event"],
                eval_set=(X[ho], ts.loc[ho, "duration_days"], ts.loc[ho, "event"], age[ho]),
                age_days=age[train & fit_m])
        rows = np.flatnonzero(~train & keep)
        days, cdf = sib.predict_raw_cdf(X.iloc[rows])
        parts.append((rows, days, cdf))
        siblings.append(sib)
    rows = np.concatenate([p[0] for p in parts])
    pm.fit_calibration(np.vstack([p[1] for p in parts]), np.vstack([p[2] for p in parts]),
                       ts["duration_days"].to_numpy()[rows], ts["event"].to_numpy()[rows],
                       -ts["i_days_to_due"].to_numpy(dtype=float)[rows], seed=seed)
    if pm.mixture == "model_and_siblings":
        # The maps were read from the siblings' predictions: predicting with them too brings what
        # is predicted closer to what was calibrated, and a mixture of boosters varies less.
        pm.siblings_ = siblings
    return siblings


def km_map(u: np.ndarray, event: np.ndarray, n_grid: int = 201, min_at_risk: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """G(p) = P(PIT <= p) by Kaplan-Meier (censored PIT values are lower bounds), on a grid."""
    order = np.argsort(u, kind="stable")
    u, event = u[order], event[order]
    at_risk = len(u) - np.arange(len(u))
    surv = np.cumprod(np.where(event, 1.0 - 1.0 / at_risk, 1.0))
    grid = np.linspace(0.0, 1.0, n_grid)
    pos = np.searchsorted(u, grid, side="right") - 1
    g = np.where(pos >= 0, 1.0 - surv[np.clip(pos, 0, None)], 0.0)
    g = np.maximum.accumulate(np.clip(g, 0.0, 1.0))
    # Where fewer than min_at_risk PIT values remain, KM says little: ramp linearly to G(1) = 1.
    remaining = len(u) - np.clip(pos + 1, 0, None)
    weak = remaining < min_at_risk
    if weak.any():
        i = int(np.argmax(weak))
        p0, g0 = grid[max(i - 1, 0)], g[max(i - 1, 0)]
        g[i:] = g0 + (grid[i:] - p0) * (1.0 - g0) / max(1.0 - p0, 1e-9)
    g[0], g[-1] = 0.0, 1.0
    return grid, np.maximum.accumulate(g)
