"""Ingest of a file that goes straight into its table until a key repeats: time, and passes over the file.

Generates ``--rows`` new invoices (CSV) whose last row repeats the first one's key (an identical
copy), so the direct path (``DirectInsert``) meets the repeat in the last chunk and the file has to
be settled staged; also a clean file of the same rows without the copy, and a ragged one (a row
with an extra field at 90% of the file). Each is ingested into a fresh SQLite store; printed as a
Markdown table row per file: rows, seconds, passes over the file (``ledger.sources.open_source``
calls; "n/a" on code without that seam).

Usage (from the repository root)::

    .venv/bin/python bench/bench_ingest_passes.py --rows 300000 --out /tmp/bench_passes
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEADER = "invoice_id,client_id,issue_date,due_date,amount,currency,paid_date,doc_type\n"


def _line(i: int) -> str:
    return f"I{i:08d},C{i % 5000:05d},2024-01-{1 + i % 28:02d},2024-02-{1 + i % 28:02d},{10 + i % 997}.5,EUR,,invoice\n"


def write_files(out: Path, rows: int) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"clean": out / "invoices_clean.csv", "repeat_at_end": out / "invoices_repeat.csv",
             "ragged_at_90pct": out / "invoices_ragged.csv"}
    body = [_line(i) for i in range(rows)]
    files["clean"].write_text(HEADER + "".join(body), encoding="utf-8")
    files["repeat_at_end"].write_text(HEADER + "".join(body) + body[0], encoding="utf-8")
    ragged = list(body)
    ragged[int(rows * 0.9)] = ragged[int(rows * 0.9)].rstrip("\n") + ",extra\n"
    files["ragged_at_90pct"].write_text(HEADER + "".join(ragged), encoding="utf-8")
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_ingest_passes")
    args = ap.parse_args()

    import ledger.sources as sources
    from ledger.engine import open_store
    from ledger.ingest import ingest_file

    passes = []
    if hasattr(sources, "open_source"):
        real = sources.open_source

        def counted(path, kind):
            passes.append(kind)
            return real(path, kind)

        sources.open_source = counted
    # Code before the good rows were stored by default needed allow_rejects to store them.
    keep_good = {"allow_rejects": True} if "allow_rejects" in ingest_file.__code__.co_varnames else {}
    files = write_files(args.out, args.rows)
    print("| file | rows read | inserted | rejected | seconds | passes over the file | load (1 min) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, path in files.items():
        db = args.out / f"{name}.db"
        db.unlink(missing_ok=True)
        engine = open_store(f"sqlite:///{db}")
        passes.clear()
        t0 = time.perf_counter()
        r = ingest_file(engine, path, rejects_dir=args.out, **keep_good)
        seconds = time.perf_counter() - t0
        engine.dispose()
        n = len(passes) if hasattr(sources, "open_source") else "n/a"
        print(f"| {name} | {r.read:,} | {r.inserted:,} | {r.rejected:,} | {seconds:.2f} | {n} | "
              f"{os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
