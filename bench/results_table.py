"""Markdown table of ``bench/out/results.jsonl`` (from ``bench_pipeline.py``): medians per size and step.

Usage::

    .venv/bin/python bench/results_table.py [bench/out/results.jsonl] [--since "2026-11-23 16:40:00"]

Runs between ``--since`` and ``--until`` count (e.g. a rerun batch taken on a quieter machine).
Load is the 1-minute load average at the start -> end of each run (2 cores: above 2 means
other work was competing for the CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

STEPS = ("generate", "ingest", "load", "features", "train", "score", "scoring", "forecast")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=Path(__file__).parent / "out" / "results.jsonl")
    parser.add_argument("--since", default="", help="Only runs at or after this time.")
    parser.add_argument("--until", default="~", help="Only runs before this time.")
    args = parser.parse_args()
    runs = defaultdict(list)
    for line in args.path.read_text().splitlines():
        r = json.loads(line)
        if args.since <= r.get("at", "") < args.until:
            runs[(r["invoices"], r["step"])].append(r)
    print("| invoices | step | runs | median s | min s | each run s | peak RSS MB (median) | rows "
          "| load avg (start->end) |")
    print("| ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    for (n, step), rs in sorted(runs.items(), key=lambda kv: (kv[0][0], STEPS.index(kv[0][1]))):
        secs = [r["seconds"] for r in rs]
        rows = rs[-1].get("rows", rs[-1].get("n_invoices", ""))
        rows = f"{rows:,}" if isinstance(rows, int) else str(rows)
        loads = ", ".join(f"{r['load_start']:.1f}->{r['load_end']:.1f}" for r in rs)
        print(f"| {n:,} | {step} | {len(rs)} | {statistics.median(secs):.1f} | {min(secs):.1f} "
              f"| {', '.join(f'{s:.1f}' for s in secs)} | {statistics.median(r['peak_rss_mb'] for r in rs):,.0f} "
              f"| {rows} | {loads} |")


if __name__ == "__main__":
    main()
