"""Rolling-origin backtests: cutoffs, the pinball score, buckets, mean and worst, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from encaisse.cli import app
from ledger.synth import make_ledger, write_ledger
from models.evaluation import PINBALL_LEVELS, evaluate_forecasts, pinball_loss, quantile_matrix
from pipelines.backtest import evaluate_backtest
from pipelines.config import QUICK_CONFIG, load_config
from pipelines.rolling import (BUCKET_METRICS, OVERDUE_BUCKETS, build_cutoffs, median_diagnostics, pool_buckets,
                               run_rolling_backtest, summarize)

runner = CliRunner()


def test_cutoffs_from_a_list_and_from_a_range():
    assert build_cutoffs("2018-07-01, 2018-05-01,2018-07-01") == [pd.Timestamp("2018-05-01"), pd.Timestamp("2018-07-01")]
    assert build_cutoffs(start="2018-05-01", stop="2018-10-01", every="1M") == list(
        pd.date_range("2018-05-01", "2018-10-01", freq="MS"))
    assert build_cutoffs(start="2018-05-31", stop="2018-08-31", every="1M") == [
        pd.Timestamp(d) for d in ("2018-05-31", "2018-06-30", "2018-07-31", "2018-08-31")]
    assert build_cutoffs(start="2018-05-01", stop="2018-05-29", every="2W") == [
        pd.Timestamp(d) for d in ("2018-05-01", "2018-05-15", "2018-05-29")]
    for bad in (dict(start="2018-05-01", stop="2018-06-01", every="1Y"),
                dict(start="2018-06-01", stop="2018-05-01", every="1M"),
                dict(start="2018-06-01")):
        with pytest.raises(ValueError):
            build_cutoffs(**bad)
    with pytest.raises(ValueError, match="not both"):
        build_cutoffs("2018-05-01", start="2018-05-01", stop="2018-06-01")


def test_pinball_loss_by_hand():
    # One invoice, quantiles all at day 10, paid on day 4: loss (1 - tau) * 6 at each level.
    q = np.full((1, len(PINBALL_LEVELS)), 10.0)
    got = pinball_loss(q, np.array([4.0]), 100.0)[0]
    assert got == pytest.approx(np.mean([(1 - t) * 6 for t in PINBALL_LEVELS]))
    # Paid on day 13: tau * 3.
    assert pinball_loss(q, np.array([13.0]), 100.0)[0] == pytest.approx(np.mean([t * 3 for t in PINBALL_LEVELS]))
    # Censored at day 8 (T >= 8): the quantile 10 is cut to 8 and the truncated outcome is 8: no loss.
    assert pinball_loss(q, np.array([8.0]), 8.0)[0] == 0.0
    # An infinite quantile (past the horizon) is cut at the censoring day too.
    assert np.isfinite(pinball_loss(np.full((1, 9), np.inf), np.array([3.0]), 30.0)[0])


def test_quantiles_interpolate_between_p10_p50_p90_and_sharpness_wins():
    pred = pd.DataFrame({"p10_days": [0.0], "p50_days": [4.0], "p90_days": [12.0]})
    q = quantile_matrix(pred)[0]
    assert q[0] == 0 and q[4] == 4 and q[8] == 12 and q[2] == pytest.approx(2.0) and q[6] == pytest.approx(8.0)
    truth = pd.DataFrame({"duration_days": [5.0, 6.0, 5.0], "event": [1, 1, 1], "censor_days": 60.0,
                          "y_late": [np.nan] * 3, "not_due": [False] * 3})
    sharp = pd.DataFrame({"p_late": 1.0, "p10_days": [4.0] * 3, "p50_days": [5.0] * 3, "p90_days": [6.0] * 3})
    wide = sharp.assign(p10_days=0.0, p90_days=30.0)
    a, b = evaluate_forecasts(sharp, truth), evaluate_forecasts(wide, truth)
    assert a["pinball_days"] < b["pinball_days"]
    assert a["bias_days"] == pytest.approx((0 - 1 + 0) / 3)


def test_very_late_is_judged_on_every_invoice_whose_outcome_is_known():
    truth = pd.DataFrame({"duration_days": [5.0] * 4, "event": 1, "censor_days": 60.0, "y_late": np.nan,
                          "not_due": False, "y_very_late": [1.0, 0.0, np.nan, 0.0]})
    pred = pd.DataFrame({"p_late": 1.0, "p10_days": 4.0, "p50_days": 5.0, "p90_days": 6.0,
                         "p_very_late": [0.9, 0.2, 0.95, 0.4]})
    got = evaluate_forecasts(pred, truth)
    assert got["auc_p_very_late"] == 1.0  # the unknown outcome (0.95) is left out, not counted as on time
    assert got["brier_p_very_late"] == pytest.approx((0.1 ** 2 + 0.2 ** 2 + 0.4 ** 2) / 3)
    assert got["auc_p_late"] is None  # no invoice not yet due
    baseline = evaluate_forecasts(pred.drop(columns="p_very_late"), truth)
    assert baseline["auc_p_very_late"] is None and baseline["brier_p_very_late"] is None


def test_median_diagnostics_tell_skew_from_misplacement():
    # Delays 0, 0, 1, 2, 20 (one censored at C = 20): right-skewed, median 1, mean 4.6.
    truth = pd.DataFrame({"duration_days": [0.0, 0.0, 1.0, 2.0, 30.0], "censor_days": 20.0})
    right = median_diagnostics(np.array([1.0] * 5), truth)
    assert right["p50_paid_share"] == pytest.approx((2 + 0.5) / 5)
    assert right["median_bias_days"] == pytest.approx(1 - 23 / 5)  # a right median still looks 3.6 days early
    early = median_diagnostics(np.array([0.0] * 5), truth)
    assert early["p50_paid_share"] == pytest.approx(1 / 5)  # ties at 0 count half: 2 x 0.5
    assert early["median_bias_days"] == right["median_bias_days"]  # a property of the outcomes only
    late = median_diagnostics(np.array([50.0] * 5), truth)  # beyond C: compared as C
    assert late["p50_paid_share"] == pytest.approx((4 + 0.5) / 5)


def test_summary_is_the_mean_and_the_worst_cutoff():
    per = {
        "2018-05-01": {"model": {"auc_p_late": 0.8, "mae_days": 10.0, "interval_coverage": 0.85, "bias_days": -3.0},
                       "baselines": {"due_date": {"mae_days": 20.0}},
                       "buckets": [{"bucket": "1-30", "n": 10, **dict.fromkeys(
                           BUCKET_METRICS, 1.0)}]},
        "2018-06-01": {"model": {"auc_p_late": 0.7, "mae_days": 14.0, "interval_coverage": 0.7, "bias_days": 2.0},
                       "baselines": {"due_date": {"mae_days": 24.0}},
                       "buckets": [{"bucket": "1-30", "n": 30, **dict.fromkeys(
                           BUCKET_METRICS, 3.0)}]},
    }
    s = summarize(per)
    assert s["model"]["mae_days"] == 12.0 and s["baselines"]["due_date"]["mae_days"] == 22.0
    assert s["worst"]["auc_p_late"] == {"cutoff": "2018-06-01", "value": 0.7}
    assert s["worst"]["mae_days"]["cutoff"] == "2018-06-01"
    assert s["worst"]["interval_coverage"]["cutoff"] == "2018-06-01"  # 0.1 from 0.8 against 0.05
    assert s["worst"]["bias_days"]["cutoff"] == "2018-05-01"
    pooled = {r["bucket"]: r for r in pool_buckets(per)}
    assert pooled["1-30"]["n"] == 40 and pooled["1-30"]["mae_days"] == pytest.approx((10 + 90) / 40)
    assert pooled["over 180"]["n"] == 0 and pooled["over 180"]["mae_days"] is None


@pytest.fixture(scope="module")
def ledger():
    return make_ledger(30, years=2, seed=5, end_date="2025-06-30")


@pytest.mark.slow
def test_rolling_backtest_equals_each_single_day_backtest(ledger, tmp_path):
    quick = load_config(QUICK_CONFIG)
    days = build_cutoffs("2025-03-01,2025-04-01")
    res = run_rolling_backtest(ledger, days, config=quick, report=tmp_path / "rep")
    assert list(res["cutoffs"]) == ["2025-03-01", "2025-04-01"]
    for d in days:
        single = evaluate_backtest(ledger, d, None, quick)
        assert res["cutoffs"][str(d.date())]["model"] == single["model"]
        assert res["cutoffs"][str(d.date())]["baselines"] == single["baselines"]
    maes = [res["cutoffs"][k]["model"]["mae_days"] for k in res["cutoffs"]]
    assert res["model"]["mae_days"] == pytest.approx(np.mean(maes))
    assert res["worst"]["mae_days"]["value"] == max(maes)
    buckets = res["cutoffs"]["2025-04-01"]["buckets"]
    assert [b["bucket"] for b in buckets] == [b[0] for b in OVERDUE_BUCKETS]
    assert sum(b["n"] for b in buckets) == res["cutoffs"]["2025-04-01"]["n_open"]
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "**worst**" in text and "days overdue" in text and "2025-03-01" in text
    assert (tmp_path / "rep" / "2025-04-01" / "report.md").exists()


@pytest.mark.slow
def test_cli_rolling_backtest_json(ledger, tmp_path):
    home = tmp_path / "home"
    for path in write_ledger(ledger, tmp_path / "src").values():
        assert runner.invoke(app, ["ingest", str(path), "--home", str(home)]).exit_code == 0
    res = runner.invoke(app, ["backtest", "--from", "2025-03-01", "--to", "2025-04-01", "--every", "1M",
                              "--config", str(QUICK_CONFIG), "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert set(out["cutoffs"]) == {"2025-03-01", "2025-04-01"}
    assert {"model", "baselines", "buckets", "worst"} <= set(out)
    assert out["model"]["pinball_days"] > 0
    assert {"due_date", "client_median_delay"} <= set(out["baselines"])
    bad = runner.invoke(app, ["backtest", "--as-of", "2025-03-01", "--cutoffs", "2025-04-01", "--home", str(home)])
    assert bad.exit_code == 2 and "Give one of" in bad.output
