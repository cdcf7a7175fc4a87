"""`encaisse keys create|list|revoke`: API keys of the HTTP service (stored hashed; shown once)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from encaisse.console import emit_json, err, fail, out, settings_for
from encaisse.options import HomeOption, JsonOption


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    keys = typer.Typer(help="API keys of the HTTP service.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    def _engine(home):
        from ledger.engine import open_store

        return open_store(settings_for(home).store_url)

    @keys.command("create")
    def create(
        role: Annotated[str, typer.Option("--role", help="collector, treasurer, system or admin.")],
        collector: Annotated[str | None, typer.Option("--collector", help="For a collector key: whose "
                                                      "portfolio it sees.")] = None,
        name: Annotated[str | None, typer.Option("--name", help="A label, e.g. 'ERP prod'.")] = None,
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Create a key and print it once: it is stored hashed and cannot be shown again."""
        from serving.keys import collector_has_clients, create_key

        engine = _engine(home)
        try:
            new = create_key(engine, role, collector=collector, name=name)
            unknown = collector is not None and not collector_has_clients(engine, collector)
        except ValueError as exc:
            raise fail(str(exc), code=2) from None
        finally:
            engine.dispose()
        if unknown:
            err.print(f"[bold yellow]warning:[/] no client in the store has collector {collector!r} (the clients' "
                      "`collector` column): the key sees no client until some are assigned to that name.",
                      soft_wrap=True)
        p = new.principal
        if json_:
            emit_json({"key": new.token, "id": p.key_id, "prefix": p.prefix, "role": p.role,
                       "collector": p.collector, "name": p.name})
            return
        out.print(f"API key {p.prefix}… (id {p.key_id}, role {p.role}"
                  + (f", collector {p.collector}" if p.collector else "") + "). Store it now; it is not shown again:")
        typer.echo(new.token)

    @keys.command("list")
    def list_(home: HomeOption = None, json_: JsonOption = False) -> None:
        """List keys (prefix, role, collector, created, revoked); never the keys themselves."""
        from serving.keys import list_keys

        engine = _engine(home)
        try:
            rows = list_keys(engine)
        finally:
            engine.dispose()
        if json_:
            emit_json({"keys": rows})
            return
        table = Table(title=f"{len(rows)} API keys")
        for col in ("id", "prefix", "role", "collector", "name", "created", "revoked"):
            table.add_column(col)
        for r in rows:
            table.add_row(str(r["id"]), r["prefix"], r["role"], r["collector"] or "", r["name"] or "",
                          str(r["created_at"])[:19], str(r["revoked_at"])[:19] if r["revoked_at"] else "")
        out.print(table)

    @keys.command("revoke")
    def revoke(
        key: Annotated[str, typer.Argument(help="The key's id or prefix (see `encaisse keys list`).")],
        home: HomeOption = None,
        json_: JsonOption = False,
    ) -> None:
        """Revoke a key: requests with it get 401 from then on."""
        from serving.keys import revoke_key

        engine = _engine(home)
        try:
            row = revoke_key(engine, key)
        except LookupError as exc:
            raise fail(str(exc)) from None
        finally:
            engine.dispose()
        if json_:
            emit_json({"id": row["id"], "prefix": row["prefix"], "revoked_at": row["revoked_at"],
                       "already_revoked": row["already_revoked"]})
            return
        if row["already_revoked"]:
            out.print(f"Key {row['prefix']}… (id {row['id']}) was already revoked, on {str(row['revoked_at'])[:19]}.")
        else:
            out.print(f"Revoked key {row['prefix']}… (id {row['id']}).")
