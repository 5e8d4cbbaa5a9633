"""partial index for the chain watcher's address-gap check

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02 00:12:00

The gap check runs every watcher round and asks for the highest derivation index that received
anything; with no such invoice among many it scanned the whole table. The index holds only
invoices with received_sats > 0.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_bitcoin_invoices_received",
        "bitcoin_invoices",
        ["descriptor_fingerprint", "derivation_index"],
        postgresql_where=sa.text("received_sats > 0"),
        sqlite_where=sa.text("received_sats > 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_bitcoin_invoices_received", table_name="bitcoin_invoices")
