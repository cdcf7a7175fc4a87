"""What ``EncaisseModel.encode`` and ``predict_encoded`` hand over: encoded feature rows, and their figures.

A server keeps a day's encoded rows and scores a few of them per request (``serving.invoice_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class EncodedScores:
    """``predict_encoded``'s figures, one row per invoice scored.

    Attributes:
        p_late, p_very_late: probabilities (``p_late`` is 1 for an invoice already overdue).
        days_q: (n, 3) payment-day P10 / P50 / P90, days after as_of, clipped to the horizon.
        dates: (n, 3) the same as ``datetime64[s]`` dates.
        beyond_horizon: P90 lies past the horizon.
        reasons: the reasons, ``"; "``-joined.
        days, cdf: the calibrated payment-date CDF (``PaymentDateModel.predict_cdf_matrix``).
    """

    p_late: np.ndarray
    p_very_late: np.ndarray
    days_q: np.ndarray
    dates: np.ndarray
    beyond_horizon: np.ndarray
    reasons: list[str]
    days: np.ndarray
    cdf: np.ndarray


@dataclass
class EncodedRows:
    """Feature rows of some invoices and their model input (``EncaisseModel.encode``).

    Attributes:
        features: the feature frame (``build_features`` output), index 0..n-1.
        matrix: the encoded rows as the float matrix LightGBM predicts from
            (``FeatureEncoder.transform`` then ``to_matrix``: categories as their codes).
        columns: the model input columns of ``matrix``, in order.
        speakable: (rows, model features): whether ``describe`` has words for that cell (None:
            not decided yet).
        countries: the features' ``country`` as Python objects (None where missing), for the
            payment calendar (``EncaisseModel.payment_quantiles``); None: the frame has none.
    """

    features: pd.DataFrame
    matrix: np.ndarray
    columns: list[str]
    speakable: np.ndarray | None = None
    countries: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features)

    def take(self, positions) -> "EncodedRows":
        """The rows at ``positions`` (in that order)."""
        pos = np.asarray(positions, dtype=np.intp)
        return EncodedRows(features=self.features.take(pos).reset_index(drop=True), matrix=self.matrix[pos],
                           columns=self.columns, speakable=None if self.speakable is None else self.speakable[pos],
                           countries=None if self.countries is None else self.countries[pos])
