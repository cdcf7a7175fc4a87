"""bench/compare_backtests.py: two rolling backtests' proper scores, paired invoice by invoice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.compare_backtests import compare, load_losses, pair_reports
from models.evaluation import QUANTILE_COLUMNS


def _report(root, shift_for_even_clients: float, cutoffs=("2018-05-01", "2018-06-01"), n=40):
    """A report directory whose invoices are paid on day 10; ten clients, the even ones' quantiles off by the shift."""
    rng = np.random.default_rng(0)
    for as_of in cutoffs:
        d = pd.DataFrame({"as_of": as_of, "invoice_id": [f"I{i}" for i in range(n)],
                          "client_id": [f"c{i % 10}" for i in range(n)], "due_date": as_of})
        base = 10 + rng.normal(0, 3, n)
        for k, col in enumerate(QUANTILE_COLUMNS):
            d[col] = base + (k - 4) + np.where(np.arange(n) % 2 == 0, shift_for_even_clients, 0.0)
        d["p10_days"], d["p50_days"], d["p90_days"] = d["q10_days"], d["q50_days"], d["q90_days"]
        d["duration_days"], d["event"], d["censor_days"], d["y_late"] = 10.0, 1, 200.0, 0
        (root / as_of).mkdir(parents=True)
        d.to_csv(root / as_of / "predictions.csv.gz", index=False)
    return root


def test_a_challenger_off_by_ten_days_on_half_the_clients_loses_on_every_cutoff(tmp_path):
    a = load_losses(_report(tmp_path / "a", 0.0))
    b = load_losses(_report(tmp_path / "b", 10.0))
    t = compare(pair_reports(a, b), draws=200)
    assert list(t["cutoff"]) == ["2018-05-01", "2018-06-01", "mean"]
    cut = t.iloc[:2]
    expected = [(b.loss[b.as_of == c].mean() - a.loss[a.as_of == c].mean()) for c in ("2018-05-01", "2018-06-01")]
    assert np.allclose(cut["B - A"], expected)
    assert (cut["B - A"] > 0).all() and (cut["low"] > 0).all() and (cut["low"] <= cut["B - A"]).all()
    assert (cut["B - A"] <= cut["high"]).all()
    assert t.iloc[2]["B - A"] == pytest.approx(np.mean(expected))


def test_a_report_against_itself_differs_by_nothing(tmp_path):
    a = load_losses(_report(tmp_path / "a", 3.0))
    t = compare(pair_reports(a, a.copy()), draws=50)
    assert np.allclose(t[["B - A", "low", "high"]].to_numpy(dtype=float), 0.0)


def test_reports_of_other_invoices_are_refused(tmp_path):
    a = load_losses(_report(tmp_path / "a", 0.0))
    b = load_losses(_report(tmp_path / "b", 0.0, cutoffs=("2018-05-01",)))
    with pytest.raises(SystemExit, match="one report only"):
        pair_reports(a, b)
    with pytest.raises(SystemExit, match="No \\*/predictions"):
        load_losses(tmp_path / "empty")


def test_one_draw_of_clients_serves_every_cutoff(tmp_path):
    """Two cutoffs with the same clients and differences: each draw gives both the same value, so the
    mean's interval is the cutoffs' own (independent draws per cutoff would narrow it)."""
    a = load_losses(_report(tmp_path / "a", 0.0))
    b = load_losses(_report(tmp_path / "b", 10.0))
    b = b.assign(loss=b["loss"].where(b["as_of"] == "2018-05-01")).dropna()
    b = pd.concat([b, b.assign(as_of="2018-06-01")], ignore_index=True)
    a = pd.concat([a[a.as_of == "2018-05-01"], a[a.as_of == "2018-05-01"].assign(as_of="2018-06-01")],
                  ignore_index=True)
    t = compare(pair_reports(a, b), draws=300).set_index("cutoff")
    assert t.loc["2018-05-01", "high"] - t.loc["2018-05-01", "low"] > 0.5
    for col in ("B - A", "low", "high"):
        assert t.loc["mean", col] == pytest.approx(t.loc["2018-05-01", col])
        assert t.loc["2018-06-01", col] == pytest.approx(t.loc["2018-05-01", col])


def test_a_missing_quantile_or_client_is_refused_not_scored_zero(tmp_path):
    root = _report(tmp_path / "a", 0.0)
    path = root / "2018-05-01" / "predictions.csv.gz"
    d = pd.read_csv(path)
    d.loc[3, "q50_days"] = np.nan
    d.to_csv(path, index=False)
    with pytest.raises(SystemExit, match="1 rows without a finite pinball loss"):
        load_losses(root)


def test_an_invoice_twice_or_a_cutoff_with_too_few_clients_is_refused(tmp_path):
    a = load_losses(_report(tmp_path / "a", 0.0))
    with pytest.raises(SystemExit, match="twice"):
        pair_reports(pd.concat([a, a.head(1)], ignore_index=True), a)
    lone = a.assign(client_id=np.where(a["as_of"] == "2018-06-01", "c0", a["client_id"]))
    lone = lone[(lone["as_of"] == "2018-05-01") | (lone.index == lone.index[-1])]
    with pytest.raises(SystemExit, match="too few clients"):
        compare(pair_reports(lone, lone.copy()), draws=200)
