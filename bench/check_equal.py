"""Before/after equality check for speed edits: every pipeline output on a 20k-invoice synthetic ledger.

Usage (from the repository root)::

    .venv/bin/python bench/check_equal.py save /tmp/eq_before     # before changing code
    .venv/bin/python bench/check_equal.py compare /tmp/eq_before   # after: exits 1 on any difference

Saved: client features and invoice features as of the end date, the training set, a freshly fitted
model's scores (with the CDFs), the scoring worklist and client scores (``build_scoring``) and the
13-week forecast. Compared with ``assert_frame_equal`` (floats to rtol/atol 1e-9) and
``np.testing.assert_allclose``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from equality import save_or_compare  # noqa: E402 - bench/, beside this script
from models.openmp import use_passive_waiting  # noqa: E402

use_passive_waiting()

N_CLIENTS = 425  # about 20k invoices over two years
AS_OF = pd.Timestamp("2025-12-01")


def build_outputs() -> dict:
    from features.calendar import invoice_countries
    from features.clients import build_client_features
    from features.invoices import build_features
    from ledger.synth import make_ledger
    from models.forecast import build_collection_forecast
    from models.scorer import EncaisseModel
    from models.scoring import build_scoring

    try:  # predict in many small slices, so slicing is exercised on a small ledger too
        import models.hazard
        models.hazard.PREDICT_CHUNK_ROWS = 997
    except AttributeError:
        pass
    ledger = make_ledger(N_CLIENTS, years=2, seed=3)
    model = EncaisseModel(hazard_params={"n_estimators": 60}, risk_params={"n_estimators": 60})
    ts = model.build_training_set(ledger, AS_OF)
    model.fit(ledger, AS_OF, training_set=ts)
    scores, (days, cdf) = model.score(ledger, AS_OF, return_cdf=True)
    scoring = build_scoring(model, ledger, AS_OF)
    forecast = build_collection_forecast(scores.assign(country=invoice_countries(ledger, scores["invoice_id"])),
                                         days, cdf, model.payment_model_, AS_OF, n_samples=200)
    # a second model through fit's own training-set path, default sampling budget forced low
    small = EncaisseModel(hazard_params={"n_estimators": 30}, risk_params={"n_estimators": 30},
                          max_training_rows=20_000).fit(ledger, AS_OF)
    return {
        "n_invoices": int((ledger.invoices["doc_type"] == "invoice").sum()),
        "clients": build_client_features(ledger, AS_OF),
        "features": build_features(ledger, AS_OF),
        "training_set": ts,
        "scores": scores, "days": days, "cdf": cdf,
        "worklist": scoring.worklist, "client_scores": scoring.client_scores, "steps": scoring.steps,
        "forecast": forecast,
        "small_scores": small.score(ledger, AS_OF),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["save", "compare"])
    parser.add_argument("path", type=Path)
    args = parser.parse_args()
    out = build_outputs()
    save_or_compare(args.mode, args.path, out, f"{out['n_invoices']} invoices")


if __name__ == "__main__":
    main()
