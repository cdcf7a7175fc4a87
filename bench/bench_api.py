"""API latency and throughput from a second process on loopback.

Starts ``encaisse serve`` on a free 127.0.0.1 port against an existing workspace (one with a
champion model and a ledger, e.g. after ``encaisse demo --no-serve``), waits for ``/ready``
(bounded polling), then loads it from other processes and prints a Markdown table: p50 / p99
latency (ms) and throughput (req/s) for a 1-invoice score call, a 1,000-invoice score call and a
50-row worklist page.

Load generators:

* 1-invoice and worklist cases: ``wrk`` (Debian package ``wrk``; C, one thread, an event loop),
  ``--concurrency`` connections kept busy for ``--seconds`` (a closed loop: at most that many
  requests in flight). ``bench/wrk_api.lua`` draws one open invoice at random per score request.
  ``--client python`` uses this process's httpx threads instead (about 1 ms of Python per request,
  on the same cores as the server).
* 1,000-invoice case: this process (httpx), ``--large-concurrency`` connections (1 by default: its
  target is the latency of one call; with more, calls queue behind each other for the cores).

Each score request asks for invoices drawn at random (seeded) from the open ones, so no answer is
served twice from one request's work. The day's first score call (it builds the day's open
invoices, ``serving.invoice_scores.open_rows``) is timed on its own as ``cold`` (the scoring day is the
stored run's, or ``--as-of``; today's is built at start-up, so a call as of today is never cold);
every connection is then warmed before timing. The 1-minute load average is printed at the start
and end of each case.

    python bench/bench_api.py --home .encaisse --workers 1 --workers 2 --concurrency 2 --concurrency 4

The API key is created in the workspace with ``encaisse keys create --role admin``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from server_process import free_port, wait_until_up  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]
ENCAISSE = str(Path(sys.executable).with_name("encaisse"))
WRK_SCRIPT = REPO / "bench" / "wrk_api.lua"
WARM_CONNECTIONS, WARM_SECONDS = 16, 8.0


def _key(home: str) -> str:
    out = subprocess.run([ENCAISSE, "keys", "create", "--role", "admin", "--name", "bench", "--home", home, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["key"]


def _run(client: httpx.Client, method: str, path: str, body, n: int, concurrency: int) -> dict:
    """``body(i)`` gives request i's JSON (None for a GET)."""
    def one(i):
        t = time.perf_counter()
        r = client.request(method, path, json=body(i))
        r.raise_for_status()
        return (time.perf_counter() - t) * 1000

    with ThreadPoolExecutor(concurrency) as pool:  # warm-up: every connection (and worker) once or more
        list(pool.map(one, range(-3 * concurrency, 0)))
    load0 = os.getloadavg()[0]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        lat = sorted(pool.map(one, range(n)))
    wall = time.perf_counter() - started
    return {"n": n, "p50_ms": statistics.median(lat), "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "req_per_s": n / wall, "load": f"{load0:.1f}-{os.getloadavg()[0]:.1f}"}


def _wrk(base: str, key: str, path: str, args: list[str], seconds: float, concurrency: int) -> dict:
    """One wrk run, after a warm-up run: its JSON line.

    The warm-up opens ``WARM_CONNECTIONS`` connections for ``WARM_SECONDS``: each server worker is a
    process with its own caches, and a connection stays with the worker that accepted it, so a
    warm-up on a few connections can leave a worker cold (its first call of the day builds the
    day's open invoices, ~4.7 s at 100k open) for the timed run to hit.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk), or use --client python")

    def run(duration: float, connections: int = concurrency) -> dict:
        out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "-s",
                              str(WRK_SCRIPT), "-H", f"Authorization: Bearer {key}", f"{base}{path}", "--", *args],
                             check=True, capture_output=True, text=True).stdout
        return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])

    run(WARM_SECONDS, WARM_CONNECTIONS)
    load0 = os.getloadavg()[0]
    r = run(seconds)
    if r["socket_errors"] or r["non2xx"]:
        raise RuntimeError(f"wrk {path}: {r['socket_errors']} socket errors, {r['non2xx']} non-2xx answers")
    return {"n": r["requests"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "req_per_s": r["requests"] / r["seconds"],
            "load": f"{load0:.1f}-{os.getloadavg()[0]:.1f}"}


def bench(home: str, workers: int, n_small: int, n_large: int, concurrencies: list[int], large_concurrency: int,
          as_of: str | None = None, client_kind: str = "wrk", seconds: float = 15.0) -> list[dict]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key = _key(home)
    server = subprocess.Popen([ENCAISSE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                               str(workers), "--home", home], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"{base}/ready")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60.0,
                          limits=httpx.Limits(max_connections=max(concurrencies))) as client:
            rows = client.get("/v1/worklist", params={"limit": 10000, **({"as_of": as_of} if as_of else {})}).json()
            # The stored run's day: its rows are the invoices open then (``as_of`` is today, warmed at start-up).
            as_of = as_of or rows.get("run_as_of") or rows["as_of"]
            ids = [r["invoice_id"] for r in rows["rows"]]
            k = min(1000, len(ids))

            def one_invoice(i):
                return {"as_of": as_of, "invoice_ids": [random.Random(i).choice(ids)]}

            def many_invoices(i):
                return {"as_of": as_of, "invoice_ids": random.Random(i).sample(ids, k)}

            t = time.perf_counter()
            client.post("/v1/scores", json=one_invoice(-1000)).raise_for_status()
            out = [{"case": f"cold: first score call as of {as_of}", "workers": workers, "open_invoices": rows["total"],
                    "connections": 1, "n": 1, "p50_ms": (time.perf_counter() - t) * 1000, "p99_ms": float("nan"),
                    "req_per_s": float("nan"), "load": f"{os.getloadavg()[0]:.1f}"}]
            worklist = f"/v1/worklist?as_of={as_of}&limit=50"
            out.append({"case": f"score {k:,} invoices", "workers": workers, "connections": large_concurrency,
                        "open_invoices": rows["total"],
                        **_run(client, "POST", "/v1/scores", many_invoices, n_large, large_concurrency)})
            with tempfile.NamedTemporaryFile("w", suffix=".ids") as fh:
                fh.write("\n".join(ids) + "\n")
                fh.flush()
                for conc in concurrencies:
                    for name, method, path, body, wrk_args in (
                            ("score 1 invoice", "POST", "/v1/scores", one_invoice, ["score1", as_of, fh.name, "0"]),
                            ("worklist page (50 rows)", "GET", worklist, lambda i: None, ["get"])):
                        if client_kind == "wrk":
                            res = _wrk(base, key, path, wrk_args, seconds, conc)
                        else:
                            res = _run(client, method, path, body, n_small, conc)
                        out.append({"case": name, "workers": workers, "connections": conc,
                                    "open_invoices": rows["total"], "client": client_kind, **res})
            return out
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=os.environ.get("ENCAISSE_HOME", ".encaisse"))
    ap.add_argument("--workers", type=int, action="append")
    ap.add_argument("--client", choices=("wrk", "python"), default="wrk",
                    help="load generator of the 1-invoice and worklist cases")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each wrk case")
    ap.add_argument("--requests", type=int, default=300, help="requests per small case (--client python)")
    ap.add_argument("--large-requests", type=int, default=30, help="requests of 1,000 invoices")
    ap.add_argument("--concurrency", type=int, action="append",
                    help="connections for the 1-invoice and worklist cases (repeatable; default 4)")
    ap.add_argument("--as-of", help="scoring day (default: the day of the latest stored score run)")
    ap.add_argument("--large-concurrency", type=int, default=1, help="connections for the 1,000-invoice case")
    args = ap.parse_args()
    results = []
    for w in args.workers or [1]:
        results += bench(args.home, w, args.requests, args.large_requests, args.concurrency or [4],
                         args.large_concurrency, args.as_of, args.client, args.seconds)
    print("| case | workers | client | connections | open invoices | requests | p50 ms | p99 ms | req/s | load avg (start-end) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['case']} | {r['workers']} | {r.get('client', 'python')} | {r['connections']} | {r['open_invoices']:,} | "
              f"{r['n']:,} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['req_per_s']:.1f} | {r['load']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
