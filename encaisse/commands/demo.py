"""`encaisse demo`: sample ledger -> ingest -> quick training -> scoring -> an admin key -> the web app.

Every step reuses what the workspace already holds, so a second run is fast and changes nothing:
ingest upserts (unchanged rows stay), training is skipped while the champion was trained on the
demo day with the same configuration (``demo-state.json``), scoring is skipped while a run of that
champion is stored for the day, and the admin key is kept in the workspace (``demo-admin-key.txt``,
readable by its owner only) and reused while it is not revoked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from encaisse.console import emit_json, fail, out, settings_for
from encaisse.options import HomeOption

log = logging.getLogger(__name__)

REPO_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
"""The committed synthetic sample ledger (``data/sample``), when running from a clone."""
SAMPLE_ARGS = {"n_clients": 300, "years": 2, "seed": 0, "end_date": "2025-12-31"}
"""How ``data/sample`` was made (``data/sample/README.md``); used when the folder is not there."""
TABLE_ORDER = ("clients", "invoices", "payments", "actions")
KEY_FILE = "demo-admin-key.txt"
STATE_FILE = "demo-state.json"
"""The champion version the demo trained and the hash of its configuration (to reuse it)."""


def find_sample(home: Path, clients: int | None) -> tuple[Path, str]:
    """The sample folder to ingest and how it was obtained.

    The committed ``data/sample`` when it is there and no other size is asked; otherwise a ledger
    generated into the workspace (kept there, so a second run reuses it).
    """
    if clients is None and all((REPO_SAMPLE / f"{t}.csv").is_file() for t in TABLE_ORDER):
        return REPO_SAMPLE, "committed sample"
    from ledger.synth import make_ledger, write_ledger

    args = {**SAMPLE_ARGS, **({"n_clients": clients} if clients is not None else {})}
    folder = home / f"sample-{args['n_clients']}-clients-seed-{args['seed']}"
    if all((folder / f"{t}.csv").is_file() for t in TABLE_ORDER):
        return folder, "generated earlier"
    write_ledger(make_ledger(args["n_clients"], years=args["years"], seed=args["seed"],
                             end_date=args["end_date"]), folder)
    return folder, "generated now"


def demo_day(sample: Path) -> "pd.Timestamp":  # noqa: F821 - pandas is imported lazily
    """The day after the sample's last dated row (its export day): the demo scores as of that morning.

    Read from the sample files, not the store, so actions recorded in the web app later do not move it.
    """
    import pandas as pd

    last = max(
        pd.to_datetime(pd.read_csv(sample / f"{table}.csv", usecols=cols)[c]).max()
        for table, cols in (("invoices", ["issue_date", "paid_date"]), ("payments", ["paid_date"]),
                            ("actions", ["action_date"]))
        for c in cols
    )
    return pd.Timestamp(last).normalize() + pd.Timedelta(days=1)


def demo_key(engine, home: Path) -> tuple[str, bool]:
    """The workspace's demo admin key, reused while it is valid; a new one otherwise."""
    from serving.keys import create_key, verify_key

    path = home / KEY_FILE
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        principal = verify_key(engine, token)
        if principal is not None and principal.role == "admin":
            return token, False
    token = create_key(engine, "admin", name="demo admin").token
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return token, True


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("demo")
    def demo(
        home: HomeOption = None,
        port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port of the web app.")] = 8000,
        host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
        no_serve: Annotated[bool, typer.Option("--no-serve", help="Prepare the workspace, print the key, "
                                               "and stop before serving.")] = False,
        config: Annotated[Path | None, typer.Option("--config", help="Training configuration YAML (default: "
                                                    "the packaged quick.yaml).")] = None,
        clients: Annotated[int | None, typer.Option("--clients", min=5, help="Generate a synthetic ledger of "
                                                    "this many clients instead of the committed sample.")] = None,
        json_: Annotated[bool, typer.Option("--json", help="Print what was done as one JSON line (before "
                                            "serving).")] = False,
    ) -> None:
        """Try Encaisse in minutes: a synthetic ledger, a quickly trained model, today's worklist, the web app."""
        import pandas as pd

        from ledger.ingest import IngestError, IngestRejected, ingest_file
        from ledger.scores_store import load_latest_scores
        from ledger.engine import open_store
        from models import registry
        from pipelines.config import QUICK_CONFIG
        from pipelines.score import run_score
        from pipelines.train import LedgerError, run_training

        from encaisse.commands.train import load_config_or_fail

        t0 = time.perf_counter()
        settings = settings_for(home)
        work = settings.home_dir
        say = (lambda *_a, **_k: None) if json_ else out.print
        report: dict = {"home": str(work)}

        sample, how = find_sample(work, clients)
        say(f"[bold]1/5[/] ledger: {how} ({sample})")
        engine = open_store(settings.store_url)
        try:
            counts = {}
            for table in TABLE_ORDER:
                try:
                    res = ingest_file(engine, sample / f"{table}.csv", rejects_dir=settings.rejects_dir, table=table,
                                      strict=True)
                except (IngestError, IngestRejected) as exc:
                    raise fail(f"could not ingest {sample / f'{table}.csv'}: {exc}") from None
                counts[table] = {"read": res.read, "inserted": res.inserted, "updated": res.updated,
                                 "unchanged": res.unchanged}
                say(f"[bold]2/5[/] ingest {table}: read {res.read:,}, inserted {res.inserted:,}, "
                    f"updated {res.updated:,}, unchanged {res.unchanged:,}")
            report["ingest"] = counts
            day = demo_day(sample)
            report["as_of"] = str(day.date())

            version, trained_as_of = registry.get_champion_version(settings), None
            if version is not None:  # read the training day from the registry without loading the model
                client = registry.configure_mlflow(settings)
                mv = client.get_model_version(settings.model_name, version)
                trained_as_of = mv.tags.get("as_of") or client.get_run(mv.run_id).data.params.get("as_of")
            config_path = config or QUICK_CONFIG
            config_sha = hashlib.sha256(config_path.read_bytes()).hexdigest()[:16]
            state_file = work / STATE_FILE
            state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
            if version is not None and str(trained_as_of)[:10] == str(day.date()) \
                    and state.get("model_version") == str(version) and state.get("config_sha") == config_sha:
                say(f"[bold]3/5[/] train: reusing champion v{version} (trained as of {day.date()})")
                report["trained"] = False
            else:
                cfg = load_config_or_fail(config_path)
                t = time.perf_counter()
                try:
                    result = run_training(settings, day, cfg, force=True)
                except (LedgerError, ValueError) as exc:
                    raise fail(str(exc)) from None
                say(f"[bold]3/5[/] train as of {day.date()} ({config_path.name}): "
                    f"{settings.model_name} v{result.version} in {time.perf_counter() - t:.1f} s")
                report["trained"] = True
                version = result.version
                state_file.write_text(json.dumps({"model_version": str(version), "config_sha": config_sha,
                                                  "as_of": str(day.date())}) + "\n", encoding="utf-8")
            report["model_version"] = str(version)

            stored = load_latest_scores(engine, day)
            if stored is not None and pd.Timestamp(stored.run["as_of"]) == day \
                    and str(stored.run["model_version"]) == str(version):
                say(f"[bold]4/5[/] score: reusing run {stored.run_id} as of {day.date()}")
                report["scored"] = False
                report["run_id"] = stored.run_id
            else:
                scored = run_score(settings, day)
                n_today = int(scored.worklist["priority"].notna().sum())
                say(f"[bold]4/5[/] score as of {day.date()}: {scored.n_invoices:,} open invoices, "
                    f"{n_today:,} actions on today's worklist (run {scored.run_id})")
                report["scored"] = True
                report["run_id"] = scored.run_id

            token, created = demo_key(engine, work)
        finally:
            engine.dispose()
        url = f"http://{host}:{port}/"
        report.update(key=token, key_created=created, url=url, seconds=round(time.perf_counter() - t0, 1))
        say(f"[bold]5/5[/] admin API key ({'new' if created else 'reused'}; kept in {work / KEY_FILE}):")
        if not json_:
            typer.echo(token)
            typer.echo(f"Open {url} and log in with the key above"
                       + (" (after `encaisse serve`)." if no_serve else "."))
            say(f"Ready in {report['seconds']} s.")
        else:
            emit_json(report)
        if no_serve:
            return

        import uvicorn

        os.environ["ENCAISSE_HOME"] = str(work)  # the app factory reads the workspace from the environment
        log.info("serving on %s", url)
        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, log_level="info",
                    access_log=False)
