"""Run forecasts: what each scoring run forecast, kept beside it for monitoring.

``run_forecasts``: the run's weekly collection forecast (expected amount, P10/P50/P90 band, due
schedule). ``run_invoice_forecasts``: per scored invoice, its worklist rank and payment-day
quantiles (days after the run's as_of), so that realized accuracy is computed on the very figures
the run gave.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def upgrade() -> None:
    op.create_table(
        "run_forecasts",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("score_runs.run_id", name="fk_run_forecasts_run_id"),
                  primary_key=True, nullable=False),
        sa.Column("period_start", sa.Date(), primary_key=True, nullable=False),
        sa.Column("expected_amount", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("median_amount", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("due_schedule_amount", sa.Float(), nullable=True),
    )
    op.create_table(
        "run_invoice_forecasts",
        sa.Column("run_id", sa.String(64),
                  sa.ForeignKey("score_runs.run_id", name="fk_run_invoice_forecasts_run_id"),
                  primary_key=True, nullable=False),
        sa.Column("invoice_id", sa.String(64), primary_key=True, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        *(sa.Column(f"q{q}_days", sa.Float(), nullable=True) for q in LEVELS),
    )


def downgrade() -> None:
    op.drop_table("run_invoice_forecasts")
    op.drop_table("run_forecasts")
