"""VAT by destination and the consent for immediate digital delivery

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-02 00:15:00

Tax classes get a category (which column of shop/tax/eu_rates.json applies abroad) and the
merchant's per-country rates; order lines, shipping and ledger rates record whose VAT they carry;
orders record the digital-content consent and, without it, when downloads may start. Only new
tables and nullable (or server-defaulted) columns: online-safe.

ledger_rates' unique key now includes the country (two countries may share a rate in one order).
SQLite changes that by copying the table, which drops its immutability trigger: it is created
again here, exactly as migration 0003 made it.
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def _sqlite_ledger_trigger() -> None:
    op.execute("DROP TRIGGER IF EXISTS ledger_rates_immutable")
    op.execute("CREATE TRIGGER ledger_rates_immutable BEFORE UPDATE ON ledger_rates "
               "BEGIN SELECT RAISE(ABORT, 'ledger records are immutable (ledger_rates)'); END")


def upgrade() -> None:
    with op.batch_alter_table("tax_classes") as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=16), nullable=False,
                                      server_default="standard"))
    # Existing classes: a zero rate is the zero category, a rate below the store's standard the
    # reduced one (the demo's "reduced" class); the merchant can change it on the tax page.
    op.execute("UPDATE tax_classes SET category = 'zero' WHERE rate_bp = 0")
    op.execute("UPDATE tax_classes SET category = 'reduced' WHERE rate_bp > 0 AND rate_bp < "
               "(SELECT MAX(rate_bp) FROM tax_classes)")
    op.create_table(
        "tax_class_rates",
        sa.Column("tax_class_id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.CheckConstraint("rate_bp >= 0 AND rate_bp <= 10000",
                           name=op.f("ck_tax_class_rates_rate_range")),
        sa.ForeignKeyConstraint(["tax_class_id"], ["tax_classes.id"],
                                name=op.f("fk_tax_class_rates_tax_class_id_tax_classes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tax_class_id", "country", name=op.f("pk_tax_class_rates")),
    )
    with op.batch_alter_table("order_lines") as batch_op:
        batch_op.add_column(sa.Column("tax_country", sa.String(length=2), nullable=True))
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("shipping_tax_country", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("digital_consent_at", shop.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("digital_consent_version", sa.String(length=20),
                                      nullable=True))
        batch_op.add_column(sa.Column("downloads_from", shop.db.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("ledger_rates") as batch_op:
        batch_op.add_column(sa.Column("tax_country", sa.String(length=2), nullable=True))
        batch_op.drop_constraint("uq_ledger_rates_entry_id_tax_rate_bp", type_="unique")
        batch_op.create_unique_constraint("uq_ledger_rates_entry_id_tax_country_tax_rate_bp",
                                          ["entry_id", "tax_country", "tax_rate_bp"])
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_ledger_trigger()


def downgrade() -> None:
    with op.batch_alter_table("ledger_rates") as batch_op:
        batch_op.drop_constraint("uq_ledger_rates_entry_id_tax_country_tax_rate_bp", type_="unique")
        batch_op.create_unique_constraint("uq_ledger_rates_entry_id_tax_rate_bp",
                                          ["entry_id", "tax_rate_bp"])
        batch_op.drop_column("tax_country")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_ledger_trigger()
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("downloads_from")
        batch_op.drop_column("digital_consent_version")
        batch_op.drop_column("digital_consent_at")
        batch_op.drop_column("shipping_tax_country")
    with op.batch_alter_table("order_lines") as batch_op:
        batch_op.drop_column("tax_country")
    op.drop_table("tax_class_rates")
    with op.batch_alter_table("tax_classes") as batch_op:
        batch_op.drop_column("category")
