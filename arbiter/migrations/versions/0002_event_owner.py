"""Record which arbiter process committed each dispute event.

When arbiters drain (SIGTERM) they hand disputes over to the others on the same database; the
owner column makes such hand-overs visible in the transcript. Events written before this
revision keep NULL (their writer is unknown). Index on ``disputes.status, lease_until`` for the
claim query that every arbiter's workers run several times a second.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispute_events") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_disputes_status_lease", "disputes", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_disputes_status_lease", table_name="disputes")
    with op.batch_alter_table("dispute_events") as batch:
        batch.drop_column("owner")
