"""The store's change log: one row per write of a ledger table, naming the keys it changed.

A process holding the ledger in memory (the service) reads the log for what other processes stored
and reads those rows again by key, instead of the whole ledger (``ledger.changes``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "ledger_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("row_keys", sa.Text(), nullable=True),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("writer", sa.String(64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ledger_changes_changed_at", "ledger_changes", ["changed_at"])


def downgrade() -> None:
    op.drop_index("ix_ledger_changes_changed_at", table_name="ledger_changes")
    op.drop_table("ledger_changes")
