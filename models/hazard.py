"""Payment-date distribution: a discrete-time hazard model with LightGBM, on the days-past-due axis.

Time is counted in days past the due date (the *delay*: -3 = three days early), because that is
where payments gather: in real ledgers a large share is paid within a few days of the due date,
often on it. The delay axis is cut into bins, daily around the due date and wider further away.
An invoice unpaid at ``as_of`` is at risk from its delay on that day (``-i_days_to_due``) on; one
LightGBM classifier learns the hazard, P(paid in bin k | unpaid at its start), from the invoice's
features and the bin's (delay at its start, width, days since as_of, weekdays and weekend days in
it, calendar month). The survival function is the product of (1 - hazard).

Censoring: an invoice still open when outcomes stop contributes the bins it was observed through
entirely, as 'not paid', and nothing after. Nothing open is dropped.

Calibration: ``recalibrate`` fits a monotone map G of the predicted CDF on a later time slice, from
probability-integral-transform values (randomised within a bin), with censored invoices handled by
a Kaplan-Meier estimate, so that P(PIT <= p) = p there (``models.calibration`` says which rows).
Quantiles and samples use G(F).

Mixture: ``mixture`` can make F the mean of the CDFs of several boosters, the cross-fit siblings
whose out-of-fold predictions the maps were read from (with or without a booster fitted on every
client).

Horizon: ``horizon_days`` (365) after as_of. Mass beyond it means 'not paid within the horizon'.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.calendar import DayClock, PaymentCalendar
from models.calibration import km_map as _km_map
from models.bins import BIN_INPUTS, bin_columns, person_period_rows
from models.compiled import CompiledTrees
from models.grid import grid_quantiles, interp_rows, sample_payment_days

DEFAULT_EDGES = (
    -400, -180, -120, -90, -60, -45, -30, -21, -14, -10, -7, -5, -4, -3, -2, -1,
    0, 1, 2, 3, 4, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365, 545, 730,
)
"""Bin edges in days past due. Delays are whole days, so bin [0, 1) is 'paid on the due date'."""

# 300 trees of 31 leaves at learning rate 0.1: as accurate as 600 trees of 63 leaves at 0.05 on the
# SAP backtests, at a third of the prediction time, and the payment-date model is most of a score's
# cost (bench/RESULTS.md).
LGBM_DEFAULTS = dict(
    n_estimators=300,
    learning_rate=0.1,
    num_leaves=31,
    min_child_samples=50,
    subsample=0.8,
    subsample_freq=1,
    colsample_bytree=0.8,
    reg_lambda=1.0,
    verbose=-1,
)


MIN_GROUP_EVENTS = 200
"""Payments a calibration group needs in the held-out slice for a map of its own."""

MEMO_TABLES = 256
"""Day clocks (one per mix of countries asked for) ``PaymentDateModel.day_clock`` keeps for a day."""

PREDICT_CHUNK_ROWS = 250_000
"""Person-period rows predicted at a time (about 200 MB of float matrix for ~100 columns)."""


def _edges(edges) -> np.ndarray:
    e = np.asarray(sorted(set(int(x) for x in edges)), dtype=float)
    if len(e) < 3 or e[0] >= 0 or e[-1] <= 0:
        raise ValueError(f"bin_edges must hold at least 3 edges, some before and some after 0; got {list(edges)}.")
    return e


def _country_groups(countries) -> tuple[list, np.ndarray]:
    """The countries asked for, in order of first appearance, then None (the missing ones), and each
    invoice's index in that list."""
    # Countries are codes or missing (``features.calendar.rows_countries``); anything else is missing here.
    if len(countries) <= 64:  # a few invoices (an API call): a dict costs less than pandas' factorize
        seen: dict = {}
        found = [seen.setdefault(c, len(seen)) if isinstance(c, str) else -1 for c in countries]
        rows, uniques = np.array(found, dtype=np.intp), list(seen)
    else:
        rows, uniques = pd.factorize(np.asarray(countries, dtype=object), use_na_sentinel=True)
        uniques = list(uniques)
    codes = uniques + [None]  # the missing countries (code -1) take the last group
    return codes, np.where(rows < 0, len(codes) - 1, rows).astype(np.intp)


class PaymentDateModel(CompiledTrees, BaseEstimator):
    """Distribution of the payment day of an invoice unpaid at ``as_of``.

    Inputs are encoded feature frames holding at least ``i_days_to_due`` (due date - as_of, days),
    ``i_due_dow`` (weekday of the due date) and ``i_due_month``.

    Args:
        bin_edges: bin edges in days past due (``DEFAULT_EDGES``).
        horizon_days: forecasts stop this many days after as_of.
        lgbm_params: LightGBM classifier parameters (``LGBM_DEFAULTS`` when None).
        early_stopping_rounds: patience on the eval set's log loss.
        random_state: seed.
        mixture: what predicts the raw CDF: ``"model"`` (the booster alone), ``"model_and_siblings"``
            (the mean of its CDF and those of the cross-fit siblings, which the calibration maps were
            read from; needs a cross-fitted ``calibration_slice``) or ``"siblings"`` (the siblings
            alone: ``models.calibration.fit_by_siblings`` fits it, in place of ``fit``).
        calibration_strength: per calibration group (in ``calibration_groups`` order, one more for the
            last; without groups, one value for every invoice), the share of its map's correction the CDF
            takes: G_s(F) = F + s (G(F) - F), with the overall map G for a group without one of its own;
            1 (the default, and past the tuple's end) is the map itself, 0 the raw CDF.

    Fitted attributes:
        edges_, booster_, feature_names_in_, calibration_ (grid of G, or None), n_rows_expanded_;
        siblings_ (the cross-fit siblings the mixture holds, or none).
    """

    # Parameters added after models were first stored: what a model pickled before them did.
    cross_fit_folds = 2
    mixture = "model"
    calibration_strength = ()

    def __init__(self, bin_edges=DEFAULT_EDGES, horizon_days=365, lgbm_params=None, early_stopping_rounds=30,
                 random_state=0, refit_full=False, calibration_groups=(), recency_halflife_days=None,
                 exclude_inputs=(), calibration_slice="held_out", cross_fit_folds=2, mixture="model",
                 calibration_strength=()):
        # calibration_slice: "held_out" (the later slice), "all" (every snapshot, in sample) or
        # "cross_fit" (every snapshot, each client's rows predicted by a model fitted without them,
        # the clients in cross_fit_folds folds).
        self.bin_edges = bin_edges
        self.horizon_days = horizon_days
        self.lgbm_params = lgbm_params
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.refit_full = refit_full
        self.calibration_groups = calibration_groups
        self.recency_halflife_days = recency_halflife_days
        self.exclude_inputs = exclude_inputs
        self.calibration_slice = calibration_slice
        self.cross_fit_folds = cross_fit_folds
        self.mixture = mixture
        self.calibration_strength = calibration_strength

    # -- geometry ------------------------------------------------------------------------------
    def _a0(self, X) -> np.ndarray:
        """Delay (days past due) at as_of, clipped into the binned range (``X``: a frame, or a dict of arrays)."""
        e = self.edges_
        a0 = -np.asarray(X["i_days_to_due"], dtype=float)
        return np.clip(np.nan_to_num(a0), e[0], e[-1] - 1)

    def _first_bin(self, a0: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges_, a0, side="right") - 1

    def _bin_frame(self, X: pd.DataFrame, rows: np.ndarray, bins: np.ndarray, a0: np.ndarray) -> pd.DataFrame:
        """Person-period rows as a frame: the invoice's features, then its bin's (training input)."""
        Z = X.iloc[rows].reset_index(drop=True)
        for name, values in bin_columns(self.edges_, X, rows, bins, a0).items():
            Z[name] = values
        return Z

    def _layout(self) -> tuple[int, dict[str, int], dict[str, int]]:
        """Read once from the booster: its column count, where each bin column goes, where each input is."""
        layout = self.__dict__.get("layout_")
        if layout is None:
            names = list(self.booster_.feature_name())
            inputs = [str(c) for c in self.feature_names_in_]
            if names[:len(inputs)] != inputs:
                raise ValueError("The payment-date booster's columns do not start with the model's inputs.")
            layout = self.layout_ = (len(names), {n: j for j, n in enumerate(names) if n.startswith("h_")},
                                     {n: j for j, n in enumerate(inputs)})
        return layout

    def _frame_matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The invoices' inputs as LightGBM's float matrix from a frame.

        Categorical columns become the codes LightGBM gives them from a frame: positions in the
        categories it saw at fit (``pandas_categorical``), missing for anything else.
        """
        cats = iter(self.booster_.pandas_categorical or [])
        out = np.empty((len(X), len(self.feature_names_in_)))
        for j, name in enumerate(self.feature_names_in_):
            col = X[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                codes = pd.Categorical(col, categories=next(cats)).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = col.to_numpy(dtype=float, na_value=np.nan)
        return out

    def _expand(self, X, duration, event):
        """Person-period rows: one per (invoice, bin it was observed in), y = paid in that bin."""
        e = self.edges_
        a0 = self._a0(X)
        f = self._first_bin(a0)
        t = a0 + np.asarray(duration, dtype=float)
        ev = np.asarray(event, dtype=int).astype(bool) & (t < e[-1])
        last_event = np.searchsorted(e, t, side="right") - 1
        last_cens = np.searchsorted(e, t, side="right") - 2  # bins whose end <= censoring delay
        last = np.where(ev, last_event, np.minimum(last_cens, len(e) - 2))
        n = np.clip(last - f + 1, 0, None)
        rows = np.repeat(np.arange(len(X)), n)
        bins = np.repeat(f, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        y = np.zeros(len(rows), dtype=int)
        ends = np.cumsum(n) - 1
        y[ends[(n > 0) & ev]] = 1
        return self._bin_frame(X, rows, bins.astype(int), a0), y, rows

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, duration, event, eval_set=None, age_days=None) -> "PaymentDateModel":
        """Fit on invoices open at their snapshot day.

        Args:
            X: encoded features (``FeatureEncoder`` output).
            duration: days from the snapshot day to payment, or to censoring.
            event: 1 if paid at ``duration``, 0 if still open then (censored).
            eval_set: optional (X, duration, event[, age_days]) from later snapshots, for early
                stopping; with ``refit_full`` the model is then fitted again on both sets with the
                number of trees early stopping chose, so that the latest behaviour is learnt too.
            age_days: per row, days from its snapshot to the training day; with
                ``recency_halflife_days`` a row weighs 0.5 ** (age / half-life) (recent behaviour
                counts more).
        """
        self.edges_ = _edges(self.bin_edges)
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.calibration_ = None
        self.group_calibration_ = {}
        self.siblings_ = []
        Z, y, rows = self._expand(X, duration, event)
        self._mask(Z)
        w = self._weights(age_days, rows)
        params = {**LGBM_DEFAULTS, **(self.lgbm_params or {}), "random_state": self.random_state}
        clf = lgb.LGBMClassifier(**params)
        kwargs = {}
        if eval_set is not None:
            Ze, ye, re_ = self._expand(*eval_set[:3])
            self._mask(Ze)
            we = self._weights(eval_set[3] if len(eval_set) > 3 else None, re_)
            kwargs = dict(eval_X=(Ze,), eval_y=(ye,),
                          callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
            if we is not None:
                kwargs["eval_sample_weight"] = [we]
        clf.fit(Z, y, sample_weight=w, **kwargs)
        if eval_set is not None and self.refit_full:
            trees = max(int(clf.best_iteration_ or params["n_estimators"]), 1)
            self.holdout_booster_ = clf.booster_
            clf = lgb.LGBMClassifier(**{**params, "n_estimators": trees})
            both_w = None if w is None else np.concatenate([w, we])
            clf.fit(pd.concat([Z, Ze], ignore_index=True), np.concatenate([y, ye]), sample_weight=both_w)
        self.booster_ = clf.booster_
        self.__dict__.pop("layout_", None)  # read from the booster on first use
        self.n_rows_expanded_ = len(Z)
        return self

    def _mask(self, Z: pd.DataFrame) -> None:
        """Blank the ``exclude_inputs`` columns: LightGBM never splits on a column that is all missing,
        so the fitted model ignores them and the input layout stays the encoder's."""
        for name in self.exclude_inputs:
            if name not in Z.columns:
                continue
            col = Z[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                Z[name] = pd.Categorical.from_codes(np.full(len(Z), -1), dtype=col.dtype)
            else:
                Z[name] = np.nan

    def _weights(self, age_days, rows) -> np.ndarray | None:
        if self.recency_halflife_days is None or age_days is None:
            return None
        age = np.asarray(age_days, dtype=float)[rows]
        return np.power(0.5, np.clip(age, 0, None) / float(self.recency_halflife_days))

    # -- predict -------------------------------------------------------------------------------
    def predict_raw_cdf(self, X: pd.DataFrame, num_threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated CDF: (days after as_of at each edge, P(paid before it)), both (n, bins + 1).

        ``num_threads``: LightGBM prediction threads (0: OpenMP's default, every core; 1 in a
        server answering concurrent requests).
        """
        check_is_fitted(self, "booster_")
        return self.predict_raw_cdf_matrix(self._frame_matrix(X[list(self.feature_names_in_)]), num_threads)

    def predict_raw_cdf_matrix(self, M: np.ndarray, num_threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``predict_raw_cdf`` from the invoices' float matrix: columns in ``feature_names_in_`` order,
        categories as their codes (``FeatureEncoder.to_matrix``). With siblings: the mean of the CDFs
        (a mixture of the distributions; the grid of days is the same for all, from the edges)."""
        days, cdfs = self._cdf_matrices(M, [self, *(self.__dict__.get("siblings_") or [])], num_threads)
        return days, cdfs[0] if len(cdfs) == 1 else np.mean(cdfs, axis=0)

    def _cdf_matrices(self, M: np.ndarray, members: list, num_threads: int = 0) -> tuple[np.ndarray, list]:
        """The days grid and one raw CDF per model of ``members``: the siblings were fitted on the same
        columns, so the person-period rows are built once, per slice, for all of them."""
        for member in members:
            check_is_fitted(member, "booster_")
        width, slots, where = self._layout()
        if any(member._layout() != (width, slots, where) for member in members):
            raise ValueError("The boosters of a payment-date mixture must have the same input columns.")
        M = np.asarray(M, dtype=float)
        m = len(self.feature_names_in_)
        if M.ndim != 2 or M.shape[1] != m:
            raise ValueError(f"Expected a matrix of {m} input columns, got shape {M.shape}.")
        src = {c: M[:, where[c]] for c in ("i_days_to_due", *BIN_INPUTS) if c in where}
        e = self.edges_
        k = len(e) - 1
        a0 = self._a0(src)
        f = self._first_bin(a0)
        n = k - f
        rows = np.repeat(np.arange(len(M)), n)
        bins = np.repeat(f, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        hs = [np.zeros((len(M), k)) for _ in members]
        # The boosters' compiled trees when attached: the same numbers, faster.
        predictors = [member.predictor() for member in members]
        # Person-period rows in slices: the same predictions, without the whole expanded matrix in memory.
        # One buffer for every slice (a fresh one per slice was its pages faulted in again each time).
        buffer = np.empty((min(PREDICT_CHUNK_ROWS, len(rows)), width))
        for lo in range(0, len(rows), PREDICT_CHUNK_ROWS):
            r, b = rows[lo:lo + PREDICT_CHUNK_ROWS], bins[lo:lo + PREDICT_CHUNK_ROWS]
            Z = person_period_rows(buffer[:len(r)], M[r], bin_columns(self.edges_, src, r, b.astype(int), a0), slots)
            for h, predictor in zip(hs, predictors):
                h[r, b] = np.clip(predictor.predict(Z, num_threads=num_threads), 0.0, 1.0)
        days = np.maximum(e[None, :], a0[:, None]) - a0[:, None]
        zero = np.zeros((len(M), 1))
        return days, [np.hstack([zero, 1.0 - np.cumprod(1.0 - h, axis=1)]) for h in hs]

    def mixture_problem(self, recalibrate: bool = True) -> str | None:
        """Why ``mixture`` cannot be fitted with these options (None: it can): a mixture needs the
        cross-fit siblings of the calibration."""
        if self.mixture == "model" or (self.calibration_slice == "cross_fit" and recalibrate and not self.refit_full):
            return None
        return (f"payment_options.mixture: {self.mixture} needs the cross-fit siblings: set "
                f"payment_options.calibration_slice: cross_fit (it is {self.calibration_slice}), recalibrate: true "
                "and payment_options.refit_full: false.")

    def attach_compiled(self, cache_dir) -> bool:
        """Compiled trees for the booster and for each sibling of the mixture (``CompiledTrees``)."""
        own = super().attach_compiled(cache_dir)
        return all([own, *(sib.attach_compiled(cache_dir) for sib in self.__dict__.get("siblings_") or [])])

    def predict_cdf(self, X: pd.DataFrame, num_threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated CDF: (days after as_of at each edge, P(paid before it)), both (n, bins + 1)."""
        days, cdf = self.predict_raw_cdf(X, num_threads=num_threads)
        return days, self._calibrate(cdf, -np.asarray(X["i_days_to_due"], dtype=float))

    def predict_cdf_matrix(self, M: np.ndarray, num_threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``predict_cdf`` from the invoices' float matrix (``predict_raw_cdf_matrix``)."""
        days, cdf = self.predict_raw_cdf_matrix(M, num_threads=num_threads)
        _, _, where = self._layout()
        return days, self._calibrate(cdf, -np.asarray(M, dtype=float)[:, where["i_days_to_due"]])

    def _groups(self, overdue: np.ndarray) -> np.ndarray:
        """Calibration group of each invoice: the index of its days overdue among ``calibration_groups``
        (upper bounds, ascending; past the last: one more group)."""
        return np.searchsorted(np.asarray(self.calibration_groups, dtype=float), np.nan_to_num(overdue), side="left")

    def _calibrate(self, cdf: np.ndarray, overdue: np.ndarray | None = None) -> np.ndarray:
        if getattr(self, "calibration_", None) is None:
            return cdf
        grid, g = self.calibration_
        maps = getattr(self, "group_calibration_", None) or {}
        if overdue is None or (not maps and not self.calibration_strength):
            return np.interp(cdf, grid, g)
        out = np.empty_like(cdf)
        group = self._groups(overdue)
        for k in np.unique(group):
            m = group == k
            gg = maps.get(int(k), (grid, g))
            out[m] = np.interp(cdf[m], *gg)
            strength = self._strength(int(k))
            if strength != 1.0:
                # A convex blend of two CDFs: still non-decreasing, from 0 to at most 1.
                out[m] = cdf[m] + strength * (out[m] - cdf[m])
        return out

    def _strength(self, group: int) -> float:
        """How much of its map (its own, or the overall one) the group's CDF takes (``calibration_strength``;
        1 past its end)."""
        s = tuple(self.calibration_strength or ())
        v = float(s[group]) if group < len(s) else 1.0
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"calibration_strength values must be between 0 and 1; got {list(s)}.")
        return v

    def recalibrate(self, X: pd.DataFrame, duration, event, seed: int = 0) -> "PaymentDateModel":
        """Fit the CDF map G on a later slice (censoring-aware, Kaplan-Meier over PIT values).

        With ``calibration_groups`` (days-overdue bounds), one map per group of invoices with at
        least ``MIN_GROUP_EVENTS`` payments in the slice, the overall map for the others: an
        invoice 60 days overdue is not miscalibrated the way one not yet due is.
        """
        refit = self.__dict__.get("holdout_booster_")
        if refit is not None:
            # The slice was learnt by the refitted booster: judge the one that never saw it.
            self.booster_, refit = refit, self.booster_
            try:
                days, cdf = self.predict_raw_cdf(X)
            finally:
                self.booster_ = refit
        else:
            days, cdf = self.predict_raw_cdf(X)
        return self.fit_calibration(days, cdf, duration, event, -np.asarray(X["i_days_to_due"], dtype=float), seed)

    def fit_calibration(self, days: np.ndarray, cdf: np.ndarray, duration, event, overdue: np.ndarray,
                        seed: int = 0) -> "PaymentDateModel":
        """Fit the CDF maps from raw CDFs predicted for rows this booster (or a sibling) did not learn.

        ``overdue``: each row's days overdue at its snapshot (for ``calibration_groups``).
        """
        dur = np.asarray(duration, dtype=float)
        ev = np.asarray(event, dtype=int).astype(bool)
        rng = np.random.default_rng(seed)
        # Randomised PIT: a payment on whole day t is spread over [F(t), F(t + 1)).
        lo = interp_rows(dur[:, None], days, cdf)[:, 0]
        hi = interp_rows(dur[:, None] + 1.0, days, cdf)[:, 0]
        u = np.where(ev, lo + rng.random(len(dur)) * (hi - lo), lo)
        self.calibration_ = _km_map(u, ev)
        self.group_calibration_ = {}
        if len(self.calibration_groups):
            group = self._groups(np.asarray(overdue, dtype=float))
            for k in np.unique(group):
                m = group == k
                if ev[m].sum() >= MIN_GROUP_EVENTS:
                    self.group_calibration_[int(k)] = _km_map(u[m], ev[m])
        return self

    def quantiles(self, days: np.ndarray, cdf: np.ndarray, qs=(0.1, 0.5, 0.9), clock=None) -> np.ndarray:
        """The q-quantiles of the payment day, in whole days after as_of; ``inf`` past the horizon.

        Payments fall on whole days: the q-quantile is the first day t with P(paid on or before t) >= q
        (``models.grid.grid_quantiles``). ``clock``: ``self.day_clock(...)`` of the same as_of;
        inside a bin the CDF then rises as the ledger's payments fall on the weekdays and holidays
        instead of evenly, and a quantile does not land on a day next to no payment does.
        """
        day_clock, rows = clock if clock is not None else (None, None)
        return grid_quantiles(days, cdf, qs, self.horizon_days, day_clock, rows)

    def day_clock(self, as_of, n_days: int | None = None, countries=None) -> tuple[DayClock, np.ndarray] | None:
        """Per country (``countries``: one per invoice, None: one group), the weight of each day from
        ``as_of`` on as a ``DayClock``, and each invoice's group: for ``quantiles`` and
        ``models.forecast.build_period_cdf``.
        The table covers every day of any invoice's CDF grid (the bins' span), or ``n_days`` when more.

        From ``payment_calendar_`` (``features.calendar.payment_calendar``); a model stored before it
        has at most weekday weights, and one stored before those spreads evenly (None).
        """
        cal = getattr(self, "payment_calendar_", None)
        if cal is None:
            weekdays = getattr(self, "weekday_weights_", None)
            if weekdays is None:
                return None
            cal = PaymentCalendar(weekday_weights=weekdays)
        edges = getattr(self, "edges_", None)
        span = int(np.ptp(edges if edges is not None else _edges(self.bin_edges))) + 2
        n_days = max(span, int(n_days or 0))
        codes, rows = ([None], None) if countries is None else _country_groups(countries)
        # A server asks for the same day at every request: the clocks of each mix of countries asked for
        # are kept for the last day and calendar (not pickled).
        key = (pd.Timestamp(as_of).normalize(), n_days)
        memo = self.__dict__.get("day_clocks_memo_")
        if memo is None or memo[0] != key or memo[1] is not cal:
            memo = self.__dict__["day_clocks_memo_"] = (key, cal, {})
        tables = memo[2]
        clock = tables.get(tuple(codes))
        if clock is None:
            if len(tables) >= MEMO_TABLES:
                tables.clear()
            clock = tables[tuple(codes)] = DayClock(cal.day_weights(key[0], n_days, codes))  # read-only
        return clock, rows

    @staticmethod
    def paid_before(days: np.ndarray, cdf: np.ndarray, day) -> np.ndarray:
        """P(paid before ``day`` days after as_of), per row of ``predict_cdf``'s ``(days, cdf)``: one day for
        every row, or one per row. Linear in calendar days inside a bin; 0 before as_of. The risk blends read
        it at day boundaries (one day after the due date, and 31 days after), and were measured so."""
        x = np.broadcast_to(np.asarray(day, dtype=float), (len(cdf),))[:, None]
        return interp_rows(x, days, cdf)[:, 0]

    def sample(self, days: np.ndarray, cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Payment days (after as_of) for uniform draws ``u`` (n, m); ``inf`` past the horizon."""
        return sample_payment_days(days, cdf, u, self.horizon_days)
