"""SAP slice check of monitoring: runs stored monthly, each scored by a model trained as of its own day,
then `monitor` as of a later day against the rolling backtest of the same cutoffs and outcome window.

    .venv/bin/python bench/monitor_slice.py --home /tmp/enc_mon --from 2018-06-01 --to 2018-12-01 \
        --as-of 2019-01-01 --config pipelines/quick.yaml --out /tmp/enc_mon/slice

The workspace must hold the ingested ledger (`encaisse ingest ... --home`). Each cutoff: `train
--force` (the model trained as of that day serves it), `score`, then after the last one `monitor`;
the rolling backtest fits its own model per cutoff with the same configuration. Prints and writes
(``--out``) one Markdown table: each figure from the monitor and from the backtest, and the largest
absolute difference; timings per step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from ledger.reader import load_store_ledger
from ledger.workspace import load_settings
from pipelines.config import load_config
from pipelines.monitor import run_monitor, save_monitor_report
from pipelines.rolling import build_cutoffs, run_rolling_backtest
from pipelines.score import run_score
from pipelines.train import run_training

FIGURES = ("auc_p_late", "brier_p_late", "mae_days", "bias_days", "interval_coverage", "pinball_days",
           "capture_top10", "weekly_wape", "weekly_band_coverage")


def replay_runs(settings, days) -> dict[str, str]:
    """Store a run per day scored as the backtest scores it (``invoice_flags=False``), by the version trained that day."""
    from ledger.engine import open_store
    from ledger.scores_store import save_scores
    from models import registry
    from models.scoring import build_scoring
    from pipelines.score import save_forecast

    client = registry.configure_mlflow(settings)
    by_day = {mv.tags.get("as_of"): str(mv.version)
              for mv in client.search_model_versions(f"name='{settings.model_name}'")}
    ledger = load_store_ledger(settings.store_url)
    engine = open_store(settings.store_url)
    out = {}
    try:
        for d in days:
            version = by_day[str(d.date())]
            model = registry.load_model_version(settings, version).model
            scoring = build_scoring(model, ledger, d, invoice_flags=False)
            run_id = save_scores(engine, scoring.worklist, scoring.client_scores, as_of=d, model_version=version)
            save_forecast(engine, run_id, model, ledger, d, scoring.worklist)
            out[str(d.date())] = run_id
            print(f"{d.date()}: replayed with model v{version}, run {run_id}", flush=True)
    finally:
        engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--from", dest="start", required=True)
    ap.add_argument("--to", dest="stop", required=True)
    ap.add_argument("--every", default="1M")
    ap.add_argument("--as-of", dest="as_of", required=True)
    ap.add_argument("--config", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip-runs", action="store_true", help="runs already stored: monitor and backtest only")
    ap.add_argument("--replay", action="store_true",
                    help="store one more run per cutoff, scored like the backtest (no export-time invoice flags) "
                         "by the model version trained as of that day, and compare those; reuses backtest.json")
    args = ap.parse_args()
    settings = load_settings(Path(args.home))
    config = load_config(args.config)
    days = build_cutoffs(None, args.start, args.stop, args.every)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    if not args.skip_runs:
        for d in days:
            t0 = time.perf_counter()
            res = run_training(settings, d, config, force=True)
            times[f"train {d.date()}"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            sc = run_score(settings, d)
            times[f"score {d.date()}"] = time.perf_counter() - t0
            print(f"{d.date()}: model v{res.version}, run {sc.run_id} ({sc.n_invoices} invoices)", flush=True)
    replayed: dict[str, str] = {}
    if args.replay:
        replayed = replay_runs(settings, days)
    t0 = time.perf_counter()
    mon = run_monitor(settings, args.as_of)
    times["monitor"] = time.perf_counter() - t0
    save_monitor_report(mon, out / "monitor")
    (out / "monitor.json").write_text(json.dumps(mon.to_json()), encoding="utf-8")
    if args.replay and (out / "backtest.json").exists():
        bt = json.loads((out / "backtest.json").read_text(encoding="utf-8"))
    else:
        t0 = time.perf_counter()
        ledger = load_store_ledger(settings.store_url)
        bt = run_rolling_backtest(ledger, days, end=args.as_of, config=config)
        times["rolling backtest"] = time.perf_counter() - t0
        (out / "backtest.json").write_text(json.dumps(bt, default=str), encoding="utf-8")
    chosen = set(replayed.values())
    runs = {r["as_of"]: r for r in mon.runs if not chosen or r["run_id"] in chosen}
    lines = ["| cutoff | model | " + " | ".join(FIGURES) + " | max abs diff |",
             "| --- | --- |" + " --- |" * (len(FIGURES) + 1)]
    for d in days:
        key = str(d.date())
        r, b = runs.get(key, {}), bt["cutoffs"][key]["model"]
        diffs = [abs(r[k] - b[k]) for k in FIGURES if r.get(k) is not None and b.get(k) is not None]
        cells = [f"{r.get(k):.4f} / {b.get(k):.4f}" if r.get(k) is not None and b.get(k) is not None
                 else f"{r.get(k)} / {b.get(k)}" for k in FIGURES]
        lines.append(f"| {key} | v{r.get('model_version')} | " + " | ".join(cells) + f" | {max(diffs, default=0):.2e} |")
    lines += ["", "| step | seconds |", "| --- | --- |"] + [f"| {k} | {v:.1f} |" for k, v in times.items()]
    text = "\n".join(lines) + "\n"
    (out / ("table-replay.md" if args.replay else "table.md")).write_text(text, encoding="utf-8")
    print(text)
    print(pd.Timestamp.now(tz="UTC"))


if __name__ == "__main__":
    main()
