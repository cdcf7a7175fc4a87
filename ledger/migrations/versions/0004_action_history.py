"""Action history: every version of an action written through the API, and the versions edits superseded.

An edit of a stored action adds its new version here and marks the version it supersedes
(``superseded_at``, ``superseded_by``), which is kept; ``actions`` holds the current version.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "action_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False),
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(255), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
    )
    op.create_index("ix_action_history_action_id", "action_history", ["action_id"])


def downgrade() -> None:
    op.drop_index("ix_action_history_action_id", table_name="action_history")
    op.drop_table("action_history")
