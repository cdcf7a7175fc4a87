"""P(late) and P(very late): the risk classifiers blended with what the payment-date distribution says."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.special import expit, logit

from ledger.synth import make_ledger
from models.hazard import PaymentDateModel
from models.risk import blend_log_odds
from models.scorer import EncaisseModel
from pipelines.config import TrainingConfig

SMALL = dict(max_snapshots=10, snapshot_freq_days=21, hazard_params={"n_estimators": 60},
             risk_params={"n_estimators": 60})


@pytest.fixture(scope="module")
def fitted():
    ledger = make_ledger(100, years=2, seed=7, end_date="2025-12-31")
    d = pd.Timestamp("2025-09-01")
    cfg = TrainingConfig.model_validate({"model": SMALL})
    return ledger, d, EncaisseModel(**cfg.model.estimator_params()).fit(ledger, d)


def _unblended(model: EncaisseModel) -> EncaisseModel:
    solo = copy.copy(model)
    solo.late_blend = solo.very_late_blend = 0.0
    return solo


def test_the_cdf_before_a_day_reads_each_rows_days_and_interpolates_inside_a_bin():
    days = np.array([[0.0, 1.0, 2.0, 5.0, 10.0],
                     [0.0, 0.0, 3.0, 8.0, 20.0]])  # the second row's as_of falls inside its first bin
    cdf = np.array([[0.0, 0.1, 0.3, 0.9, 1.0],
                    [0.0, 0.0, 0.2, 0.7, 0.9]])
    before = PaymentDateModel.paid_before
    np.testing.assert_allclose(before(days, cdf, 2), [0.3, 0.2 * 2 / 3])
    np.testing.assert_allclose(before(days, cdf, [3.5, 5.5]), [0.6, 0.45])  # a day per row
    np.testing.assert_allclose(before(days, cdf, [-1, 30]), [0.0, 0.9])  # before as_of; past the last edge


def test_blending_log_odds():
    p, q = np.array([0.2, 0.9, 0.5]), np.array([0.6, 0.3, 0.0])
    assert blend_log_odds(p, q, 0.0) is p
    np.testing.assert_allclose(blend_log_odds(p, q, 1.0), [0.6, 0.3, 1e-4])  # clipped, never 0 or 1
    half = blend_log_odds(p, q, 0.5)
    np.testing.assert_allclose(logit(half[:2]), (logit(p[:2]) + logit(q[:2])) / 2)
    assert 0 < half[2] < 0.5


def test_the_risks_blend_the_classifiers_with_the_payment_date_distribution(fitted):
    ledger, d, model = fitted
    known = ledger.known_at(d)
    s, (days, cdf) = model.score(known, d, n_reasons=0, return_cdf=True)
    solo = _unblended(model).score(known, d, n_reasons=0)
    not_due = (s["due_date"] >= d).to_numpy()
    assert 20 <= not_due.sum() < len(s)
    # P(paid after the due date) from the days grid: the CDF one day after the due day.
    to_due = ((s["due_date"] - d) / pd.Timedelta(days=1)).to_numpy()
    p_after = np.array([1 - np.interp(to_due[i] + 1, days[i], cdf[i]) for i in np.flatnonzero(not_due)])
    expected = expit(0.5 * logit(np.clip(solo["p_late"].to_numpy()[not_due], 1e-4, 1 - 1e-4))
                     + 0.5 * logit(np.clip(p_after, 1e-4, 1 - 1e-4)))
    np.testing.assert_allclose(s["p_late"].to_numpy()[not_due], expected, rtol=1e-9)
    assert not np.allclose(s["p_late"], solo["p_late"])
    assert (s.loc[~not_due, "p_late"] == 1.0).all()
    # Very late: paid more than 30 days after the later of the due date and as_of, i.e. from day 31 on.
    limit = np.maximum(to_due, 0) + 30
    p_very = np.array([1 - np.interp(limit[i] + 1, days[i], cdf[i]) for i in range(len(s))])
    expected = expit(0.5 * logit(np.clip(solo["p_very_late"].to_numpy(), 1e-4, 1 - 1e-4))
                     + 0.5 * logit(np.clip(p_very, 1e-4, 1 - 1e-4)))
    np.testing.assert_allclose(s["p_very_late"], expected, rtol=1e-9)
    # Nothing else moves.
    risks = ["p_late", "p_very_late"]
    pd.testing.assert_frame_equal(s.drop(columns=risks), solo.drop(columns=risks))


def test_the_drift_reference_holds_the_p_late_the_model_scores(fitted):
    ledger, d, model = fitted
    ts = model.build_training_set(ledger, d)
    X = model.encoder_.transform(ts)
    blended = model._build_reference(ts, X)["scores"]
    alone = _unblended(model)._build_reference(ts, X)["scores"]
    for name in ("p_late", "p_very_late"):
        assert blended[name]["mean"] != pytest.approx(alone[name]["mean"], abs=1e-6)
    assert blended == model.reference_["scores"]


def test_a_model_pickled_before_the_blends_scores_with_its_classifiers_alone(fitted):
    ledger, d, model = fitted
    old = copy.copy(model)
    del old.__dict__["late_blend"], old.__dict__["very_late_blend"]
    assert old.get_params()["late_blend"] == old.get_params()["very_late_blend"] == 0.0
    known = ledger.known_at(d)
    pd.testing.assert_frame_equal(old.score(known, d, n_reasons=0), _unblended(model).score(known, d, n_reasons=0))


def test_the_blend_weight_is_a_share():
    assert TrainingConfig.model_validate({}).model.late_blend == 0.5
    for name in ("late_blend", "very_late_blend"):
        with pytest.raises(ValidationError, match=name):
            TrainingConfig.model_validate({"model": {name: -0.1}})



def test_the_backtest_truth_by_hand():
    from ledger.contracts import Ledger
    from models.evaluation import build_truth

    d, end = pd.Timestamp("2024-03-01"), pd.Timestamp("2024-05-01")
    led = Ledger.from_frames(pd.DataFrame({
        "invoice_id": ["on_due", "day_after", "very", "not_very", "open_old", "open_new"],
        "client_id": "A",
        "issue_date": "2024-02-01",
        "due_date": ["2024-03-10", "2024-03-10", "2024-02-20", "2024-02-20", "2024-02-20", "2024-05-15"],
        # very late: paid more than 30 days after max(due, D) = D for those already overdue at D
        "paid_date": ["2024-03-10", "2024-03-11", "2024-04-01", "2024-03-31", None, None],
        "amount": 100.0,
    }))
    frame = led.invoices[["invoice_id", "due_date"]].reset_index(drop=True)
    t = build_truth(frame, led, d, end).set_index(frame["invoice_id"])
    assert t["y_late"].tolist()[:5] == [0, 1, 1, 1, 1] and np.isnan(t.loc["open_new", "y_late"])
    assert t["y_very_late"].tolist()[:5] == [0, 0, 1, 0, 1] and np.isnan(t.loc["open_new", "y_very_late"])
    assert t["duration_days"].tolist() == [9, 10, 31, 30, 61, 61] and t["event"].tolist() == [1, 1, 1, 1, 0, 0]
    assert t["not_due"].tolist() == [True, True, False, False, False, True]


def test_the_blend_reads_the_distribution_at_the_labels_days():
    """A distribution sure of the day: paid on the due date is on time, the day after is late; paid 30 days
    after the later of the due date and as_of is not very late, the day after is."""
    m = EncaisseModel(late_blend=1.0, very_late_blend=1.0)
    m.payment_model_ = PaymentDateModel()
    m.payment_model_.edges_ = np.array([-400.0, 0.0, 1000.0])
    days = np.array([[0.0, 5.0, 6.0, 35.0, 36.0, 400.0]] * 2)

    def sure_on(day):  # all the mass on ``day`` (the CDF rises over [day, day + 1))
        return np.where(days[0] >= day + 1, 1.0, 0.0)[None, :].repeat(2, axis=0)

    half = np.full(2, 0.5)
    to_due = np.array([5.0, 5.0])
    on_time, _ = m._blend_risks(half, half, days, sure_on(5), to_due)
    late, not_very = m._blend_risks(half, half, days, sure_on(6), to_due)
    _, very = m._blend_risks(half, half, days, sure_on(36), to_due)
    assert on_time.max() < 1e-3 and late.min() > 1 - 1e-3
    assert not_very.max() < 1e-3 and very.min() > 1 - 1e-3
    _, at_limit = m._blend_risks(half, half, days, sure_on(35), to_due)
    assert at_limit.max() < 1e-3
