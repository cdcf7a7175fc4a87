"""Score history: score_runs, invoice_scores and client_scores, keyed by run.

Every ``encaisse score`` run adds one ``score_runs`` row and its invoice and client scores; nothing
is overwritten, so the store keeps an audit trail of what was predicted and recommended when.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

ID = sa.String(64)
TEXT = sa.String(255)


def upgrade() -> None:
    op.create_table(
        "score_runs",
        sa.Column("run_id", ID, primary_key=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("model_version", TEXT, nullable=False),
        sa.Column("model_run_id", TEXT, nullable=True),
        sa.Column("policy", TEXT, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_invoices", sa.Integer(), nullable=False),
        sa.Column("n_clients", sa.Integer(), nullable=False),
        sa.Column("n_worklist", sa.Integer(), nullable=False),
    )
    op.create_index("ix_score_runs_as_of", "score_runs", ["as_of"])

    op.create_table(
        "invoice_scores",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("invoice_id", ID, nullable=False),
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
        sa.PrimaryKeyConstraint("run_id", "invoice_id"),
        sa.ForeignKeyConstraint(["run_id"], ["score_runs.run_id"], name="fk_invoice_scores_run_id"),
    )
    op.create_index("ix_invoice_scores_invoice_id", "invoice_scores", ["invoice_id"])

    op.create_table(
        "client_scores",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("client_id", ID, nullable=False),
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
        sa.PrimaryKeyConstraint("run_id", "client_id"),
        sa.ForeignKeyConstraint(["run_id"], ["score_runs.run_id"], name="fk_client_scores_run_id"),
    )
    op.create_index("ix_client_scores_client_id", "client_scores", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_client_scores_client_id", table_name="client_scores")
    op.drop_table("client_scores")
    op.drop_index("ix_invoice_scores_invoice_id", table_name="invoice_scores")
    op.drop_table("invoice_scores")
    op.drop_index("ix_score_runs_as_of", table_name="score_runs")
    op.drop_table("score_runs")
