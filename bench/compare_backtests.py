"""Whether one rolling backtest beats another, cutoff by cutoff, beyond the clients' resampling noise.

Reads two reports written by ``encaisse backtest --from .. --to .. --report DIR`` on the same ledger and
cutoffs (each cutoff's ``predictions.csv.gz``), pairs their invoices, and prints for every cutoff the
censoring-aware pinball loss of each (``models.evaluation.pinball_loss``, the backtest's proper score),
the difference B - A (negative: B is better) and its interval from resampling whole clients: a client's
invoices share when it pays, so they are drawn together, at every cutoff at once. The last row is the
mean over the cutoffs.

Usage::

    .venv/bin/python bench/compare_backtests.py /tmp/rolling_a /tmp/rolling_b [--draws 500] [--level 0.9]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.overdue_analysis import markdown  # noqa: E402
from models.evaluation import pinball_loss, quantile_matrix  # noqa: E402

KEY = ["as_of", "invoice_id"]


def per_invoice(report: Path) -> pd.DataFrame:
    """One row per (cutoff, invoice): its client and its pinball loss."""
    parts = sorted(report.glob("*/predictions.csv.gz"))
    if not parts:
        raise SystemExit(f"No */predictions.csv.gz under {report}: run `encaisse backtest ... --report {report}` first.")
    frames = []
    for p in parts:
        d = pd.read_csv(p, dtype={"invoice_id": str, "client_id": str})
        c = d["censor_days"].to_numpy(dtype=float)
        t = np.minimum(d["duration_days"].to_numpy(dtype=float), c)
        frames.append(pd.DataFrame({"as_of": d["as_of"], "invoice_id": d["invoice_id"], "client_id": d["client_id"],
                                    "loss": pinball_loss(quantile_matrix(d), t, c)}))
    return pd.concat(frames, ignore_index=True)


def paired(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The invoices both reports predicted, with ``loss_a``, ``loss_b``; SystemExit if they differ."""
    m = a.merge(b.drop(columns="client_id"), on=KEY, suffixes=("_a", "_b"), how="outer", indicator=True)
    odd = m[m["_merge"] != "both"]
    if len(odd):
        raise SystemExit(f"{len(odd)} invoices are in one report only (first: {odd[KEY].head(3).to_dict('records')}): "
                         "compare reports of the same ledger and cutoffs.")
    return m.drop(columns="_merge")


def compare(d: pd.DataFrame, draws: int = 500, level: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Per cutoff and for the mean over cutoffs: A, B, B - A and the resampled interval of B - A.

    Each draw resamples the clients once, with replacement, and weights every cutoff's invoices of a
    client by how often it was drawn: a client open at several cutoffs counts in all of them, so the
    interval of the mean carries what the cutoffs share.
    """
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    clients = pd.Index(d["client_id"].unique())
    w = rng.multinomial(len(clients), np.full(len(clients), 1 / len(clients)), size=draws).astype(float)
    rows, boots = [], []
    for as_of, part in d.groupby("as_of", sort=True):
        g = part.groupby("client_id", sort=False)
        n, sa, sb = g.size().to_numpy(float), g["loss_a"].sum().to_numpy(), g["loss_b"].sum().to_numpy()
        wc = w[:, clients.get_indexer(g.size().index)]
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (wc @ (sb - sa)) / (wc @ n)
        boots.append(boot)
        rows.append({"cutoff": as_of, "invoices": int(n.sum()), "clients": len(n), "A": sa.sum() / n.sum(),
                     "B": sb.sum() / n.sum(), "B - A": (sb.sum() - sa.sum()) / n.sum(),
                     "low": np.nanquantile(boot, lo_q), "high": np.nanquantile(boot, hi_q)})
    t = pd.DataFrame(rows)
    mean_boot = np.mean(boots, axis=0)
    rows.append({"cutoff": "mean", "invoices": int(t["invoices"].sum()), "clients": len(clients), "A": t["A"].mean(),
                 "B": t["B"].mean(), "B - A": t["B - A"].mean(), "low": np.nanquantile(mean_boot, lo_q),
                 "high": np.nanquantile(mean_boot, hi_q)})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="report directory of the reference")
    ap.add_argument("b", type=Path, help="report directory of the challenger")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--level", type=float, default=0.9)
    args = ap.parse_args(argv)
    t = compare(paired(per_invoice(args.a), per_invoice(args.b)), args.draws, args.level)
    print(f"pinball loss (days), A = {args.a}, B = {args.b}; interval: {args.level:.0%}, {args.draws} client resamples")
    print(markdown(t, 3))


if __name__ == "__main__":
    main()
