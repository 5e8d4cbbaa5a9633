"""epoch keys outside the database; tracking reference sealed; sign-in failures

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02 00:10:00

key_epochs holds only the bookkeeping of the epoch keys (their material is in files outside the
database). order_contacts.key_epoch names the epoch that wraps an order's data key; keys from
before stay wrapped by the master key and are moved into epochs by the purge or
`shop privacy rotate-key` (the migration has no keys).

shipments.tracking_sealed holds the tracking reference sealed under the order's data key. The
plain column stays for rows from before (this migration has no key to seal them with; the
order's erasure blanks them as before); copies of the reference in order notes and in sent
emails' details are removed here (the shipment keeps it).

signin_failures counts failed merchant sign-ins for every worker (shop/admin/throttle.py).
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_epochs",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Date(), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("shred_after", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("destroyed_at", shop.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_epochs")),
    )
    op.create_index(op.f("ix_key_epochs_bucket"), "key_epochs", ["bucket"], unique=False)
    with op.batch_alter_table("order_contacts") as batch:
        batch.add_column(sa.Column("key_epoch", sa.String(length=16), nullable=True))
        batch.create_index(batch.f("ix_order_contacts_key_epoch"), ["key_epoch"], unique=False)
    with op.batch_alter_table("shipments") as batch:
        batch.add_column(sa.Column("tracking_sealed", sa.LargeBinary(), nullable=True))
    op.create_table(
        "signin_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_failures")),
    )
    op.create_index(op.f("ix_signin_failures_key"), "signin_failures", ["key"], unique=False)
    op.create_index(op.f("ix_signin_failures_at"), "signin_failures", ["at"], unique=False)
    op.execute(
        "UPDATE order_events SET note = 'Shipped' WHERE note LIKE 'Shipped (tracking reference %'"
    )
    op.execute(
        "UPDATE outbox_messages SET payload = '{}' WHERE kind = 'shipped' AND status <> 'pending'"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_signin_failures_at"), table_name="signin_failures")
    op.drop_index(op.f("ix_signin_failures_key"), table_name="signin_failures")
    op.drop_table("signin_failures")
    with op.batch_alter_table("shipments") as batch:
        batch.drop_column("tracking_sealed")
    with op.batch_alter_table("order_contacts") as batch:
        batch.drop_index(batch.f("ix_order_contacts_key_epoch"))
        batch.drop_column("key_epoch")
    op.drop_index(op.f("ix_key_epochs_bucket"), table_name="key_epochs")
    op.drop_table("key_epochs")
