"""Initial ledger store: invoices, payments, clients, actions and ingest_runs.

Written out column by column (not ``metadata.create_all``) so that this revision stays what it was
when later revisions change ``ledger.schema``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

ID = sa.String(64)
TEXT = sa.String(255)


def _technical() -> list[sa.Column]:
    return [
        sa.Column("row_hash", sa.String(32), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("invoice_id", ID, primary_key=True, nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", TEXT, nullable=False),
        sa.Column("paid_date", sa.Date(), nullable=True),
        sa.Column("doc_type", TEXT, nullable=False),
        sa.Column("terms", TEXT, nullable=True),
        sa.Column("company", TEXT, nullable=True),
        sa.Column("country", TEXT, nullable=True),
        sa.Column("disputed", sa.Boolean(), nullable=True),
        sa.Column("dunning_block", TEXT, nullable=True),
        sa.Column("credit_category", TEXT, nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        *_technical(),
    )
    for name in ("client_id", "issue_date", "due_date", "paid_date"):
        op.create_index(f"ix_invoices_{name}", "invoices", [name])

    op.create_table(
        "payments",
        sa.Column("payment_id", ID, primary_key=True, nullable=False),
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("paid_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        *_technical(),
    )
    for name in ("invoice_id", "paid_date"):
        op.create_index(f"ix_payments_{name}", "payments", [name])

    op.create_table(
        "clients",
        sa.Column("client_id", ID, primary_key=True, nullable=False),
        sa.Column("name", TEXT, nullable=True),
        sa.Column("segment", TEXT, nullable=True),
        sa.Column("credit_limit", sa.Float(), nullable=True),
        sa.Column("strategic", sa.Boolean(), nullable=True),
        sa.Column("sector", TEXT, nullable=True),
        sa.Column("country", TEXT, nullable=True),
        sa.Column("collector", TEXT, nullable=True),
        *_technical(),
    )

    op.create_table(
        "actions",
        sa.Column("action_id", ID, primary_key=True, nullable=False),
        sa.Column("invoice_id", ID, nullable=True),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("action_date", sa.Date(), nullable=False),
        sa.Column("step", TEXT, nullable=False),
        sa.Column("channel", TEXT, nullable=True),
        sa.Column("outcome", TEXT, nullable=True),
        sa.Column("promise_date", sa.Date(), nullable=True),
        sa.Column("promise_amount", sa.Float(), nullable=True),
        *_technical(),
    )
    for name in ("client_id", "invoice_id", "action_date"):
        op.create_index(f"ix_actions_{name}", "actions", [name])

    op.create_table(
        "ingest_runs",
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
    )


def downgrade() -> None:
    op.drop_table("ingest_runs")
    for table, names in (
        ("actions", ("client_id", "invoice_id", "action_date")),
        ("payments", ("invoice_id", "paid_date")),
        ("invoices", ("client_id", "issue_date", "due_date", "paid_date")),
    ):
        for name in names:
            op.drop_index(f"ix_{table}_{name}", table_name=table)
    for table in ("actions", "clients", "payments", "invoices"):
        op.drop_table(table)
