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
        batch.add_column(
            sa.Column("mark_reason", sa.String(300), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("credited_sats", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("flags", sa.Text(), nullable=False, server_default=""))
    invoices = sa.table(
        "bitcoin_invoices",
        sa.column("state", sa.String),
        sa.column("status", sa.String),
        sa.column("exception", sa.String),
        sa.column("expires_at", sa.DateTime),
        sa.column("credited_sats"),
        sa.column("confirmed_sats"),
    )
    for state, (status, exception) in STATE_TO_STATUS.items():
        op.execute(
            invoices.update()
            .where(invoices.c.state == state)
            .values(status=status, exception=exception)
        )
    op.execute(
        invoices.update()
        .where(invoices.c.status == "settled")
        .values(credited_sats=invoices.c.confirmed_sats)
    )
    op.execute(
        invoices.update()
        .where(
            invoices.c.status == "new",
            invoices.c.exception == "partial",
            invoices.c.expires_at <= sa.func.current_timestamp(),
        )
        .values(status="expired")
    )
    with op.batch_alter_table("bitcoin_invoices") as batch:
        batch.drop_index("ix_bitcoin_invoices_state_monitor_until")
        batch.drop_constraint("state", type_="check")
        batch.drop_column("state")
        for column in (
            "status",
            "exception",
            "marked",
            "mark_reason",
            "credited_sats",
            "revision",
            "flags",
        ):
            batch.alter_column(column, server_default=None)
        batch.create_check_constraint(
            "status", "status IN ('new', 'processing', 'settled', 'expired', 'invalid')"
        )
        batch.create_check_constraint(
            "exception", "exception IN ('', 'partial', 'over', 'late', 'reverted', 'marked')"
        )
        batch.create_check_constraint("marked", "marked IN ('', 'settled', 'invalid')")
        batch.create_index("ix_bitcoin_invoices_status_expires_at", ["status", "expires_at"])
        batch.create_index("ix_bitcoin_invoices_monitor_until", ["monitor_until"])
        batch.create_index("ix_bitcoin_invoices_exception", ["exception"])

    with op.batch_alter_table("bitcoin_invoice_events") as batch:
        for column in ("from_state", "to_state"):
            batch.alter_column(column, type_=sa.String(40), existing_type=sa.String(16))
    with op.batch_alter_table("bitcoin_payments") as batch:
        batch.add_column(sa.Column("spends", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("unconfirmed_parents", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column("conflict_seen", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("bitcoin_payments") as batch:
        batch.drop_column("replaceable")
        batch.create_index("ix_bitcoin_payments_block_height", ["block_height"])
        for column in ("spends", "unconfirmed_parents", "conflict_seen"):
            batch.alter_column(column, server_default=None)


# Back to one state: the status decides, except where the exception was the old state's point.
EXCEPTION_TO_STATE = {
    "partial": "underpaid",
    "over": "overpaid",
    "late": "paid_late",
    "reverted": "reverted",
}
STATUS_TO_STATE = {
    "new": "new",
    "processing": "seen",
    "settled": "confirmed",
    "expired": "expired",
    "invalid": "invalid",
}


def downgrade() -> None:
    """Reverses the schema. Invoice states map back as closely as the old model allows (a
    merchant's mark becomes the plain state); a money amount past 2^31 on PostgreSQL stops it."""
    with op.batch_alter_table("bitcoin_payments") as batch:
        batch.add_column(
            sa.Column("replaceable", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("bitcoin_payments") as batch:
        batch.alter_column("replaceable", server_default=None)
        batch.drop_index("ix_bitcoin_payments_block_height")
        for column in ("spends", "unconfirmed_parents", "conflict_seen"):
            batch.drop_column(column)

    events = sa.table(
        "bitcoin_invoice_events",
        sa.column("from_state", sa.String),
        sa.column("to_state", sa.String),
    )
    op.execute(
        events.update().values(
            from_state=sa.func.substr(events.c.from_state, 1, 16),
            to_state=sa.func.substr(events.c.to_state, 1, 16),
        )
    )
    with op.batch_alter_table("bitcoin_invoice_events") as batch:
        for column in ("from_state", "to_state"):
            batch.alter_column(column, type_=sa.String(16), existing_type=sa.String(40))

    with op.batch_alter_table("bitcoin_invoices") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="new"))
    invoices = sa.table(
        "bitcoin_invoices",
        sa.column("state", sa.String),
        sa.column("status", sa.String),
        sa.column("exception", sa.String),
    )
    for status, state in STATUS_TO_STATE.items():
        op.execute(invoices.update().where(invoices.c.status == status).values(state=state))
    for exception, state in EXCEPTION_TO_STATE.items():
        op.execute(invoices.update().where(invoices.c.exception == exception).values(state=state))
    with op.batch_alter_table("bitcoin_invoices") as batch:
        batch.alter_column("state", server_default=None)
        for name in ("status", "exception", "marked"):
            batch.drop_constraint(batch.f(f"ck_bitcoin_invoices_{name}"), type_="check")
        for index in (
            "ix_bitcoin_invoices_status_expires_at",
            "ix_bitcoin_invoices_monitor_until",
            "ix_bitcoin_invoices_exception",
        ):
            batch.drop_index(index)
        for column in (
            "status",
            "exception",
            "marked",
            "mark_reason",
            "credited_sats",
            "revision",
            "flags",
        ):
            batch.drop_column(column)
        batch.create_check_constraint(
            "state",
            "state IN ('new', 'seen', 'confirmed', 'expired', 'underpaid', 'overpaid', "
            "'paid_late', 'invalid', 'reverted')",
        )
        batch.create_index("ix_bitcoin_invoices_state_monitor_until", ["state", "monitor_until"])

    if op.get_bind().dialect.name == "postgresql":
        for table, columns in MONEY_COLUMNS.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
