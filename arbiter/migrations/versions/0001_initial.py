"""Initial schema: providers, jobs, results, disputes, dispute events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "providers",
        sa.Column("public_key", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(255)),
        sa.Column("disputes_won", sa.Integer, nullable=False, server_default="0"),
        sa.Column("disputes_lost", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", ts),
    )
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("spec_json", sa.Text, nullable=False),
        sa.Column("created_at", ts),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.job_id"), nullable=False,
                  index=True),
        sa.Column("provider_key", sa.String(64), nullable=False),
        sa.Column("signed_result_json", sa.Text, nullable=False),
        sa.Column("created_at", ts),
        sa.UniqueConstraint("job_id", "provider_key"),
    )
    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.String(64), primary_key=True),
        sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.job_id"), nullable=False,
                  index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("state_json", sa.Text, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False, server_default="open"),
        sa.Column("rounds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("verdict_json", sa.Text),
        sa.Column("certificate_json", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("created_at", ts),
        sa.Column("updated_at", ts),
    )
    op.create_table(
        "dispute_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dispute_id", sa.String(64), sa.ForeignKey("disputes.dispute_id"),
                  nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload_json", sa.Text, nullable=False),
        sa.Column("created_at", ts),
        sa.UniqueConstraint("dispute_id", "seq"),
    )


def downgrade() -> None:
    for table in ("dispute_events", "disputes", "results", "jobs", "providers"):
        op.drop_table(table)
