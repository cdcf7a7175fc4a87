"""Pipeline benchmarks: wall time and peak memory of each step at 100k, 1M and 10M synthetic invoices.

Usage (from the repository root)::

    .venv/bin/python bench/bench_pipeline.py --invoices 100000 1000000 --runs 3
    .venv/bin/python bench/bench_pipeline.py --invoices 10000000 --runs 1
    .venv/bin/python bench/bench_pipeline.py --invoices 1000000 --steps score forecast --runs 3
    .venv/bin/python bench/bench_pipeline.py --invoices 100000 --steps train --runs 1 --train-rows 100000

Steps read what earlier steps left in the work directory, so a subset can be rerun alone.

Every step runs in a fresh subprocess (``--step``), reads its inputs from the work directory
(``bench/out/<invoices>/``, git-ignored; untimed), times the step itself and reports its wall time
and the process's peak RSS (``ru_maxrss``: the inputs it holds count, as they would in production).
Each run appends one JSON line to ``bench/out/results.jsonl`` with the 1-minute load average at the
start and end of the step (the machine is shared: figures taken under load are marked and rerun).

Steps (as of the ledger's end date, 2025-12-31, the start of that day):

    generate   ``make_ledger`` (10M: in client chunks of ``CHUNK_CLIENTS`` with their own seed and
               id prefix, to bound memory), then CSV export for ingest (untimed)
    ingest     ``ledger.ingest.ingest_file`` of clients, invoices, payments, actions into a fresh
               SQLite store (validation + upsert; one transaction per file)
    load       ``ledger.reader.load_ledger`` (the frames later steps use are the loaded ones)
    features   ``features.invoices.build_features`` (client features included), with the config's
               feature groups
    train      ``EncaisseModel.fit`` with the model settings of ``--config`` (default: the packaged
               ``pipelines/default.yaml``, what ``encaisse train`` ships; ``max_training_rows`` 300k
               snapshot rows unless ``--train-rows``)
    score      ``EncaisseModel.score(return_cdf=True)``, with the compiled trees ``encaisse score`` uses
               (``models.compiled``; compiled before the timer starts)
    scoring    ``models.scoring.build_scoring``: score + client scores, profiles, next steps,
               worklist ranking, legal amounts (the batch ``encaisse score`` minus storage)
    forecast   ``models.forecast.build_collection_forecast``: 13 weeks, 1000 samples
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.openmp import use_passive_waiting  # noqa: E402

use_passive_waiting()

INVOICES_PER_CLIENT_2Y = 47.0  # make_ledger(n, years=2): invoices (not credit notes) per client
CHUNK_CLIENTS = 25_000  # about 1.2M invoices per generated chunk
AS_OF = "2025-12-31"
STEPS = ("generate", "ingest", "load", "features", "train", "score", "scoring", "forecast")
TABLE_ORDER = ("clients", "invoices", "payments", "actions")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _load(path: Path):
    with path.open("rb") as fh:
        return pickle.load(fh)


def _save(obj, path: Path) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _prefix_ids(ledger, prefix: str):
    """A chunk's ledger with every id prefixed, so chunks never collide."""
    from ledger.contracts import Ledger

    def pre(frame, cols):
        frame = frame.copy()
        for c in cols:
            s = frame[c]
            frame[c] = (prefix + s.astype("str")).where(s.notna(), None).astype(s.dtype)
        return frame

    return Ledger(invoices=pre(ledger.invoices, ["invoice_id", "client_id"]),
                  payments=pre(ledger.payments, ["payment_id", "invoice_id"]),
                  clients=pre(ledger.clients, ["client_id"]),
                  actions=pre(ledger.actions, ["action_id", "invoice_id", "client_id"]))


def step_generate(work: Path, invoices: int, seed: int, direct: bool = False, **_) -> dict:
    from ledger.contracts import Ledger
    from ledger.synth import make_ledger, write_ledger

    n_clients = max(1, round(invoices / INVOICES_PER_CLIENT_2Y))
    csv = work / "csv"
    shutil.rmtree(csv, ignore_errors=True)
    chunks = [(i, min(CHUNK_CLIENTS, n_clients - start)) for i, start in enumerate(range(0, n_clients, CHUNK_CLIENTS))]
    seconds = write_s = 0.0
    n_inv = 0
    kept = []
    for i, n in chunks:
        t0 = time.perf_counter()
        ledger = make_ledger(n, years=2, seed=seed + i)
        if len(chunks) > 1:
            ledger = _prefix_ids(ledger, f"K{i:03d}-")
        seconds += time.perf_counter() - t0
        n_inv += int((ledger.invoices["doc_type"] == "invoice").sum())
        t1 = time.perf_counter()
        if direct:
            kept.append(ledger)
        else:
            write_ledger(ledger, csv / f"chunk{i:03d}")
        write_s += time.perf_counter() - t1
        del ledger
    if direct:  # skip the store: later steps read the generated frames
        whole = Ledger(**{name: pd.concat([getattr(k, name) for k in kept], ignore_index=True)
                          for name in ("invoices", "payments", "clients", "actions")})
        kept.clear()
        _save(whole, work / "ledger.pkl")
    return {"seconds": seconds, "n_clients": n_clients, "n_invoices": n_inv, "chunks": len(chunks),
            "csv_write_s": round(write_s, 1)}


def step_ingest(work: Path, **_) -> dict:
    from ledger.ingest import ingest_file
    from ledger.engine import open_store

    db = work / "ledger.db"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    engine = open_store(f"sqlite:///{db}")
    rows = 0
    for chunk in sorted((work / "csv").iterdir()):
        for table in TABLE_ORDER:
            rows += ingest_file(engine, chunk / f"{table}.csv", rejects_dir=work / "rejects", table=table).inserted
    engine.dispose()
    return {"seconds": time.perf_counter() - t0, "rows": rows, "db_mb": round(db.stat().st_size / 1e6)}


def step_load(work: Path, **_) -> dict:
    from ledger.engine import open_store
    from ledger.reader import load_ledger

    t0 = time.perf_counter()
    engine = open_store(f"sqlite:///{work / 'ledger.db'}")
    ledger = load_ledger(engine)
    seconds = time.perf_counter() - t0
    engine.dispose()
    _save(ledger, work / "ledger.pkl")
    return {"seconds": seconds, "n_invoices": len(ledger.invoices)}


def _model_params(config: str | None) -> dict:
    """``EncaisseModel`` keyword arguments of ``config`` (None: the packaged default config)."""
    from pipelines.config import load_config

    return load_config(config).model.estimator_params()


def _feature_options(config: str | None) -> dict:
    """What ``build_features`` is given by a model of ``config`` (feature groups, extra attributes...)."""
    from models.scorer import EncaisseModel

    return EncaisseModel(**_model_params(config)).feature_options()


def step_features(work: Path, config: str | None = None, **_) -> dict:
    from features.invoices import build_features

    ledger = _load(work / "ledger.pkl")
    options = _feature_options(config)
    base = _rss_mb()
    t0 = time.perf_counter()
    f = build_features(ledger, AS_OF, **options)
    return {"seconds": time.perf_counter() - t0, "rows": len(f), "inputs_rss_mb": round(base)}


def step_train(work: Path, train_rows: int | None = None, config: str | None = None, **_) -> dict:
    from models.scorer import EncaisseModel

    ledger = _load(work / "ledger.pkl")
    params = _model_params(config) | ({"max_training_rows": train_rows} if train_rows else {})
    base = _rss_mb()
    t0 = time.perf_counter()
    model = EncaisseModel(**params).fit(ledger, AS_OF)
    seconds = time.perf_counter() - t0
    _save(model, work / "model.pkl")
    r = model.training_report_
    return {"seconds": seconds, "rows": r.n_rows, "hazard_expanded_rows": r.hazard_expanded_rows,
            "inputs_rss_mb": round(base)}


def _scoring_model(work: Path):
    """The trained model with its compiled trees attached, as ``encaisse score`` predicts (compiled once
    into ``work/compiled``, before any timer; LightGBM where they are not available)."""
    model = _load(work / "model.pkl")
    return model, model.use_compiled_trees(work / "compiled")


def step_score(work: Path, **_) -> dict:
    ledger, (model, compiled) = _load(work / "ledger.pkl"), _scoring_model(work)
    base = _rss_mb()
    t0 = time.perf_counter()
    scores, (days, cdf) = model.score(ledger, AS_OF, return_cdf=True)
    seconds = time.perf_counter() - t0
    _save((scores, days, cdf), work / "scores.pkl")
    return {"seconds": seconds, "rows": len(scores), "inputs_rss_mb": round(base), "compiled_trees": compiled}


def step_scoring(work: Path, **_) -> dict:
    from models.scoring import build_scoring

    ledger, (model, compiled) = _load(work / "ledger.pkl"), _scoring_model(work)
    base = _rss_mb()
    t0 = time.perf_counter()
    s = build_scoring(model, ledger, AS_OF)
    return {"seconds": time.perf_counter() - t0, "rows": len(s.worklist), "inputs_rss_mb": round(base),
            "compiled_trees": compiled}


def step_forecast(work: Path, **_) -> dict:
    from features.calendar import invoice_countries
    from models.forecast import build_collection_forecast

    scores, days, cdf = _load(work / "scores.pkl")
    model = _load(work / "model.pkl")
    ledger = _load(work / "ledger.pkl")
    base = _rss_mb()
    t0 = time.perf_counter()
    # Each invoice's country, as models.collection.build_forecast reads it: its holidays' clock.
    scores["country"] = invoice_countries(ledger, scores["invoice_id"])
    build_collection_forecast(scores, days, cdf, model.payment_model_, AS_OF, horizon=13, n_samples=1000)
    return {"seconds": time.perf_counter() - t0, "rows": len(scores), "inputs_rss_mb": round(base)}


def run_step(step: str, work: Path, invoices: int, seed: int, train_rows: int | None = None,
             direct: bool = False, config: str | None = None) -> dict:
    """Run one step in this process; return its measurements."""
    load0 = os.getloadavg()[0]
    res = globals()[f"step_{step}"](work=work, invoices=invoices, seed=seed, train_rows=train_rows, direct=direct,
                                    config=config)
    if train_rows and step == "train":
        res["max_training_rows"] = train_rows
    res["config"] = config or "pipelines/default.yaml"  # score, scoring and forecast use the model train saved
    res.update(step=step, invoices=invoices, peak_rss_mb=round(_rss_mb()), load_start=round(load0, 2),
               load_end=round(os.getloadavg()[0], 2), seconds=round(res["seconds"], 2))
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--runs", type=int, default=3, help="Runs per step (the median is reported).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--train-rows", type=int, help="max_training_rows for train (default: the config's).")
    parser.add_argument("--config", help="training config for features and train (default: the packaged "
                        "pipelines/default.yaml).")
    parser.add_argument("--direct", action="store_true",
                        help="generate writes the frames for later steps itself (no CSV, ingest or load).")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step:  # child process: one step, one JSON line on stdout
        work = args.out / str(args.invoices[0])
        print(json.dumps(run_step(args.step, work, args.invoices[0], args.seed, args.train_rows, args.direct,
                                  args.config)), flush=True)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "results.jsonl"
    for invoices in args.invoices:
        work = args.out / str(invoices)
        work.mkdir(parents=True, exist_ok=True)
        for step in args.steps:
            runs = []
            for _ in range(args.runs):
                proc = subprocess.run([sys.executable, __file__, "--step", step, "--invoices", str(invoices),
                                       "--seed", str(args.seed), "--out", str(args.out)]
                                      + (["--train-rows", str(args.train_rows)] if args.train_rows else [])
                                      + (["--direct"] if args.direct else [])
                                      + (["--config", args.config] if args.config else []),
                                      capture_output=True, text=True)
                if proc.returncode:
                    sys.stderr.write(proc.stderr)
                    raise SystemExit(f"{step} at {invoices:,} invoices failed")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res["at"] = time.strftime("%Y-%m-%d %H:%M:%S")
                with log.open("a") as fh:
                    fh.write(json.dumps(res) + "\n")
                runs.append(res)
            secs = [r["seconds"] for r in runs]
            print(f"{invoices:>10,} {step:<9} median {statistics.median(secs):8.2f} s  runs {secs}  "
                  f"peak {statistics.median(r['peak_rss_mb'] for r in runs):,.0f} MB  "
                  f"load {[r['load_start'] for r in runs]}->{[r['load_end'] for r in runs]}", flush=True)


if __name__ == "__main__":
    main()
