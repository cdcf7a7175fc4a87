"""Turn a feature frame into model input: fixed column order, float numbers, fixed categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.invoices import categorical_columns, feature_columns


class FeatureEncoder(TransformerMixin, BaseEstimator):
    """Select the model columns of a feature frame and type them the same way at fit and predict.

    Numeric columns become float64; categorical ones become pandas categories with the categories
    seen at fit (``categories_``); a category unseen at fit becomes missing. The fitted column order
    (``feature_names_in_``) is enforced at transform time.

    Args:
        max_categories: keep at most this many most frequent categories per column.
    """

    def __init__(self, max_categories: int = 200):
        self.max_categories = max_categories

    def fit(self, frame: pd.DataFrame, y=None) -> "FeatureEncoder":
        self.feature_names_in_ = np.array(feature_columns(frame), dtype=object)
        self.categorical_ = [c for c in categorical_columns(frame)]
        self.categories_ = {}
        for c in self.categorical_:
            counts = frame[c].dropna().astype(str).value_counts()
            self.categories_[c] = sorted(counts.index[: self.max_categories])
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_in_")
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise ValueError(
                f"The feature frame lacks {len(missing)} column(s) the model was fitted on: "
                f"{missing[:10]}. Build it with features.invoices.build_features and the same "
                f"extra_attributes as at training."
            )
        out = {}
        for c in self.feature_names_in_:
            if c in self.categories_:
                s = frame[c].astype("object").where(frame[c].notna(), None)
                s = s.map(lambda v: None if v is None else str(v))
                s = s.where(s.isin(self.categories_[c]), None)
                out[c] = pd.Categorical(s, categories=self.categories_[c])
            else:
                out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64").to_numpy()
        return pd.DataFrame(out, index=frame.index)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        return self.feature_names_in_.copy()
