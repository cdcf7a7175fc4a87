"""The Encaisse model: features, late-payment risk and payment-date distribution behind one object.

``EncaisseModel.fit(ledger, as_of)`` trains on what was known at the start of ``as_of``;
``score(ledger, as_of)`` scores the invoices open on a day. Batch scoring, backtests and the API
all call ``score``, through the same feature code, so a score does not depend on who asked.

Time-ordered training (``as_of`` = D, snapshots every ``snapshot_freq_days`` before D):
    * payment-date model: fitted on snapshots up to D - ``hazard_holdout_days``; early-stopped on
      the later ones. Censoring at D is modelled, so every snapshot counts.
    * risk models: labels need ``label_window_days`` of outcomes, so only snapshots up to
      D - label_window_days are used; the last ``calibration_days`` of those calibrate (and
      early-stop) what the earlier ones fitted. The configuration keeps the window at least
      ``hazard_holdout_days``: the risk models never see ``encaisse train``'s validation period.
    * ``p_late`` and ``p_very_late`` blend the risk classifiers with what the payment-date
      distribution says of the same events, in log-odds (``late_blend``, ``very_late_blend``).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.calendar import payment_calendar
from features.invoices import build_features
from features.snapshots import VERY_LATE_DAYS, snapshot_dates, stack_snapshots
from ledger.contracts import Ledger, isin
from models.calibration import calibrate_payment_model, fit_by_siblings
from models.drift import REFERENCE_DAYS, build_reference, reference_rows
from models.encoded import EncodedRows, EncodedScores
from models.encoding import FeatureEncoder
from models.hazard import DEFAULT_EDGES, PaymentDateModel
from models.reasons import pick_reasons, speakable_cells
from models.risk import CalibratedRisk, blend_log_odds

log = logging.getLogger(__name__)

MIN_RISK_FIT_DAYS = 28
"""Snapshot days the risk models' fitting slice keeps at least, before the calibration slice."""

OVERLAP_MIN_ROWS = 20_000
"""Rows from which ``predict_encoded`` computes the reasons beside the predictions (a thread's start
costs more than it saves on a few rows, and a server asks for few rows on one thread)."""

SCORE_COLUMNS = [
    "invoice_id", "client_id", "amount", "currency", "issue_date", "due_date",
    "p_late", "p_very_late", "expected_payment_date", "payment_date_low", "payment_date_high",
    "p10_days", "p50_days", "p90_days", "beyond_horizon", "reasons",
]


@dataclass
class TrainingReport:
    """What ``fit`` saw: counts and dates, logged with the model."""

    as_of: str
    n_snapshots: int
    n_rows: int
    hazard_fit_rows: int
    hazard_eval_rows: int
    hazard_expanded_rows: int
    risk_fit_rows: int
    risk_cal_rows: int
    first_snapshot: str
    last_snapshot: str
    risk_label_window_days: int = 0
    risk_calibration_days: int = 0


class Scorer(Protocol):
    """What batch scoring (``models.scoring.build_scoring``) asks of a fitted model.

    ``EncaisseModel`` on one machine; ``pipelines.distributed.DistributedModel`` on a Dask cluster,
    which splits the ledger and the frames given here by client partition. Precomputed state is
    passed in, never reached for: client features to ``features``, invoice features to ``score``.
    """

    def features(self, ledger: Ledger, as_of, invoice_ids=None, clients: pd.DataFrame | None = None) -> pd.DataFrame:
        """Feature rows of the invoices open at the start of ``as_of`` (``clients``: precomputed client
        features as of that day)."""

    def score(self, ledger: Ledger, as_of, invoice_ids=None, n_reasons: int = 3, lang: str = "en",
              return_cdf: bool = False, features: pd.DataFrame | None = None, num_threads: int = 0):
        """``EncaisseModel.score``'s frame (and CDFs) for those invoices (``features``: from ``features``)."""


class EncaisseModel(BaseEstimator):
    """Late-payment probabilities and payment-date distributions for open invoices.

    Args:
        extra_attributes: mapped extra invoice columns used as categorical features.
        include_suspected_leaks: also use attributes suspected of holding export-time state.
        snapshot_freq_days: days between training snapshots.
        max_snapshots: keep at most this many most recent snapshots (None: all).
        label_window_days: outcome days a risk label needs before it counts.
        calibration_days: length of the calibration slice for the risk models, in days.
        hazard_holdout_days: length of the early-stopping slice for the payment-date model.
        bin_edges: payment-date bins in days from as_of (the last is the horizon).
        hazard_params, risk_params: LightGBM parameters for the two kinds of model.
        risk_bags: boosters averaged in each risk model (``CalibratedRisk.bags``).
        late_blend: share of the payment-date distribution's P(paid after the due date) in the log-odds
            of ``p_late`` (the late classifier has the rest; 0: the classifier alone).
        very_late_blend: the same for ``p_very_late`` and the distribution's P(paid more than
            ``VERY_LATE_DAYS`` after the later of the due date and as_of).
        recalibrate: recalibrate the payment-date distribution on the held-out later slice.
        max_training_rows: budget of snapshot rows; above it, a stable sample of whole clients is
            trained on (None: no limit).
        random_state: seed.
        payment_options: further ``PaymentDateModel`` parameters (``refit_full``,
            ``calibration_groups``, ``recency_halflife_days``, ``horizon_days``).
        feature_groups: optional feature groups (``features.signals.FEATURE_GROUPS``).
    """

    # A model pickled before these parameters existed has their defaults.
    feature_groups: tuple[str, ...] = ()
    risk_bags = 1
    late_blend = very_late_blend = 0.0

    def __init__(
        self,
        extra_attributes: tuple[str, ...] = (),
        include_suspected_leaks: bool = False,
        snapshot_freq_days: int = 14,
        max_snapshots: int | None = None,
        label_window_days: int = 45,
        calibration_days: int = 63,
        hazard_holdout_days: int = 42,
        bin_edges=DEFAULT_EDGES,
        hazard_params: dict | None = None,
        risk_params: dict | None = None,
        recalibrate: bool = True,
        max_training_rows: int | None = 300_000,
        random_state: int = 0,
        payment_options: dict | None = None,
        feature_groups: tuple[str, ...] = (),
        risk_bags: int = 1,
        late_blend: float = 0.5,
        very_late_blend: float = 0.5,
    ):
        self.very_late_blend = very_late_blend
        self.risk_bags = risk_bags
        self.late_blend = late_blend
        self.payment_options = payment_options
        self.feature_groups = feature_groups
        self.recalibrate = recalibrate
        self.max_training_rows = max_training_rows
        self.extra_attributes = extra_attributes
        self.include_suspected_leaks = include_suspected_leaks
        self.snapshot_freq_days = snapshot_freq_days
        self.max_snapshots = max_snapshots
        self.label_window_days = label_window_days
        self.calibration_days = calibration_days
        self.hazard_holdout_days = hazard_holdout_days
        self.bin_edges = bin_edges
        self.hazard_params = hazard_params
        self.risk_params = risk_params
        self.random_state = random_state

    # -- features ------------------------------------------------------------------------------
    def feature_options(self) -> dict:
        """The ``build_features`` options of this model (its training rows and scored rows use the same)."""
        # getattr: a model pickled before feature groups existed has none.
        return dict(extra_attributes=list(self.extra_attributes),
                    include_suspected_leaks=self.include_suspected_leaks,
                    feature_groups=tuple(getattr(self, "feature_groups", ()) or ()))

    def build_training_set(self, ledger: Ledger, as_of) -> pd.DataFrame:
        """Snapshot rows with outcomes, from what was known at the start of ``as_of``.

        Raises:
            ValueError: too few snapshot days, or an ``extra_attributes`` column the invoices lack.
        """
        d = pd.Timestamp(as_of)
        missing = [a for a in self.extra_attributes if a not in ledger.invoices.columns]
        if missing:
            raise ValueError(f"model.extra_attributes names columns the stored invoices do not have: "
                             f"{', '.join(missing)}. Map them as `extra:` columns in the ingest mapping and ingest "
                             "again, or remove them from the configuration.")
        known = ledger.known_at(d)
        dates = snapshot_dates(known, d, freq_days=self.snapshot_freq_days, max_snapshots=self.max_snapshots)
        if len(dates) < 4:
            raise ValueError(
                f"Only {len(dates)} snapshot days fit between the start of the history and {d.date()}; "
                f"training needs at least 4. Train as of a later date or load more history."
            )
        known = self._sample_clients(known, dates)
        return stack_snapshots(known, dates, d, **self.feature_options())

    def _sample_clients(self, known: Ledger, dates: list[pd.Timestamp]) -> Ledger:
        """Keep a deterministic share of clients (whole histories) when the rows would exceed the budget.

        The share is ``max_training_rows`` / (invoices open summed over the snapshot days); a client
        is kept when a stable hash of its id falls under it, so the same clients are kept run after run.
        """
        if not self.max_training_rows:
            return known
        inv = known.invoices[known.invoices["doc_type"] == "invoice"]
        issue = inv["issue_date"].to_numpy()
        paid = inv["paid_date"].to_numpy()
        rows = sum(int(((issue < day) & ~(paid < day)).sum()) for day in np.array(dates, dtype="datetime64[s]"))
        share = self.max_training_rows / max(rows, 1)
        if share >= 1:
            return known
        keep_ids = known.invoices["client_id"].drop_duplicates()
        h = pd.util.hash_pandas_object(keep_ids, index=False).to_numpy() % 1_000_000 / 1_000_000
        keep = set(keep_ids[h < share])
        log.info("Training on %.0f%% of clients (%d of ~%d snapshot rows)", 100 * share, self.max_training_rows, rows)
        return Ledger(
            invoices=known.invoices[isin(known.invoices["client_id"], keep)],
            payments=known.payments[isin(known.payments["invoice_id"],
                                          known.invoices.loc[isin(known.invoices["client_id"], keep), "invoice_id"])],
            clients=known.clients[isin(known.clients["client_id"], keep)],
            actions=known.actions[isin(known.actions["client_id"], keep)],
        )

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, ledger: Ledger, as_of, training_set: pd.DataFrame | None = None) -> "EncaisseModel":
        """Fit every part on what was known at the start of ``as_of``.

        Args:
            ledger: the ledger (anything dated on or after ``as_of`` is ignored).
            as_of: the training day D.
            training_set: a precomputed ``build_training_set(ledger, as_of)`` (e.g. while tuning).
        """
        d = pd.Timestamp(as_of)
        ts = training_set if training_set is not None else self.build_training_set(ledger, d)
        self.encoder_ = FeatureEncoder().fit(ts)
        X = self.encoder_.transform(ts)

        h_cut = d - pd.Timedelta(days=self.hazard_holdout_days)
        fit_m = (ts["as_of"] <= h_cut).to_numpy()
        if fit_m.sum() == 0 or (~fit_m).sum() == 0:
            raise ValueError(f"The payment-date model needs snapshots both before and after {h_cut.date()}.")
        self.payment_model_ = PaymentDateModel(bin_edges=self.bin_edges, lgbm_params=self.hazard_params,
                                               random_state=self.random_state, **(self.payment_options or {}))
        problem = self.payment_model_.mixture_problem(self.recalibrate)
        if problem:
            raise ValueError(problem)
        age = ((d - ts["as_of"]) / pd.Timedelta(days=1)).to_numpy()
        held_out = (X[~fit_m], ts.loc[~fit_m, "duration_days"], ts.loc[~fit_m, "event"])
        if self.payment_model_.mixture == "siblings":
            # The cross-fit siblings are the model (and its calibration): no booster on every client.
            fit_by_siblings(self.payment_model_, X, ts, fit_m, age, seed=self.random_state)
        else:
            self.payment_model_.fit(X[fit_m], ts.loc[fit_m, "duration_days"], ts.loc[fit_m, "event"],
                                    eval_set=(*held_out, age[~fit_m]), age_days=age[fit_m])
            if self.recalibrate:
                calibrate_payment_model(self.payment_model_, X, ts, fit_m, age, held_out, seed=self.random_state)
        self.payment_model_.__dict__.pop("holdout_booster_", None)  # only recalibration needs it
        # Cash forecasts spread a bin's probability over its days as the ledger's payments fall on the
        # weekdays and holidays (models.forecast.build_period_cdf): a clearing ledger records next to
        # none on weekends, nor on the holidays its banks close for.
        self.payment_model_.payment_calendar_ = payment_calendar(ledger, d)

        label_days, cal_days = self._risk_windows(ts["as_of"].min(), d)
        label_end = d - pd.Timedelta(days=label_days)
        cal_start = label_end - pd.Timedelta(days=cal_days)
        in_fit = (ts["as_of"] <= cal_start).to_numpy()
        in_cal = ((ts["as_of"] > cal_start) & (ts["as_of"] <= label_end)).to_numpy()
        not_due = (ts["i_days_to_due"] >= 0).to_numpy()
        late_ok = ts["y_late"].notna().to_numpy() & not_due
        very_ok = ts["y_very_late"].notna().to_numpy()
        for name, m in (("fitting", in_fit), ("calibration", in_cal)):
            if not (m & late_ok).any():
                raise ValueError(
                    f"The risk models' {name} slice is empty (snapshots up to {label_end.date()}, "
                    f"calibration after {cal_start.date()}): load more history or train as of a later date."
                )
        bags = getattr(self, "risk_bags", 1)
        self.late_model_ = CalibratedRisk(self.risk_params, random_state=self.random_state, bags=bags).fit(
            X[in_fit & late_ok], ts.loc[in_fit & late_ok, "y_late"], X[in_cal & late_ok], ts.loc[in_cal & late_ok, "y_late"])
        self.very_late_model_ = CalibratedRisk(self.risk_params, random_state=self.random_state, bags=bags).fit(
            X[in_fit & very_ok], ts.loc[in_fit & very_ok, "y_very_late"], X[in_cal & very_ok],
            ts.loc[in_cal & very_ok, "y_very_late"])

        self.as_of_ = d
        self.reference_ = self._build_reference(ts, X)
        self.training_report_ = TrainingReport(
            as_of=str(d.date()), n_snapshots=int(ts["as_of"].nunique()), n_rows=len(ts),
            hazard_fit_rows=int(fit_m.sum()), hazard_eval_rows=int((~fit_m).sum()),
            hazard_expanded_rows=int(self.payment_model_.n_rows_expanded_),
            risk_fit_rows=int((in_fit & very_ok).sum()), risk_cal_rows=int((in_cal & very_ok).sum()),
            first_snapshot=str(ts["as_of"].min().date()), last_snapshot=str(ts["as_of"].max().date()),
            risk_label_window_days=label_days, risk_calibration_days=cal_days,
        )
        return self

    def _build_reference(self, ts: pd.DataFrame, X: pd.DataFrame) -> dict:
        """The feature and score distributions of the latest training snapshots, kept for drift (``models.drift``).

        The snapshots of the last ``REFERENCE_DAYS`` before D: the open invoices the model last
        learned from (a pool of every snapshot would mix in years-old populations).
        """
        recent = np.flatnonzero((ts["as_of"] > ts["as_of"].max() - pd.Timedelta(days=REFERENCE_DAYS)).to_numpy())
        pos = recent[reference_rows(len(recent), self.random_state)]
        M = self.encoder_.to_matrix(X.iloc[pos])
        not_due = ts["i_days_to_due"].to_numpy(dtype=float)[pos] >= 0
        days, cdf = self.payment_model_.predict_cdf_matrix(M)
        p_late, p_very = self._blend_risks(_risk_proba(self.late_model_, M, 0), _risk_proba(self.very_late_model_, M, 0),
                                           days, cdf, ts["i_days_to_due"].to_numpy(dtype=float)[pos])
        return build_reference(ts.iloc[pos], {"p_late": np.where(not_due, p_late, 1.0), "p_very_late": p_very})

    def _blend_risks(self, p_late: np.ndarray, p_very: np.ndarray, days: np.ndarray, cdf: np.ndarray,
                     days_to_due: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The risk classifiers' probabilities, their log-odds blended with what the payment-date
        distribution (``predict_cdf``'s ``days, cdf``, same rows) says of the same events: ``late_blend``
        of P(late)'s, ``very_late_blend`` of P(very late)'s. Paid on the due date is on time, and paid
        ``VERY_LATE_DAYS`` after the later of the due date and as_of is not very late: late is from one
        whole day more. The days to the due date are those the CDF's days grid was built from (clipped into
        the payment-date model's bins, as ``PaymentDateModel._a0`` does)."""
        to_due = -self.payment_model_._a0({"i_days_to_due": days_to_due})
        paid_before = self.payment_model_.paid_before
        return (blend_log_odds(p_late, 1.0 - paid_before(days, cdf, to_due + 1), self.late_blend),
                blend_log_odds(p_very, 1.0 - paid_before(days, cdf, np.maximum(to_due, 0) + VERY_LATE_DAYS + 1),
                               self.very_late_blend))

    def _risk_windows(self, first_snapshot, d: pd.Timestamp) -> tuple[int, int]:
        """The risk models' label window and calibration slice, in days, shrunk to fit a short history.

        Both keep their configured lengths when the snapshots span at least their sum plus
        ``MIN_RISK_FIT_DAYS``; otherwise they shrink in proportion, so that an early cutoff of a
        short extract still trains (labels then need fewer days of outcomes). The label window never
        shrinks below ``hazard_holdout_days`` (nor grows past its configured length): the risk models
        never see the snapshots ``encaisse train`` validates on; the calibration slice gives way instead.
        """
        label, cal = int(self.label_window_days), int(self.calibration_days)
        span = (d - pd.Timestamp(first_snapshot)).days
        if span >= label + cal + MIN_RISK_FIT_DAYS:
            return label, cal
        scale = max(span - MIN_RISK_FIT_DAYS, 2) / (label + cal)
        short_label = max(int(label * scale), min(label, int(self.hazard_holdout_days)), 1)
        short = short_label, max(min(int(cal * scale), span - MIN_RISK_FIT_DAYS - short_label), 1)
        log.warning("Snapshots span only %d days before %s: risk label window %d -> %d days, calibration %d -> %d days",
                    span, d.date(), label, short[0], cal, short[1])
        return short

    def use_compiled_trees(self, cache_dir) -> bool:
        """Predict with the boosters' compiled trees (``models.compiled``: the same numbers, faster),
        compiled once into ``cache_dir`` and loaded from there afterwards. False when they are not
        available here (LightGBM goes on predicting)."""
        check_is_fitted(self, "payment_model_")
        return all([m.attach_compiled(cache_dir) for m in (self.payment_model_, self.late_model_, self.very_late_model_)])

    # -- score ---------------------------------------------------------------------------------
    def features(self, ledger: Ledger, as_of, invoice_ids=None, clients: pd.DataFrame | None = None) -> pd.DataFrame:
        """The feature frame ``score`` uses.

        ``clients``: ``features.clients.build_client_features(ledger, as_of)`` when the caller keeps
        it (a server, per day); the invoice features are then built on it.
        """
        return build_features(ledger, as_of, invoice_ids=invoice_ids, clients=clients, **self.feature_options())

    def encode(self, features: pd.DataFrame, with_reasons: bool = True) -> "EncodedRows":
        """Feature rows with their model input, ready for ``score(rows=...)`` and ``predict_encoded`` (``take`` any subset).

        ``with_reasons``: also decide which cells have words (``describe``) for the reasons; without
        it, scoring decides that for the rows it is asked to give reasons for.
        """
        check_is_fitted(self, "encoder_")
        f = features.reset_index(drop=True).copy()  # a copy is consolidated: taking rows is a few blocks, not a column each
        matrix = self.encoder_.to_matrix(self.encoder_.transform(f))
        names = list(self.very_late_model_.feature_names_in_)
        # The countries as Python objects once: a server answers a few rows at a time from them.
        countries = f["country"].to_numpy(dtype=object, na_value=None) if "country" in f else None
        return EncodedRows(features=f, matrix=matrix, columns=list(self.encoder_.feature_names_in_),
                           speakable=speakable_cells(f, names) if with_reasons else None, countries=countries)

    def score(self, ledger: Ledger | None, as_of, invoice_ids=None, n_reasons: int = 3, lang: str = "en",
              return_cdf: bool = False, features: pd.DataFrame | None = None, num_threads: int = 0,
              rows: "EncodedRows | None" = None):
        """Score the invoices open at the start of ``as_of``.

        ``features``: ``self.features(ledger, as_of, invoice_ids)`` when the caller already built it
        (the worklist needs it too); it is then not built again. ``rows``: those features already
        encoded (``encode``) for this day, as a server keeps them; ``ledger`` is then not read. Each
        row is scored on its own, so scoring ``rows.take(positions)`` gives the same figures as
        scoring all rows and picking those positions. ``num_threads``: LightGBM's prediction
        threads (0: every core; 1 in a server answering concurrent requests).

        Returns:
            A frame with ``SCORE_COLUMNS``: ``p_late`` = P(paid after the due date) (1 for an
            invoice already overdue), ``p_very_late`` = P(paid more than 30 days after
            max(due, as_of)), payment-date P10/P50/P90 as days after ``as_of`` and as dates
            (clipped to the horizon, ``beyond_horizon`` flags P90 past it), and ``reasons``.
            With ``return_cdf``, also ``(days, cdf)``: per invoice, days after as_of at each bin
            edge and P(paid before it), for sampling.
        """
        check_is_fitted(self, "encoder_")
        d = pd.Timestamp(as_of)
        if rows is None:
            f = self.features(ledger, d, invoice_ids) if features is None else features
            rows = self.encode(f, with_reasons=n_reasons > 0)
        r = self.predict_encoded(rows, as_of, n_reasons=n_reasons, lang=lang, num_threads=num_threads)
        f = rows.features
        cols = {c: f[c] for c in ("invoice_id", "client_id", "amount", "currency", "issue_date", "due_date")}
        cols.update(
            p_late=r.p_late, p_very_late=r.p_very_late,
            expected_payment_date=r.dates[:, 1], payment_date_low=r.dates[:, 0], payment_date_high=r.dates[:, 2],
            p10_days=r.days_q[:, 0], p50_days=r.days_q[:, 1], p90_days=r.days_q[:, 2], beyond_horizon=r.beyond_horizon,
            reasons=r.reasons,
        )
        out = pd.DataFrame({c: cols[c] for c in SCORE_COLUMNS})
        return (out, (r.days, r.cdf)) if return_cdf else out

    def predict_encoded(self, rows: "EncodedRows", as_of, positions=None, n_reasons: int = 3, lang: str = "en",
                        num_threads: int = 0) -> "EncodedScores":
        """The model's figures for encoded rows (``score(rows=...)`` without the frame around them).

        ``positions``: score only these rows of ``rows`` (in that order), without taking the
        feature frame's rows: the same figures as ``rows.take(positions)``, for a server answering
        a few invoices out of the day's open ones.
        """
        check_is_fitted(self, "encoder_")
        d = pd.Timestamp(as_of)
        pos = None if positions is None else np.asarray(positions, dtype=np.intp)
        M = rows.matrix if pos is None else rows.matrix[pos]
        n = len(M)
        due = rows.features["i_days_to_due"].to_numpy(dtype=float)
        not_due = (due if pos is None else due[pos]) >= 0
        # A large batch on every core: the reasons are computed in a thread beside the models'
        # predictions (both spend most of their time outside the GIL, in LightGBM, the compiled
        # trees, NumPy and SciPy), so that the steps that run on one core overlap.
        beside = n >= OVERLAP_MIN_ROWS and num_threads != 1 and n_reasons > 0
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reasons") if beside else None
        try:
            pending = pool.submit(self._reasons_encoded, rows, n_reasons, lang, num_threads, M, pos) if pool else None
            if n:
                p_late = _risk_proba(self.late_model_, M, num_threads)
                p_very = _risk_proba(self.very_late_model_, M, num_threads)
                # The payment-date model builds LightGBM's float matrix from the frame it is given;
                # given the matrix's own columns it reads the same numbers without re-coding categories.
                days, cdf = self.payment_model_.predict_cdf_matrix(M, num_threads=num_threads)
                p_late, p_very = self._blend_risks(p_late, p_very, days, cdf, due if pos is None else due[pos])
            else:
                p_late = p_very = np.zeros(0)
                days = cdf = np.zeros((0, len(self.payment_model_.edges_)))
            reasons = pending.result() if pending is not None else None
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        countries = rows.countries if rows.countries is None or pos is None else rows.countries[pos]
        q = self.payment_quantiles(days, cdf, d, (0.1, 0.5, 0.9), countries)
        qd = np.minimum(q, self.payment_model_.horizon_days)
        # Whole days after as_of, as dates (seconds resolution, like the ledger's dates).
        day0 = d.to_datetime64().astype("datetime64[s]")
        dates = day0 + np.round(qd).astype("int64").astype("timedelta64[D]")
        if reasons is None:
            reasons = self._reasons_encoded(rows, n_reasons, lang, num_threads, M, pos) if n else []
        return EncodedScores(p_late=np.where(not_due, p_late, 1.0), p_very_late=p_very, days_q=qd, dates=dates,
                             beyond_horizon=~np.isfinite(q[:, 2]), reasons=reasons, days=days, cdf=cdf)

    def payment_quantiles(self, days: np.ndarray, cdf: np.ndarray, as_of, qs=(0.1, 0.5, 0.9),
                          countries=None) -> np.ndarray:
        """The payment-day quantiles (whole days after ``as_of``, ``inf`` past the horizon) of
        ``predict_cdf``'s ``(days, cdf)``, the CDF rising inside a bin as the ledger's payments fall on
        the weekdays and on the holidays of each invoice's country (``countries``, one per row; None:
        the weekdays only): what the scores, the backtests and monitoring all report."""
        pm = self.payment_model_
        return pm.quantiles(days, cdf, qs, pm.day_clock(as_of, countries=countries))

    def _reasons(self, f: pd.DataFrame, X: pd.DataFrame, n: int = 3, lang: str = "en") -> list[str]:
        """Per invoice, the facts that push P(very late) up the most, in plain words."""
        names = list(self.very_late_model_.feature_names_in_)
        contrib = self.very_late_model_.contributions(X)[:, :-1]
        return pick_reasons(contrib, names, f, speakable_cells(f, names), n, lang)

    def _reasons_encoded(self, rows: "EncodedRows", n: int, lang: str, num_threads: int, M: np.ndarray | None = None,
                         positions: np.ndarray | None = None) -> list[str]:
        """Reasons of ``rows`` (or of the rows at ``positions``, whose float matrix ``M`` is)."""
        m = len(rows) if positions is None else len(positions)
        if n <= 0:
            return [""] * m
        vm = self.very_late_model_
        names = list(vm.feature_names_in_)
        # From X's float matrix: what ``vm.contributions(X)`` gives.
        contrib = vm.contributions_matrix(rows.matrix if M is None else M, num_threads=num_threads)[:, :-1]
        if rows.speakable is not None:
            speakable = rows.speakable if positions is None else rows.speakable[positions]
        else:
            f = rows.features if positions is None else rows.features.take(positions)
            speakable = speakable_cells(f, names)
        return pick_reasons(contrib, names, rows.features, speakable, n, lang, at=positions)


def _risk_proba(model: CalibratedRisk, matrix: np.ndarray, num_threads: int) -> np.ndarray:
    """``model.predict_proba(X)[:, 1]`` from X's float matrix (LightGBM gets the same numbers either way)."""
    return model.calibrated(model.predict_raw_matrix(matrix, num_threads=num_threads))
