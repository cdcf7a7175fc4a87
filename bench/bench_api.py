"""API latency and throughput from a second process on loopback.

Starts ``encaisse serve`` on a free 127.0.0.1 port against an existing workspace (one with a
champion model and a ledger, e.g. after ``encaisse demo --no-serve``), waits for ``/ready``
(bounded polling), then sends a bounded number of requests from this process with a few
concurrent connections and prints a Markdown table: p50 / p99 latency (ms) and throughput (req/s)
for a 1-invoice score call, a 1,000-invoice score call and a 50-row worklist page.

    python bench/bench_api.py --home .encaisse --workers 1 --workers 2

The API key is created in the workspace with ``encaisse keys create --role admin``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
ENCAISSE = str(Path(sys.executable).with_name("encaisse"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _key(home: str) -> str:
    out = subprocess.run([ENCAISSE, "keys", "create", "--role", "admin", "--name", "bench", "--home", home, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["key"]


def _wait_ready(base: str, deadline_s: float = 120.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/ready", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling a child process's start-up, bounded by the deadline
    raise RuntimeError(f"{base} not ready within {deadline_s:.0f} s")


def _run(client: httpx.Client, method: str, path: str, body, n: int, concurrency: int) -> dict:
    def one(_):
        t = time.perf_counter()
        r = client.request(method, path, json=body)
        r.raise_for_status()
        return (time.perf_counter() - t) * 1000

    for _ in range(min(5, n)):
        one(0)  # warm-up: caches for this as_of
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        lat = sorted(pool.map(one, range(n)))
    wall = time.perf_counter() - started
    return {"n": n, "p50_ms": statistics.median(lat), "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "req_per_s": n / wall}


def bench(home: str, workers: int, n_small: int, n_large: int, concurrency: int) -> list[dict]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    key = _key(home)
    server = subprocess.Popen([ENCAISSE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                               str(workers), "--home", home], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(base)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60.0,
                          limits=httpx.Limits(max_connections=concurrency)) as client:
            rows = client.get("/v1/worklist", params={"limit": 10000}).json()
            as_of = rows["as_of"]
            ids = [r["invoice_id"] for r in rows["rows"]]
            rng = random.Random(0)
            big = (ids * (1000 // max(len(ids), 1) + 1))[:1000]
            cases = [
                ("score 1 invoice", "POST", "/v1/scores", {"as_of": as_of, "invoice_ids": [rng.choice(ids)]}, n_small),
                ("score 1,000 invoices", "POST", "/v1/scores", {"as_of": as_of, "invoice_ids": big}, n_large),
                ("worklist page (50 rows)", "GET", f"/v1/worklist?as_of={as_of}&limit=50", None, n_small),
            ]
            out = []
            for name, method, path, body, n in cases:
                res = _run(client, method, path, body, n, concurrency)
                out.append({"case": name, "workers": workers, "open_invoices": len(ids), **res})
            return out
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=os.environ.get("ENCAISSE_HOME", ".encaisse"))
    ap.add_argument("--workers", type=int, action="append")
    ap.add_argument("--requests", type=int, default=300, help="requests per small case")
    ap.add_argument("--large-requests", type=int, default=30, help="requests of 1,000 invoices")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    results = []
    for w in args.workers or [1]:
        results += bench(args.home, w, args.requests, args.large_requests, args.concurrency)
    load = os.getloadavg()[0]
    print("| case | workers | open invoices | requests | p50 ms | p99 ms | req/s | load avg |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['case']} | {r['workers']} | {r['open_invoices']} | {r['n']} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['req_per_s']:.1f} | {load:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
