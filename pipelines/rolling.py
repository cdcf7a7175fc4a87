"""Rolling-origin backtests: the single-day backtest repeated on many cutoffs, each trained on its past.

For each cutoff D: fit on ``ledger.known_at(D)`` only (the registry is not touched), score the
invoices open at the start of D, judge against outcomes up to ``end`` (censoring-aware, as the
single-day backtest). The summary is the mean over the cutoffs and the worst cutoff per metric;
payment-date errors are also broken down by days overdue at the cutoff, and P(late) calibration
and the weekly band coverage are kept per cutoff.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ledger.contracts import Ledger
from models.evaluation import QUANTILE_COLUMNS, evaluate_calibration_bins
from pipelines.backtest import Backtest, _fmt, build_backtest, default_end, evaluate_backtest, save_backtest_report
from pipelines.config import TrainingConfig, load_config
from pipelines.validation import FORECAST_COLUMNS, evaluate_forecasts, risk_outcomes

OVERDUE_BUCKETS = (("not yet due", -np.inf, 0), ("1-30", 1, 30), ("31-90", 31, 90), ("91-180", 91, 180),
                   ("over 180", 181, np.inf))
"""Days overdue at the cutoff (cutoff - due date), inclusive bounds; due on or after the cutoff: not yet due."""

BUCKET_METRICS = ("bias_days", "mae_days", "interval_width_days", "interval_coverage", "pinball_days",
                  "p50_paid_share", "median_bias_days")
"""``p50_paid_share``: share of the bucket paid by its P50 (a tie counts half; 0.5 for a median that is
right). ``median_bias_days``: the bias the bucket's own median of min(T, C) would show, known in
hindsight (median - mean): the part of ``bias_days`` that right-skewed delays give any median."""

HIGHER_IS_BETTER = {"auc_p_late", "auc_p_very_late", "within_7d", "capture_top10"}
"""Metrics where the worst cutoff is the lowest; coverages are worst farthest from 0.8; the rest lowest is best."""

NOMINAL_COVERAGE = 0.8
"""P10-P90: the share of outcomes a calibrated interval holds."""


def build_cutoffs(cutoffs: str | list | None = None, start=None, stop=None, every: str | None = None) -> list[pd.Timestamp]:
    """Cutoff days from a comma-separated list, or from ``start`` to ``stop`` (inclusive) every ``every``.

    ``every``: ``<n>M`` (months: the same day of the month), ``<n>W`` (weeks) or ``<n>D`` (days).
    """
    if cutoffs is not None and (start is not None or stop is not None):
        raise ValueError("Give either a list of cutoffs or a range (from, to, every), not both.")
    if cutoffs is not None:
        items = cutoffs.split(",") if isinstance(cutoffs, str) else list(cutoffs)
        days = sorted({pd.Timestamp(str(c).strip()).normalize() for c in items if str(c).strip()})
        if not days:
            raise ValueError("The list of cutoffs is empty.")
        return days
    if start is None or stop is None:
        raise ValueError("A range of cutoffs needs both a first and a last day.")
    m = re.fullmatch(r"\s*(\d+)\s*([MWD])\s*", (every or "1M").upper())
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"every must look like 1M, 2W or 14D; got {every!r}.")
    n, unit = int(m.group(1)), m.group(2)
    first, last = pd.Timestamp(start).normalize(), pd.Timestamp(stop).normalize()
    if last < first:
        raise ValueError(f"The last cutoff {last.date()} is before the first {first.date()}.")
    step = {"M": pd.DateOffset(months=n), "W": pd.DateOffset(weeks=n), "D": pd.DateOffset(days=n)}[unit]
    days, k = [], 0
    while (day := first + step * k if k else first) <= last:
        days.append(pd.Timestamp(day))
        k += 1
    return days


def evaluate_buckets(pred: pd.DataFrame, bt: Backtest) -> list[dict]:
    """Payment-date metrics per days-overdue bucket at the cutoff (``OVERDUE_BUCKETS``)."""
    es = bt.evaluation_set
    overdue = -es.days_to_due
    cols = [c for c in (*FORECAST_COLUMNS, *QUANTILE_COLUMNS) if c in pred.columns]
    rows = []
    for label, lo, hi in OVERDUE_BUCKETS:
        m = (overdue >= lo) & (overdue <= hi)
        row = {"bucket": label, "n": int(m.sum())}
        if m.any():
            r = evaluate_forecasts(pred.loc[m, cols], es.truth[m])
            r.update(median_diagnostics(pred.loc[m, "p50_days"].to_numpy(), es.truth[m]))
            row.update({k: r.get(k) for k in BUCKET_METRICS})
        else:
            row.update(dict.fromkeys(BUCKET_METRICS))
        rows.append(row)
    return rows


def median_diagnostics(p50: np.ndarray, truth: pd.DataFrame) -> dict[str, float]:
    """Whether a P50's bias is misplacement or skew: ``p50_paid_share`` and ``median_bias_days``.

    Both on the truncated scale of ``evaluate_forecasts``: t = min(T, C) against min(P50, C).
    """
    c = truth["censor_days"].to_numpy(dtype=float)
    t = np.minimum(truth["duration_days"].to_numpy(dtype=float), c)
    q = np.minimum(p50.astype(float), c)
    share = float(np.mean((t < q) + 0.5 * (t == q)))
    return {"p50_paid_share": share, "median_bias_days": float(np.median(t) - np.mean(t))}


def evaluate_calibration(bt: Backtest, n_bins: int = 10) -> dict:
    """P(late) calibration on the risk rows: equal-count bins and the expected calibration error."""
    m = risk_outcomes(bt.evaluation_set)
    y = bt.evaluation_set.truth["y_late"].to_numpy()[m]
    p = bt.predictions["p_late"].to_numpy()[m]
    return evaluate_calibration_bins(y, p, n_bins=n_bins)


def _mean(values: list) -> float | None:
    v = [float(x) for x in values if x is not None and np.isfinite(float(x))]
    return float(np.mean(v)) if v else None


def _worse(metric: str, a: float, b: float) -> bool:
    """Whether value ``a`` of ``metric`` is worse than ``b``."""
    if metric in HIGHER_IS_BETTER:
        return a < b
    if metric.endswith("coverage"):
        return abs(a - NOMINAL_COVERAGE) > abs(b - NOMINAL_COVERAGE)
    if metric == "bias_days":
        return abs(a) > abs(b)
    return a > b


def summarize(per_cutoff: dict[str, dict]) -> dict:
    """Mean over cutoffs and worst cutoff of every metric, for the model and each baseline."""
    days = list(per_cutoff)
    first = per_cutoff[days[0]]
    mean = {"model": {}, "baselines": {}}
    worst: dict[str, dict] = {}
    for k in first["model"]:
        vals = [per_cutoff[d]["model"].get(k) for d in days]
        mean["model"][k] = _mean(vals)
        best = None
        for d, v in zip(days, vals):
            if v is None:
                continue
            if best is None or _worse(k, v, best[1]):
                best = (d, v)
        if best is not None:
            worst[k] = {"cutoff": best[0], "value": best[1]}
    for name in first["baselines"]:
        keys = dict.fromkeys(k for d in days for k in per_cutoff[d]["baselines"].get(name, {}))
        mean["baselines"][name] = {k: _mean([per_cutoff[d]["baselines"].get(name, {}).get(k) for d in days])
                                   for k in keys}
    return {**mean, "worst": worst}


def pool_buckets(per_cutoff: dict[str, dict]) -> list[dict]:
    """Bucket metrics over every cutoff: the count-weighted mean of each cutoff's (they are all means)."""
    out = []
    for label, _, _ in OVERDUE_BUCKETS:
        rows = [r for d in per_cutoff for r in per_cutoff[d]["buckets"] if r["bucket"] == label and r["n"]]
        n = sum(r["n"] for r in rows)
        row = {"bucket": label, "n": n}
        for k in BUCKET_METRICS:
            pairs = [(r["n"], r[k]) for r in rows if r[k] is not None]
            w = sum(p[0] for p in pairs)
            row[k] = float(sum(a * b for a, b in pairs) / w) if w else None
        out.append(row)
    return out


def run_rolling_backtest(ledger: Ledger, cutoffs: list, end=None, config: TrainingConfig | None = None,
                         report: str | Path | None = None,
                         on_cutoff: Callable[[pd.Timestamp, int, int], None] | None = None) -> dict:
    """Backtest on every cutoff and summarize.

    Args:
        ledger: the whole ledger (each cutoff's training and features see only what was known then).
        cutoffs: the cutoff days (``build_cutoffs``).
        end: outcomes observed up to (excluded) this day, for every cutoff (default ``default_end``).
        config: training configuration (default ``pipelines/default.yaml``).
        report: write ``report.md`` (summary) and one single-day report per cutoff in subfolders.
        on_cutoff: called with (cutoff, index, count) before each cutoff is fitted (progress).

    Returns:
        ``{"cutoffs": {D: {"n_open", "model", "baselines", "buckets", "calibration"}}, "model",
        "baselines"`` (means over cutoffs), ``"worst"`` (metric -> cutoff and value), ``"buckets"``
        (pooled over cutoffs), ``"end"``}.
    """
    config = config or load_config()
    end_day = default_end(ledger) if end is None else pd.Timestamp(end).normalize()
    days = sorted(pd.Timestamp(d).normalize() for d in cutoffs)
    late = [d for d in days if d >= end_day]
    if late:
        raise ValueError(f"Cutoffs must be before the outcome end {end_day.date()}; got {', '.join(str(d.date()) for d in late)}.")
    per: dict[str, dict] = {}
    for i, d in enumerate(days):
        if on_cutoff:
            on_cutoff(d, i, len(days))
        bt = build_backtest(ledger, d, end_day, config)
        res = evaluate_backtest(ledger, d, end_day, config, backtest=bt)
        res["buckets"] = evaluate_buckets(bt.predictions, bt)
        res["calibration"] = evaluate_calibration(bt)
        key = str(d.date())
        per[key] = {k: res[k] for k in ("n_open", "model", "baselines", "buckets", "calibration")}
        if report is not None:
            save_backtest_report(bt, {"model": res["model"], "baselines": res["baselines"]}, Path(report) / key)
    out = {"end": str(end_day.date()), **summarize(per), "buckets": pool_buckets(per), "cutoffs": per}
    if report is not None:
        save_rolling_report(out, report)
    return out


def save_rolling_report(result: dict, out_dir: str | Path) -> Path:
    """Write the summary ``report.md``: per-cutoff tables, mean and worst, buckets, calibration, bands."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per = result["cutoffs"]
    names = list(result["model"])
    head = ["| cutoff | open | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    model_rows = [f"| {d} | {r['n_open']} | " + " | ".join(_fmt(r["model"].get(k)) for k in names) + " |"
                  for d, r in per.items()]
    model_rows.append("| **mean** | | " + " | ".join(_fmt(result["model"].get(k)) for k in names) + " |")
    model_rows.append("| **worst** | | " + " | ".join(
        (f"{_fmt(result['worst'][k]['value'])} ({result['worst'][k]['cutoff']})" if k in result["worst"] else "-")
        for k in names) + " |")
    base_names = sorted({k for b in result["baselines"].values() for k in b})
    base_rows = ["| baseline (mean) | " + " | ".join(base_names) + " |", "| --- |" + " --- |" * len(base_names)]
    base_rows += [f"| {n} | " + " | ".join(_fmt(v.get(k)) for k in base_names) + " |"
                  for n, v in result["baselines"].items()]
    bucket_head = ["| cutoff | days overdue | invoices | " + " | ".join(BUCKET_METRICS) + " |",
                   "| --- | --- | --- |" + " --- |" * len(BUCKET_METRICS)]
    bucket_rows = [f"| all | {r['bucket']} | {r['n']} | " + " | ".join(_fmt(r[k]) for k in BUCKET_METRICS) + " |"
                   for r in result["buckets"]]
    bucket_rows += [f"| {d} | {r['bucket']} | {r['n']} | " + " | ".join(_fmt(r[k]) for k in BUCKET_METRICS) + " |"
                    for d, v in per.items() for r in v["buckets"] if r["n"]]
    cal_rows = ["| cutoff | ECE | predicted -> observed (equal-count bins) | weekly band coverage |",
                "| --- | --- | --- | --- |"]
    cal_rows += [f"| {d} | {_fmt(v['calibration']['ece'])} | "
                 + ", ".join(f"{b['predicted']:.2f}->{b['observed']:.2f}" for b in v["calibration"]["bins"])
                 + f" | {_fmt(v['model'].get('weekly_band_coverage'))} |" for d, v in per.items()]
    text = "\n".join([
        f"# Rolling-origin backtest: {len(per)} cutoffs, {min(per)} .. {max(per)}",
        "",
        f"Each cutoff's model is fitted on the ledger as known at the start of that day and scores the invoices "
        f"open then; outcomes are observed up to {result['end']} (excluded). Metrics are those of the single-day "
        f"report (one per cutoff in the subfolders); `worst` is the worst cutoff of each metric (coverages: "
        f"farthest from {NOMINAL_COVERAGE}; bias: largest in absolute value).",
        "",
        "## Model per cutoff",
        "",
        *head, *model_rows,
        "",
        "## Baselines",
        "",
        *base_rows,
        "",
        "## Payment date by days overdue at the cutoff",
        "",
        "`bias_days` = mean of min(P50, C) - min(T, C) (negative: forecast too early). `p50_paid_share` = share "
        "paid by the P50 (0.5 for a median that is right); `median_bias_days` = the bias that the bucket's own "
        "median, known in hindsight, would show: payment delays are right-skewed, so a right median is early on "
        "average.",
        "",
        *bucket_head, *bucket_rows,
        "",
        "## P(late) calibration and the forecast's weekly band",
        "",
        *cal_rows,
        "",
    ])
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    return path
