"""`encaisse demo --no-serve` into a temporary workspace: everything a newcomer needs, twice, idempotently.

The committed sample takes ~30 s to train with quick.yaml, so the test asks for a 30-client
synthetic ledger (``--clients``) and a smaller configuration written here; the steps are the same.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

TINY_CONFIG = """\
experiment: encaisse-demo-test
model:
  snapshot_freq_days: 28
  max_snapshots: 8
  hazard_holdout_days: 56
  label_window_days: 90
  hazard_params: {n_estimators: 15, learning_rate: 0.2, num_leaves: 7, min_child_samples: 10, n_jobs: 1, verbose: -1}
  risk_params: {n_estimators: 15, learning_rate: 0.2, num_leaves: 7, min_child_samples: 10, n_jobs: 1, verbose: -1}
validation:
  min_rows: 5
"""


def run_demo(home: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("encaisse")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from encaisse.cli import app; app()"]
    return subprocess.run([*cmd, "demo", "--home", str(home), "--no-serve", "--clients", "30", "--config",
                           str(config), *extra], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    home, config = base / "home", base / "tiny.yaml"
    config.write_text(TINY_CONFIG, encoding="utf-8")
    first = run_demo(home, config, "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_demo(home, config, "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    human = run_demo(home, config)
    assert human.returncode == 0, human.stderr[-3000:]
    return home, json.loads(first.stdout.splitlines()[-1]), json.loads(second.stdout.splitlines()[-1]), human.stdout


def test_first_run_builds_the_workspace(demo_runs):
    home, first, _, _ = demo_runs
    assert first["home"] == str(home.resolve())
    assert first["as_of"] == "2026-01-01"  # the morning after the sample's export day (2025-12-31)
    assert first["trained"] is True and first["scored"] is True and first["key_created"] is True
    for table in ("clients", "invoices", "payments", "actions"):
        counts = first["ingest"][table]
        assert counts["read"] > 0 and counts["inserted"] == counts["read"], table
    assert first["ingest"]["clients"]["read"] == 30
    assert re.fullmatch(r"enc_[A-Za-z0-9_-]{43}", first["key"])
    assert first["url"] == "http://127.0.0.1:8000/"
    key_file = home / "demo-admin-key.txt"
    assert key_file.read_text().strip() == first["key"] and oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_second_run_reuses_everything(demo_runs):
    _, first, second, _ = demo_runs
    assert second["trained"] is False and second["scored"] is False and second["key_created"] is False
    assert second["key"] == first["key"] and second["run_id"] == first["run_id"]
    assert second["model_version"] == first["model_version"]
    for table, counts in second["ingest"].items():
        assert counts["inserted"] == counts["updated"] == 0 and counts["unchanged"] == counts["read"], table


def test_human_output_prints_the_key_and_the_url(demo_runs):
    _, first, _, human = demo_runs
    assert first["key"] in human.splitlines()
    assert "Open http://127.0.0.1:8000/ and log in with the key above" in human


def test_the_workspace_serves_the_worklist(demo_runs, monkeypatch):
    """The app on the demo workspace (real registry, stored run) logs the key in and shows the worklist."""
    from fastapi.testclient import TestClient

    from ledger.workspace import Settings
    from serving.app import create_app

    home, first, _, _ = demo_runs
    app = create_app(Settings(home=home))
    with TestClient(app, follow_redirects=False) as tc:
        assert tc.get("/ready").json()["model_version"] == first["model_version"]
        token = re.search(r'name="csrf" value="([^"]+)"', tc.get("/login").text).group(1)
        r = tc.post("/login", data={"key": first["key"], "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/worklist"
        page = tc.get("/worklist")
        assert page.status_code == 200
        assert "As of 1 Jan 2026" in page.text and first["run_id"][:8] in page.text
        assert len(re.findall(r'<tr data-invoice="', page.text)) > 0
