"""The record of each ingest in the store's ``ingest_runs``: written at its end, or, for an ingest that
commits batch by batch, from its first batch on as ``running`` (so a killed one is found, and the
next ingest of the same file completes it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ledger.changes import record_change
from ledger.schema import ingest_runs

if TYPE_CHECKING:
    from ledger.ingest import IngestResult


class RunMark:
    """The ``ingest_runs`` row of an ingest that commits batch by batch (``DirectInsert``).

    Written with the first batch as ``running``, its ``inserted`` kept equal to the rows committed
    (``DirectInsert``'s ``on_commit``), removed when they are undone, and finished by
    ``record_run``. A kill leaves it ``running``: the next ingest of the same file says so and
    completes it (``unfinished_runs``).
    """

    def __init__(self, conn: sa.Connection, result: IngestResult, started: datetime, file_hash: str) -> None:
        self.conn = conn
        self.id: int | None = conn.execute(ingest_runs.insert().values(
            started_at=started, source=result.source, mapping=result.mapping, table_name=result.table,
            status="running", read=0, inserted=0, updated=0, unchanged=0, rejected=0, filtered=0,
            file_hash=file_hash)).inserted_primary_key[0]

    def __call__(self, rows: int | None) -> None:
        if self.id is None:
            return
        if rows is None:
            self.conn.execute(ingest_runs.delete().where(ingest_runs.c.id == self.id))
            self.id = None
        else:
            self.conn.execute(ingest_runs.update().where(ingest_runs.c.id == self.id).values(inserted=rows))


def unfinished_runs(conn: sa.Connection, table: str, file_hash: str) -> list[sa.Row]:
    """Earlier ingests of this file into ``table`` that never finished (still ``running``)."""
    r = ingest_runs
    return conn.execute(sa.select(r.c.id, r.c.started_at, r.c.inserted)
                        .where(r.c.file_hash == file_hash, r.c.table_name == table, r.c.status == "running")
                        .order_by(r.c.id)).all()


def record_completed(conn: sa.Connection, runs: list[sa.Row], result: IngestResult, name: str) -> None:
    """Mark earlier unfinished runs of the file as interrupted, completed by this one, and say so; the
    change log gets a bulk change for their rows."""
    ids = [r.id for r in runs]
    conn.execute(ingest_runs.update().where(ingest_runs.c.id.in_(ids))
                 .values(status="interrupted", finished_at=datetime.now(UTC)))
    # What the killed run committed was never named in the change log: readers read it all again.
    record_change(conn, result.table, None, sum(int(r.inserted or 0) for r in runs))
    result.completed_runs = ids
    for r in runs:
        result.problems.append(f"an earlier ingest of {name} (run {r.id}, started {r.started_at:%Y-%m-%d %H:%M:%S}) "
                               f"did not finish after storing {r.inserted} rows: this one completed it (the rows "
                               "it had stored are counted unchanged)")


def record_run(conn: sa.Connection, result: IngestResult, started: datetime, status: str, file_hash: str,
                mark: RunMark | None) -> None:
    values = dict(
        started_at=started, finished_at=datetime.now(UTC), source=result.source,
        mapping=result.mapping, table_name=result.table, status=status, read=result.read,
        inserted=result.inserted, updated=result.updated, unchanged=result.unchanged,
        rejected=result.rejected, filtered=result.filtered, rejects_file=result.rejects_file, file_hash=file_hash,
    )
    if mark is not None and mark.id is not None:
        conn.execute(ingest_runs.update().where(ingest_runs.c.id == mark.id).values(**values))
    else:
        conn.execute(ingest_runs.insert().values(**values))
