"""How much a payment-date forecast can sharpen, read off a rolling backtest's per-invoice predictions.

For each days-overdue bucket, pooled over the cutoffs of a report written by
``encaisse backtest --from .. --to .. --report DIR`` (each cutoff's ``predictions.csv.gz``):

* the model's P10-P90 width and coverage against the outcomes' own spread (their P10-P90 in hindsight:
  what a forecast that knew the bucket's distribution but nothing about each invoice would give);
* the share paid by the P50 (0.5 for a median that is right), and the P50's bias against the bias of
  the bucket's hindsight median (what right-skewed delays give any median);
* the MAE of the P50 against the MAE of that hindsight median;
* within 1-30 days overdue, how well the P50 ranks the invoices paid more than 7, 14 and 30 days later
  (AUC): intervals narrow only as far as the long tail can be told apart;
* where the spread lies: for invoices whose client has at least ``MIN_CLIENT_OPEN`` open invoices at
  the cutoff, the P10-P90 width and the MAE of each client's own outcomes at that cutoff in hindsight
  (what a forecast that knew when each client would pay this time would give), against the model on
  the same invoices; and the share of payments made on a day the client also paid another invoice
  open at the cutoff (payment runs).

Usage::

    .venv/bin/python bench/overdue_analysis.py /tmp/rolling
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

BUCKETS = [-np.inf, 0, 30, 90, 180, np.inf]
LABELS = ["not yet due", "1-30", "31-90", "91-180", "over 180"]


def load(report: Path) -> pd.DataFrame:
    parts = [pd.read_csv(p, parse_dates=["as_of", "due_date"]) for p in sorted(report.glob("*/predictions.csv.gz"))]
    if not parts:
        raise SystemExit(f"No */predictions.csv.gz under {report}: run `encaisse backtest ... --report {report}` first.")
    d = pd.concat(parts, ignore_index=True)
    c = d["censor_days"].to_numpy(dtype=float)
    d["t"] = np.minimum(d["duration_days"].to_numpy(dtype=float), c)
    d["p50"] = np.minimum(d["p50_days"].to_numpy(dtype=float), c)
    d["covered"] = (np.minimum(d["p10_days"], c) <= d["t"]) & (d["t"] <= np.minimum(d["p90_days"], c))
    d["bucket"] = pd.cut((d["as_of"] - d["due_date"]).dt.days, BUCKETS, labels=LABELS)
    return d


def bucket_table(d: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for b, g in d.groupby("bucket", observed=True):
        t = g["t"]
        # The hindsight median of each cutoff's bucket, so that cutoffs are not mixed.
        med = g.groupby("as_of")["t"].transform("median")
        rows.append({
            "bucket": b, "invoices": len(g),
            "model width": (g["p90_days"] - g["p10_days"]).mean(), "model coverage": g["covered"].mean(),
            "outcomes' P10-P90": (g.groupby("as_of")["t"].quantile(0.9) - g.groupby("as_of")["t"].quantile(0.1)).mean(),
            "P50 paid share": ((t < g["p50"]) + 0.5 * (t == g["p50"])).mean(),
            "P50 bias": (g["p50"] - t).mean(), "hindsight median bias": (med - t).mean(),
            "P50 MAE": (g["p50"] - t).abs().mean(), "hindsight median MAE": (med - t).abs().mean(),
        })
    return pd.DataFrame(rows)


def tail_auc(d: pd.DataFrame) -> pd.DataFrame:
    g = d[d["bucket"] == "1-30"]
    rows = []
    for day, x in g.groupby("as_of"):
        row = {"cutoff": str(pd.Timestamp(day).date()), "invoices": len(x)}
        for k in (7, 14, 30):
            y = x["t"] > k
            row[f"paid after {k} d: share"] = y.mean()
            row[f"paid after {k} d: AUC"] = roc_auc_score(y, x["p50_days"]) if 0 < y.mean() < 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


MIN_CLIENT_OPEN = 5
"""Open invoices a client needs at a cutoff for its own hindsight spread to be read."""


def client_table(d: pd.DataFrame) -> pd.DataFrame:
    key = [d["as_of"], d["client_id"]]
    n_open = d.groupby(key)["t"].transform("size")
    paid = d["event"] == 1
    run = d[paid].groupby([d["as_of"], d["client_id"], d["t"]])["t"].transform("size") > 1
    rows = []
    for b, g in d[n_open >= MIN_CLIENT_OPEN].groupby("bucket", observed=True):
        by = g.groupby([g["as_of"], g["client_id"]])["t"]
        lo, hi, med = by.transform(lambda s: s.quantile(0.1)), by.transform(lambda s: s.quantile(0.9)), by.transform("median")
        rows.append({
            "bucket": b, "invoices": len(g), "clients": by.ngroups,
            "model width": (g["p90_days"] - g["p10_days"]).mean(), "model MAE": (g["p50"] - g["t"]).abs().mean(),
            "client hindsight width": (hi - lo).mean(), "client hindsight coverage": ((lo <= g["t"]) & (g["t"] <= hi)).mean(),
            "client hindsight median MAE": (med - g["t"]).abs().mean(),
            "paid in a run": run.reindex(g.index[paid.loc[g.index]]).mean(),
        })
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, digits: int) -> str:
    def cell(v) -> str:
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path, help="folder of a rolling backtest report")
    args = ap.parse_args()
    d = load(args.report)
    print(markdown(bucket_table(d), 2))
    print()
    print(markdown(tail_auc(d), 3))
    print()
    print(markdown(client_table(d), 2))


if __name__ == "__main__":
    main()
