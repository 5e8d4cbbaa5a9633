"""privacy: encrypted order contacts, erasure stamps, immutable bookkeeping ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 23:30:00
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LEDGER_TABLES = ("ledger_entries", "ledger_lines", "ledger_rates")


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "personal_data_erase_requested_at",
                shop.db.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("personal_data_erased_at", shop.db.UTCDateTime(timezone=True), nullable=True)
        )

    # Plaintext contact columns become AES-GCM blobs under a wrapped per-order data key.
    # There is no production data yet, so the table is recreated rather than converted.
    op.drop_table("order_contacts")
    op.create_table(
        "order_contacts",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("email", sa.LargeBinary(), nullable=True),
        sa.Column("name", sa.LargeBinary(), nullable=True),
        sa.Column("street", sa.LargeBinary(), nullable=True),
        sa.Column("postal_code", sa.LargeBinary(), nullable=True),
        sa.Column("city", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_contacts_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_contacts")),
    )

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("order_number", sa.String(length=20), nullable=False),
        sa.Column("order_date", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entry_date", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("net", sa.Integer(), nullable=False),
        sa.Column("vat", sa.Integer(), nullable=False),
        sa.Column("gross", sa.Integer(), nullable=False),
        sa.Column("payment_method", sa.String(length=32), nullable=False),
        sa.Column("payment_reference", sa.String(length=500), nullable=False),
        sa.Column("destination_country", sa.String(length=2), nullable=False),
        sa.Column("created_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('sale', 'refund')", name=op.f("ck_ledger_entries_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_entries_key")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_entry_date"), ["entry_date"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_order_number"), ["order_number"], unique=False
        )

    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=420), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("tax_rate_bp", sa.Integer(), nullable=False),
        sa.Column("gross", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_lines_entry_id_ledger_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_lines")),
    )
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_lines_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "ledger_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("tax_rate_bp", sa.Integer(), nullable=False),
        sa.Column("net", sa.Integer(), nullable=False),
        sa.Column("vat", sa.Integer(), nullable=False),
        sa.Column("gross", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_rates_entry_id_ledger_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_rates")),
        sa.UniqueConstraint(
            "entry_id", "tax_rate_bp", name=op.f("uq_ledger_rates_entry_id_tax_rate_bp")
        ),
    )

    op.create_table(
        "privacy_job_runs",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("last_run_at", shop.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_privacy_job_runs")),
    )

    # The ledger is append-only: the database itself refuses UPDATE, whoever sends it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'ledger records are immutable (%)', TG_TABLE_NAME "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
        for table in LEDGER_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION ledger_refuse_update()"
            )
    else:
        for table in LEDGER_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger records are immutable ({table})'); END"
            )


def downgrade() -> None:
    for table in LEDGER_TABLES:
        op.execute(
            f"DROP TRIGGER IF EXISTS {table}_immutable"
            + (f" ON {table}" if op.get_bind().dialect.name == "postgresql" else "")
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_refuse_update()")
    op.drop_table("privacy_job_runs")
    op.drop_table("ledger_rates")
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_lines_entry_id"))
    op.drop_table("ledger_lines")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_order_number"))
        batch_op.drop_index(batch_op.f("ix_ledger_entries_entry_date"))
    op.drop_table("ledger_entries")

    op.drop_table("order_contacts")
    op.create_table(
        "order_contacts",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("street", sa.String(length=300), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_contacts_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_contacts")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("personal_data_erased_at")
        batch_op.drop_column("personal_data_erase_requested_at")
