"""The ledger store's tables, as SQLAlchemy Core metadata (SQLite and PostgreSQL).

Columns follow ``ledger.contracts``: ``date`` columns are ``DATE``, amounts ``DOUBLE``-like floats,
ids ``VARCHAR``. Every ledger table also carries:

* ``row_hash``: a digest of the row's canonical values, so a re-sent export is recognised as
  unchanged and a changed row (an invoice now paid) as updated;
* ``ingested_at``: when the row was first stored; ``updated_at``: when it last changed (UTC).

``invoices.extra`` holds the attributes a mapping declares as features (a JSON object).
``ingest_runs`` has one row per ingest. ``score_runs``, ``invoice_scores`` and ``client_scores``
(revision 0002) keep every scoring run and what it predicted, keyed by ``run_id``. ``api_keys``
(revision 0003) holds the HTTP API's keys, hashed. ``action_history`` (revision 0004) keeps every
version of an action written through the API and each version an edit superseded. Revision 0005
adds the billing contact of ``clients`` (``email``, ``phone``, ``postal_address``, ``language``,
``opt_out``). ``dunning_messages`` and ``dunning_message_invoices`` (revision 0006) are the dunning
run's journal. ``run_forecasts``
and ``run_invoice_forecasts`` (revision 0007) keep what each scoring run forecast, for monitoring.
``ledger_changes`` (revision 0009) is the change log: one row per write of a ledger table, naming the
keys it changed (``ledger.changes``), so a process holding the ledger in memory reads only those.

The store is created and upgraded by the Alembic migrations in ``ledger/migrations`` (see
``ledger.engine.open_store``), never with ``metadata.create_all``: this module is the reference the
migrations must reproduce and what queries are written with.
"""

from __future__ import annotations

import sqlalchemy as sa

from ledger.contracts import ACTIONS, CLIENTS, INVOICES, PAYMENTS, TABLES, Table

metadata = sa.MetaData()

ID = sa.String(64)
TEXT = sa.String(255)
HASH = sa.String(32)

_TYPES = {
    "str": TEXT,
    "date": sa.Date(),
    "amount": sa.Float(),
    "bool": sa.Boolean(),
    "int": sa.Integer(),
}

# Indexes per table: client and date look-ups are what features and worklists do.
INDEXED = {
    "invoices": ("client_id", "issue_date", "due_date", "paid_date"),
    "payments": ("invoice_id", "paid_date"),
    "clients": (),
    "actions": ("client_id", "invoice_id", "action_date"),
}


def _sql_type(table: Table, name: str) -> sa.types.TypeEngine:
    column = table.column(name)
    if name == table.key or name.endswith("_id"):
        return ID
    return _TYPES[column.kind]


def _ledger_table(table: Table) -> sa.Table:
    columns: list[sa.Column] = [
        sa.Column(c.name, _sql_type(table, c.name), primary_key=c.name == table.key,
                  nullable=not c.required)
        for c in table.columns
    ]
    if table.name == "invoices":
        columns.append(sa.Column("extra", sa.JSON(), nullable=True))
    columns += [
        sa.Column("row_hash", HASH, nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]
    indexes = [sa.Index(f"ix_{table.name}_{name}", name) for name in INDEXED[table.name]]
    return sa.Table(table.name, metadata, *columns, *indexes)


invoices = _ledger_table(INVOICES)
payments = _ledger_table(PAYMENTS)
clients = _ledger_table(CLIENTS)
actions = _ledger_table(ACTIONS)

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("source", sa.String(1024), nullable=False),
    sa.Column("mapping", sa.String(255), nullable=True),
    sa.Column("table_name", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("read", sa.Integer(), nullable=False),
    sa.Column("inserted", sa.Integer(), nullable=False),
    sa.Column("updated", sa.Integer(), nullable=False),
    sa.Column("unchanged", sa.Integer(), nullable=False),
    sa.Column("rejected", sa.Integer(), nullable=False),
    sa.Column("filtered", sa.Integer(), nullable=False),
    sa.Column("rejects_file", sa.String(1024), nullable=True),
    sa.Column("file_hash", sa.String(64), nullable=True, index=True),  # revision 0008
)

# Revision 0008: the key of every row an ingest rejected, and why (``ledger.references``).
ingest_rejected_keys = sa.Table(
    "ingest_rejected_keys",
    metadata,
    sa.Column("table_name", sa.String(32), primary_key=True),
    sa.Column("key", ID, primary_key=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("source", sa.String(1024), nullable=False),
    sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
)

# Revision 0009: one row per write of a ledger table, in the write's transaction (``ledger.changes``).
# AUTOINCREMENT: SQLite never reuses an id, so a reader that has seen id n never misses a later one.
ledger_changes = sa.Table(
    "ledger_changes",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(32), nullable=False),
    sa.Column("row_keys", sa.Text(), nullable=True),  # a JSON list; null: too many to name (read the ledger again)
    sa.Column("n_rows", sa.Integer(), nullable=False),
    sa.Column("writer", sa.String(64), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sqlite_autoincrement=True,
)

# --- score history (migration 0002) ---------------------------------------------------------------
# One row per scoring run, and the invoice and client scores of every run, never overwritten: an
# audit trail of what was predicted and recommended on which day, with which model.

score_runs = sa.Table(
    "score_runs",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("as_of", sa.Date(), nullable=False),
    sa.Column("model_version", TEXT, nullable=False),
    sa.Column("model_run_id", TEXT, nullable=True),
    sa.Column("policy", TEXT, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("n_invoices", sa.Integer(), nullable=False),
    sa.Column("n_clients", sa.Integer(), nullable=False),
    sa.Column("n_worklist", sa.Integer(), nullable=False),
    sa.Index("ix_score_runs_as_of", "as_of"),
)

invoice_scores = sa.Table(
    "invoice_scores",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("score_runs.run_id", name="fk_invoice_scores_run_id"),
              primary_key=True),
    sa.Column("invoice_id", ID, primary_key=True),
    sa.Column("client_id", ID, nullable=False),
    sa.Column("amount", sa.Float(), nullable=False),
    sa.Column("amount_remaining", sa.Float(), nullable=True),
    sa.Column("currency", TEXT, nullable=True),
    sa.Column("due_date", sa.Date(), nullable=True),
    sa.Column("p_late", sa.Float(), nullable=True),
    sa.Column("p_very_late", sa.Float(), nullable=True),
    sa.Column("expected_payment_date", sa.Date(), nullable=True),
    sa.Column("payment_date_low", sa.Date(), nullable=True),
    sa.Column("payment_date_high", sa.Date(), nullable=True),
    sa.Column("beyond_horizon", sa.Boolean(), nullable=True),
    sa.Column("profile", TEXT, nullable=True),
    sa.Column("scenario", TEXT, nullable=True),
    sa.Column("next_action", TEXT, nullable=True),
    sa.Column("next_action_date", sa.Date(), nullable=True),
    sa.Column("queue", TEXT, nullable=True),
    sa.Column("collector", TEXT, nullable=True),
    sa.Column("priority", sa.Integer(), nullable=True),
    sa.Column("expected_gain", sa.Float(), nullable=True),
    sa.Column("why", sa.Text(), nullable=True),
    sa.Column("reasons", sa.Text(), nullable=True),
    sa.Index("ix_invoice_scores_invoice_id", "invoice_id"),
)

client_scores = sa.Table(
    "client_scores",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("score_runs.run_id", name="fk_client_scores_run_id"),
              primary_key=True),
    sa.Column("client_id", ID, primary_key=True),
    sa.Column("p_late_mean", sa.Float(), nullable=True),
    sa.Column("p_very_late_max", sa.Float(), nullable=True),
    sa.Column("overdue_share", sa.Float(), nullable=True),
    sa.Column("open_amount", sa.Float(), nullable=True),
    sa.Column("broken_promises", sa.Float(), nullable=True),
    sa.Column("days_since_last_payment", sa.Float(), nullable=True),
    sa.Column("strategic", sa.Boolean(), nullable=True),
    sa.Column("in_difficulty", sa.Boolean(), nullable=True),
    sa.Column("in_payment_plan", sa.Boolean(), nullable=True),
    sa.Column("credit_limit", sa.Float(), nullable=True),
    sa.Column("profile", TEXT, nullable=True),
    sa.Column("scenario", TEXT, nullable=True),
    sa.Column("profile_reason", sa.Text(), nullable=True),
    sa.Index("ix_client_scores_client_id", "client_id"),
)

# --- API keys (migration 0003) ---------------------------------------------------------------------
# Keys for the HTTP API, stored hashed: ``key_hash`` is the SHA-256 of a high-entropy random token
# (never stored), ``prefix`` its first characters, shown in listings and used to find the row.

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("name", TEXT, nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("collector", TEXT, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_api_keys_prefix", "prefix", unique=True),
)

# --- action history (migration 0004) --------------------------------------------------------------
# Every version of an action written through the API, and every stored version an edit replaced:
# an edit adds the new version and marks the one it supersedes, which is kept.

action_history = sa.Table(
    "action_history",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("action_id", ID, nullable=False),
    sa.Column("row_hash", HASH, nullable=False),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_by", TEXT, nullable=False),
    sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("superseded_by", sa.Integer(), nullable=True),
    sa.Index("ix_action_history_action_id", "action_id"),
)

# --- dunning journal (migration 0006) -----------------------------------------------------------
# One row per message the daily dunning run plans (a client, a step, the invoices it lists), written
# before the message goes out and marked sent after; its invoices in ``dunning_message_invoices``
# with the action row each send recorded. Read by ``ledger.outbox``.

dunning_messages = sa.Table(
    "dunning_messages",
    metadata,
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("as_of", sa.Date(), nullable=False),
    sa.Column("client_id", ID, nullable=False),
    sa.Column("step", TEXT, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("planned_channel", sa.String(16), nullable=True),
    sa.Column("template", TEXT, nullable=True),
    sa.Column("language", sa.String(8), nullable=True),
    sa.Column("recipient", TEXT, nullable=True),
    sa.Column("subject", sa.Text(), nullable=True),
    sa.Column("body", sa.Text(), nullable=True),
    sa.Column("location", sa.Text(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_dunning_messages_status", "status"),
    sa.Index("ix_dunning_messages_client_step", "client_id", "step"),
)

dunning_message_invoices = sa.Table(
    "dunning_message_invoices",
    metadata,
    sa.Column("message_id", ID, sa.ForeignKey("dunning_messages.message_id", name="fk_dunning_mi_message_id"),
              primary_key=True),
    sa.Column("invoice_id", ID, primary_key=True),
    sa.Column("action_id", ID, nullable=True),
    sa.Index("ix_dunning_message_invoices_invoice_id", "invoice_id"),
)

# --- run forecasts (migration 0007) ---------------------------------------------------------------
# What a scoring run forecast, kept beside it so that monitoring judges the very figures a run gave:
# the weekly collection forecast of its open invoices (``run_forecasts``) and, per invoice, the
# payment-day quantiles and worklist rank (``run_invoice_forecasts``). Never overwritten.

QUANTILE_LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90)
"""Payment-day quantile levels (percent) kept per invoice: ``q10_days`` .. ``q90_days``."""

run_forecasts = sa.Table(
    "run_forecasts",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("score_runs.run_id", name="fk_run_forecasts_run_id"), primary_key=True),
    sa.Column("period_start", sa.Date(), primary_key=True),
    sa.Column("expected_amount", sa.Float(), nullable=False),
    sa.Column("low", sa.Float(), nullable=False),
    sa.Column("median_amount", sa.Float(), nullable=True),
    sa.Column("high", sa.Float(), nullable=False),
    sa.Column("due_schedule_amount", sa.Float(), nullable=True),
)

run_invoice_forecasts = sa.Table(
    "run_invoice_forecasts",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("score_runs.run_id", name="fk_run_invoice_forecasts_run_id"),
              primary_key=True),
    sa.Column("invoice_id", ID, primary_key=True),
    sa.Column("rank", sa.Integer(), nullable=True),
    *(sa.Column(f"q{q}_days", sa.Float(), nullable=True) for q in QUANTILE_LEVELS),
)

SCORE_TABLES: dict[str, sa.Table] = {t.name: t for t in (score_runs, invoice_scores, client_scores)}
"""The score-history tables, by name."""

LEDGER_TABLES: dict[str, sa.Table] = {name: metadata.tables[name] for name in TABLES}
"""The SQLAlchemy table of each canonical table, by name."""

TECHNICAL_COLUMNS = ("row_hash", "ingested_at", "updated_at")
