"""worker heartbeats

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 00:07:00
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(length=120), nullable=False),
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_beat", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("current_job", sa.String(length=60), nullable=False),
        sa.Column("jobs", sa.String(length=500), nullable=False),
        sa.Column("watching_chain", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeats")),
    )
    op.create_index(
        op.f("ix_worker_heartbeats_last_beat"), "worker_heartbeats", ["last_beat"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_worker_heartbeats_last_beat"), table_name="worker_heartbeats")
    op.drop_table("worker_heartbeats")
