"""Whether one rolling backtest beats another, cutoff by cutoff, beyond the clients' resampling noise.

Reads two reports written by ``encaisse backtest --from .. --to .. --report DIR`` on the same ledger and
cutoffs (each cutoff's ``predictions.csv.gz``), pairs their invoices, and prints for every cutoff the
censoring-aware pinball loss of each (``models.evaluation.pinball_loss``, the backtest's proper score),
the difference B - A (negative: B is better) and its interval from resampling whole clients: a client's
invoices share when it pays, so they are drawn together, at every cutoff at once. The last row is the
mean over the cutoffs.

Each interval is at its own level: of six cutoffs and a mean at 90%, about one in ten will exclude zero
by chance alone when nothing differs.

Usage::

    .venv/bin/python bench/compare_backtests.py /tmp/rolling_a /tmp/rolling_b [--draws 2000] [--level 0.9]
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


def load_losses(report: Path) -> pd.DataFrame:
    """One row per (cutoff, invoice): its client and its pinball loss; SystemExit naming the rows
    without a finite loss or without a client (a missing quantile must not count as a perfect one)."""
    parts = sorted(report.glob("*/predictions.csv.gz"))
    if not parts:
        raise SystemExit(f"No */predictions.csv.gz under {report}: run `encaisse backtest ... --report {report}` first.")
    frames = []
    for p in parts:
        d = pd.read_csv(p, dtype={"invoice_id": str, "client_id": str})
        c = d["censor_days"].to_numpy(dtype=float)
        t = np.minimum(d["duration_days"].to_numpy(dtype=float), c)
        frame = pd.DataFrame({"as_of": d["as_of"], "invoice_id": d["invoice_id"], "client_id": d["client_id"],
                              "loss": pinball_loss(quantile_matrix(d), t, c)})
        bad = frame[~np.isfinite(frame["loss"]) | frame["client_id"].isna()]
        if len(bad):
            raise SystemExit(f"{p}: {len(bad)} rows without a finite pinball loss or without a client (first: "
                             f"{bad['invoice_id'].head(3).tolist()}): rerun that backtest.")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pair_reports(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The invoices both reports predicted, with ``loss_a``, ``loss_b``; SystemExit if they differ."""
    for name, d in (("A", a), ("B", b)):
        twice = d.duplicated(KEY)
        if twice.any():
            raise SystemExit(f"report {name} holds {int(twice.sum())} invoices twice at one cutoff "
                             f"(first: {d.loc[twice, KEY].head(3).to_dict('records')}).")
    m = a.merge(b, on=KEY, suffixes=("", "_b"), how="outer", indicator=True, validate="one_to_one")
    m = m.rename(columns={"loss": "loss_a"})
    odd = m[m["_merge"] != "both"]
    if len(odd):
        raise SystemExit(f"{len(odd)} invoices are in one report only (first: {odd[KEY].head(3).to_dict('records')}): "
                         "compare reports of the same ledger and cutoffs.")
    moved = m["client_id"] != m["client_id_b"]
    if moved.any():
        raise SystemExit(f"{int(moved.sum())} invoices have another client in report B: compare reports of one ledger.")
    return m.drop(columns=["_merge", "client_id_b"])


def compare(d: pd.DataFrame, draws: int = 2000, level: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Per cutoff and for the mean over cutoffs: A, B, B - A and the resampled interval of B - A.

    Each draw resamples the clients once, with replacement, and weights every cutoff's invoices of a
    client by how often it was drawn: a client open at several cutoffs counts in all of them, so the
    interval of the mean carries what the cutoffs share. SystemExit when some draw holds no client of a
    cutoff (too few clients there for this bootstrap).
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
        drawn = wc @ n
        if (drawn == 0).any():
            raise SystemExit(f"{as_of}: {int((drawn == 0).sum())} of {draws} draws hold none of its {len(n)} clients: "
                             "too few clients at that cutoff for a client bootstrap.")
        boot = (wc @ (sb - sa)) / drawn
        boots.append(boot)
        rows.append({"cutoff": as_of, "invoices": int(n.sum()), "clients": len(n), "A": sa.sum() / n.sum(),
                     "B": sb.sum() / n.sum(), "B - A": (sb.sum() - sa.sum()) / n.sum(),
                     "low": np.quantile(boot, lo_q), "high": np.quantile(boot, hi_q)})
    t = pd.DataFrame(rows)
    mean_boot = np.mean(boots, axis=0)
    rows.append({"cutoff": "mean", "invoices": int(t["invoices"].sum()), "clients": len(clients), "A": t["A"].mean(),
                 "B": t["B"].mean(), "B - A": t["B - A"].mean(), "low": np.quantile(mean_boot, lo_q),
                 "high": np.quantile(mean_boot, hi_q)})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="report directory of the reference")
    ap.add_argument("b", type=Path, help="report directory of the challenger")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--level", type=float, default=0.9)
    args = ap.parse_args(argv)
    t = compare(pair_reports(load_losses(args.a), load_losses(args.b)), args.draws, args.level)
    print(f"pinball loss (days), A = {args.a}, B = {args.b}; interval: {args.level:.0%}, {args.draws} client resamples")
    print(markdown(t, 3))


if __name__ == "__main__":
    main()
