"""money columns as BIGINT; Bitcoin invoices: status apart from exception; payments' conflicts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:08:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Amounts in minor units (or satoshis): a store priced in BTC passes 2^31 at 21.47 BTC.
MONEY_COLUMNS = {
    "variants": ["price"],
    "orders": ["subtotal", "shipping", "total", "vat_total", "amount_paid", "amount_refunded"],
    "order_lines": ["unit_price", "line_total"],
    "payment_records": ["amount"],
    "shipping_rates": ["price", "free_over"],
    "card_payments": ["amount"],
    "card_refunds": ["amount"],
    "ledger_entries": ["net", "vat", "gross"],
    "ledger_lines": ["unit_price", "gross"],
    "ledger_rates": ["net", "vat", "gross"],
    "bitcoin_invoices": ["order_total"],
}

# The old single state, split into what the chain shows and what a person should know.
STATE_TO_STATUS = {
    "new": ("new", ""),
    "seen": ("processing", ""),
    "confirmed": ("settled", ""),
    "expired": ("expired", ""),
    "underpaid": ("new", "partial"),  # made "expired" below once its window has passed
    "overpaid": ("settled", "over"),
    "paid_late": ("settled", "late"),
    "invalid": ("invalid", ""),
    "reverted": ("invalid", "reverted"),  # the watcher re-judges it from the chain at once
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # SQLite stores every INTEGER in up to 8 bytes already.
        for table, columns in MONEY_COLUMNS.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())

    with op.batch_alter_table("bitcoin_invoices") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="new"))
        batch.add_column(sa.Column("exception", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("marked", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("mark_reason", sa.String(300), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("credited_sats", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("flags", sa.Text(), nullable=False, server_default=""))
    invoices = sa.table("bitcoin_invoices", sa.column("state", sa.String),
                        sa.column("status", sa.String), sa.column("exception", sa.String),
                        sa.column("expires_at", sa.DateTime), sa.column("credited_sats"),
                        sa.column("confirmed_sats"))
    for state, (status, exception) in STATE_TO_STATUS.items():
        op.execute(invoices.update().where(invoices.c.state == state)
                   .values(status=status, exception=exception))
    op.execute(invoices.update().where(invoices.c.status == "settled")
               .values(credited_sats=invoices.c.confirmed_sats))
    op.execute(invoices.update().where(invoices.c.status == "new",
                                       invoices.c.exception == "partial",
                                       invoices.c.expires_at <= sa.func.current_timestamp())
               .values(status="expired"))
    with op.batch_alter_table("bitcoin_invoices") as batch:
        batch.drop_index("ix_bitcoin_invoices_state_monitor_until")
        batch.drop_constraint("state", type_="check")
        batch.drop_column("state")
        for column in ("status", "exception", "marked", "mark_reason", "credited_sats",
                       "revision", "flags"):
            batch.alter_column(column, server_default=None)
        batch.create_check_constraint(
            "status", "status IN ('new', 'processing', 'settled', 'expired', 'invalid')")
        batch.create_check_constraint(
            "exception", "exception IN ('', 'partial', 'over', 'late', 'reverted', 'marked')")
        batch.create_check_constraint("marked", "marked IN ('', 'settled', 'invalid')")
        batch.create_index("ix_bitcoin_invoices_status_expires_at", ["status", "expires_at"])
        batch.create_index("ix_bitcoin_invoices_monitor_until", ["monitor_until"])
        batch.create_index("ix_bitcoin_invoices_exception", ["exception"])

    with op.batch_alter_table("bitcoin_invoice_events") as batch:
        for column in ("from_state", "to_state"):
            batch.alter_column(column, type_=sa.String(40), existing_type=sa.String(16))
    with op.batch_alter_table("bitcoin_payments") as batch:
        batch.add_column(sa.Column("spends", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("unconfirmed_parents", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("conflict_seen", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("bitcoin_payments") as batch:
        batch.drop_column("replaceable")
        batch.create_index("ix_bitcoin_payments_block_height", ["block_height"])
        for column in ("spends", "unconfirmed_parents", "conflict_seen"):
            batch.alter_column(column, server_default=None)


def downgrade() -> None:
    raise NotImplementedError("restore the backup taken before upgrading")
