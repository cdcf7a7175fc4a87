"""Dunning journal: one row per message the daily run plans, sends and records, and its invoices.

A message row is written (``planned``, then ``sending``) before the message leaves and marked
``sent`` (or ``failed``) after, so a rerun never sends a step twice and a crash in between is seen.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "dunning_messages",
        sa.Column("message_id", sa.String(64), primary_key=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("step", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("planned_channel", sa.String(16), nullable=True),
        sa.Column("template", sa.String(255), nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("recipient", sa.String(255), nullable=True),
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
    )
    op.create_index("ix_dunning_messages_status", "dunning_messages", ["status"])
    op.create_index("ix_dunning_messages_client_step", "dunning_messages", ["client_id", "step"])
    op.create_table(
        "dunning_message_invoices",
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("action_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("message_id", "invoice_id"),
        sa.ForeignKeyConstraint(["message_id"], ["dunning_messages.message_id"], name="fk_dunning_mi_message_id"),
    )
    op.create_index("ix_dunning_message_invoices_invoice_id", "dunning_message_invoices", ["invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_dunning_message_invoices_invoice_id", table_name="dunning_message_invoices")
    op.drop_table("dunning_message_invoices")
    op.drop_index("ix_dunning_messages_status", table_name="dunning_messages")
    op.drop_index("ix_dunning_messages_client_step", table_name="dunning_messages")
    op.drop_table("dunning_messages")
