"""A burst of API action writes during a large ingest: how many are lost, and their latency.

Builds a workspace with a small synthetic ledger (``make_ledger``), starts ``encaisse serve`` on a
free 127.0.0.1 port (no model is needed to record actions), then runs ``encaisse ingest`` of a
generated invoices file of ``--rows`` new invoices in another process. Once the ingest's first
batch is committed, ``--writes`` ``POST /v1/actions`` calls (distinct ``action_id``) are sent from
``--concurrency`` threads. It then counts, in the store, the burst's actions that were stored, and
prints a Markdown table: writes sent / accepted (201) / refused busy (503) / other, stored, p50 /
p99 / max latency (ms), and whether the burst ran while the ingest did.

    python bench/bench_write_burst.py --rows 1000000 --writes 200 --concurrency 8

A write answered 201 must be stored (``lost`` = accepted - stored must be 0); a 503 carries
``Retry-After`` and stored nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from server_process import free_port, wait_until_up  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]
ENCAISSE = str(Path(sys.executable).with_name("encaisse"))
sys.path.insert(0, str(REPO))


def build_invoices(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` new invoices (ids ``BIG0000000`` ...) in the canonical layout."""
    rng = np.random.default_rng(seed)
    issue = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    due = issue + pd.to_timedelta(rng.choice([30, 45, 60], rows), unit="D")
    paid = (due + pd.to_timedelta(rng.integers(-20, 90, rows), unit="D")).where(rng.random(rows) < 0.8)
    pd.DataFrame({
        "invoice_id": [f"BIG{i:07d}" for i in range(rows)],
        "client_id": [f"BC{i:05d}" for i in rng.integers(0, 20_000, rows)],
        "issue_date": issue.strftime("%Y-%m-%d"), "due_date": due.strftime("%Y-%m-%d"),
        "amount": np.round(rng.lognormal(7, 1.2, rows), 2), "currency": "EUR",
        "paid_date": pd.Series(paid).dt.strftime("%Y-%m-%d"), "doc_type": "invoice",
    }).to_csv(path, index=False)


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--no-ingest", action="store_true", help="The same burst with no ingest running (baseline).")
    ap.add_argument("--work", type=Path, default=None, help="Folder for the workspace and file (default: a temp dir).")
    args = ap.parse_args()

    from ledger.contracts import TABLES
    from ledger.engine import open_store
    from ledger.staged_upsert import upsert_frame
    from ledger.synth import make_ledger

    work = args.work or Path(tempfile.mkdtemp(prefix="burst-"))
    home = work / "home"
    big = work / "invoices_big.csv"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_invoices(big, 10 if args.no_ingest else args.rows)
    print(f"generated {args.rows:,} invoices in {time.perf_counter() - t0:.1f} s: {big}", file=sys.stderr)
    ledger = make_ledger(50, seed=1, end_date="2025-06-30")
    engine = open_store(f"sqlite:///{home / 'ledger.db'}")
    with engine.begin() as conn:
        for name in TABLES:
            upsert_frame(conn, name, getattr(ledger, name))
    engine.dispose()
    clients = sorted(ledger.clients["client_id"].astype(str))
    key = json.loads(subprocess.run([ENCAISSE, "keys", "create", "--role", "admin", "--home", str(home), "--json"],
                                    check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])["key"]
    port = free_port()
    env = {**os.environ, "ENCAISSE_HOME": str(home)}
    server = subprocess.Popen([ENCAISSE, "serve", "--port", str(port), "--home", str(home)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    db = home / "ledger.db"
    try:
        wait_until_up(f"{base}/health")
        before = _count(db, "select count(*) from invoices")
        ingest_started = time.perf_counter()
        cmd = [ENCAISSE, "ingest", str(big), "--home", str(home), "--json"]
        ingest = subprocess.Popen(["true"] if args.no_ingest else cmd, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        while not args.no_ingest and _count(db, "select count(*) from invoices") == before:  # first batch in
            if ingest.poll() is not None:
                raise RuntimeError("the ingest ended before the burst could start")
            time.sleep(0.05)  # polling another process's progress
        burst_started = time.perf_counter()

        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        http = httpx.Client(timeout=120, limits=limits)  # kept-alive connections, as a real client keeps them

        def post(i: int) -> tuple[int, float]:
            body = {"action_id": f"BURST-{i:04d}", "client_id": clients[i % len(clients)], "action_date": "2025-06-01",
                    "step": "call", "channel": "call", "outcome": "no_answer"}
            t = time.perf_counter()
            r = http.post(f"{base}/v1/actions", json=body, headers={"X-API-Key": key})
            return r.status_code, (time.perf_counter() - t) * 1000

        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(post, range(args.writes)))
        http.close()
        burst_ended = time.perf_counter()
        ingest_running_at_burst_end = ingest.poll() is None
        out, _ = ingest.communicate(timeout=3600)
        ingest_seconds = time.perf_counter() - ingest_started
        ingested = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    finally:
        server.terminate()
        server.wait(30)
    codes = [c for c, _ in results]
    lat = np.array([ms for _, ms in results])
    accepted = codes.count(201)
    busy = codes.count(503)
    stored = _count(db, "select count(*) from actions where action_id like 'BURST-%'")
    print("| rows ingested | ingest s | writes sent | accepted (201) | busy (503) | other | stored | lost | "
          "p50 ms | p99 ms | max ms | burst s | ingest still running at burst end |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(f"| {ingested.get('inserted', 0):,} | {ingest_seconds:.1f} | {len(codes)} | {accepted} | {busy} | "
          f"{len(codes) - accepted - busy} | {stored} | {accepted - stored} | {np.percentile(lat, 50):.0f} | "
          f"{np.percentile(lat, 99):.0f} | {lat.max():.0f} | {burst_ended - burst_started:.1f} | "
          f"{'yes' if ingest_running_at_burst_end else 'no'} |")


if __name__ == "__main__":
    main()
