"""Whole models fitted on a synthetic ledger: scores, baselines, row budgets, attributions, risk bags, payment
options and the mixture (tests/test_payment_date.py tests the payment-date model on hand-made grids)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.base import clone

from ledger.synth import make_ledger
from models.encoding import FeatureEncoder
from models.evaluation import build_baselines, build_truth, evaluate_forecasts
from models.scorer import EncaisseModel
from pipelines.config import TrainingConfig

SMALL = dict(max_snapshots=10, snapshot_freq_days=21, hazard_params={"n_estimators": 60},
             risk_params={"n_estimators": 60})


def test_encoder_enforces_columns_and_categories():
    train = pd.DataFrame({"i_amount": [1.0, 2.0], "a_country": ["FR", "DE"], "invoice_id": ["a", "b"]})
    enc = FeatureEncoder().fit(train)
    out = enc.transform(pd.DataFrame({"i_amount": [3], "a_country": ["XX"]}))
    assert out["a_country"].isna().all() and out["i_amount"].dtype == "float64"
    with pytest.raises(ValueError, match="lacks 1 column"):
        enc.transform(pd.DataFrame({"i_amount": [3.0]}))


@pytest.fixture(scope="module")
def fitted():
    ledger = make_ledger(120, years=2, seed=11, end_date="2025-12-31")
    d = pd.Timestamp("2025-09-01")
    model = EncaisseModel(**SMALL).fit(ledger, d)
    return ledger, d, model


def test_scores_are_coherent(fitted):
    ledger, d, model = fitted
    s = model.score(ledger.known_at(d), d)
    assert len(s) > 100
    assert s["p_late"].between(0, 1).all() and s["p_very_late"].between(0, 1).all()
    overdue = s["due_date"] < d
    assert (s.loc[overdue, "p_late"] == 1.0).all()
    assert (s["p10_days"] <= s["p50_days"]).all() and (s["p50_days"] <= s["p90_days"]).all()
    assert (s["expected_payment_date"] >= d).all()
    assert s["reasons"].str.len().gt(0).mean() > 0.5
    again = model.score(ledger, d)  # the full ledger: later facts must not change a score
    pd.testing.assert_frame_equal(s, again)


def test_hazard_predictions_from_the_float_matrix_equal_the_frame_the_model_was_fitted_on(fitted):
    ledger, d, model = fitted
    X = model.encoder_.transform(model.features(ledger, d))
    hm = model.payment_model_
    assert any(isinstance(X[c].dtype, pd.CategoricalDtype) for c in X.columns)
    days, cdf = hm.predict_raw_cdf(X)
    # The same person-period rows as a frame with categorical columns, as at fit.
    a0 = hm._a0(X)
    f = hm._first_bin(a0)
    k = len(hm.edges_) - 1
    rows = np.repeat(np.arange(len(X)), k - f)
    bins = np.concatenate([np.arange(b, k) for b in f])
    h = np.zeros((len(X), k))
    h[rows, bins] = np.clip(hm.booster_.predict(hm._bin_frame(X, rows, bins, a0)), 0.0, 1.0)
    expected = np.hstack([np.zeros((len(X), 1)), 1.0 - np.cumprod(1.0 - h, axis=1)])
    np.testing.assert_array_equal(cdf, expected)
    np.testing.assert_array_equal(hm.predict_raw_cdf(X, num_threads=1)[1], cdf)
    np.testing.assert_array_equal(hm.predict_raw_cdf_matrix(model.encoder_.to_matrix(X))[1], cdf)


def test_hazard_predictions_in_slices_of_one_reused_buffer_equal_one_slice(fitted, monkeypatch):
    import models.hazard as hazard

    ledger, d, model = fitted
    M = model.encoder_.to_matrix(model.encoder_.transform(model.features(ledger, d)))
    whole = model.payment_model_.predict_raw_cdf_matrix(M)[1]
    monkeypatch.setattr(hazard, "PREDICT_CHUNK_ROWS", 37)  # many slices, the last one shorter
    np.testing.assert_array_equal(model.payment_model_.predict_raw_cdf_matrix(M)[1], whole)


def test_model_beats_the_due_date_and_historical_rate_baselines(fitted):
    ledger, d, model = fitted
    s = model.score(ledger, d)
    truth = build_truth(s, ledger, d, pd.Timestamp("2026-01-01"))
    res = evaluate_forecasts(s, truth)
    base = {k: evaluate_forecasts(v, truth) for k, v in build_baselines(ledger, d, s).items()}
    assert res["mae_days"] < base["due_date"]["mae_days"]
    assert res["mae_days"] < base["client_median_delay"]["mae_days"]
    # Skill over the constant forecast (the late rate itself), and close to the client's own
    # history, which is near-optimal on synthetic clients whose profile rarely changes.
    rate = res["late_rate"]
    assert res["brier_p_late"] < rate * (1 - rate)
    assert res["auc_p_late"] > base["historical_rate"]["auc_p_late"] - 0.05
    assert 0.5 <= res["interval_coverage"] <= 0.95


def test_training_needs_enough_history():
    ledger = make_ledger(20, years=1, seed=1, end_date="2025-12-31")
    with pytest.raises(ValueError, match="snapshot days"):
        EncaisseModel(**SMALL).fit(ledger, "2025-02-01")


def test_row_budget_keeps_whole_clients_and_the_same_ones():
    ledger = make_ledger(80, years=2, seed=5, end_date="2025-12-31")
    d = pd.Timestamp("2025-09-01")
    full = EncaisseModel(**SMALL, max_training_rows=None).build_training_set(ledger, d)
    small = EncaisseModel(**SMALL, max_training_rows=len(full) // 3).build_training_set(ledger, d)
    again = EncaisseModel(**SMALL, max_training_rows=len(full) // 3).build_training_set(ledger, d)
    assert 0.15 * len(full) < len(small) < 0.6 * len(full)
    pd.testing.assert_frame_equal(small, again)
    kept = set(small["client_id"])
    # Every kept client's rows are all there, with the same features as without sampling.
    sub = full[full["client_id"].isin(kept)].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub, small.reset_index(drop=True), check_like=True)


def test_path_attribution_adds_up_to_the_raw_score_and_credits_only_split_features():
    import lightgbm as lgb

    from models.risk import PathAttribution

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3_000, 5))
    X[:, 4] = 0.0  # constant: never split on
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    booster = lgb.LGBMClassifier(n_estimators=30, num_leaves=7, n_jobs=1, verbose=-1).fit(X, y).booster_
    credits = PathAttribution(booster).credit(booster.predict(X[:200], pred_leaf=True, num_threads=1))
    assert credits.shape == (200, 6)
    np.testing.assert_allclose(credits.sum(axis=1), booster.predict(X[:200], raw_score=True), rtol=0, atol=1e-9)
    assert np.all(credits[:, 4] == 0.0)
    # x0 drives the label: it takes the largest share of the credit in most rows.
    assert (np.argmax(np.abs(credits[:, :-1]), axis=1) == 0).mean() > 0.5


def test_contributions_in_row_slices_equal_the_whole(monkeypatch):
    import models.risk as risk

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(3_000, 4)), columns=list("abcd"), index=np.arange(3_000)[::-1] * 3)
    y = (X["a"] + rng.normal(size=len(X)) > 0).astype(int)
    m = risk.CalibratedRisk({"n_estimators": 20, "n_jobs": 1, "verbose": -1}).fit(X[:2_400], y[:2_400],
                                                                                  X[2_400:], y[2_400:])
    whole = m.contributions(X)
    monkeypatch.setattr(risk, "CONTRIB_CHUNK_ROWS", 333)
    np.testing.assert_array_equal(m.contributions(X), whole)
    np.testing.assert_array_equal(m.contributions_matrix(X.to_numpy()), whole)
    assert m.contributions(X.iloc[:0]).shape == (0, 5)
    leaves = m.booster_.predict(X.to_numpy()[:50], pred_leaf=True)
    np.testing.assert_array_equal(m.paths_.credit(leaves, ones=np.ones(10**5)), whole[:50])  # a longer buffer
    np.testing.assert_array_equal(m.paths_.credit(leaves, ones=np.ones(7)), whole[:50])  # a shorter one


def test_risk_bags_average_the_log_odds_of_boosters_with_their_own_seeds():
    import models.risk as risk

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(3_000, 4)), columns=list("abcd"))
    y = (X["a"] + 0.5 * X["b"] * X["c"] + rng.normal(size=len(X)) > 0).astype(int)
    params = {"n_estimators": 40, "n_jobs": 1, "verbose": -1}
    one = risk.CalibratedRisk(params, random_state=5).fit(X[:2_400], y[:2_400], X[2_400:], y[2_400:])
    m = risk.CalibratedRisk(params, random_state=5, bags=3).fit(X[:2_400], y[:2_400], X[2_400:], y[2_400:])
    assert len(m.bags_) == 2 and one.bags_ == []
    # The first booster is the one-booster model's; the others differ by their seeds.
    np.testing.assert_array_equal(m.booster_.predict(X), one.booster_.predict(X))
    margins = [b.predict(X, raw_score=True) for b in (m.booster_, *m.bags_)]
    assert not np.allclose(margins[0], margins[1]) and not np.allclose(margins[1], margins[2])
    raw = m.predict_raw(X)
    np.testing.assert_allclose(raw, 1 / (1 + np.exp(-np.mean(margins, axis=0))), rtol=1e-12)
    np.testing.assert_allclose(m.predict_raw_matrix(X.to_numpy()), raw, rtol=1e-12)
    np.testing.assert_allclose(m.predict_proba(X)[:, 1], m.calibrator_.predict(raw))
    # Reasons: each feature's credit in the mean log-odds; the credits add up to it.
    credits = m.contributions(X.iloc[:300])
    np.testing.assert_allclose(credits.sum(axis=1), np.mean(margins, axis=0)[:300], atol=1e-9)
    np.testing.assert_allclose(m.contributions_matrix(X.to_numpy()[:300]), credits)
    back = pickle.loads(pickle.dumps(m))
    assert len(back.bags_) == 2
    np.testing.assert_allclose(back.predict_raw_matrix(X.to_numpy()), raw, rtol=1e-12)
    # A one-booster model pickled before bags existed predicts as it did.
    old = pickle.loads(pickle.dumps(one))
    del old.__dict__["bags"], old.__dict__["bags_"]
    old = pickle.loads(pickle.dumps(old))
    assert old.get_params()["bags"] == 1
    np.testing.assert_array_equal(old.predict_proba(X), one.predict_proba(X))
    np.testing.assert_array_equal(old.contributions(X.iloc[:50]), one.contributions(X.iloc[:50]))


def test_risk_bags_predict_from_their_compiled_trees_and_never_pickle_them(tmp_path):
    pytest.importorskip("lleaves")
    import models.risk as risk

    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(2_000, 3)), columns=list("abc"))
    y = (X["a"] + rng.normal(size=len(X)) > 0).astype(int)
    m = risk.CalibratedRisk({"n_estimators": 30, "n_jobs": 1, "verbose": -1}, bags=2).fit(X[:1_500], y[:1_500],
                                                                                          X[1_500:], y[1_500:])
    raw = m.predict_raw_matrix(X.to_numpy())
    assert m.attach_compiled(tmp_path / "compiled")
    np.testing.assert_allclose(m.predict_raw_matrix(X.to_numpy()), raw, rtol=1e-12)
    assert all(c.verified for c in m.__dict__["compiled_bags_"])  # bit for bit against LightGBM's raw scores
    back = pickle.loads(pickle.dumps(m))
    assert "compiled_bags_" not in back.__dict__ and "compiled_" not in back.__dict__


@pytest.mark.parametrize("options", [
    {"calibration_slice": "all", "calibration_groups": (0, 30)},
    {"calibration_slice": "cross_fit", "calibration_groups": (0, 30)},
    {"calibration_slice": "cross_fit", "calibration_groups": (0, 30), "cross_fit_folds": 3},
    {"calibration_slice": "mixed", "calibration_groups": (0, 30, 90)},
    {"refit_full": True, "recency_halflife_days": 60, "exclude_inputs": ("h_month", "a_country")},
])
def test_payment_options_fit_and_give_coherent_distributions(fitted, options):
    ledger, d, base = fitted
    model = EncaisseModel(**SMALL, payment_options=options).fit(ledger, d)
    pm = model.payment_model_
    assert "holdout_booster_" not in pm.__dict__
    if options.get("calibration_slice") in ("all", "cross_fit", "mixed"):
        assert set(pm.group_calibration_) <= {0, 1, 2} and pm.group_calibration_
    s = model.score(ledger.known_at(d), d, n_reasons=0)
    assert (s["p10_days"] <= s["p50_days"]).all() and (s["p50_days"] <= s["p90_days"]).all()
    assert not s[["p10_days", "p50_days", "p90_days"]].equals(base.score(ledger.known_at(d), d, n_reasons=0)[
        ["p10_days", "p50_days", "p90_days"]])
    if "exclude_inputs" in options:
        used = set(np.array(pm.booster_.feature_name())[pm.booster_.feature_importance() > 0])
        assert not used & {"h_month", "a_country"}


def _own_cdf(pm, M):
    """The raw CDF of ``pm``'s own booster, without its siblings."""
    return pm._cdf_matrices(M, [pm])[1][0]


def test_the_mixture_predicts_the_mean_cdf_of_the_model_and_its_cross_fit_siblings(fitted):
    ledger, d, _ = fitted
    options = {"calibration_slice": "cross_fit", "calibration_groups": (0, 30)}
    alone = EncaisseModel(**SMALL, payment_options=options).fit(ledger, d)
    mixed = EncaisseModel(**SMALL, payment_options={**options, "mixture": "model_and_siblings"}).fit(ledger, d)
    pm = mixed.payment_model_
    assert alone.payment_model_.siblings_ == [] and len(pm.siblings_) == 2
    assert all(s.mixture == "model" and s.siblings_ == [] for s in pm.siblings_)
    f = mixed.features(ledger.known_at(d), d)
    M = pm._frame_matrix(mixed.encoder_.transform(f)[list(pm.feature_names_in_)])
    days, (own,) = pm._cdf_matrices(M, [pm])  # the booster alone, without its siblings
    np.testing.assert_allclose(own, _own_cdf(alone.payment_model_, M))  # the same booster
    mean = (own + sum(_own_cdf(s, M) for s in pm.siblings_)) / 3
    got_days, got = pm.predict_raw_cdf_matrix(M)
    np.testing.assert_array_equal(got_days, days)
    np.testing.assert_allclose(got, mean)
    assert not np.allclose(got, own)
    # The maps are the same (read from the same siblings); what they map differs.
    for k, g in alone.payment_model_.group_calibration_.items():
        np.testing.assert_allclose(pm.group_calibration_[k], g)
    s = mixed.score(ledger.known_at(d), d, n_reasons=0)
    assert (s["p10_days"] <= s["p50_days"]).all() and (s["p50_days"] <= s["p90_days"]).all()
    copy = pickle.loads(pickle.dumps(mixed))
    pd.testing.assert_frame_equal(copy.score(ledger.known_at(d), d, n_reasons=0), s)
    # The person-period rows are built once for every booster: one with other columns is refused.
    width, slots, where = copy.payment_model_.siblings_[0]._layout()
    copy.payment_model_.siblings_[0].__dict__["layout_"] = (width, {**slots, "h_bin": -1}, where)
    with pytest.raises(ValueError, match="same input columns"):
        copy.payment_model_.predict_raw_cdf_matrix(M)

    # A model pickled before the mixture existed predicts with its booster alone, and clones.
    old = pickle.loads(pickle.dumps(alone.payment_model_))
    for name in ("mixture", "cross_fit_folds", "siblings_"):
        old.__dict__.pop(name)
    np.testing.assert_array_equal(old.predict_raw_cdf_matrix(M)[1], own)
    assert clone(old).get_params()["mixture"] == "model"

    # The siblings alone: no booster on every client; the first sibling's is the model's own.
    only_model = EncaisseModel(**SMALL, payment_options={**options, "mixture": "siblings"}).fit(ledger, d)
    only = only_model.payment_model_
    first, second = (_own_cdf(sib, M) for sib in pm.siblings_)
    assert len(only.siblings_) == 1
    np.testing.assert_allclose(_own_cdf(only, M), first)
    np.testing.assert_allclose(_own_cdf(only.siblings_[0], M), second)
    np.testing.assert_allclose(only.predict_raw_cdf_matrix(M)[1], (first + second) / 2)
    assert only.n_rows_expanded_ == sum(sib.n_rows_expanded_ for sib in pm.siblings_)
    np.testing.assert_allclose(only.calibration_, alone.payment_model_.calibration_)
    for k, g in alone.payment_model_.group_calibration_.items():
        np.testing.assert_allclose(only.group_calibration_[k], g)
    s = only_model.score(ledger.known_at(d), d, n_reasons=0)
    assert (s["p10_days"] <= s["p50_days"]).all() and (s["p50_days"] <= s["p90_days"]).all()
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(only_model)).score(ledger.known_at(d), d, n_reasons=0), s)
    # Built without the config, a mixture without the cross-fit siblings is refused too.
    with pytest.raises(ValueError, match="needs the cross-fit siblings"):
        EncaisseModel(**SMALL, payment_options={"mixture": "siblings"}).fit(ledger, d)


def test_a_model_with_feature_groups_scores_with_the_columns_it_was_fitted_on(fitted):
    ledger, d, base = fitted
    model = EncaisseModel(**SMALL, feature_groups=("stuck", "client_effect", "pay_calendar")).fit(ledger, d)
    assert {"i_later_paid", "i_paid_since_due", "c_delay_shrunk", "i_pay_dom_mode"} <= set(model.encoder_.feature_names_in_)
    assert not {"i_later_paid", "c_delay_shrunk", "i_pay_dom_mode"} & set(base.encoder_.feature_names_in_)
    # The usual payment day is read against each bin's calendar, by the payment-date model only.
    bins = set(model.payment_model_.booster_.feature_name())
    assert {"h_pay_dom_next", "h_pay_dom_in_bin", "h_pay_dom_delay"} <= bins
    assert not {"h_pay_dom_next"} & set(base.payment_model_.booster_.feature_name())
    s = model.score(ledger.known_at(d), d, n_reasons=0)
    pd.testing.assert_frame_equal(s, model.score(ledger, d, n_reasons=0))  # later facts change nothing
    assert (s["p10_days"] <= s["p50_days"]).all() and (s["p50_days"] <= s["p90_days"]).all()


def test_risk_bags_come_from_the_config_and_score_like_any_model(fitted):
    ledger, d, base = fitted
    cfg = TrainingConfig.model_validate({"model": {**SMALL, "risk_bags": 2}})
    model = EncaisseModel(**cfg.model.estimator_params()).fit(ledger, d)
    assert len(model.late_model_.bags_) == 1 and len(model.very_late_model_.bags_) == 1
    assert base.late_model_.bags_ == []
    s = model.score(ledger.known_at(d), d, n_reasons=2)
    b = base.score(ledger.known_at(d), d, n_reasons=0)
    # The payment-date model is the same; the risk models are not.
    np.testing.assert_array_equal(s["p50_days"], b["p50_days"])
    assert not np.allclose(s["p_very_late"], b["p_very_late"])
    assert s["p_very_late"].between(0, 1).all() and s["reasons"].str.len().gt(0).any()
    with pytest.raises(ValidationError, match="risk_bags"):
        TrainingConfig.model_validate({"model": {"risk_bags": 0}})


def test_a_short_history_shrinks_the_risk_calibration_slice_before_the_label_window():
    m = EncaisseModel(label_window_days=45, calibration_days=63, hazard_holdout_days=42)
    d = pd.Timestamp("2025-06-01")
    assert m._risk_windows(d - pd.Timedelta(days=200), d) == (45, 63)
    # 112 days of snapshots: in proportion the window would be 35 days, inside the 42 validated on.
    label, cal = m._risk_windows(d - pd.Timedelta(days=112), d)
    assert label == 42 and 1 <= cal <= 112 - 28 - 42
    # A long window still shrinks in proportion, down to the validation period.
    assert EncaisseModel(label_window_days=90)._risk_windows(d - pd.Timedelta(days=140), d) == (65, 46)


def test_fit_keeps_the_ledgers_payment_calendar_for_the_cash_forecast(fitted):
    from features.calendar import payment_calendar

    ledger, d, model = fitted
    cal = model.payment_model_.payment_calendar_
    expected = payment_calendar(ledger, d)
    assert expected is not None and len(cal.weekday_weights) == 7
    np.testing.assert_allclose(cal.weekday_weights, expected.weekday_weights)
    assert cal.holiday_weights == expected.holiday_weights and cal.country_weights == expected.country_weights
    later = payment_calendar(ledger, d + pd.Timedelta(days=90))
    assert not np.allclose(later.weekday_weights, cal.weekday_weights)  # payments after d were not known


def test_scores_put_their_dates_on_the_days_of_each_invoices_country(fitted):
    from features.calendar import PaymentCalendar, invoice_countries

    ledger, d, model = fitted
    known = ledger.known_at(d)
    f = model.features(known, d)
    assert list(f["country"]) == list(invoice_countries(known, f["invoice_id"]))
    top = f["country"].value_counts().index[0]
    m = pickle.loads(pickle.dumps(model))
    # No payment on weekends anywhere, nor on Wednesdays in the commonest country.
    no_wed = [1, 1, 0, 1, 1, 0, 0]
    m.payment_model_.payment_calendar_ = PaymentCalendar(weekday_weights=[1, 1, 1, 1, 1, 0, 0],
                                                         country_weekday_weights={top: no_wed})
    s, (days, cdf) = m.score(known, d, n_reasons=0, return_cdf=True)
    for c in ("payment_date_low", "expected_payment_date", "payment_date_high"):
        dow = s.loc[s["beyond_horizon"].eq(False) | (c != "payment_date_high"), c].dt.day_of_week
        assert (dow < 5).all()
    mine = f.set_index("invoice_id").loc[s["invoice_id"], "country"].to_numpy() == top
    wed = s["expected_payment_date"].dt.day_of_week.to_numpy() == 2
    assert mine.sum() > 20 and not (mine & wed).any() and (~mine & wed).any()
    # Backtests and monitoring read the same countries from the ledger: the same quantiles.
    q = m.payment_quantiles(days, cdf, d, (0.5,), invoice_countries(known, s["invoice_id"]))
    np.testing.assert_array_equal(np.minimum(q[:, 0], m.payment_model_.horizon_days), s["p50_days"].to_numpy())


def test_the_risk_models_isotonic_map_is_read_as_the_calibrator_reads_it(fitted):
    _, _, model = fitted
    rng = np.random.default_rng(3)
    for risk in (model.late_model_, model.very_late_model_):
        iso = risk.calibrator_
        # Between, on and beyond the thresholds, where the map is flat.
        u = np.concatenate([rng.random(5000), iso.X_thresholds_, [-1.0, 0.0, 1.0, 2.0]])
        np.testing.assert_array_equal(risk.calibrated(u), iso.predict(u))
