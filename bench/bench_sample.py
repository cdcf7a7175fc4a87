"""Time the synthetic ledger: ``make_ledger`` + ``write_ledger`` at 100k and 1M invoices.

Usage (from the repository root)::

    .venv/bin/python bench/bench_sample.py                 # 100k and 1M invoices, one process each
    .venv/bin/python bench/bench_sample.py --invoices 1000000 --no-header

Prints Markdown table rows; peak RSS is the process's own (each size runs in a fresh process).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INVOICES_PER_CLIENT_2Y = 47.0  # measured on make_ledger(n, years=2): invoices (not credit notes) per client
HEADER = ("| invoices (target) | clients | invoices | payments | actions | generate s | write s | total s "
          "| CSV MB | peak RSS MB | machine |\n"
          "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")


def run_one(target: int, seed: int) -> str:
    """Generate and write about ``target`` invoices; return one Markdown row."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ledger.synth import make_ledger, write_ledger

    n_clients = max(1, round(target / INVOICES_PER_CLIENT_2Y))
    t0 = time.perf_counter()
    ledger = make_ledger(n_clients, years=2, seed=seed)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_ledger(ledger, tmp)
        t2 = time.perf_counter()
        size_mb = sum(p.stat().st_size for p in paths.values()) / 1e6
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    n_inv = int((ledger.invoices["doc_type"] == "invoice").sum())
    machine = f"{os.cpu_count()} CPU, {platform.python_implementation()} {platform.python_version()}"
    return (f"| {target:,} | {n_clients:,} | {n_inv:,} | {len(ledger.payments):,} | {len(ledger.actions):,} "
            f"| {t1 - t0:.1f} | {t2 - t1:.1f} | {t2 - t0:.1f} | {size_mb:.0f} | {peak_mb:.0f} | {machine} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="*", default=[100_000, 1_000_000],
                        help="Target invoice counts (default: 100000 1000000).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-header", action="store_true", help="Print rows only.")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.no_header:
        print(HEADER)
    if args.in_process:
        for target in args.invoices:
            print(run_one(target, args.seed), flush=True)
        return
    for target in args.invoices:  # a fresh process per size, so peak RSS is that size's own
        subprocess.run([sys.executable, __file__, "--in-process", "--no-header", "--seed", str(args.seed),
                        "--invoices", str(target)], check=True)


if __name__ == "__main__":
    main()
