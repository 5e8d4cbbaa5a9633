"""bitcoin checkout: invoices, payments by outpoint, processed blocks, address index counters

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 23:30:00
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bitcoin_blocks",
        sa.Column("height", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("processed_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("height", name=op.f("pk_bitcoin_blocks")),
        sa.UniqueConstraint("hash", name=op.f("uq_bitcoin_blocks_hash")),
    )
    op.create_table(
        "bitcoin_index_counters",
        sa.Column("descriptor_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("next_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("descriptor_fingerprint", name=op.f("pk_bitcoin_index_counters")),
    )
    op.create_table(
        "bitcoin_watcher_status",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_success_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.Column("tip_height", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bitcoin_watcher_status")),
    )
    op.create_table(
        "bitcoin_invoices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("descriptor_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("derivation_index", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=100), nullable=False),
        sa.Column("script_pubkey", sa.LargeBinary(length=64), nullable=False),
        sa.Column("amount_sats", sa.BigInteger(), nullable=False),
        sa.Column("order_total", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("rate_quote_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("monitor_until", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("settled_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_reported", sa.Boolean(), nullable=False),
        sa.Column("received_sats", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_sats", sa.BigInteger(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "state IN ('new', 'seen', 'confirmed', 'expired', 'underpaid', 'overpaid', 'paid_late', 'invalid', 'reverted')",
            name=op.f("ck_bitcoin_invoices_state"),
        ),
        sa.CheckConstraint("amount_sats > 0", name=op.f("ck_bitcoin_invoices_amount")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_bitcoin_invoices_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bitcoin_invoices")),
        sa.UniqueConstraint(
            "descriptor_fingerprint",
            "derivation_index",
            name=op.f("uq_bitcoin_invoices_descriptor_fingerprint_derivation_index"),
        ),
        sa.UniqueConstraint("order_id", name=op.f("uq_bitcoin_invoices_order_id")),
        sa.UniqueConstraint("script_pubkey", name=op.f("uq_bitcoin_invoices_script_pubkey")),
    )
    op.create_index(
        "ix_bitcoin_invoices_state_monitor_until",
        "bitcoin_invoices",
        ["state", "monitor_until"],
        unique=False,
    )
    op.create_table(
        "bitcoin_invoice_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["bitcoin_invoices.id"],
            name=op.f("fk_bitcoin_invoice_events_invoice_id_bitcoin_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bitcoin_invoice_events")),
    )
    op.create_index(
        op.f("ix_bitcoin_invoice_events_invoice_id"),
        "bitcoin_invoice_events",
        ["invoice_id"],
        unique=False,
    )
    op.create_table(
        "bitcoin_payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("outpoint", sa.String(length=80), nullable=False),
        sa.Column("txid", sa.String(length=64), nullable=False),
        sa.Column("amount_sats", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replaceable", sa.Boolean(), nullable=False),
        sa.Column("block_hash", sa.String(length=64), nullable=True),
        sa.Column("block_height", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("removed_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('mempool', 'confirmed', 'removed')", name=op.f("ck_bitcoin_payments_status")
        ),
        sa.CheckConstraint("amount_sats > 0", name=op.f("ck_bitcoin_payments_amount")),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["bitcoin_invoices.id"],
            name=op.f("fk_bitcoin_payments_invoice_id_bitcoin_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bitcoin_payments")),
        sa.UniqueConstraint("outpoint", name=op.f("uq_bitcoin_payments_outpoint")),
    )
    op.create_index(
        "ix_bitcoin_payments_block_hash", "bitcoin_payments", ["block_hash"], unique=False
    )
    op.create_index("ix_bitcoin_payments_status", "bitcoin_payments", ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("bitcoin_payments")
    op.drop_table("bitcoin_invoice_events")
    op.drop_table("bitcoin_invoices")
    op.drop_table("bitcoin_watcher_status")
    op.drop_table("bitcoin_index_counters")
    op.drop_table("bitcoin_blocks")
