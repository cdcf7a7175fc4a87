"""Late-payment risk: LightGBM classifiers calibrated on a later time slice than they were fitted on."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

RISK_DEFAULTS = dict(
    n_estimators=500,
    learning_rate=0.03,
    num_leaves=31,
    min_child_samples=40,
    subsample=0.8,
    subsample_freq=1,
    colsample_bytree=0.8,
    reg_lambda=1.0,
    verbose=-1,
)


class CalibratedRisk(ClassifierMixin, BaseEstimator):
    """A LightGBM binary classifier whose probabilities are recalibrated by isotonic regression.

    ``fit`` takes the fitting slice and a *later* calibration slice: the booster learns on the
    first (early-stopping on the second), the isotonic map on the second, so calibration reflects
    how scores behave on dates after the ones the model saw.

    Args:
        lgbm_params: LightGBM parameters (``RISK_DEFAULTS`` when None).
        early_stopping_rounds: patience on the calibration slice's log loss.
        random_state: seed.
    """

    def __init__(self, lgbm_params=None, early_stopping_rounds=50, random_state=0):
        self.lgbm_params = lgbm_params
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y, X_cal: pd.DataFrame, y_cal) -> "CalibratedRisk":
        y = np.asarray(y, dtype=int)
        y_cal = np.asarray(y_cal, dtype=int)
        for name, v in (("y", y), ("y_cal", y_cal)):
            if len(np.unique(v)) < 2:
                raise ValueError(f"{name} holds a single class; a risk model needs both late and on-time invoices.")
        params = {**RISK_DEFAULTS, **(self.lgbm_params or {}), "random_state": self.random_state}
        clf = lgb.LGBMClassifier(**params)
        clf.fit(X, y, eval_X=(X_cal,), eval_y=(y_cal,),
                callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
        self.booster_ = clf.booster_
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        raw = self.booster_.predict(X_cal)
        self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y_cal)
        return self

    def predict_raw(self, X: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        """Uncalibrated P(positive). ``num_threads``: LightGBM's (0: every core; 1 in a server)."""
        check_is_fitted(self, "booster_")
        return self.booster_.predict(X[list(self.feature_names_in_)], num_threads=num_threads)

    def predict_proba(self, X: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        p = self.calibrator_.predict(self.predict_raw(X, num_threads=num_threads))
        return np.column_stack([1 - p, p])

    def contributions(self, X: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        """Per-feature contributions to the raw log-odds (LightGBM ``pred_contrib``), last column = bias."""
        check_is_fitted(self, "booster_")
        return self.booster_.predict(X[list(self.feature_names_in_)], pred_contrib=True, num_threads=num_threads)
