"""Prove a backtest sees nothing dated on or after its day: run it with and without those rows.

'Without': documents issued on or after D removed, and every payment day on or after D erased
except those of the invoices open at D (the outcomes being scored). Predictions and metrics must
be identical. Reads the ledger from a workspace store.

    python scripts/check_backtest_leakage.py --home /tmp/enc_sap --as-of 2018-10-01 --end 2019-01-01
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pandas as pd

from features.invoices import open_invoices
from ledger.contracts import Ledger
from ledger.engine import open_store
from ledger.reader import load_ledger
from ledger.workspace import load_settings
from pipelines.backtest import build_backtest, evaluate_backtest
from pipelines.config import load_config


def trim_after(ledger: Ledger, d: pd.Timestamp) -> Ledger:
    """The ledger without what happened on or after ``d``, outcomes of the invoices open at ``d`` kept."""
    open_ids = set(open_invoices(ledger.known_at(d), d)["invoice_id"])
    inv = ledger.invoices[ledger.invoices["issue_date"] < d].copy()
    inv["paid_date"] = inv["paid_date"].where((inv["paid_date"] < d) | inv["invoice_id"].isin(open_ids))
    pay = ledger.payments
    pay = pay[(pay["paid_date"] < d) | pay["invoice_id"].isin(open_ids)]
    act = ledger.actions[ledger.actions["action_date"] < d]
    return Ledger(invoices=inv.reset_index(drop=True), payments=pay.copy(), clients=ledger.clients.copy(),
                  actions=act.copy())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--end", default=None)
    ap.add_argument("--config", default=None)
    args = ap.parse_args()
    d = pd.Timestamp(args.as_of)
    ledger = load_ledger(open_store(load_settings(args.home).store_url))
    trimmed = trim_after(ledger, d)
    cfg = load_config(args.config)
    started = time.time()
    full, cut = build_backtest(ledger, d, args.end, cfg), build_backtest(trimmed, d, args.end or full_end(ledger), cfg)
    same_predictions = full.predictions.equals(cut.predictions)
    a = evaluate_backtest(ledger, d, args.end, cfg, backtest=full)
    b = evaluate_backtest(trimmed, d, args.end, cfg, backtest=cut)
    print(json.dumps({"rows_removed": len(ledger.invoices) - len(trimmed.invoices),
                      "identical_predictions": same_predictions, "identical_metrics": a == b,
                      "seconds": round(time.time() - started), "metrics": a}, default=str))
    return 0 if same_predictions and a == b else 1


def full_end(ledger: Ledger) -> pd.Timestamp:
    from pipelines.backtest import default_end

    return default_end(ledger)


if __name__ == "__main__":
    sys.exit(main())
