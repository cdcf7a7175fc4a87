"""Ingest runs know their file, and rejected keys are kept.

``ingest_runs.file_hash`` identifies the file a run read (its size, first and last MiB), so the
next ingest of that file can tell that a run of it never finished. ``ingest_rejected_keys`` keeps
the key of every row an ingest rejected and why, so a later row referencing it (a payment of a
rejected invoice) is rejected with that reason instead of being stored dangling.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("ingest_runs") as batch:
        batch.add_column(sa.Column("file_hash", sa.String(64), nullable=True))
    op.create_index("ix_ingest_runs_file_hash", "ingest_runs", ["file_hash"])
    op.create_table(
        "ingest_rejected_keys",
        sa.Column("table_name", sa.String(32), primary_key=True, nullable=False),
        sa.Column("key", sa.String(64), primary_key=True, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_rejected_keys")
    op.drop_index("ix_ingest_runs_file_hash", table_name="ingest_runs")
    with op.batch_alter_table("ingest_runs") as batch:
        batch.drop_column("file_hash")
