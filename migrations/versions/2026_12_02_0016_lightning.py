"""lightning invoices and the settlement stream's resume point

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-02 00:16:00

New tables only: online-safe, nothing existing changes.
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lightning_invoices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("payment_hash", sa.String(length=64), nullable=True),
        sa.Column("bolt11", sa.Text(), nullable=False),
        sa.Column("amount_msat", sa.BigInteger(), nullable=False),
        sa.Column("order_total", shop.db.Money, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_msat", sa.BigInteger(), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("settled_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_reported", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=False),
        sa.CheckConstraint(
            "status IN ('creating', 'failed', 'open', 'settled', 'canceled')",
            name=op.f("ck_lightning_invoices_status"),
        ),
        sa.CheckConstraint("amount_msat > 0", name=op.f("ck_lightning_invoices_amount")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_lightning_invoices_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lightning_invoices")),
        sa.UniqueConstraint("order_id", name=op.f("uq_lightning_invoices_order_id")),
        sa.UniqueConstraint("payment_hash", name=op.f("uq_lightning_invoices_payment_hash")),
    )
    op.create_index(
        "ix_lightning_invoices_status_expires_at",
        "lightning_invoices",
        ["status", "expires_at"],
        unique=False,
    )
    op.create_table(
        "lightning_stream_state",
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("last_index", sa.BigInteger(), nullable=False),
        sa.Column("last_success_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.Column("last_error_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("backend", name=op.f("pk_lightning_stream_state")),
    )


def downgrade() -> None:
    op.drop_table("lightning_stream_state")
    op.drop_index("ix_lightning_invoices_status_expires_at", table_name="lightning_invoices")
    op.drop_table("lightning_invoices")
