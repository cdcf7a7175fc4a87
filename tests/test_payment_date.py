"""The payment-date model: person-period rows, quantiles on the payment calendar, calibration maps and
the cross-fit siblings, on hand-made grids (tests/test_models.py fits whole models)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.base import BaseEstimator

from models.calibration import calibrate_payment_model
from models.calibration import km_map as _km_map
from models.hazard import PaymentDateModel, _edges
from models.scorer import EncaisseModel
from pipelines.config import TrainingConfig


def _geometry(edges=(-10, -5, -2, -1, 0, 1, 2, 5, 10, 30)) -> PaymentDateModel:
    m = PaymentDateModel(bin_edges=edges, horizon_days=60)
    m.edges_ = _edges(edges)
    return m


def _x(days_to_due):
    return pd.DataFrame({"i_days_to_due": np.asarray(days_to_due, float), "i_due_dow": 0.0, "i_due_month": 1.0})


def test_expansion_follows_the_invoice_from_its_delay_at_as_of():
    m = _geometry()
    # Due in 3 days (delay -3 at as_of), paid 4 days later: delay 1, in bin [1, 2).
    Z, y, _ = m._expand(_x([3]), [4], [1])
    assert list(Z["h_start"]) == [-3, -2, -1, 0, 1]  # first bin starts at the as_of delay
    assert list(Z["h_width"]) == [1, 1, 1, 1, 1]
    assert list(y) == [0, 0, 0, 0, 1]


def test_a_censored_invoice_contributes_only_the_bins_it_was_seen_through():
    m = _geometry()
    # Due in 3 days, still open 5 days later (delay 2): bins ending at or before 2 only.
    Z, y, _ = m._expand(_x([3]), [5], [0])
    assert list(Z["h_start"]) == [-3, -2, -1, 0, 1]
    assert y.sum() == 0
    # Open for a day only: no complete bin, no row.
    Z, y, _ = m._expand(_x([3]), [0], [0])
    assert len(Z) == 0


def test_quantiles_are_whole_days():
    m = _geometry()
    days = np.array([[0, 1, 2, 3, 4, 5]], dtype=float)
    cdf = np.array([[0.0, 0.05, 0.5, 0.6, 0.95, 1.0]])
    q = m.quantiles(days, cdf, (0.1, 0.5, 0.9))
    # P(paid by day 0) = .05, by day 1 = .5, by day 2 = .6, by day 3 = .95
    assert list(q[0]) == [1, 1, 3]


def test_quantiles_on_the_calendar_clock_fall_on_the_days_payments_fall_on():
    from features.calendar import PaymentCalendar

    m = _geometry()
    # One bin over the week after as_of holds every payment.
    days = np.array([[0, 7, 60]], dtype=float)
    cdf = np.array([[0.0, 1.0, 1.0]])
    # Evenly over the days: P(paid by the end of day t) = (t + 1) / 7.
    assert list(m.quantiles(days, cdf, (0.1, 0.5, 0.9))[0]) == [0, 3, 6]
    cal = PaymentCalendar(weekday_weights=[1, 1, 1, 1, 1, 0, 0])
    # As_of a Monday: the five weekdays hold a fifth each, the weekend nothing.
    monday = m.quantiles(days, cdf, (0.1, 0.5, 0.9), (cal.day_weights("2025-03-03", 62, [None]), None))
    assert list(monday[0]) == [0, 2, 4]
    # As_of a Saturday: nothing before Monday (day 2); Friday (day 6) ends it.
    saturday = m.quantiles(days, cdf, (0.1, 0.5, 0.9), (cal.day_weights("2025-03-08", 62, [None]), None))
    assert list(saturday[0]) == [2, 4, 6]
    # A day-wide bin on a day of no weight (as_of a Saturday): its mass goes to Monday.
    daily = m.quantiles(np.array([[0, 1, 2, 60]], dtype=float), np.array([[0.0, 0.6, 0.6, 1.0]]), (0.5,),
                        (cal.day_weights("2025-03-08", 62, [None]), None))
    assert daily[0, 0] == 2
    # Per row, its own group's days; past the horizon is still inf.
    three = np.array([[0, 7, 60], [0, 7, 60], [0, 30, 90]], dtype=float)
    cdfs = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.3, 0.6]])
    weights = np.vstack([cal.day_weights("2025-03-03", 92, [None]), np.ones((1, 92))])
    q = m.quantiles(three, cdfs, (0.1, 0.5, 0.9), (weights, np.array([0, 1, 1])))
    assert list(q[0]) == [0, 2, 4] and list(q[1]) == [0, 3, 6]
    assert q[2, 0] == 9 and np.isinf(q[2, 2])  # 0.1 of 0.3 over 30 days: day 9's end, on flat weights
    # A table shorter than the grid, or a row without a group, is an error, not a quantile.
    with pytest.raises(ValueError, match="cover 62 days"):
        m.quantiles(three, cdfs, (0.5,), (weights[:, :62], np.array([0, 1, 1])))
    with pytest.raises(ValueError, match="a group in 0..1"):
        m.quantiles(three, cdfs, (0.5,), (weights, np.array([0, 1, 2])))


def test_the_models_quantiles_follow_its_payment_calendar():
    from features.calendar import PaymentCalendar

    pm = _geometry()
    scorer = EncaisseModel()
    scorer.payment_model_ = pm
    days = np.array([[0, 7, 40]] * 2, dtype=float)
    cdf = np.array([[0.0, 1.0, 1.0]] * 2)
    # A model stored before the calendar spreads evenly.
    assert scorer.payment_quantiles(days, cdf, "2025-12-22", (0.9,)).ravel().tolist() == [6, 6]
    # Monday 22 December 2025: GB closes on Thursday 25 and Friday 26, no weekend payment anywhere.
    pm.payment_calendar_ = PaymentCalendar(weekday_weights=[1, 1, 1, 1, 1, 0, 0],
                                           holiday_weights={"GB": {"Christmas Day": 0.0, "Boxing Day": 0.0}})
    q = scorer.payment_quantiles(days, cdf, "2025-12-22", (0.5, 0.9), countries=["GB", None])
    assert q[0].tolist() == [1, 2] and q[1].tolist() == [2, 4]
    # The days kept between calls are each country's own, whatever the mix asked for, and the day's.
    cal = pm.payment_calendar_
    for day, countries in (("2025-12-22", ["FR", "GB"]), ("2025-12-22", [None, "FR", "NL"]), ("2025-12-29", ["GB"])):
        clock, rows = pm.day_clock(day, 50, countries)
        np.testing.assert_array_equal(clock.weights[rows], cal.day_weights(day, 50, countries))
    # A day's clock is made once and read by every call; the quantiles read from it are the table's.
    clock, rows = pm.day_clock("2025-12-22", countries=["GB", None])
    assert pm.day_clock("2025-12-22", countries=[None, "GB", "GB"])[0] is clock
    np.testing.assert_array_equal(pm.quantiles(days, cdf, (0.5, 0.9), (clock, rows)),
                                  pm.quantiles(days, cdf, (0.5, 0.9), (clock.weights.copy(), rows)))
    # The table covers the bins' whole span (42 days here) when asked for fewer.
    assert pm.day_clock("2025-12-22", 10)[0].weights.shape == (1, 42)
    # A calendar put in place of another is read, not the days kept from the first.
    pm.payment_calendar_ = PaymentCalendar(weekday_weights=np.ones(7))
    assert (pm.day_clock("2025-12-29", 50, ["GB"])[0].weights == 1.0).all()
    assert "day_clocks_memo_" not in pickle.loads(pickle.dumps(pm)).__dict__
    # A day of many mixes of countries keeps a bounded number of tables, each still right.
    from models.hazard import MEMO_TABLES

    for k in range(MEMO_TABLES + 5):
        clock, rows = pm.day_clock("2025-12-30", 50, [f"X{k}", "GB"])
        np.testing.assert_array_equal(clock.weights[rows],
                                      pm.payment_calendar_.day_weights("2025-12-30", 50, [f"X{k}", "GB"]))
    assert 0 < len(pm.day_clocks_memo_[2]) <= MEMO_TABLES


def test_mass_beyond_the_horizon_is_reported_as_such():
    m = _geometry()
    days = np.array([[0, 30, 90]], dtype=float)
    cdf = np.array([[0.0, 0.3, 0.6]])  # 40 % never paid within 90 days; horizon 60
    q = m.quantiles(days, cdf, (0.1, 0.9))
    assert np.isfinite(q[0, 0]) and np.isinf(q[0, 1])
    s = m.sample(days, cdf, np.array([[0.1, 0.5, 0.95]]))
    assert 0 <= s[0, 0] < 30 and np.isinf(s[0, 1]) and np.isinf(s[0, 2])


def test_calibration_map_is_identity_for_uniform_pit_and_corrects_overconfidence():
    rng = np.random.default_rng(0)
    grid, g = _km_map(rng.random(20000), np.ones(20000, bool))
    assert np.abs(np.interp([0.1, 0.5, 0.9], grid, g) - [0.1, 0.5, 0.9]).max() < 0.02
    # PIT piled at the ends (overconfident forecasts): G pushes mass outwards.
    u = np.clip(rng.normal(0.5, 0.4, 20000), 0, 1)
    grid, g = _km_map(u, np.ones(20000, bool))
    assert np.interp(0.1, grid, g) > 0.15 and np.interp(0.9, grid, g) < 0.85


def test_person_period_rows_leave_nothing_of_the_buffer_they_reuse():
    from models.bins import person_period_rows

    buffer = np.full((3, 6), 7.0)  # what an earlier slice left
    Z = person_period_rows(buffer[:2], np.array([[1.0, 2.0], [3.0, np.nan]]),
                            {"h_bin": np.array([0.0, 1.0]), "h_unknown": np.array([5.0, 5.0])},
                            {"h_bin": 4, "h_width": 3})
    np.testing.assert_array_equal(Z, [[1, 2, np.nan, np.nan, 0, np.nan], [3, np.nan, np.nan, np.nan, 1, np.nan]])


def test_group_calibration_maps_each_days_overdue_group_with_its_own_map():
    rng = np.random.default_rng(0)
    m = _geometry()
    m.calibration_groups = (0,)  # two groups: not overdue, overdue
    grid = np.linspace(0, 1, 5)
    m.calibration_ = (grid, grid)  # identity for any group without a map
    m.group_calibration_ = {1: (grid, np.sqrt(grid))}  # overdue invoices: a map of their own
    cdf = np.sort(rng.random((4, 3)), axis=1)
    out = m._calibrate(cdf, overdue=np.array([-3.0, 0.0, 1.0, 40.0]))
    np.testing.assert_allclose(out[:2], cdf[:2])
    np.testing.assert_allclose(out[2:], np.interp(cdf[2:], grid, np.sqrt(grid)))
    assert (np.diff(out, axis=1) >= 0).all()


def test_calibration_strength_blends_each_group_between_its_raw_and_mapped_cdf():
    rng = np.random.default_rng(1)
    m = _geometry()
    m.calibration_groups = (0, 30)  # three groups: not overdue, 1-30, over 30
    grid = np.linspace(0, 1, 5)
    m.calibration_ = (grid, grid)
    m.group_calibration_ = {k: (grid, np.sqrt(grid)) for k in range(3)}
    cdf = np.sort(rng.random((3, 6)), axis=1)
    overdue = np.array([-3.0, 10.0, 45.0])
    full = m._calibrate(cdf, overdue)
    m.calibration_strength = (0.0, 0.5)  # the last group: past the tuple's end, the whole map
    out = m._calibrate(cdf, overdue)
    np.testing.assert_allclose(out[0], cdf[0])
    np.testing.assert_allclose(out[1], 0.5 * (cdf[1] + full[1]))
    np.testing.assert_allclose(out[2], full[2])
    assert (np.diff(out, axis=1) >= 0).all() and (out >= 0).all() and (out <= 1).all()
    # A group without a map of its own blends with the overall map, and so does every invoice when
    # no group has one.
    m.calibration_ = (grid, grid ** 2)
    for maps in ({0: (grid, np.sqrt(grid))}, {}):
        m.group_calibration_ = maps
        out = m._calibrate(cdf, overdue)
        overall = np.interp(cdf, grid, grid ** 2)
        np.testing.assert_allclose(out[0], cdf[0])
        np.testing.assert_allclose(out[1], 0.5 * (cdf[1] + overall[1]))
        np.testing.assert_allclose(out[2], overall[2])
    m.calibration_strength = (1.5,)
    with pytest.raises(ValueError, match="between 0 and 1"):
        m._calibrate(cdf, overdue)


class _Sibling(BaseEstimator):
    """Records which rows each sibling of the cross-fitted calibration is fitted on and predicts."""

    log: list = []

    def __init__(self, calibration_slice="cross_fit", cross_fit_folds=2, refit_full=False, mixture="model"):
        self.calibration_slice = calibration_slice
        self.cross_fit_folds = cross_fit_folds
        self.refit_full = refit_full
        self.mixture = mixture

    def fit(self, X, duration, event, eval_set=None, age_days=None):
        self.log.append({"fit": set(X["row"]), "eval": set(eval_set[0]["row"])})
        return self

    def predict_raw_cdf(self, X):
        self.log[-1]["predicted"] = set(X["row"])
        return np.zeros((len(X), 2)), np.zeros((len(X), 2))

    def fit_calibration(self, days, cdf, duration, event, overdue, seed=0):
        self.calibrated_rows = len(days)


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_cross_fitted_calibration_predicts_each_client_by_a_sibling_that_never_saw_it(folds):
    rng = np.random.default_rng(1)
    n = 600
    ts = pd.DataFrame({"client_id": rng.integers(0, 40, n).astype(str), "duration_days": rng.integers(1, 90, n),
                       "event": rng.integers(0, 2, n), "i_days_to_due": rng.integers(-60, 30, n)})
    X = pd.DataFrame({"row": np.arange(n)})
    fit_m = rng.random(n) < 0.8
    _Sibling.log = []
    pm = _Sibling(cross_fit_folds=folds)
    calibrate_payment_model(pm, X, ts, fit_m, np.zeros(n), held_out=(), seed=0)
    assert len(_Sibling.log) == folds
    client = ts["client_id"].to_numpy()
    predicted = [s["predicted"] for s in _Sibling.log]
    for s in _Sibling.log:
        seen = s["fit"] | s["eval"]
        assert not set(client[list(s["predicted"])]) & set(client[list(seen)])
        assert s["fit"] <= set(np.flatnonzero(fit_m)) and not s["eval"] & set(np.flatnonzero(fit_m))
    # Every row is predicted once, by exactly one sibling, and every one of them calibrates.
    assert sorted(r for p in predicted for r in p) == list(range(n))
    assert pm.calibrated_rows == n


def test_the_mixture_needs_the_cross_fit_siblings():
    for mixture in ("model_and_siblings", "siblings"):
        with pytest.raises(ValidationError, match="calibration_slice: cross_fit"):
            TrainingConfig.model_validate({"model": {"payment_options": {"mixture": mixture}}})
    with pytest.raises(ValidationError, match="recalibrate: true"):
        TrainingConfig.model_validate({"model": {"recalibrate": False, "payment_options": {
            "mixture": "model_and_siblings", "calibration_slice": "cross_fit"}}})
