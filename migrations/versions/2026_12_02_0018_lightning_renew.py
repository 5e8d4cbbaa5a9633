"""Lightning: an expired invoice can be replaced (several per order); which listeners a worker
runs; the method that settled an order

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 00:18:00

lightning_invoices.seq numbers an order's invoices (existing rows are its first); the unique
(order_id, seq) replaces the unique order_id, so a second request replacing the same expired
invoice fails instead of making another. orders.paid_via: the method whose money made the
order paid (NULL for older orders: their payment_method). worker_heartbeats.listening: which
payment listeners (the Lightning node's) a worker holds the lock for and listens with.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.add_column(sa.Column("listening", sa.String(200), server_default="", nullable=False))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("paid_via", sa.String(32), nullable=True))
    with op.batch_alter_table("lightning_invoices") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), server_default="1", nullable=False))
        batch.drop_constraint("uq_lightning_invoices_order_id", type_="unique")
        batch.create_unique_constraint("uq_lightning_invoices_order_id_seq", ["order_id", "seq"])


def downgrade() -> None:
    # Keeps each order's first invoice: the replacements cannot fit a one-per-order table.
    op.execute("DELETE FROM lightning_invoices WHERE seq > 1")
    with op.batch_alter_table("lightning_invoices") as batch:
        batch.drop_constraint("uq_lightning_invoices_order_id_seq", type_="unique")
        batch.create_unique_constraint("uq_lightning_invoices_order_id", ["order_id"])
        batch.drop_column("seq")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("paid_via")
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("listening")
