"""Client contacts: the billing contact of each client, for dunning messages.

``clients`` gains ``email``, ``phone``, ``postal_address``, ``language`` ('fr' or 'en'; empty =
'fr') and ``opt_out`` (the client refuses automated reminders). All nullable: existing rows keep
no contact until an export or the API brings one.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("clients", sa.Column("email", sa.String(255), nullable=True))
    op.add_column("clients", sa.Column("phone", sa.String(255), nullable=True))
    op.add_column("clients", sa.Column("postal_address", sa.String(255), nullable=True))
    op.add_column("clients", sa.Column("language", sa.String(255), nullable=True))
    op.add_column("clients", sa.Column("opt_out", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        for name in ("opt_out", "language", "postal_address", "phone", "email"):
            batch.drop_column(name)
