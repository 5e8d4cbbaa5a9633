"""stock on hand apart from what orders hold; one order per checkout; stock movements;
when the last worker stopped

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-02 00:11:00

``variants.stock`` was "available": a count overwrote what unpaid and paid orders held, and an
expiry then added it back on top. It becomes ``on_hand`` (the shelf) with ``reserved`` (unpaid
orders) and ``committed`` (paid, not shipped); each order line says where its units are.
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Old order lines that still held stock, by the state of their order.
_RESERVED = ("pending_payment",)
_COMMITTED = ("paid", "partially_refunded")


def upgrade() -> None:
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_variants_stock_not_negative"), type_="check")
        batch_op.alter_column(
            "stock", new_column_name="on_hand", existing_type=sa.Integer(), existing_nullable=True
        )
        batch_op.add_column(sa.Column("reserved", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("committed", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stock_state", sa.String(length=12), nullable=False, server_default="none")
        )
    bind = op.get_bind()
    # Lines still holding stock: unpaid ones are reserved, paid unshipped ones committed; both
    # had been taken from the old number, so they go back on the shelf and are held instead.
    for states, target in ((_RESERVED, "reserved"), (_COMMITTED, "committed")):
        in_states = ", ".join(f"'{s}'" for s in states)
        bind.execute(
            sa.text(
                f"UPDATE order_lines SET stock_state = '{target}' WHERE stock_reserved = :yes "
                f"AND order_id IN (SELECT id FROM orders WHERE status IN ({in_states}))"
            ),
            {"yes": True},
        )
        bind.execute(
            sa.text(
                f"UPDATE variants SET {target} = {target} + COALESCE((SELECT SUM(l.quantity) "
                f"FROM order_lines l WHERE l.variant_id = variants.id "
                f"AND l.stock_state = '{target}'), 0)"
            )
        )
        bind.execute(
            sa.text(
                f"UPDATE variants SET on_hand = on_hand + COALESCE((SELECT SUM(l.quantity) "
                f"FROM order_lines l WHERE l.variant_id = variants.id "
                f"AND l.stock_state = '{target}'), 0) WHERE on_hand IS NOT NULL"
            )
        )
    # Everything else that held stock has left the shelf (shipped, or refunded and never put back).
    bind.execute(
        sa.text(
            "UPDATE order_lines SET stock_state = 'shipped' "
            "WHERE stock_reserved = :yes AND stock_state = 'none'"
        ),
        {"yes": True},
    )

    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.alter_column("reserved", server_default=None)
        batch_op.alter_column("committed", server_default=None)
        batch_op.create_check_constraint(
            batch_op.f("ck_variants_on_hand_not_negative"), "on_hand IS NULL OR on_hand >= 0"
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_variants_held_not_negative"), "reserved >= 0 AND committed >= 0"
        )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.alter_column("stock_state", server_default=None)
        batch_op.drop_column("stock_reserved")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkout_token", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_orders_checkout_token"), ["checkout_token"]
        )

    with op.batch_alter_table("stock_adjustments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="count")
        )
        batch_op.add_column(sa.Column("quantity", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("order_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_stock_adjustments_order_id"), ["order_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_stock_adjustments_order_id_orders"),
            "orders",
            ["order_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("stock_adjustments", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)

    # A worker that exits cleanly marks its row instead of deleting it.
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stopped_at", shop.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_column("stopped_at")
    with op.batch_alter_table("stock_adjustments", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_stock_adjustments_order_id_orders"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_stock_adjustments_order_id"))
        batch_op.drop_column("order_id")
        batch_op.drop_column("quantity")
        batch_op.drop_column("kind")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_orders_checkout_token"), type_="unique")
        batch_op.drop_column("checkout_token")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stock_reserved", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.get_bind().execute(
        sa.text(
            "UPDATE order_lines SET stock_reserved = :yes "
            "WHERE stock_state IN ('reserved', 'committed', 'shipped')"
        ),
        {"yes": True},
    )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.alter_column("stock_reserved", server_default=None)
        batch_op.drop_column("stock_state")
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_variants_held_not_negative"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_variants_on_hand_not_negative"), type_="check")
    # Back to one number: what could still be sold.
    op.get_bind().execute(
        sa.text(
            "UPDATE variants SET on_hand = CASE WHEN on_hand - reserved - committed < 0 THEN 0 "
            "ELSE on_hand - reserved - committed END WHERE on_hand IS NOT NULL"
        )
    )
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_column("committed")
        batch_op.drop_column("reserved")
        batch_op.alter_column(
            "on_hand", new_column_name="stock", existing_type=sa.Integer(), existing_nullable=True
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_variants_stock_not_negative"), "stock IS NULL OR stock >= 0"
        )
