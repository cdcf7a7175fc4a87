"""`encaisse ingest` (load an export into the ledger store) and `encaisse db` (store migrations).

Exit codes of `encaisse ingest` (README, "Exit codes"): 0 every row stored; 1 rows rejected (the
good rows stored, or with ``--strict`` nothing); 2 bad input or usage (file missing, empty,
undecodable, columns missing, bad mapping or option); 3 the store stayed busy (another process held
its write lock past ``--wait``), nothing stored; 4 unexpected failure, nothing stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from encaisse.console import emit_json, err, fail, progress, settings_for
from encaisse.options import HomeOption, JsonOption

EXIT_STORED, EXIT_REJECTED, EXIT_BAD_INPUT, EXIT_BUSY, EXIT_FAILED = 0, 1, 2, 3, 4

db_app = typer.Typer(help="The ledger store's schema (Alembic migrations).", no_args_is_help=True)


def ingest(
    path: Annotated[Path, typer.Argument(help="CSV, CSV.gz or Parquet file.")],
    mapping: Annotated[Path | None, typer.Option("--mapping", "-m", help="Mapping YAML (see data/mappings/).")] = None,
    table: Annotated[str | None, typer.Option("--table", help="Canonical table, if the file name does not say.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Store nothing if any row is rejected.")] = False,
    allow_rejects: Annotated[bool, typer.Option("--allow-rejects", hidden=True,
                                                help="Accepted for older scripts: the good rows are stored by "
                                                "default.")] = False,
    encoding: Annotated[str | None, typer.Option("--encoding", help="The CSV's encoding, e.g. cp1252 "
                                                 "(default: the mapping's, else detected).")] = None,
    delimiter: Annotated[str | None, typer.Option("--delimiter", help="The CSV's separator, e.g. ';' "
                                                  "(default: the mapping's, else ',').")] = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another process holding "
                                        "the store's write lock.")] = 120.0,
    policy: Annotated[Path | None, typer.Option("--policy", help="The dunning policy YAML whose step names actions "
                                                "may carry (default: the shipped policy).")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Load a file into the ledger store: the good rows are stored, rejected rows go to a rejects file
    with their reasons.

    Exit codes: 0 every row stored; 1 rows rejected (the others stored; with --strict, none);
    2 bad input or usage; 3 store busy; 4 unexpected failure.
    """
    import logging

    from ledger.ingest import IngestError, IngestRejected, ingest_file
    from ledger.mapping import MappingError
    from ledger.engine import open_store
    from ledger.writes import StoreBusyError, is_busy_error

    from models.policy import PolicyError, load_policy

    if strict and allow_rejects:
        raise fail("--strict and --allow-rejects contradict each other: give one.", code=EXIT_BAD_INPUT)
    try:
        policy_steps = load_policy(policy).step_names()
    except PolicyError as exc:
        raise fail(str(exc), code=EXIT_BAD_INPUT) from None
    settings = settings_for(home)
    try:
        engine = open_store(settings.store_url, busy_timeout=wait)
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        if is_busy_error(exc):
            raise fail(f"the store {settings.store_url} stayed busy for {wait:g} s (another process holds its "
                       "write lock); nothing was stored. Try again, or raise --wait.", code=EXIT_BUSY) from None
        logging.getLogger(__name__).debug("opening the store failed", exc_info=True)
        raise fail(f"cannot open the store {settings.store_url}: {exc.__class__.__name__}: "
                   f"{str(exc).splitlines()[0][:200]}", code=EXIT_FAILED) from None
    with progress(disable=False) as bar:
        task = bar.add_task(f"reading {path.name}", total=None)

        def on_progress(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=f"{'reading' if stage == 'read' else 'writing'} {path.name}",
                       completed=done, total=total)

        try:
            result = ingest_file(engine, path, mapping, settings.rejects_dir, table=table,
                                 strict=strict, on_progress=on_progress, encoding=encoding,
                                 delimiter=delimiter, policy_steps=policy_steps)
            code = EXIT_REJECTED if result.rejected else EXIT_STORED
        except (IngestError, MappingError) as exc:
            engine.dispose()
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except IngestRejected as exc:
            result = exc.result
            code = EXIT_REJECTED
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback (-v logs it)
            engine.dispose()
            if is_busy_error(exc) or isinstance(exc, StoreBusyError):
                raise fail(f"the store stayed busy for {wait:g} s (another process holds its write lock); "
                           f"{path.name} was not stored. Try again, or raise --wait.", code=EXIT_BUSY) from None
            logging.getLogger(__name__).debug("ingest failed", exc_info=True)
            raise fail(f"ingest of {path.name} failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}; "
                       "nothing was stored (run with -v for the details).", code=EXIT_FAILED) from None
    for line in result.problems:
        typer.echo(line, err=True)
    if code and result.stored:
        err.print(f"[bold yellow]warning:[/] {_rows(result.rejected)} rejected, the other rows stored; fix the "
                  "rejected rows and send them (or the whole file: stored rows stay unchanged) again.",
                  soft_wrap=True)
    elif code:
        err.print(f"[bold red]error:[/] {_rows(result.rejected)} rejected, nothing stored (--strict); fix them "
                  "and send the file again, or ingest without --strict to store the good rows.", soft_wrap=True)
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


def _rows(n: int) -> str:
    return f"{n} row{'' if n == 1 else 's'}"


@db_app.command("upgrade")
def db_upgrade(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Create or upgrade the ledger store to this release's schema."""
    from ledger.engine import create_store_engine, current_revision, upgrade_store

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
    """Show the store's schema revision and the newest one this release knows (creates nothing)."""
    import sqlalchemy as sa

    from ledger.engine import create_store_engine, current_revision, head_revision

    settings = settings_for(home)
    url = sa.engine.make_url(settings.database_url or f"sqlite:///{settings.home.expanduser().resolve() / 'ledger.db'}")
    head = head_revision()
    plain_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
        and not url.database.startswith("file:")  # a URI-form name is the driver's to open
    if plain_file and not Path(url.database).is_file():
        if json_out:
            emit_json({"revision": None, "head": head, "up_to_date": False})
        else:
            typer.echo(f"no store at {url.database} yet: `encaisse ingest` or `encaisse db upgrade` creates it")
        return
    engine = create_store_engine(url.render_as_string(hide_password=False))
    try:
        rev = current_revision(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise fail(f"cannot read the store {url.render_as_string(hide_password=True)}: "
                   f"{str(getattr(exc, 'orig', exc)).splitlines()[0][:200]}", code=2) from None
    finally:
        engine.dispose()
    if json_out:
        emit_json({"revision": rev, "head": head, "up_to_date": rev == head})
    else:
        typer.echo(f"store revision {rev} (head {head}){'' if rev == head else ': run `encaisse db upgrade`'}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("ingest")(ingest)
    app.add_typer(db_app, name="db")
