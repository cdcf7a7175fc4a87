"""Collection forecast: sampling, expectations, copula, backtest metrics and the CLI.

Hand-built CDFs use as_of = Monday 2025-03-03, so week p holds payment days 7p .. 7p + 6 after as_of.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from ledger.contracts import Ledger
from models.forecast import (
    build_actual_collections,
    build_baseline_schedules,
    build_collection_forecast,
    build_period_cdf,
    build_periods,
    build_run_rate,
    evaluate_collection_forecast,
    sample_period_totals,
)
from models.hazard import PaymentDateModel, sample_payment_days
from models.collection import MAX_HORIZON, PERIOD_COLUMNS, build_forecast
from pipelines.plots import plot_forecast

D = "2025-03-03"  # a Monday


def _scores(amounts, clients=None, due="2025-03-20") -> pd.DataFrame:
    n = len(amounts)
    return pd.DataFrame({
        "invoice_id": [f"I{i}" for i in range(n)],
        "client_id": clients if clients is not None else [f"C{i}" for i in range(n)],
        "amount": np.asarray(amounts, dtype=float),
        "due_date": pd.to_datetime([due] * n) if isinstance(due, str) else pd.to_datetime(due),
    })


def _same_cdf(n, days_row, cdf_row):
    return np.tile(np.asarray(days_row, float), (n, 1)), np.tile(np.asarray(cdf_row, float), (n, 1))


# -- periods and sampling --------------------------------------------------------------------------

def test_build_periods_weeks_start_on_monday_and_first_is_partial():
    starts, edges = build_periods("2025-03-05", 3, "W")  # a Wednesday
    assert list(starts.strftime("%Y-%m-%d")) == ["2025-03-03", "2025-03-10", "2025-03-17"]
    assert list(edges) == [0, 5, 12, 19]
    starts, edges = build_periods(D, 2, "D")
    assert list(edges) == [0, 1, 2]
    with pytest.raises(ValueError, match="freq must be one of"):
        build_periods(D, 2, "M")


def test_all_mass_in_days_7_to_14_lands_in_week_2():
    days, cdf = _same_cdf(4, [0, 7, 14, 400], [0, 0, 1, 1])
    t = sample_payment_days(days, cdf, np.random.default_rng(0).random((4, 500)), 365)
    assert (t >= 7).all() and (t < 14).all()
    s = _scores([100.0, 200.0, 300.0, 400.0])
    f = build_collection_forecast(s, days, cdf, PaymentDateModel(horizon_days=365), D, horizon=4, n_samples=200,
                                  client_correlation=0.5, period_noise=0.0)
    np.testing.assert_allclose(f["expected_amount"], [0, 1000, 0, 0])
    np.testing.assert_allclose(f["low"], [0, 1000, 0, 0])
    np.testing.assert_allclose(f["high"], [0, 1000, 0, 0])
    # The model-error factor widens the band around the same expectation.
    g = build_collection_forecast(s, days, cdf, PaymentDateModel(horizon_days=365), D, horizon=4, n_samples=2000,
                                  period_noise=0.2)
    np.testing.assert_allclose(g["expected_amount"], f["expected_amount"])
    assert g["low"][1] < 900 < 1100 < g["high"][1]


def test_expected_total_is_amount_times_p_paid_within_horizon():
    # F(x) = 0.3 x/10 on [0, 10], 0.3 + 0.3 (x - 10)/40 on [10, 50], 0.6 + 0.3 (x - 50)/350 on [50, 400].
    days, cdf = _same_cdf(3, [0, 10, 50, 400], [0, 0.3, 0.6, 0.9])
    s = _scores([1000.0, 500.0, 250.0])
    pm = PaymentDateModel(horizon_days=365)
    # 60 weeks reach past the 365-day horizon: F(365) = 0.6 + 0.3 * 315 / 350 = 0.87.
    f = build_collection_forecast(s, days, cdf, pm, D, horizon=60, n_samples=2000, seed=1)
    assert f["expected_amount"].sum() == pytest.approx(1750 * 0.87)
    assert f.attrs["expected_beyond_horizon"] == pytest.approx(1750 * 0.13)
    # 20 days: F(20) = 0.3 + 0.3 * 10 / 40 = 0.375; first 10 days carry 0.03 each.
    f = build_collection_forecast(s, days, cdf, pm, D, horizon=20, freq="D", n_samples=2000, seed=1)
    assert f["expected_amount"].sum() == pytest.approx(1750 * 0.375)
    np.testing.assert_allclose(f["expected_amount"][:10], 1750 * 0.03)
    # The sampled totals agree with the exact expectation.
    g = build_period_cdf(days, cdf, build_periods(D, 20, "D")[1], 365)
    tot = sample_period_totals(s["amount"].to_numpy(), s["client_id"].to_numpy(), g, n_samples=4000, seed=2)
    assert tot.sum(axis=1).mean() == pytest.approx(1750 * 0.375, rel=0.03)


def test_client_correlation_widens_bands_and_keeps_the_mean():
    n_clients, per = 40, 10
    n = n_clients * per
    days, cdf = _same_cdf(n, [0, 7, 14, 21, 400], [0, 0.3, 0.6, 0.8, 1.0])
    amounts = np.full(n, 100.0)
    clients = np.repeat([f"C{i}" for i in range(n_clients)], per)
    g = build_period_cdf(days, cdf, build_periods(D, 3, "W")[1], 365)
    exact = amounts @ np.diff(g, axis=1)
    np.testing.assert_allclose(exact, [n * 30, n * 30, n * 20])
    width, means = {}, {}
    for rho in (0.0, 0.6):
        tot = sample_period_totals(amounts, clients, g, n_samples=3000, client_correlation=rho, seed=5)
        means[rho] = tot.mean(axis=0)
        q10, q90 = np.quantile(np.column_stack([tot, tot.sum(axis=1)]), [0.1, 0.9], axis=0)
        width[rho] = q90 - q10
    # Every week widens; the three-week total (paid or not within 21 days, client by client) most.
    assert (width[0.6][:3] > 1.15 * width[0.0][:3]).all()
    assert width[0.6][3] > 2.0 * width[0.0][3]
    for rho in means:
        np.testing.assert_allclose(means[rho], exact, rtol=0.04)
    with pytest.raises(ValueError, match=r"client_correlation must be a float in \[0, 1\)"):
        sample_period_totals(amounts, clients, g, client_correlation=1.0)


def test_bands_contain_the_mean_and_due_schedule_puts_overdue_first():
    rng = np.random.default_rng(7)
    n = 300
    days = np.tile(np.array([0, 3, 7, 14, 30, 60, 400.0]), (n, 1))
    cdf = np.hstack([np.zeros((n, 1)), np.sort(rng.random((n, 6)), axis=1)])
    due = pd.Timestamp(D) + pd.to_timedelta(rng.integers(-40, 60, n), unit="D")
    s = _scores(rng.lognormal(7, 1, n), clients=[f"C{i % 30}" for i in range(n)], due=due)
    f = build_collection_forecast(s, days, cdf, PaymentDateModel(horizon_days=365), D, horizon=8, n_samples=800)
    assert (f["low"] <= f["expected_amount"]).all() and (f["expected_amount"] <= f["high"]).all()
    assert (f["low"] <= f["median_amount"]).all() and (f["median_amount"] <= f["high"]).all()
    t = ((due - pd.Timestamp(D)) / pd.Timedelta(days=1)).to_numpy()
    assert f["due_schedule_amount"][0] == pytest.approx(s["amount"][t < 7].sum())
    assert f["due_schedule_amount"][2] == pytest.approx(s["amount"][(t >= 14) & (t < 21)].sum())


# -- backtest metrics ------------------------------------------------------------------------------

def _backtest_ledger(with_payments: bool) -> Ledger:
    rows = [
        # id, client, issue, due, amount, paid
        ("A", "X", "2025-02-01", "2025-03-03", 100.0, "2025-03-05"),  # week 1
        ("B", "X", "2025-02-01", "2025-03-10", 200.0, "2025-03-12"),  # week 2
        ("C", "Y", "2025-02-10", "2025-03-12", 300.0, "2025-03-30"),  # paid after end: censored
        ("E", "Y", "2025-02-10", "2025-03-17", 50.0, "2025-03-20"),   # week 3
        ("F", "Y", "2025-01-10", "2025-02-10", 70.0, "2025-02-12"),   # paid before as_of: not open
        ("G", "Z", "2025-03-04", "2025-03-06", 80.0, "2025-03-06"),   # issued after as_of: not open
    ]
    inv = pd.DataFrame(rows, columns=["invoice_id", "client_id", "issue_date", "due_date", "amount", "paid_date"])
    pay = None
    if with_payments:
        pay = pd.DataFrame([
            ("p1", "A", "2025-03-05", 100.0), ("p2", "B", "2025-02-20", 80.0), ("p3", "B", "2025-03-12", 120.0),
            ("p4", "C", "2025-03-30", 300.0), ("p5", "E", "2025-03-20", 50.0), ("p6", "F", "2025-02-12", 70.0),
            ("p7", "G", "2025-03-06", 80.0),
        ], columns=["payment_id", "invoice_id", "paid_date", "amount"])
    return Ledger.from_frames(inv, pay)


def _frame(expected, low=None, high=None) -> pd.DataFrame:
    f = pd.DataFrame({"period_start": build_periods(D, len(expected), "W")[0], "expected_amount": expected})
    if low is not None:
        f["low"], f["high"] = low, high
    return f


def test_metrics_on_a_hand_built_three_week_example():
    led = _backtest_ledger(with_payments=False)
    end = "2025-03-24"  # weeks 1-3 fully observed; week 4 (from 2025-03-24) is not
    act = build_actual_collections(led, D, end, horizon=4)
    np.testing.assert_allclose(act["actual_amount"], [100, 200, 50, 0])
    assert list(act["observed"]) == [True, True, True, False]
    fc = _frame([120.0, 150.0, 50.0, 999.0], low=[90.0, 210.0, 40.0, 0.0], high=[130.0, 250.0, 60.0, 0.0])
    res = evaluate_collection_forecast(fc, led, D, end)
    # |120-100| + |150-200| + |50-50| = 70 over 350 collected; week 2's 200 is below its band.
    assert res["n_periods"] == 3 and res["actual_total"] == 350
    assert res["weekly_wape"] == pytest.approx(70 / 350)
    assert res["weekly_band_coverage"] == pytest.approx(2 / 3)
    assert [p["actual"] for p in res["periods"]] == [100, 200, 50]
    base = evaluate_collection_forecast(_frame([100.0, 100.0, 100.0, 0.0]), led, D, end)
    assert base["weekly_wape"] == pytest.approx(150 / 350) and base["weekly_band_coverage"] is None
    with pytest.raises(ValueError, match="period_start must be"):
        evaluate_collection_forecast(_frame([1.0, 1.0]).assign(period_start=build_periods("2025-03-10", 2)[0]),
                                     led, D, end)


def test_actuals_count_cash_from_payments_when_the_ledger_has_them():
    led = _backtest_ledger(with_payments=True)
    act = build_actual_collections(led, D, "2025-03-24", horizon=3)
    np.testing.assert_allclose(act["actual_amount"], [100, 120, 50])  # B: 80 of 200 paid before as_of


def test_baseline_schedules_due_date_and_client_median_delay():
    inv = pd.DataFrame([
        # client X paid its past invoices 3, 5 and 30 days late: median 5.
        ("H1", "X", "2024-11-01", "2024-12-01", 10.0, "2024-12-04"),
        ("H2", "X", "2024-12-01", "2025-01-01", 10.0, "2025-01-06"),
        ("H3", "X", "2025-01-01", "2025-01-20", 10.0, "2025-02-19"),
        ("O1", "X", "2025-02-01", "2025-03-04", 100.0, None),  # due day 1 -> +5 = day 6: week 1
        ("O2", "X", "2025-02-01", "2025-03-05", 200.0, None),  # due day 2 -> day 7: week 2
        ("O3", "X", "2025-01-01", "2025-02-01", 400.0, None),  # overdue: first week in both
    ], columns=["invoice_id", "client_id", "issue_date", "due_date", "amount", "paid_date"])
    led = Ledger.from_frames(inv)
    s = led.known_at(D).invoices.query("paid_date.isna()", engine="python")[["invoice_id", "client_id", "amount",
                                                                               "due_date"]].reset_index(drop=True)
    b = build_baseline_schedules(s, led, D, horizon=3)
    np.testing.assert_allclose(b["due_date"]["expected_amount"], [700, 0, 0])
    np.testing.assert_allclose(b["client_median_delay"]["expected_amount"], [500, 200, 0])


def test_run_rate_line_from_history():
    # One 700 EUR invoice issued every Monday for a year, each paid exactly 10 days after issue.
    issue = pd.date_range("2024-03-04", "2025-02-24", freq="7D")
    inv = pd.DataFrame({"invoice_id": [f"R{i}" for i in range(len(issue))], "client_id": "X", "issue_date": issue,
                        "due_date": issue + pd.Timedelta(days=30), "amount": 700.0,
                        "paid_date": issue + pd.Timedelta(days=10)})
    rr = build_run_rate(Ledger.from_frames(inv), D, n_weeks=4)
    assert rr.daily_amount == pytest.approx(100.0)
    assert rr.lag_share[10] == pytest.approx(1.0) and rr.lag_share.sum() == pytest.approx(1.0)
    # Issued from day 0 at 100/day, each collected 10 days later: days 10.. collect 100/day.
    np.testing.assert_allclose(rr.period_amounts(build_periods(D, 3, "W")[1]), [0, 400, 700])
    # By day, with a calendar of no weekends (as_of a Monday): each week keeps its amount, on its weekdays.
    days = build_periods(D, 21, "D")[1]
    even = rr.period_amounts(days)
    no_weekends = np.tile([1, 1, 1, 1, 1, 0, 0], 4).astype(float)
    spread = rr.period_amounts(days, no_weekends)
    assert spread[[5, 6, 12, 13, 19, 20]].sum() == 0 and even[[12, 13, 19, 20]].min() == pytest.approx(100.0)
    np.testing.assert_allclose(spread.reshape(3, 7).sum(axis=1), even.reshape(3, 7).sum(axis=1))
    np.testing.assert_allclose(spread[14:19], 140.0)
    with pytest.raises(ValueError, match="day_weights must hold 21"):
        rr.period_amounts(days, no_weekends[:10])


# -- with a fitted model, and the CLI --------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted():
    from ledger.synth import make_ledger
    from models.scorer import EncaisseModel

    led = make_ledger(40, years=2, seed=4, end_date="2025-12-31")
    as_of = "2025-10-06"
    model = EncaisseModel(max_snapshots=12, snapshot_freq_days=28, hazard_params={"n_estimators": 40},
                          risk_params={"n_estimators": 40}).fit(led, as_of)
    return led, model, as_of


def test_forecast_from_a_fitted_model(fitted, tmp_path):
    led, model, as_of = fitted
    known = led.known_at(as_of)
    s, (days, cdf) = model.score(known, as_of, return_cdf=True, n_reasons=0)
    f = build_collection_forecast(s, days, cdf, model.payment_model_, as_of, horizon=13, n_samples=300,
                                  run_rate=build_run_rate(known, as_of))
    assert len(f) == 13 and (f["low"] <= f["expected_amount"]).all() and (f["expected_amount"] <= f["high"]).all()
    assert f["expected_amount"].sum() <= s["amount"].sum() + 1e-6
    assert (f["not_yet_issued_amount"] >= 0).all() and f["not_yet_issued_amount"].iloc[-1] > 0
    # By day, the run-rate line follows the model's calendar: next to nothing on Sundays.
    daily = build_collection_forecast(s, days, cdf, model.payment_model_, as_of, horizon=28, freq="D", n_samples=100,
                                      run_rate=build_run_rate(known, as_of))
    line = daily.set_index("period_start")["not_yet_issued_amount"]
    sundays = line[line.index.day_of_week == 6]
    assert sundays.sum() < 0.05 * line.sum() / 7 * len(sundays)
    res = evaluate_collection_forecast(f, led, as_of, "2025-12-29")
    assert res["n_periods"] == 12 and res["weekly_wape"] is not None
    png = plot_forecast(f, tmp_path / "fan.png", "test")
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_forecast_writes_csv_and_json(fitted, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from encaisse.cli import app
    from ledger.engine import open_store
    from ledger.staged_upsert import upsert_frame
    from ledger.workspace import load_settings

    led, model, as_of = fitted
    home = tmp_path / "ws"
    engine = open_store(load_settings(home).store_url)
    try:
        with engine.begin() as conn:
            upsert_frame(conn, "invoices", led.invoices)
            upsert_frame(conn, "payments", led.payments)
    finally:
        engine.dispose()
    champion = types.SimpleNamespace(model=model, version="7", run_id="r1", as_of=as_of, metrics={})
    fake = types.ModuleType("models.registry")
    fake.load_champion = lambda settings: champion
    monkeypatch.setitem(sys.modules, "models.registry", fake)

    csv, png = tmp_path / "f.csv", tmp_path / "f.png"
    res = CliRunner().invoke(app, ["forecast", "--as-of", as_of, "--horizon", "6", "--samples", "200",
                                   "--out", str(csv), "--chart", str(png), "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(csv)
    assert list(frame.columns) == ["period_start", "expected_amount", "low", "high", "due_schedule_amount",
                                   "not_yet_issued_amount"]
    assert len(frame) == 6 and frame["period_start"].iloc[0] == "2025-10-06"
    assert png.exists()
    payload = json.loads(res.stdout.strip().splitlines()[-1])
    assert payload["as_of"] == as_of and payload["model_version"] == "7" and payload["freq"] == "W"
    assert len(payload["periods"]) == 6
    assert payload["totals"]["expected_amount"] == pytest.approx(frame["expected_amount"].sum(), abs=0.1)

    res = CliRunner().invoke(app, ["forecast", "--as-of", as_of, "--freq", "M", "--home", str(home)])
    assert res.exit_code == 2 and "--freq must be W" in res.output
    res = CliRunner().invoke(app, ["forecast", "--as-of", as_of, "--horizon", str(MAX_HORIZON + 1), "--home", str(home)])
    assert res.exit_code == 2 and f"--horizon must be 1 to {MAX_HORIZON}" in res.output


def test_build_forecast_is_the_one_answer_its_serializations_read(fitted):
    led, model, as_of = fitted
    fc = build_forecast(model, led, as_of, horizon=5, n_samples=200, run_rate_weeks=0)
    assert list(fc.periods["period_start"].dt.strftime("%Y-%m-%d"))[:1] == ["2025-10-06"]
    assert fc.periods["not_yet_issued_amount"].isna().all() and fc.totals["not_yet_issued_amount"] == 0.0
    assert fc.totals["expected_amount"] == pytest.approx(fc.periods["expected_amount"].sum())
    assert fc.n_invoices > 0 and fc.totals["low"] <= fc.totals["high"]
    lines = fc.to_csv().splitlines()
    assert lines[0] == ",".join(PERIOD_COLUMNS) and len(lines) == 6 and lines[1].endswith(",")
    with pytest.raises(ValueError, match="horizon must be 1 to 366"):
        build_forecast(model, led, as_of, horizon=MAX_HORIZON + 1)


def test_count_le_matches_brute_force_with_many_columns_and_infinities():
    from models.grid import count_le

    rng = np.random.default_rng(1)
    rows = np.sort(rng.integers(0, 30, size=(20, 60)).astype(float), axis=1)
    rows[:5, -7:] = np.inf  # period edges past the horizon
    rows[5:8, :3] = -np.inf
    values = rng.integers(-5, 35, size=(20, 9)).astype(float)
    values[0, 0], values[1, 1], values[2, 2] = np.inf, -np.inf, 29.0
    brute = (rows[:, :, None] <= values[:, None, :]).sum(axis=1)
    assert (count_le(rows, values) == brute).all()


def test_day_weights_spread_a_bin_over_the_days_payments_fall_on():
    from features.calendar import PaymentCalendar

    # One bin over the two weeks after Monday as_of: half the mass by day 14.
    days, cdf = _same_cdf(1, [0, 14, 400], [0, 0.5, 1.0])
    edges = build_periods(D, 14, "D")[1]
    flat = np.diff(build_period_cdf(days, cdf, edges, 365), axis=1)[0]
    np.testing.assert_allclose(flat, 0.5 / 14)
    no_weekends = np.array([1, 1, 1, 1, 1, 0, 0], dtype=float)
    cal = PaymentCalendar(weekday_weights=no_weekends)
    spread = np.diff(build_period_cdf(days, cdf, edges, 365, cal.day_weights("2025-03-03", 20, [None])), axis=1)[0]
    weekend = np.isin(np.arange(14) % 7, [5, 6])
    np.testing.assert_allclose(spread[weekend], 0.0)
    np.testing.assert_allclose(spread[~weekend], 0.5 / 10)
    # As_of on a Saturday: days 0 and 1 are the weekend.
    sat = np.diff(build_period_cdf(days, cdf, edges, 365, cal.day_weights("2025-03-08", 20, [None])), axis=1)[0]
    np.testing.assert_allclose(sat[[0, 1, 7, 8]], 0.0)
    assert sat.sum() == pytest.approx(0.5)
    # A grid whose bins start mid-week (as_of a Thursday): each bin's mass over its own weekdays.
    thu = "2025-03-06"
    thu_days, thu_cdf = _same_cdf(1, [0, 3, 10, 400], [0, 0.3, 0.6, 1.0])
    spread = np.diff(build_period_cdf(thu_days, thu_cdf, edges, 365, cal.day_weights(thu, 20, [None])), axis=1)[0]
    # Days 0..2 are Thu, Fri, Sat; days 3..9 are Sun .. Sat, five weekdays among them.
    np.testing.assert_allclose(spread[:3], [0.15, 0.15, 0.0])
    np.testing.assert_allclose(spread[3:10], [0.0, 0.06, 0.06, 0.06, 0.06, 0.06, 0.0])
    # Through the forecast, with an as_of that is not a Monday; a model stored with weekday weights
    # only (before the calendar) spreads the same way, and one stored before those evenly.
    for attr, value in (("payment_calendar_", cal), ("weekday_weights_", no_weekends)):
        pm = PaymentDateModel(horizon_days=365)
        setattr(pm, attr, value)
        f = build_collection_forecast(_scores([1000.0]), thu_days, thu_cdf, pm, thu, horizon=10, freq="D", n_samples=200)
        np.testing.assert_allclose(f["expected_amount"].to_numpy(), 1000 * spread[:10])
    f = build_collection_forecast(_scores([1000.0]), thu_days, thu_cdf, PaymentDateModel(horizon_days=365), thu,
                                  horizon=3, freq="D", n_samples=200)
    np.testing.assert_allclose(f["expected_amount"].to_numpy(), 100.0)
    with pytest.raises(ValueError, match="7 finite values"):
        PaymentCalendar(weekday_weights=[1, 1, 1, 1, 1])
    # A country not seen in the ledger whose weekend is Friday-Saturday (Saudi Arabia) takes the ledger's
    # weekend weight on those days; one seen keeps its own. Monday 2025-03-03 .. Sunday 2025-03-09.
    cal = PaymentCalendar(weekday_weights=[1.2, 1.0, 1.2, 1.2, 1.4, 0.0, 0.0],
                          country_weekday_weights={"IL": [1, 1, 1, 1, 1, 1, 1]})
    w = cal.day_weights("2025-03-03", 7, ["SA", "IL", "SE", None])
    np.testing.assert_allclose(w[0], [1.2, 1.2, 1.2, 1.2, 0.0, 0.0, 1.2])
    np.testing.assert_allclose(w[1], 1.0)
    np.testing.assert_allclose(w[2], [1.2, 1.0, 1.2, 1.2, 1.4, 0.0, 0.0])
    np.testing.assert_allclose(w[3], w[2])


def test_the_forecast_puts_little_on_the_holidays_of_each_invoices_country():
    from features.calendar import PaymentCalendar

    # Monday 2025-12-22: Thursday 25 and Friday 26 are Christmas and the day after in GB, NL and FR
    # (FR keeps only the 25th); one bin over the week holds 0.7 of each invoice.
    cal = PaymentCalendar(weekday_weights=np.ones(7), holiday_weights={"GB": {"Christmas Day": 0.0, "Boxing Day": 0.0}},
                          country_weights={"GB": 0.3, "NL": 0.5}, default_holiday_weight=0.25)
    pm = PaymentDateModel(horizon_days=365)
    pm.payment_calendar_ = cal
    scores = _scores([700.0, 700.0, 700.0, 700.0])
    scores["client_id"] = ["A", "B", "C", "D"]
    scores["country"] = ["GB", "nl", None, "FR"]
    days, cdf = _same_cdf(4, [0, 7, 400], [0, 0.7, 1.0])
    f = build_collection_forecast(scores, days, cdf, pm, "2025-12-22", horizon=7, freq="D", n_samples=200)
    gb = np.array([1, 1, 1, 0, 0, 1, 1]) / 5 * 700 * 0.7  # its own weights: nothing on the two holidays
    nl = np.array([1, 1, 1, 0.5, 0.5, 1, 1]) / 6 * 700 * 0.7  # the country's weight for both
    none = np.full(7, 700 * 0.7 / 7)  # no country: the weekdays only
    fr = np.array([1, 1, 1, 0.25, 1, 1, 1]) / 6.25 * 700 * 0.7  # not seen in the ledger: the default
    np.testing.assert_allclose(f["expected_amount"].to_numpy(), gb + nl + none + fr)
    # Without countries every invoice takes the weekdays only.
    f = build_collection_forecast(scores.drop(columns="country"), days, cdf, pm, "2025-12-22", horizon=7, freq="D",
                                  n_samples=200)
    np.testing.assert_allclose(f["expected_amount"].to_numpy(), 4 * none)


def test_the_calendar_clock_counts_the_weights_of_the_days_before_t():
    from features.calendar import DayClock

    w = np.array([[1, 1, 0, 2], [2, 2, 2, 2]], dtype=float)
    t = np.array([-1, 0, 0.5, 2, 2.5, 3, 3.5, 4, 5])
    np.testing.assert_allclose(DayClock(w[:1]).at(t), [-1, 0, 0.5, 2, 2, 2, 3, 4, 6])
    # Per row: each row's group; (n, m) grids and (n,) columns alike.
    clock = DayClock(w)
    grid = np.array([[0, 2.5, 4], [0, 2.5, 4]])
    np.testing.assert_allclose(clock.at(grid, np.array([0, 1])), [[0, 2, 4], [0, 5, 8]])
    np.testing.assert_allclose(clock.at(np.array([3.5, 3.5]), np.array([1, 0])), [7, 3])
    # The quantiles' search: each day's end, group 1's shifted past group 0's total, and per day the
    # first day from it with a weight (day 2 of group 0 has none).
    assert clock.gap == 9.0
    assert clock.ends.tolist() == [1, 2, 2, 4, 11, 13, 15, 17]
    assert clock.first_open.tolist() == [0, 1, 3, 3, 0, 1, 2, 3]
    # Shared between threads: read-only, and not the caller's table.
    with pytest.raises(ValueError, match="read-only"):
        clock.weights[0, 0] = 5.0
    assert w.flags.writeable
    with pytest.raises(ValueError, match="no row all 0"):
        DayClock(np.array([[1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="finite days"):
        DayClock(w[:1]).at(np.array([np.inf]))




def test_build_forecast_spreads_each_invoice_by_its_countrys_holidays(fitted):
    import copy

    from features.calendar import PaymentCalendar

    led, model, as_of = fitted
    model = copy.deepcopy(model)
    # Most of the synthetic ledger's invoices are French: Tuesday 11 November is a holiday in France only.
    cases = {}
    for name, weights in (("open", {}), ("closed in FR", {"FR": 0.0})):
        model.payment_model_.payment_calendar_ = PaymentCalendar(weekday_weights=np.ones(7), country_weights=weights)
        fc = build_forecast(model, led, as_of, horizon=40, freq="D", n_samples=100, run_rate_weeks=0)
        cases[name] = fc.periods.set_index("period_start")["expected_amount"]
    day = pd.Timestamp("2025-11-11")
    assert cases["closed in FR"][day] < 0.5 * cases["open"][day]
    assert cases["closed in FR"][day + pd.Timedelta(days=1)] > cases["open"][day + pd.Timedelta(days=1)]
