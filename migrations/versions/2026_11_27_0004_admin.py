"""merchant admin: accounts, stock log, shipments, outbox, legal pages, digital goods

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 23:20:00
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_enabled", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("username", name=op.f("uq_admin_users_username")),
    )
    op.create_table(
        "legal_pages",
        sa.Column("slug", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_legal_pages")),
    )
    op.create_table(
        "admin_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["admin_users.id"],
            name=op.f("fk_admin_recovery_codes_user_id_admin_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_admin_recovery_codes_code_hash")),
    )
    with op.batch_alter_table("admin_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_admin_recovery_codes_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'dropped')",
            name=op.f("ck_outbox_messages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_outbox_messages_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_messages_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            "ix_outbox_messages_status_due", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "refund_addresses",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("address", sa.LargeBinary(), nullable=True),
        sa.Column("given_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_refund_addresses_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_refund_addresses")),
    )
    op.create_table(
        "shipments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("tracking", sa.String(length=200), nullable=False),
        sa.Column("shipped_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_shipments_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipments_order_id"), ["order_id"], unique=False)

    op.create_table(
        "digital_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("stored_name", sa.String(length=64), nullable=False),
        sa.Column("original_name", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_digital_files_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digital_files")),
        sa.UniqueConstraint("product_id", name=op.f("uq_digital_files_product_id")),
        sa.UniqueConstraint("stored_name", name=op.f("uq_digital_files_stored_name")),
    )
    op.create_table(
        "download_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("digital_file_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("expires_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("downloads_left", sa.Integer(), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("downloads_left >= 0", name=op.f("ck_download_grants_downloads_left")),
        sa.ForeignKeyConstraint(
            ["digital_file_id"],
            ["digital_files.id"],
            name=op.f("fk_download_grants_digital_file_id_digital_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_download_grants_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_download_grants")),
        sa.UniqueConstraint("token", name=op.f("uq_download_grants_token")),
    )
    with op.batch_alter_table("download_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_download_grants_order_id"), ["order_id"], unique=False)

    op.create_table(
        "stock_adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("stock_before", sa.Integer(), nullable=True),
        sa.Column("stock_after", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("admin_user_id", sa.Integer(), nullable=True),
        sa.Column("at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_user_id"],
            ["admin_users.id"],
            name=op.f("fk_stock_adjustments_admin_user_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variants.id"],
            name=op.f("fk_stock_adjustments_variant_id_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_adjustments")),
    )
    with op.batch_alter_table("stock_adjustments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stock_adjustments_variant_id"), ["variant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("stock_adjustments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stock_adjustments_variant_id"))

    op.drop_table("stock_adjustments")
    with op.batch_alter_table("download_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_download_grants_order_id"))

    op.drop_table("download_grants")
    op.drop_table("digital_files")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_order_id"))

    op.drop_table("shipments")
    op.drop_table("refund_addresses")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_status_due")
        batch_op.drop_index(batch_op.f("ix_outbox_messages_order_id"))

    op.drop_table("outbox_messages")
    with op.batch_alter_table("admin_recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_admin_recovery_codes_user_id"))

    op.drop_table("admin_recovery_codes")
    op.drop_table("legal_pages")
    op.drop_table("admin_users")
