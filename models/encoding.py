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
                codes = _category_codes(frame[c], self.categories_[c])
                out[c] = pd.Categorical.from_codes(codes, categories=self.categories_[c])
            else:
                s = frame[c]
                if s.dtype != np.float64:
                    s = pd.to_numeric(s, errors="coerce").astype("float64")
                out[c] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.DataFrame(out, index=frame.index)

    def to_matrix(self, encoded: pd.DataFrame) -> np.ndarray:
        """The float matrix LightGBM builds from a ``transform`` output (columns in fitted order).

        Numbers as they are; a category as its position in ``categories_`` (the codes LightGBM
        uses for a model fitted on ``transform`` output), missing as NaN.
        """
        check_is_fitted(self, "feature_names_in_")
        out = np.empty((len(encoded), len(self.feature_names_in_)), dtype=np.float64)
        for j, c in enumerate(self.feature_names_in_):
            s = encoded[c]
            if c in self.categories_:
                codes = s.cat.codes.to_numpy()
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        return self.feature_names_in_.copy()


def _category_codes(s: pd.Series, categories: list[str]) -> np.ndarray:
    """Positions of ``str(value)`` in ``categories``; -1 for a missing value or one not among them.

    Each distinct value is converted and looked up once (``pd.factorize``), not each cell. Strings
    are factorized as they are; other values go through ``str`` first, so that values equal in
    Python but printed differently (``1``, ``1.0``, ``True``) stay apart.
    """
    values = s.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = np.array([None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)
                           for v in values], dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = pd.Index(categories, dtype=object).get_indexer(pd.Index(uniques, dtype=object))
    return np.where(codes < 0, -1, lookup[np.maximum(codes, 0)] if len(lookup) else -1).astype(np.int64)
