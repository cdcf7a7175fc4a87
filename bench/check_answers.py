"""Before/after equality check of the answers: the API, the web pages and the CLI on a trained workspace.

Usage (from the repository root; the workspace holds an ingested ledger and a champion)::

    .venv/bin/python bench/check_answers.py save /tmp/answers_before --home WS --as-of 2025-10-01
    .venv/bin/python bench/check_answers.py compare /tmp/answers_before --home WS --as-of 2025-10-01

Saved: ``/v1/forecast`` (weeks and days), ``/v1/worklist`` (admin and a collector), ``/v1/kpis``,
``/v1/clients/{id}``, ``/v1/scores``, the worklist, client, forecast and KPI pages and the forecast
CSV (CSRF tokens blanked), and ``encaisse forecast --json`` with its CSV. Compared as text.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOKENS = re.compile(r'(name="(?:csrf|login_csrf)" value=")[^"]+(")|("csrf": ?")[^"]+(")')


def _blank(text: str) -> str:
    return TOKENS.sub(lambda m: (m.group(1) or m.group(3)) + "-" + (m.group(2) or m.group(4)), text)


def build_answers(home: Path, as_of: str) -> dict[str, str]:
    os.environ["ENCAISSE_HOME"] = str(home)
    from fastapi.testclient import TestClient

    from ledger.engine import open_store
    try:
        from ledger.reader import load_ledger
    except ImportError:  # the code before ledger/store.py was split (a "before" run)
        from ledger.store import load_ledger
    from ledger.workspace import Settings
    from serving.app import create_app
    from serving.keys import create_key

    settings = Settings()
    engine = open_store(settings.store_url)
    ledger = load_ledger(engine)
    clients = ledger.clients.sort_values("client_id")
    named = clients["collector"].dropna()
    collector = str(named.iloc[0]) if len(named) else "check-answers"  # an export without collectors
    mine = clients[clients["collector"] == collector]["client_id"]
    client = str(mine.iloc[0]) if len(mine) else str(ledger.invoices["client_id"].min())
    keys = {r: create_key(engine, r, collector=collector if r == "collector" else None, name="check_answers").token
            for r in ("admin", "collector")}
    open_ids = ledger.invoices[(ledger.invoices["doc_type"] == "invoice") & (ledger.invoices["issue_date"] < as_of)
                               & ~(ledger.invoices["paid_date"] < as_of)]["invoice_id"].head(50).tolist()
    engine.dispose()
    out: dict[str, str] = {}
    with TestClient(create_app(settings), follow_redirects=False) as tc:
        def api(path, role="admin", body=None):
            h = {"Authorization": f"Bearer {keys[role]}"}
            r = tc.post(path, json=body, headers=h) if body is not None else tc.get(path, headers=h)
            return f"{r.status_code} {r.text}"

        out["api_forecast_w"] = api(f"/v1/forecast?as_of={as_of}&horizon=13&freq=W")
        out["api_forecast_d"] = api(f"/v1/forecast?as_of={as_of}&horizon=30&freq=D")
        out["api_forecast_long"] = api(f"/v1/forecast?as_of={as_of}&horizon=200&freq=W")
        out["api_worklist"] = api(f"/v1/worklist?as_of={as_of}&limit=500")
        out["api_worklist_collector"] = api(f"/v1/worklist?as_of={as_of}&limit=500", role="collector")
        out["api_worklist_other"] = api(f"/v1/worklist?as_of={as_of}&collector=nobody", role="collector")
        out["api_kpis"] = api(f"/v1/kpis?as_of={as_of}")
        out["api_client"] = api(f"/v1/clients/{client}?as_of={as_of}")
        out["api_scores"] = api("/v1/scores", body={"as_of": as_of, "invoice_ids": open_ids})
        page = tc.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        tc.post("/login", data={"key": keys["admin"], "csrf": token, "next": ""})
        for name, path in [
            ("page_worklist", f"/worklist?as_of={as_of}"),
            ("page_worklist_all", f"/worklist?as_of={as_of}&show=all"),
            ("page_worklist_client", f"/worklist?as_of={as_of}&show=all&sort=client&order=desc"),
            ("page_worklist_collector", f"/worklist?as_of={as_of}&show=all&collector={collector}&sort=amount"),
            ("page_client", f"/clients/{client}?as_of={as_of}"),
            ("page_forecast", f"/forecast?as_of={as_of}"),
            ("page_forecast_d", f"/forecast?as_of={as_of}&horizon=60&freq=D"),
            ("page_forecast_csv", f"/forecast.csv?as_of={as_of}&horizon=20"),
            ("page_kpis", f"/kpis?as_of={as_of}"),
        ]:
            r = tc.get(path)
            out[name] = f"{r.status_code} {_blank(r.text)}"
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "fc.csv"
        r = subprocess.run([str(Path(sys.executable).parent / "encaisse"), "forecast", "--as-of", as_of, "--horizon",
                            "13", "--out", str(csv), "--json"], capture_output=True, text=True, check=True)
        got = json.loads(r.stdout.strip().splitlines()[-1])
        got["out"] = None
        out["cli_forecast_json"] = json.dumps(got, sort_keys=True)
        out["cli_forecast_csv"] = csv.read_text()
        r = subprocess.run([str(Path(sys.executable).parent / "encaisse"), "forecast", "--as-of", as_of, "--horizon",
                            "8", "--freq", "D", "--run-rate-weeks", "0"], capture_output=True, text=True, check=True)
        out["cli_forecast_table"] = r.stdout
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["save", "compare"])
    parser.add_argument("path", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    args = parser.parse_args()
    out = build_answers(args.home, args.as_of)
    if args.mode == "save":
        args.path.write_text(json.dumps(out))
        print(f"saved {len(out)} answers to {args.path}")
        return
    before = json.loads(args.path.read_text())
    diffs = [k for k in before if before[k] != out.get(k)]
    for k in diffs:
        a, b = before[k], out.get(k, "")
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"DIFF {k} at {i}: before {a[max(0, i - 80):i + 80]!r}\n   after {b[max(0, i - 80):i + 80]!r}")
    print(f"{len(before) - len(diffs)} of {len(before)} answers identical")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
