"""Score history in the ledger store: save a scoring run, load the latest one.

Every run is kept (``score_runs`` + ``invoice_scores`` + ``client_scores``, tables of migration
0002), so the store answers "what did we predict and recommend for this invoice on that day, with
which model". Nothing is updated in place: a second run on the same ``as_of`` is a new run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ledger.schema import client_scores as client_scores_table
from ledger.schema import invoice_scores as invoice_scores_table
from ledger.schema import score_runs

CHUNK_ROWS = 20_000


@dataclass
class StoredScores:
    """One stored scoring run.

    Attributes:
        run: the ``score_runs`` row as a dict (``run_id, as_of, model_version, model_run_id,
            policy, created_at, n_invoices, n_clients, n_worklist``).
        invoices: its ``invoice_scores`` rows (dates as ``datetime64``).
        clients: its ``client_scores`` rows.
    """

    run: dict[str, Any]
    invoices: pd.DataFrame
    clients: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])


def _columns(table: sa.Table, df: pd.DataFrame, dialect: sa.Dialect) -> tuple[list[str], list[list[Any]]]:
    """The table's columns (run id aside) and their values from ``df``, as the driver takes them.

    Each value goes through the column type's bind processor, as an ORM or Core insert would
    apply it (SQLite: dates as ISO text, booleans as 1/0), one column at a time.
    """
    cols = [c for c in table.columns if c.name != "run_id"]
    missing = [c.name for c in cols if not c.nullable and c.name not in df.columns]
    if missing:
        raise ValueError(f"Cannot store {table.name}: the frame lacks required column(s) {missing}; "
                         f"it has {list(df.columns)}.")
    values: list[list[Any]] = []
    for c in cols:
        if c.name not in df.columns:
            values.append([None] * len(df))
            continue
        s = df[c.name]
        if isinstance(c.type, sa.Date):
            v = pd.to_datetime(s).dt.date.astype("object")
        elif isinstance(c.type, sa.Boolean):
            v = s.astype("boolean").astype("object")
        elif isinstance(c.type, sa.Integer):
            v = pd.to_numeric(s).astype("Int64").astype("object")
        elif isinstance(c.type, sa.Float):
            v = pd.to_numeric(s).astype("float64").astype("object")
        else:
            v = s.astype("object").map(lambda x: x if x is None or isinstance(x, str) else str(x))
        column = v.where(s.notna(), None).tolist()
        process = c.type.bind_processor(dialect)
        if process is not None:
            column = [None if x is None else process(x) for x in column]
        values.append(column)
    return [c.name for c in cols], values


def _insert_many(conn: sa.Connection, table: sa.Table, run_id: str, names: list[str], values: list[list[Any]]) -> None:
    """Insert rows (``_columns``' output) into ``table`` under ``run_id``: one prepared statement,
    the driver's ``executemany`` on tuples, :data:`CHUNK_ROWS` rows at a time."""
    n = len(values[0]) if values else 0
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
    if mark is None:  # a driver with named or numbered parameters: through SQLAlchemy
        rows = [{"run_id": run_id, **dict(zip(names, row))} for row in zip(*values)]
        for start in range(0, len(rows), CHUNK_ROWS):
            conn.execute(table.insert(), rows[start:start + CHUNK_ROWS])
        return
    quote = conn.dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in ['run_id', *names])}) "
           f"VALUES ({', '.join([mark] * (len(names) + 1))})")
    rows = list(zip([run_id] * n, *values))
    cursor = conn.connection.driver_connection.cursor()
    try:
        for start in range(0, len(rows), CHUNK_ROWS):
            cursor.executemany(sql, rows[start:start + CHUNK_ROWS])
    finally:
        cursor.close()


def save_scores(
    engine: sa.Engine,
    invoices: pd.DataFrame,
    clients: pd.DataFrame,
    *,
    as_of: pd.Timestamp | str,
    model_version: str,
    model_run_id: str | None = None,
    policy: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """Store one scoring run and its invoice and client scores, in one transaction.

    Args:
        engine: an engine from ``ledger.store.open_store`` (revision 0002 or later).
        invoices: one row per scored invoice: ``invoice_id, client_id, amount`` and any of the
            other ``invoice_scores`` columns (a worklist frame); other columns are ignored.
        clients: one row per client: ``client_id`` and any ``client_scores`` columns (client
            scores merged with their profile assignment; ``reason`` is stored as ``profile_reason``).
        as_of: the scoring day.
        model_version: version of the model that produced the scores.
        model_run_id: its training run id (MLflow), if known.
        policy: name of the dunning policy used.
        run_id: id to give the run (default: a new random hex id).
        now: ``created_at`` (default: the current UTC time).

    Returns:
        The run id.
    """
    rid = run_id or uuid.uuid4().hex
    cl = clients.rename(columns={"reason": "profile_reason"}) if "profile_reason" not in clients.columns else clients
    for name, df, key in (("invoices", invoices, "invoice_id"), ("clients", cl, "client_id")):
        if key in df.columns and df[key].duplicated().any():
            dups = df.loc[df[key].duplicated(), key].head(5).tolist()
            raise ValueError(f"save_scores needs one row per {key} in {name}; duplicated: {dups}.")
    n_worklist = int(invoices["priority"].notna().sum()) if "priority" in invoices.columns else 0
    run_row = {
        "run_id": rid, "as_of": pd.Timestamp(as_of).date(), "model_version": str(model_version),
        "model_run_id": model_run_id, "policy": policy, "created_at": now or datetime.now(UTC),
        "n_invoices": int(len(invoices)), "n_clients": int(len(cl)), "n_worklist": n_worklist,
    }
    rows = [(table, *_columns(table, df, engine.dialect))
            for table, df in ((invoice_scores_table, invoices), (client_scores_table, cl))]
    with engine.begin() as conn:
        conn.execute(score_runs.insert(), [run_row])
        for table, names, values in rows:
            _insert_many(conn, table, rid, names, values)
    return rid


def _frame(conn: sa.Connection, table: sa.Table, run_id: str) -> pd.DataFrame:
    result = conn.execute(sa.select(table).where(table.c.run_id == run_id))
    df = pd.DataFrame(result.all(), columns=[c.name for c in table.columns])
    for c in table.columns:
        if isinstance(c.type, sa.Date):
            df[c.name] = pd.to_datetime(df[c.name]).astype("datetime64[s]")
        elif isinstance(c.type, sa.Boolean):
            df[c.name] = df[c.name].astype("boolean")
        elif isinstance(c.type, sa.Integer):
            df[c.name] = pd.to_numeric(df[c.name]).astype("Int64")
        elif isinstance(c.type, sa.Float):
            df[c.name] = pd.to_numeric(df[c.name]).astype("float64")
    return df


def list_score_runs(engine: sa.Engine) -> pd.DataFrame:
    """Every stored run, oldest first (by ``as_of`` then ``created_at``)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(score_runs).order_by(score_runs.c.as_of, score_runs.c.created_at)).all()
    df = pd.DataFrame(rows, columns=[c.name for c in score_runs.columns])
    df["as_of"] = pd.to_datetime(df["as_of"]).astype("datetime64[s]")
    return df


def load_latest_scores(engine: sa.Engine, as_of: pd.Timestamp | str | None = None) -> StoredScores | None:
    """The most recent run scored as of ``as_of`` or earlier (latest ``as_of``, then latest created).

    Args:
        engine: an engine on the store.
        as_of: only runs with ``as_of`` on or before this day count (default: any run). The run
            before day D is ``load_latest_scores(engine, D - 1 day)``.

    Returns:
        The run and its scores, or None when no run qualifies.
    """
    run = latest_run(engine, as_of)
    return None if run is None else load_run(engine, run)


class NoScoresError(LookupError):
    """No stored scoring run at or before the requested day."""


def require_latest_scores(engine: sa.Engine, as_of: pd.Timestamp, store_url: str) -> StoredScores:
    """:func:`load_latest_scores` as of ``as_of``, for a step that cannot run without a stored run.

    Raises:
        NoScoresError: no run is stored at or before ``as_of`` (its message names the store and the
            command that stores one).
    """
    stored = load_latest_scores(engine, as_of)
    if stored is None:
        day = pd.Timestamp(as_of).date()
        raise NoScoresError(f"No scoring run is stored as of {day} or earlier in {store_url}; "
                            f"run `encaisse score --as-of {day}` first.")
    return stored


def latest_run(engine: sa.Engine, as_of: pd.Timestamp | str | None = None) -> dict | None:
    """The row of the run ``load_latest_scores`` would load (one small query), or None."""
    q = sa.select(score_runs).order_by(score_runs.c.as_of.desc(), score_runs.c.created_at.desc()).limit(1)
    if as_of is not None:
        q = q.where(score_runs.c.as_of <= pd.Timestamp(as_of).date())
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    return None if row is None else dict(row)


def load_run(engine: sa.Engine, run: dict) -> StoredScores:
    """The scores of a run (a row of ``score_runs``). Runs never change once saved."""
    with engine.connect() as conn:
        return StoredScores(run=run, invoices=_frame(conn, invoice_scores_table, run["run_id"]),
                            clients=_frame(conn, client_scores_table, run["run_id"]))


def load_run_clients(engine: sa.Engine, run: dict) -> pd.DataFrame:
    """The ``client_scores`` rows of a run (a row of ``score_runs``), without its invoice rows."""
    with engine.connect() as conn:
        return _frame(conn, client_scores_table, run["run_id"])


__all__ = ["StoredScores", "latest_run", "list_score_runs", "load_latest_scores", "load_run", "load_run_clients",
           "save_scores"]
