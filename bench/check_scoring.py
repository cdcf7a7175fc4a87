"""Before/after equality check of batch scoring on a trained workspace: what `encaisse score` computes and stores.

Usage (from the repository root; the workspace holds an ingested ledger and a champion)::

    .venv/bin/python bench/check_scoring.py save /tmp/scoring_before --home WS --as-of 2025-12-31
    .venv/bin/python bench/check_scoring.py compare /tmp/scoring_before --home WS --as-of 2025-12-31

``--repo DIR`` runs the code of another checkout (e.g. the main branch, for the "before").

On a large workspace, where running the old code again is slow, compare the runs already stored for
a day (each `encaisse score` stores one; the first is the reference)::

    .venv/bin/python bench/check_scoring.py runs - --home /tmp/enc_1m --as-of 2025-12-31

Saved: the loaded ledger's four frames; ``build_scoring``'s scores, client scores, assignments, next
steps and worklist; then ``run_score`` itself (it stores a new run in the workspace): its worklist and
client scores, the stored run's ``invoice_scores`` and ``client_scores`` rows (run id left out), the
forecast stored beside it (``run_forecasts`` weeks, ``run_invoice_forecasts`` ranks and quantiles) and
the exported CSV. Frames are compared exactly (``assert_frame_equal(check_exact=True)``), text as text.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from equality import compare, save_or_compare  # bench/, beside this script


def build_outputs(home: Path, as_of: str) -> dict:
    import pandas as pd

    from ledger.engine import open_store
    from ledger.reader import load_store_ledger
    from ledger.run_forecasts import load_run_forecast
    from ledger.scores_store import load_run
    from ledger.workspace import Settings
    from models.policy import load_policy
    from models.registry import load_champion
    from models.scoring import build_scoring
    from pipelines.score import run_score

    os.environ["ENCAISSE_HOME"] = str(home)
    settings = Settings()
    ledger = load_store_ledger(settings.store_url)
    out: dict = {f"ledger_{name}": getattr(ledger, name) for name in ("invoices", "payments", "clients", "actions")}
    model = load_champion(settings).model
    scoring = build_scoring(model, ledger, pd.Timestamp(as_of), policy=load_policy())
    for name in ("scores", "client_scores", "assignments", "steps", "worklist"):
        out[f"scoring_{name}"] = getattr(scoring, name)
    del ledger, scoring
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "worklist.csv"
        result = run_score(settings, as_of, out=csv)
        out["run_worklist"] = result.worklist
        out["run_client_scores"] = result.client_scores
        out["run_csv"] = csv.read_text()
    engine = open_store(settings.store_url)
    try:
        stored = load_run(engine, {"run_id": result.run_id})
        forecast = load_run_forecast(engine, result.run_id)
    finally:
        engine.dispose()
    out["stored_invoices"] = stored.invoices.drop(columns="run_id")
    out["stored_clients"] = stored.clients.drop(columns="run_id")
    out.update(_forecast_frames(forecast))
    return out


def _forecast_frames(forecast) -> dict:
    """A stored run forecast's weeks and invoice rows (sorted by invoice: the table keeps no order)."""
    return {"forecast_periods": forecast.periods,
            "forecast_invoices": forecast.invoices.sort_values("invoice_id", kind="stable").reset_index(drop=True)}


def compare_stored_runs(home: Path, as_of: str) -> int:
    """Compare every run stored for ``as_of`` with the first one; 1 when one differs."""
    import pandas as pd

    from ledger.engine import open_store
    from ledger.run_forecasts import load_run_forecast
    from ledger.scores_store import list_score_runs, load_run
    from ledger.workspace import Settings

    os.environ["ENCAISSE_HOME"] = str(home)
    engine = open_store(Settings().store_url)
    try:
        runs = list_score_runs(engine)
        runs = runs[runs["as_of"] == pd.Timestamp(as_of)]
        loaded = [load_run(engine, r) for r in runs.to_dict("records")]
        forecasts = [_forecast_frames(load_run_forecast(engine, run.run_id)) for run in loaded]
    finally:
        engine.dispose()
    if not loaded:
        print(f"no run stored as of {as_of}")
        return 1

    def frames(i: int) -> dict:
        return {"invoices": loaded[i].invoices.drop(columns="run_id"),
                "clients": loaded[i].clients.drop(columns="run_id"), **forecasts[i]}

    first = frames(0)
    bad = 0
    for i, run in enumerate(loaded[1:], start=1):
        failures = compare(first, frames(i), exact=True)
        bad += bool(failures)
        print(f"run {run.run_id} (created {run.run['created_at']}) against {loaded[0].run_id}: "
              + ("identical" if not failures else "; ".join(failures)))
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["save", "compare", "runs"])
    parser.add_argument("path", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                        help="Checkout whose code runs (default: this one).")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))
    from models.openmp import use_passive_waiting

    use_passive_waiting()
    if args.mode == "runs":
        sys.exit(compare_stored_runs(args.home, args.as_of))
    out = build_outputs(args.home, args.as_of)
    save_or_compare(args.mode, args.path, out, f"{len(out['scoring_worklist'])} open invoices", exact=True)


if __name__ == "__main__":
    main()
