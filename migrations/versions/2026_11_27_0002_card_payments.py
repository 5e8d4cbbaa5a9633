"""card payments: Checkout attempts, refunds, applied Stripe events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:10:00
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("payment_intent", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expires_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('creating', 'open', 'processing', 'paid', 'failed', 'expired', 'mismatch')",
            name=op.f("ck_card_payments_status"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_card_payments_amount")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            ondelete="CASCADE",
            name=op.f("fk_card_payments_order_id_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_payments")),
        sa.UniqueConstraint("order_id", "attempt", name=op.f("uq_card_payments_order_id_attempt")),
        sa.UniqueConstraint("session_id", name=op.f("uq_card_payments_session_id")),
    )
    with op.batch_alter_table("card_payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_payments_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_card_payments_payment_intent"), ["payment_intent"], unique=False
        )

    op.create_table(
        "card_refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("refund_id", sa.String(length=255), nullable=True),
        sa.Column("payment_intent", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("answered_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('sending', 'pending', 'succeeded', 'failed')",
            name=op.f("ck_card_refunds_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_card_refunds_amount")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            ondelete="CASCADE",
            name=op.f("fk_card_refunds_order_id_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_refunds")),
        sa.UniqueConstraint("key", name=op.f("uq_card_refunds_key")),
        sa.UniqueConstraint("refund_id", name=op.f("uq_card_refunds_refund_id")),
    )
    with op.batch_alter_table("card_refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_refunds_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_card_refunds_payment_intent"), ["payment_intent"], unique=False
        )

    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("received_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            ondelete="SET NULL",
            name=op.f("fk_stripe_events_order_id_orders"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_stripe_events")),
    )
    with op.batch_alter_table("stripe_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stripe_events_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_table("stripe_events")
    op.drop_table("card_refunds")
    op.drop_table("card_payments")
