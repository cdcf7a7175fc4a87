"""Wall time of a dry run of ``encaisse dunning run`` on a workspace, end to end from the store.

Usage (from the repository root)::

    .venv/bin/python bench/bench_dunning.py --home /tmp/dun_1m --as-of 2025-12-31 --runs 3

Each run is the command a user (or cron) runs, in a fresh process: ``encaisse dunning run --as-of D
--dry-run --json --home H`` (opening the store, loading the ledger and the stored score run,
planning), timed from outside, with its peak RSS and the 1-minute load average at the start and end
(the machine is shared). One JSON line per run goes to ``bench/out/dunning.jsonl``.

The dry run plans from the latest stored score run on or before D. A workspace without one (the
1M-invoice store built as in bench/RESULTS.md, before `encaisse train` and `encaisse score`) can be
given a stand-in with ``--stand-in-scores``: every invoice open on D with P(late) and P(very late)
drawn per client from a seeded generator, and profiles assigned by the shipped policy from those
client scores. What the planning does is the same for any score values; only the mix of profiles
(and so of steps) depends on them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_stand_in_scores(home: Path, as_of: str, seed: int = 0) -> str:
    """Store a score run as of ``as_of`` with drawn scores (see the module docstring); returns its id."""
    import numpy as np
    import pandas as pd

    from ledger.engine import open_store
    from ledger.reader import load_ledger
    from ledger.scores_store import save_scores
    from models.dunning import assign_profiles
    from models.policy import load_policy

    d = pd.Timestamp(as_of)
    engine = open_store(f"sqlite:///{home / 'ledger.db'}")
    ledger = load_ledger(engine)
    inv = ledger.known_at(d).invoices
    inv = inv[(inv["doc_type"] == "invoice") & inv["paid_date"].isna()]
    rng = np.random.default_rng(seed)
    clients = pd.Index(pd.unique(inv["client_id"]))
    base = pd.Series(rng.beta(1.2, 6.0, len(clients)), index=clients)
    sc = inv[["invoice_id", "client_id", "amount", "due_date", "currency"]].copy()
    sc["p_late"] = np.clip(sc["client_id"].map(base).to_numpy() * 2 + rng.normal(0, 0.05, len(sc)), 0, 1)
    sc["p_very_late"] = np.clip(sc["client_id"].map(base).to_numpy() + rng.normal(0, 0.03, len(sc)), 0, 1)
    g = sc.groupby("client_id")
    cs = pd.DataFrame({"client_id": clients, "p_late_mean": g["p_late"].mean().reindex(clients).to_numpy(),
                       "p_very_late_max": g["p_very_late"].max().reindex(clients).to_numpy(),
                       "overdue_share": (g["due_date"].apply(lambda s: float((s < d).mean()))).reindex(clients)
                       .to_numpy(),
                       "open_amount": g["amount"].sum().reindex(clients).to_numpy(), "broken_promises": 0.0,
                       "days_since_last_payment": 30.0, "strategic": False, "in_difficulty": False})
    prof = assign_profiles(cs, load_policy())
    sc["profile"] = sc["client_id"].map(prof.set_index("client_id")["profile"])
    run_id = save_scores(engine, sc, prof, as_of=d, model_version="stand-in")
    engine.dispose()
    return run_id


def time_dry_run(home: Path, as_of: str) -> dict:
    cmd = [str(REPO / ".venv" / "bin" / "encaisse"), "dunning", "run", "--as-of", as_of, "--dry-run", "--json",
           "--home", str(home)]
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"step": "dunning_dry_run", "home": str(home), "as_of": as_of, "seconds": round(seconds, 2),
            "peak_rss_mb": round(rss), "load_start": round(load0, 2), "load_end": round(os.getloadavg()[0], 2),
            "planned": summary["planned"], "skipped": summary["skipped"]["total"],
            "at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="Workspace holding the store (ledger.db).")
    ap.add_argument("--as-of", default="2025-12-31")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stand-in-scores", action="store_true",
                    help="Store a stand-in score run first when the workspace has none on or before --as-of.")
    args = ap.parse_args()
    if args.stand_in_scores:
        from ledger.engine import open_store
        from ledger.scores_store import load_latest_scores

        engine = open_store(f"sqlite:///{args.home / 'ledger.db'}")
        have = load_latest_scores(engine, args.as_of) is not None
        engine.dispose()
        if not have:
            t = time.perf_counter()
            print(f"stand-in score run {write_stand_in_scores(args.home, args.as_of)} "
                  f"stored in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(args.runs):
        row = time_dry_run(args.home, args.as_of)
        print(json.dumps(row))
        with (out / "dunning.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
