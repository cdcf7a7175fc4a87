"""Report plots (matplotlib, Agg backend: no display needed). Each ``save_*`` writes one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from models.evaluation import calibration_table  # noqa: E402,F401  (re-exported: plots draw it)


def _save(fig, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def save_calibration_curve(curves: dict[str, tuple], path: str | Path, title: str = "Calibration of p_late") -> Path:
    """Observed late rate against mean predicted p_late, per equal-count bin, one line per forecaster.

    Args:
        curves: name -> (y, p): outcomes (0/1) and probabilities.
    """
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, (y, p) in curves.items():
        t = calibration_table(y, p)
        if len(t):
            ax.plot(t["p_mean"], t["y_rate"], marker="o", label=name)
    ax.set(xlabel="predicted p_late (bin mean)", ylabel="observed late rate", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def save_pit_histogram(pit, path: str | Path, title: str = "PIT of the payment day (paid invoices)") -> Path:
    """Histogram of F(T) over paid invoices: flat when the payment-date distribution is calibrated."""
    pit = np.asarray(pit, dtype=float)
    pit = pit[np.isfinite(pit)]
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(pit):
        ax.hist(pit, bins=10, range=(0, 1), density=True, color="tab:blue", alpha=0.8)
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set(xlabel="F(payment day)", ylabel="density", title=f"{title}, n={len(pit)}")
    return _save(fig, path)


def save_error_distribution(errors: dict[str, np.ndarray], path: str | Path) -> Path:
    """Histograms of the signed payment-date error (forecast P50 - actual, truncated at the censoring day)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    finite = [np.asarray(e, dtype=float) for e in errors.values()]
    allv = np.concatenate([e[np.isfinite(e)] for e in finite]) if finite else np.zeros(0)
    if len(allv):
        lo, hi = np.percentile(allv, [1, 99])
        bins = np.linspace(min(lo, -1), max(hi, 1), 41)
        for name, e in errors.items():
            e = np.asarray(e, dtype=float)
            ax.hist(np.clip(e[np.isfinite(e)], bins[0], bins[-1]), bins=bins, histtype="step", linewidth=1.5, label=name)
    ax.axvline(0, color="grey", linestyle=":")
    ax.set(xlabel="forecast - actual payment day (days; + = forecast too late)", ylabel="invoices",
           title="Payment-date error")
    ax.legend(fontsize=8)
    return _save(fig, path)


def save_coverage_by_group(table: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bars of P10-P90 interval coverage by days-to-due group, one bar per forecaster.

    Args:
        table: columns ``group``, ``forecaster``, ``interval_coverage``.
    """
    piv = table.pivot(index="group", columns="forecaster", values="interval_coverage")
    piv = piv.reindex([g for g in table["group"].drop_duplicates()])
    fig, ax = plt.subplots(figsize=(7, 4))
    n = max(len(piv.columns), 1)
    x = np.arange(len(piv))
    for j, col in enumerate(piv.columns):
        ax.bar(x + (j - (n - 1) / 2) * 0.8 / n, piv[col].to_numpy(dtype=float), width=0.8 / n, label=col)
    ax.axhline(0.8, color="grey", linestyle=":", label="nominal 0.8")
    ax.set_xticks(x, piv.index, fontsize=8)
    ax.set(ylabel="P10-P90 coverage", ylim=(0, 1), title="Interval coverage by days to due at as_of")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_forecast(frame: pd.DataFrame, path: str | Path, title: str = "Cash-collection forecast") -> Path:
    """Fan chart of the forecast (P10-P90 band, expected, median) with the due-date schedule beside it, as PNG."""
    x = np.arange(len(frame))
    labels = [pd.Timestamp(s).strftime("%d %b") for s in frame["period_start"]]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.5 * len(frame) + 4), 4.8))
    ax.bar(x + 0.2, frame["due_schedule_amount"], width=0.4, color="#c9c9c9", label="due-date schedule")
    ax.fill_between(x, frame["low"], frame["high"], color="#4c72b0", alpha=0.25, label="P10-P90")
    ax.plot(x, frame["expected_amount"], color="#4c72b0", marker="o", label="expected")
    if "median_amount" in frame.columns:
        ax.plot(x, frame["median_amount"], color="#4c72b0", linestyle=":", label="median")
    if "not_yet_issued_amount" in frame.columns:
        ax.plot(x, frame["expected_amount"] + frame["not_yet_issued_amount"], color="#dd8452", linestyle="--",
                label="expected + not yet issued")
    step = max(1, len(frame) // 14)
    ax.set_xticks(x[::step])
    ax.set_xticklabels(labels[::step], rotation=45, ha="right")
    ax.set_ylabel("EUR")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
