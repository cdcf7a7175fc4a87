"""Mapped ingest: read an export, map it to a canonical table, validate it, store its good rows.

Every input row ends up either stored (inserted, updated or unchanged) or in the rejects file
``<rejects_dir>/<file>-<timestamp>.rejects.csv`` with its source row number (1-based, counting data
rows, header excluded), the reason and its original values. Rows dropped by a mapping ``filters``
rule are written there too, with the reason ``filtered by mapping``, and counted as ``filtered``
(they are intended: they do not make the ingest fail). So ``read == inserted + updated + unchanged
+ rejected + filtered``.

Its parts: ``ledger.sources`` (reading), ``ledger.parsing`` (mapping and checking),
``ledger.rejects_file``, ``ledger.duplicate_keys``, ``ledger.ingest_runs`` (the run record), the
writers (``ledger.direct_insert``, ``ledger.staged_upsert``).

Why a row is rejected: ``ledger.parsing``; a row referencing a rejected row (a payment of a
rejected invoice) is rejected too: ``ledger.references``.

By default the good rows are stored and the rejected ones reported (``IngestResult.rejected``,
the rejects file); sending the same file again changes nothing. With ``strict=True`` a file with
any rejected row stores nothing and raises ``IngestRejected``. A failure mid-file leaves the
store as it was.

Each ingest leaves a row in ``ingest_runs`` with the file's hash (``ledger.sources.file_hash``).
One that commits batch by batch writes it with its first batch as ``running``, kept equal to the
rows committed: a killed ingest leaves it so, and the next ingest of the same file says that run
did not finish, completes it (its rows are idempotent) and marks it ``interrupted``.

Without a mapping, a file in the canonical layout is accepted (its table from the file name,
``invoices*``, ``payments*``, ``clients*``, ``actions*``, or given); a missing ``doc_type`` column
means every row is an invoice. Actions without ``action_id`` get an id hashed from their content,
so sending them again is idempotent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ledger.contracts import TABLES, Table
from ledger.mapping import Mapping, SourceOptions, load_mapping
from ledger.duplicate_keys import KeyIndex, settle_duplicates
from ledger.ingest_runs import RunMark, record_completed, record_run, unfinished_runs
from ledger.parsing import IngestError, identity_mapping, map_rows, prepare_rows
from ledger.rejects_file import RejectsFile, reread_rows
from ledger.references import RejectedReferences, record_rejected_keys, reference_summaries
from ledger.payment_checks import invoices_written, payment_problems
from ledger.rules import OddRows, _summaries
from ledger.sources import SourceError, file_hash, resolve_options, read_source
from ledger.direct_insert import DirectInsert
from ledger.staged_upsert import StagedUpsert

log = logging.getLogger(__name__)

CHUNK_ROWS = 250_000
"""Source rows read at a time."""

ProgressFn = Callable[[str, int, int | None], None]
"""Progress callback: (stage, done, total or None)."""


class IngestRejected(Exception):
    """Rows were rejected in a ``strict`` ingest: nothing was stored."""

    def __init__(self, result: "IngestResult") -> None:
        self.result = result
        super().__init__(result.summary())


@dataclass
class IngestResult:
    """What became of a file's rows. ``read = inserted + updated + unchanged + rejected + filtered``."""

    table: str
    source: str
    mapping: str | None
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    filtered: int = 0
    rejects_file: str | None = None
    stored: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    completed_runs: list[int] = field(default_factory=list)
    """Earlier runs of the same file that never finished (killed), which this one completed."""

    def to_json(self) -> dict[str, Any]:
        """The result line for scripts: the six stable keys first, then details."""
        d = asdict(self)
        keys = ["read", "inserted", "updated", "unchanged", "rejected", "rejects_file",
                "filtered", "table", "source", "mapping", "stored", "seconds", "completed_runs"]
        out = {k: d[k] for k in keys}
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        head = (f"{self.source}: read {self.read}, inserted {self.inserted}, updated {self.updated}, "
                f"unchanged {self.unchanged}, rejected {self.rejected}, filtered {self.filtered}")
        lines = [head] + self.problems
        if self.rejects_file:
            lines.append(f"rejected and filtered rows with their reasons: {self.rejects_file}")
        return "\n".join(lines)


# --- reading (ledger.sources) ------------------------------------------------------------------


def infer_table(path: Path) -> str:
    """The canonical table a file's name announces (``invoices_2024.csv`` -> invoices)."""
    name = path.name.lower()
    for t in TABLES:
        if name.startswith(t):
            return t
    raise IngestError(
        f"Cannot tell which table {path.name} holds: name it invoices*, payments*, clients* or "
        "actions*, or pass --table, or give a --mapping."
    )


def _unknown_invoices(conn: sa.Connection, stamp: datetime, source: str) -> list[str]:
    """A line naming the payments just written whose invoice is not in the store (stored all the same:
    the invoice may come in a later file)."""
    from ledger.schema import invoices, payments

    orphan = (sa.select(payments.c.payment_id, payments.c.invoice_id)
              .where(payments.c.updated_at == stamp)
              .where(~sa.exists().where(invoices.c.invoice_id == payments.c.invoice_id))
              .order_by(payments.c.payment_id))
    rows = conn.execute(orphan.limit(11)).all()
    if not rows:
        return []
    n = conn.execute(sa.select(sa.func.count()).select_from(orphan.subquery())).scalar_one()
    shown = ", ".join(sorted({str(r.invoice_id) for r in rows[:10]})) + (", ..." if n > 10 else "")
    noun = "payment names an invoice" if n == 1 else "payments name invoices"
    return [f"{n} {noun} not in the store: {shown} (stored all the same; ingest the invoices of {source}, "
            "or check the ids)"]


def _undo(staged: StagedUpsert | None) -> None:
    """Remove what a direct ingest committed batch by batch (a staged one commits nothing before its end)."""
    if isinstance(staged, DirectInsert):
        staged.undo()


def ingest_file(
    engine: sa.Engine,
    path: Path | str,
    mapping: Mapping | Path | str | None = None,
    rejects_dir: Path | str | None = None,
    *,
    table: str | None = None,
    strict: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: ProgressFn | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    policy_steps: Iterable[str] = (),
) -> IngestResult:
    """Ingest one CSV (``.csv``, ``.csv.gz``) or Parquet file into the store: its good rows, and
    its rejected rows reported.

    The file is read, validated and written a chunk at a time (memory stays bounded by
    ``chunk_rows``, whatever the file size): new keys straight into the table, or staged and merged
    with one statement; the ``ingest_runs`` record is written with the last rows.

    Args:
        engine: the store (``ledger.engine.open_store``).
        path: the file.
        mapping: a ``Mapping``, a mapping YAML path, or None for a file in the canonical layout.
        rejects_dir: where the rejects file goes (default: beside the file).
        table: the canonical table, when there is no mapping and the file name does not say.
        strict: store nothing if any row is rejected (``IngestRejected``).
        chunk_rows: source rows read at a time.
        on_progress: called with (stage, done, total) as rows are read and written.
        encoding: the CSV's encoding (default: the mapping's, else detected: ``ledger.sources``).
        delimiter: the CSV's separator (default: the mapping's, else ',').
        policy_steps: the dunning policy's step names: actions carrying one are not reported as a step
            nothing reads (``ledger.contracts.ACTION_STEPS`` are not either).

    Returns:
        The counts and the rejects file.

    Raises:
        IngestError: the file cannot be read as the table (missing, empty, undecodable, columns
            missing).
        IngestRejected: ``strict`` and rows were rejected; nothing was stored.
    """
    t0 = time.perf_counter()
    path = Path(path)
    if path.is_dir():
        raise IngestError(f"{path} is a folder: give one file (CSV, CSV.gz or Parquet).")
    if not path.is_file():
        raise IngestError(f"File not found: {path}.")
    if table is not None and table not in TABLES:
        raise IngestError(f"Unknown table {table!r}: the tables are {', '.join(TABLES)}.")
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    if mapping is not None and table is not None and table != mapping.table:
        raise IngestError(f"--table {table} contradicts mapping {mapping.name!r}, which maps the {mapping.table} "
                          "table: drop --table (the mapping says the table) or give the mapping of that table.")
    try:
        opts = resolve_options(path, mapping.source if mapping is not None else SourceOptions(), encoding,
                               delimiter)
        rejects_dir = Path(rejects_dir) if rejects_dir is not None else path.parent
        req = _Request(engine=engine, path=path, mapping=mapping, opts=opts, rejects_dir=rejects_dir, table=table,
                       strict=strict, chunk_rows=chunk_rows, on_progress=on_progress, file_hash=file_hash(path),
                       policy_steps=tuple(policy_steps))
        result = _ingest_once(req)
    except SourceError as exc:
        raise IngestError(str(exc)) from None
    result.seconds = time.perf_counter() - t0
    log.info("%s", result.summary().splitlines()[0])
    return result


@dataclass(frozen=True)
class _Request:
    """What ``ingest_file`` was asked (its arguments, resolved)."""

    engine: sa.Engine
    path: Path
    mapping: Mapping | None
    opts: SourceOptions
    rejects_dir: Path
    table: str | None
    strict: bool
    chunk_rows: int
    on_progress: ProgressFn | None
    file_hash: str
    policy_steps: tuple[str, ...] = ()


def _ingest_once(req: _Request) -> IngestResult:
    """``_ingest`` straight into the table if its keys are new, else (or once one repeats) staged."""
    try:
        return _ingest(req, direct=True)
    except sa.exc.IntegrityError:
        # A key written by someone else between two of the direct path's batches (its lock is
        # released between them): what it had written is undone, and the file is read again staged.
        log.info("a key of %s was stored meanwhile: staging it to settle them", req.path.name)
    return _ingest(req, direct=False)


def _stage_instead(conn: sa.Connection, spec: Table, extras: list[str], direct: DirectInsert,
                   index: KeyIndex) -> StagedUpsert:
    """A file going straight into its table repeats a key, or holds one already stored: the rows
    inserted so far move to a stage, where the rest of the file follows (the file read once)."""
    staged = StagedUpsert(conn, spec, extras, lock_at_merge=True)
    direct.hand_over(staged, index.source_rows())
    return staged


def _ingest(req: _Request, direct: bool = False) -> IngestResult:
    """``ingest_file``'s work, in one pass over the file.

    With ``direct``, rows go straight into the ledger table (SQLite: ``DirectInsert``) if none of
    the first chunk's keys is stored; once a key is seen twice or already stored (checked before
    its chunk is written), what was written moves to a stage and the rest of the file follows it.
    """
    engine, path, mapping, opts, table, chunk_rows, on_progress = (req.engine, req.path, req.mapping, req.opts,
                                                                   req.table, req.chunk_rows, req.on_progress)
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    chunks = read_source(path, opts, chunk_rows)
    first = next(chunks, None)
    if first is None:
        mapping_used = mapping or identity_mapping(TABLES[table or infer_table(path)], [])
    elif mapping is None:
        mapping_used = identity_mapping(TABLES[table or infer_table(path)], list(first.columns))
    else:
        mapping_used = mapping
        absent = [c for c in mapping.source_columns() if c not in first.columns]
        if absent:
            raise IngestError(
                f"Mapping {mapping.name!r} reads columns missing from {path.name}: "
                f"{', '.join(absent)}. The file has: {', '.join(map(str, first.columns))}."
            )
    spec = TABLES[mapping_used.table]
    result = IngestResult(table=spec.name, source=str(path), mapping=mapping.name if mapping else None)
    rejects = RejectsFile(req.rejects_dir, path)
    index = KeyIndex()
    tally: dict = {}
    examples: dict = {}
    rejected_keys: list[pd.DataFrame] = []

    with engine.connect() as conn:
        trans = conn.begin()
        staged = None
        mark = None
        refs = RejectedReferences(conn, spec)
        odd = OddRows(spec.name, policy_steps=req.policy_steps)
        unfinished = unfinished_runs(conn, spec.name, req.file_hash)
        try:
            for raw in itertools.chain([first] if first is not None else [], chunks):
                chunk = map_rows(mapping_used, raw, result.read + 1, tally, examples,
                                 check=refs.check if refs else None)
                if len(chunk.rejected_keys):
                    rejected_keys.append(chunk.rejected_keys)
                good = prepare_rows(spec, chunk.good, hashed=False)
                odd.add(good, spec.key)
                keys = good[spec.key]
                opened = staged is None
                if opened:  # the first chunk's keys decide: all new -> straight in
                    direct = direct and DirectInsert.usable(conn, spec, keys.tolist())
                    if direct:
                        mark = RunMark(conn, result, started, req.file_hash)
                        staged = DirectInsert(conn, spec, list(mapping_used.extra), on_commit=mark)
                    else:
                        staged = StagedUpsert(conn, spec, list(mapping_used.extra), lock_at_merge=True)
                if direct:  # usable() checked the first chunk's keys against the store
                    stored = not opened and staged.any_stored(keys.tolist())
                    if stored or not index.add(keys, good["source_row"], check=True):
                        log.info("%s repeats keys: staging it to settle them", path.name)
                        staged, mark = _stage_instead(conn, spec, list(mapping_used.extra), staged, index), None
                        direct = False
                if not direct:
                    index.add(keys, good["source_row"])
                staged.stage_frame(good)
                rejects.write(chunk.rejects, chunk.filtered)
                result.read += len(raw)
                del raw, chunk, good
                if on_progress:
                    on_progress("read", result.read, None)
            if staged is None:  # no row at all
                direct = False
                staged = StagedUpsert(conn, spec, list(mapping_used.extra), lock_at_merge=True)
            if direct:  # every key was checked new and unique as it came
                dup_rej, identical = pd.DataFrame(columns=["source_row", "reason"]), 0
            else:
                dup_rej, dup_keys, identical = settle_duplicates(spec, staged, index, tally, examples)
                rejected_keys.append(dup_keys)
            del index
            if len(dup_rej):
                originals = reread_rows(path, opts, set(dup_rej["source_row"].tolist()), chunk_rows)
                rejects.add_late(dup_rej.merge(originals, on="source_row", how="left"))
            result.rejected, result.filtered = rejects.rejected, rejects.filtered
            result.rejects_file = str(rejects.path) if rejects.path is not None else None
            result.problems = reference_summaries(tally, examples, spec, path.name)
            result.problems = _summaries(tally, examples, spec, path.name) + result.problems
            keys = (pd.concat(rejected_keys, ignore_index=True) if rejected_keys
                    else pd.DataFrame(columns=["key", "reason"]))
            if result.rejected and req.strict:
                trans.rollback()
                _undo(staged)
                staged.close()
                result.seconds = time.perf_counter() - t0
                record_rejected_keys(conn, spec, keys, str(path), started)
                record_run(conn, result, started, "rejected", req.file_hash, mark)
                conn.commit()
            else:
                if on_progress:
                    on_progress("write", 0, staged.staged)
                staged.announce_at_merge = False  # announced last, just before the commit
                inserted, updated, unchanged = staged.merge()
                if on_progress:
                    on_progress("write", staged.staged, staged.staged)
                result.inserted, result.updated = inserted, updated
                result.unchanged = unchanged + identical
                if spec.name == "payments" and (inserted or updated):
                    result.problems += _unknown_invoices(conn, staged.now, path.name)
                if spec.name in ("payments", "invoices") and (inserted or updated):
                    result.problems += payment_problems(conn, invoices_written(spec.name, staged.now))
                result.problems += odd.lines()
                result.stored = True
                result.seconds = time.perf_counter() - t0
                record_rejected_keys(conn, spec, keys, str(path), started)
                if unfinished:
                    record_completed(conn, unfinished, result, path.name)
                record_run(conn, result, started, "stored", req.file_hash, mark)
                staged.announce()
                trans.commit()
        except BaseException as exc:
            if trans.is_active:
                trans.rollback()
            with contextlib.suppress(Exception):
                _undo(staged)
            if isinstance(exc, sa.exc.IntegrityError) and rejects.path is not None:  # read again
                rejects.path.unlink(missing_ok=True)
            if staged is not None:
                with contextlib.suppress(Exception):
                    staged.close()
                    conn.commit()
            raise
    if not result.stored:
        raise IngestRejected(result)
    assert result.read == (result.inserted + result.updated + result.unchanged
                           + result.rejected + result.filtered), result
    return result
