"""card payments: webhook events queued for the worker

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 00:09:00
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        # Events stored before this revision were applied as they arrived.
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="applied")
        )
        batch_op.add_column(sa.Column("data", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tries", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("next_try_at", shop.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("last_error", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("applied_at", shop.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("dismissed_at", shop.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_stripe_events_status"), ["status"], unique=False)
        batch_op.create_check_constraint("status", "status IN ('received', 'applied', 'unmatched')")
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)
        batch_op.alter_column("tries", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_stripe_events_status"), type_="check")
        batch_op.drop_index(batch_op.f("ix_stripe_events_status"))
        for column in (
            "dismissed_at",
            "applied_at",
            "last_error",
            "next_try_at",
            "tries",
            "data",
            "status",
        ):
            batch_op.drop_column(column)
