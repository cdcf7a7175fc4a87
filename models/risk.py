"""Late-payment risk: LightGBM classifiers calibrated on a later time slice than they were fitted on."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

from models.compiled import CompiledTrees, compile_booster

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


BAG_SEED_STEP = 1000
"""Seed offset from one bag's booster to the next: the bags of seeds 0 and 1 share no seed."""

CONTRIB_CHUNK_ROWS = 20_000
"""Rows credited at a time: bounds the leaf one-hot matrix of a slice (bench/RESULTS.md, reasons)."""


class CalibratedRisk(CompiledTrees, ClassifierMixin, BaseEstimator):
    """A LightGBM binary classifier whose probabilities are recalibrated by isotonic regression.

    ``fit`` takes the fitting slice and a *later* calibration slice: the booster learns on the
    first (early-stopping on the second), the isotonic map on the second, so calibration reflects
    how scores behave on dates after the ones the model saw.

    With ``bags`` > 1 the score is the mean log-odds of that many boosters, fitted alike but for
    their seeds (row and column subsampling, hence early stopping): one booster's ranking moves
    with its seed by about a hundredth of AUC at some cutoffs, the mean of several much less.

    Args:
        lgbm_params: LightGBM parameters (``RISK_DEFAULTS`` when None).
        early_stopping_rounds: patience on the calibration slice's log loss.
        random_state: seed (the first booster's; bag ``k`` is seeded ``random_state + BAG_SEED_STEP * k``).
        bags: boosters averaged.
    """

    bags = 1  # a model pickled before bags existed has one booster

    def __init__(self, lgbm_params=None, early_stopping_rounds=50, random_state=0, bags=1):
        self.lgbm_params = lgbm_params
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.bags = bags

    def fit(self, X: pd.DataFrame, y, X_cal: pd.DataFrame, y_cal) -> "CalibratedRisk":
        y = np.asarray(y, dtype=int)
        y_cal = np.asarray(y_cal, dtype=int)
        for name, v in (("y", y), ("y_cal", y_cal)):
            if len(np.unique(v)) < 2:
                raise ValueError(f"{name} holds a single class; a risk model needs both late and on-time invoices.")
        boosters = []
        for k in range(max(int(self.bags), 1)):
            seed = self.random_state + BAG_SEED_STEP * k
            clf = lgb.LGBMClassifier(**{**RISK_DEFAULTS, **(self.lgbm_params or {}), "random_state": seed})
            clf.fit(X, y, eval_X=(X_cal,), eval_y=(y_cal,),
                    callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
            boosters.append(clf.booster_)
        self.booster_ = boosters[0]
        self.bags_ = boosters[1:]
        for name in ("paths_", "bag_paths_", "compiled_", "compiled_bags_"):
            self.__dict__.pop(name, None)  # built from the boosters on first use
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        raw = self.predict_raw(X_cal)
        self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y_cal)
        return self

    def _boosters(self) -> list:
        return [self.booster_, *(self.__dict__.get("bags_") or [])]

    def predict_raw(self, X: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        """Uncalibrated P(positive). ``num_threads``: LightGBM's (0: every core; 1 in a server)."""
        check_is_fitted(self, "booster_")
        data = X[list(self.feature_names_in_)]
        if not self.__dict__.get("bags_"):
            return self.booster_.predict(data, num_threads=num_threads)
        margins = [b.predict(data, raw_score=True, num_threads=num_threads) for b in self._boosters()]
        return _logistic(np.mean(margins, axis=0))

    def predict_raw_matrix(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """``predict_raw`` from X's float matrix (categories as their codes), by the compiled trees when attached."""
        check_is_fitted(self, "booster_")
        if not self.__dict__.get("bags_"):
            return self.predictor().predict(matrix, num_threads=num_threads)
        compiled = self.__dict__.get("compiled_bags_")
        if compiled:
            margins = [c.predict(matrix, num_threads=num_threads) for c in compiled]
        else:
            margins = [b.predict(matrix, raw_score=True, num_threads=num_threads) for b in self._boosters()]
        return _logistic(np.mean(margins, axis=0))

    def attach_compiled(self, cache_dir) -> bool:
        """Compiled trees for the booster, or for every bag's (their log-odds, which are averaged)."""
        if not self.__dict__.get("bags_"):
            return super().attach_compiled(cache_dir)
        compiled = [compile_booster(b, cache_dir, raw_score=True) for b in self._boosters()]
        if any(c is None for c in compiled):
            return False
        self.__dict__["compiled_bags_"] = compiled
        return True

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("compiled_bags_", None)  # native code, attached again by whoever loads the model
        return state

    def predict_proba(self, X: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        p = self.calibrated(self.predict_raw(X, num_threads=num_threads))
        return np.column_stack([1 - p, p])

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """The isotonic map of raw probabilities: ``calibrator_.predict`` (linear between its thresholds,
        flat beyond them) without its input checks, which cost a one-invoice API call more than the map.
        ``raw`` comes from the boosters, finite by construction (``predict`` would refuse NaN)."""
        iso = self.calibrator_
        return np.interp(np.asarray(raw, dtype=float), iso.X_thresholds_, iso.y_thresholds_)

    def contributions(self, X: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        """Per-feature contributions to the raw log-odds (``PathAttribution``), last column = bias."""
        check_is_fitted(self, "booster_")
        return self.contributions_matrix(X[list(self.feature_names_in_)], num_threads=num_threads)

    def contributions_matrix(self, data, num_threads: int = 0) -> np.ndarray:
        """``contributions`` of rows LightGBM can predict from (a frame or its float matrix)."""
        check_is_fitted(self, "booster_")
        paths = self.__dict__.get("paths_")
        if paths is None:  # built on first use (models saved before it existed have none)
            paths = self.paths_ = PathAttribution(self.booster_)
        out = _credits(self.booster_, paths, data, num_threads)
        bags = self.__dict__.get("bags_") or []
        if bags:
            bag_paths = self.__dict__.get("bag_paths_")
            if bag_paths is None:
                bag_paths = self.bag_paths_ = [PathAttribution(b) for b in bags]
            for b, p in zip(bags, bag_paths):
                out += _credits(b, p, data, num_threads)
            out /= 1 + len(bags)  # the credits of the mean log-odds
        return out


PROBA_CLIP = 1e-4
"""Probabilities are clipped to [PROBA_CLIP, 1 - PROBA_CLIP] before their log-odds are blended."""


def blend_log_odds(p: np.ndarray, q: np.ndarray, weight: float) -> np.ndarray:
    """The probability whose log-odds are ``1 - weight`` of ``p``'s and ``weight`` of ``q``'s (``weight`` 0: ``p``)."""
    if weight == 0:
        return p
    lp, lq = (logit(np.clip(np.asarray(x, dtype=float), PROBA_CLIP, 1 - PROBA_CLIP)) for x in (p, q))
    return expit((1.0 - weight) * lp + weight * lq)


def _credits(booster, paths: "PathAttribution", data, num_threads: int) -> np.ndarray:
    """``paths.credit`` of every row of ``data``, in slices of rows: the leaves and their one-hot
    matrix take (rows x trees) entries each."""
    rows = data.iloc if isinstance(data, pd.DataFrame) else data
    ones = np.ones(min(CONTRIB_CHUNK_ROWS, len(data)) * len(paths.offsets))  # every slice's one-hot values
    parts = [paths.credit(booster.predict(rows[lo:lo + CONTRIB_CHUNK_ROWS], pred_leaf=True, num_threads=num_threads),
                          ones=ones)
             for lo in range(0, len(data), CONTRIB_CHUNK_ROWS)]
    return np.vstack(parts) if parts else np.zeros((0, paths.n_features + 1))


def _logistic(margin: np.ndarray) -> np.ndarray:
    return expit(margin)


class PathAttribution:
    """Per-feature contributions of a LightGBM model's raw score, along each row's decision paths.

    In every tree, a row's path from the root to its leaf changes the node value at each split;
    the change is credited to the split's feature (Saabas; the ``treeinterpreter`` method). The
    credits and the bias (the trees' root values) add up to the raw score exactly, as
    ``pred_contrib``'s do. Unlike ``pred_contrib`` (TreeSHAP, over a hundred times a prediction)
    it costs one ``pred_leaf`` prediction and a sparse product: per leaf of every tree, the credits
    of its path are computed once, when the model is read. Credits are not Shapley values: a
    feature split on near the root takes more of an interaction than its share, so the two rank
    features differently (how often they agree, and the speed-up: bench/RESULTS.md, reasons).
    """

    def __init__(self, booster):
        dump = booster.dump_model()
        self.n_features = len(dump["feature_names"])
        rows, cols, vals = [], [], []
        offsets, bias, total = [], 0.0, 0
        for tree in dump["tree_info"]:
            root = tree["tree_structure"]
            offsets.append(total)
            n_leaves = int(tree["num_leaves"])
            if "leaf_value" in root:  # a single-leaf tree: all bias
                bias += float(root["leaf_value"])
                total += n_leaves
                continue
            bias += float(root["internal_value"])
            stack = [(root, {})]
            while stack:
                node, credit = stack.pop()
                if "leaf_index" in node:
                    leaf = total + int(node["leaf_index"])
                    for f, v in credit.items():
                        rows.append(leaf), cols.append(f), vals.append(v)
                    continue
                f, here = int(node["split_feature"]), float(node["internal_value"])
                for child in (node["left_child"], node["right_child"]):
                    value = float(child["leaf_value"] if "leaf_index" in child else child["internal_value"])
                    c = dict(credit)
                    c[f] = c.get(f, 0.0) + (value - here)
                    stack.append((child, c))
            total += n_leaves
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.bias = bias
        self.credits = sparse.csr_matrix((vals, (rows, cols)), shape=(total, self.n_features))

    def credit(self, leaves: np.ndarray, ones: np.ndarray | None = None) -> np.ndarray:
        """(n rows, features + 1) from the rows' leaves (``predict(pred_leaf=True)``): each feature's
        credit, then the bias; rows sum to the raw score."""
        leaves = np.asarray(leaves).reshape(len(leaves), -1)
        n, t = leaves.shape
        # The one-hot matrix as scipy keeps it (32-bit indices when they fit: given 64-bit ones it
        # converts them). ``ones``: the caller's array of ones, reused slice after slice (a fresh one
        # per slice was mostly page faults); never written to.
        idx = np.int32 if max(n * t, self.credits.shape[0]) < np.iinfo(np.int32).max else np.int64
        ids = (leaves.astype(idx, copy=False) + self.offsets[None, :t].astype(idx)).ravel()
        if ones is None or len(ones) < len(ids):
            ones = np.ones(len(ids))
        onehot = sparse.csr_matrix((ones[:len(ids)], ids, np.arange(n + 1, dtype=idx) * t),
                                   shape=(n, self.credits.shape[0]))
        out = np.empty((n, self.n_features + 1))
        out[:, :-1] = (onehot @ self.credits).toarray()
        out[:, -1] = self.bias
        return out
