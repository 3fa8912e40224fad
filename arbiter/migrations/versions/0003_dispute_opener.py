"""Record who asked for each dispute.

An arbiter started with ``--allow-clients`` opens disputes only for authenticated clients and
counts them against per-client quotas; ``opened_by`` keeps the first opener's name (its public
key, or ``anonymous@HOST`` on an open arbiter) beside the dispute, so an operator can tell who
asked for it. Disputes opened before this revision keep NULL.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("disputes") as batch:
        batch.add_column(sa.Column("opened_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("disputes") as batch:
        batch.drop_column("opened_by")
