"""Alembic environment for the ledger store.

``ledger.engine.open_store`` runs it in code with a live connection in
``config.attributes["connection"]``; the ``alembic`` command line works too when given a URL
(``alembic -x url=sqlite:///ledger.db upgrade head`` or ``sqlalchemy.url`` in a config).

Every revision in ``versions/`` is written out column by column (never from ``ledger.schema``), so it
stays what it was when later revisions change the schema; its header holds only what alembic reads
(``revision``, ``down_revision``) and a docstring saying what it adds.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from ledger.schema import metadata

config = context.config
target_metadata = metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later migrations get copy-and-move batches for free.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
