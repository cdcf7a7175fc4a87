"""`encaisse ingest` (load an export into the ledger store) and `encaisse db` (store migrations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from encaisse.console import HomeOption, JsonOption, emit_json, err, progress, settings_for

db_app = typer.Typer(help="The ledger store's schema (Alembic migrations).", no_args_is_help=True)


def ingest(
    path: Annotated[Path, typer.Argument(help="CSV, CSV.gz or Parquet file.")],
    mapping: Annotated[Path | None, typer.Option("--mapping", "-m", help="Mapping YAML (see data/mappings/).")] = None,
    table: Annotated[str | None, typer.Option("--table", help="Canonical table, if the file name does not say.")] = None,
    allow_rejects: Annotated[bool, typer.Option("--allow-rejects", help="Store the good rows even if some are rejected.")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Load a file into the ledger store; rejected rows go to a rejects file with their reasons."""
    from ledger.ingest import IngestError, IngestRejected, ingest_file
    from ledger.mapping import MappingError
    from ledger.store import open_store

    settings = settings_for(home)
    engine = open_store(settings.store_url)
    with progress(disable=False) as bar:
        task = bar.add_task(f"reading {path.name}", total=None)

        def on_progress(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=f"{'reading' if stage == 'read' else 'writing'} {path.name}",
                       completed=done, total=total)

        try:
            result = ingest_file(engine, path, mapping, settings.rejects_dir, table=table,
                                 allow_rejects=allow_rejects, on_progress=on_progress)
            code = 0
        except (IngestError, MappingError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except IngestRejected as exc:
            result = exc.result
            code = 1
    for line in result.problems:
        typer.echo(line, err=True)
    if code:
        err.print(f"[bold red]error:[/] {result.rejected} rows rejected, nothing stored; fix them or "
                  "re-run with --allow-rejects to store the good rows.", soft_wrap=True)
    if result.rejects_file:
        typer.echo(f"rejects: {result.rejects_file}", err=True)
    if json_out:
        emit_json(result.to_json())
    else:
        typer.echo(f"{result.table}: read {result.read}, inserted {result.inserted}, updated {result.updated}, "
                   f"unchanged {result.unchanged}, rejected {result.rejected}, filtered {result.filtered}")
    engine.dispose()
    if code:
        raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Create or upgrade the ledger store to this release's schema."""
    from ledger.store import create_store_engine, current_revision, upgrade_store

    engine = create_store_engine(settings_for(home).store_url)
    before = current_revision(engine)
    after = upgrade_store(engine)
    engine.dispose()
    if json_out:
        emit_json({"before": before, "revision": after})
    else:
        typer.echo(f"store at revision {after} (was {before})")


@db_app.command("current")
def db_current(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Show the store's schema revision and the newest one this release knows."""
    from ledger.store import create_store_engine, current_revision, head_revision

    engine = create_store_engine(settings_for(home).store_url)
    rev, head = current_revision(engine), head_revision()
    engine.dispose()
    if json_out:
        emit_json({"revision": rev, "head": head, "up_to_date": rev == head})
    else:
        typer.echo(f"store revision {rev} (head {head}){'' if rev == head else ': run `encaisse db upgrade`'}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("ingest")(ingest)
    app.add_typer(db_app, name="db")
