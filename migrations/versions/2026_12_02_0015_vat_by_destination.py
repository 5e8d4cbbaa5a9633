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
again here, exactly as migration 0003 made it. The day sums of migration 0013 (ledger_days, kept
by a trigger on ledger_rates) gain the VAT country in their key: rebuilt from the ledger, with
their trigger, in both directions.
"""

import sqlalchemy as sa
from alembic import op

import shop.db

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def _sqlite_ledger_trigger() -> None:
    op.execute("DROP TRIGGER IF EXISTS ledger_rates_immutable")
    op.execute(
        "CREATE TRIGGER ledger_rates_immutable BEFORE UPDATE ON ledger_rates "
        "BEGIN SELECT RAISE(ABORT, 'ledger records are immutable (ledger_rates)'); END"
    )


def _days_sql(postgres: bool, by_country: bool) -> tuple[str, str]:
    """The day sums' backfill and trigger, with or without the VAT country ("-": a rate row
    from before VAT by destination, whose tax_country is NULL)."""
    country_col = "tax_country, " if by_country else ""
    country_new = "COALESCE(NEW.tax_country, '-'), " if by_country else ""
    country_old = "COALESCE(r.tax_country, '-'), " if by_country else ""
    key = f"day, currency, {country_col}destination_country, tax_rate_bp"
    columns = f"({key}, net, vat, gross)"
    excluded = "EXCLUDED" if postgres else "excluded"
    on_conflict = (
        f"ON CONFLICT ({key}) DO UPDATE SET net = ledger_days.net + {excluded}.net, "
        f"vat = ledger_days.vat + {excluded}.vat, "
        f"gross = ledger_days.gross + {excluded}.gross"
    )
    day = "(e.entry_date AT TIME ZONE 'UTC')::date" if postgres else "substr(e.entry_date, 1, 10)"
    groups = "1, 2, 3, 4, 5" if by_country else "1, 2, 3, 4"
    backfill = (
        f"INSERT INTO ledger_days {columns} SELECT {day}, e.currency, {country_old}"
        f"e.destination_country, r.tax_rate_bp, sum(r.net), sum(r.vat), sum(r.gross) "
        f"FROM ledger_rates r JOIN ledger_entries e ON e.id = r.entry_id "
        f"GROUP BY {groups}"
    )
    insert = (
        f"INSERT INTO ledger_days {columns} SELECT {day}, e.currency, {country_new}"
        f"e.destination_country, NEW.tax_rate_bp, NEW.net, NEW.vat, NEW.gross "
        f"FROM ledger_entries e WHERE e.id = NEW.entry_id {on_conflict};"
    )
    if postgres:
        trigger = (
            f"CREATE FUNCTION ledger_days_add() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {insert} RETURN NULL; END $$; "
            "CREATE TRIGGER ledger_rates_days AFTER INSERT ON ledger_rates "
            "FOR EACH ROW EXECUTE FUNCTION ledger_days_add();"
        )
    else:
        trigger = (
            f"CREATE TRIGGER ledger_rates_days AFTER INSERT ON ledger_rates BEGIN {insert} END"
        )
    return backfill, trigger


def _rebuild_days(by_country: bool) -> None:
    """ledger_days is derived from the ledger: drop it and its trigger, build both anew."""
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(
        "DROP TRIGGER IF EXISTS ledger_rates_days" + (" ON ledger_rates" if postgres else "")
    )
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS ledger_days_add()")
    op.drop_table("ledger_days")
    key = (
        ["day", "currency"]
        + (["tax_country"] if by_country else [])
        + ["destination_country", "tax_rate_bp"]
    )
    op.create_table(
        "ledger_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        *([sa.Column("tax_country", sa.String(2), nullable=False)] if by_country else []),
        sa.Column("destination_country", sa.String(2), nullable=False),
        sa.Column("tax_rate_bp", sa.Integer(), nullable=False),
        sa.Column("net", shop.db.Money, nullable=False),
        sa.Column("vat", shop.db.Money, nullable=False),
        sa.Column("gross", shop.db.Money, nullable=False),
        sa.PrimaryKeyConstraint(*key, name="pk_ledger_days"),
    )
    backfill, trigger = _days_sql(postgres, by_country)
    op.execute(backfill)
    op.execute(trigger)


def upgrade() -> None:
    with op.batch_alter_table("tax_classes") as batch_op:
        batch_op.add_column(
            sa.Column("category", sa.String(length=16), nullable=False, server_default="standard")
        )
    # Existing classes: a zero rate is the zero category, a rate below the store's standard the
    # reduced one (the demo's "reduced" class); the merchant can change it on the tax page.
    op.execute("UPDATE tax_classes SET category = 'zero' WHERE rate_bp = 0")
    op.execute(
        "UPDATE tax_classes SET category = 'reduced' WHERE rate_bp > 0 AND rate_bp < "
        "(SELECT MAX(rate_bp) FROM tax_classes)"
    )
    op.create_table(
        "tax_class_rates",
        sa.Column("tax_class_id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "rate_bp >= 0 AND rate_bp <= 10000", name=op.f("ck_tax_class_rates_rate_range")
        ),
        sa.ForeignKeyConstraint(
            ["tax_class_id"],
            ["tax_classes.id"],
            name=op.f("fk_tax_class_rates_tax_class_id_tax_classes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tax_class_id", "country", name=op.f("pk_tax_class_rates")),
    )
    with op.batch_alter_table("order_lines") as batch_op:
        batch_op.add_column(sa.Column("tax_country", sa.String(length=2), nullable=True))
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("shipping_tax_country", sa.String(length=2), nullable=True))
        batch_op.add_column(
            sa.Column("digital_consent_at", shop.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("digital_consent_version", sa.String(length=20), nullable=True)
        )
        batch_op.add_column(
            sa.Column("downloads_from", shop.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("ledger_rates") as batch_op:
        batch_op.add_column(sa.Column("tax_country", sa.String(length=2), nullable=True))
        batch_op.drop_constraint("uq_ledger_rates_entry_id_tax_rate_bp", type_="unique")
        batch_op.create_unique_constraint(
            "uq_ledger_rates_entry_id_tax_country_tax_rate_bp",
            ["entry_id", "tax_country", "tax_rate_bp"],
        )
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_ledger_trigger()
    _rebuild_days(by_country=True)


def downgrade() -> None:
    with op.batch_alter_table("ledger_rates") as batch_op:
        batch_op.drop_constraint("uq_ledger_rates_entry_id_tax_country_tax_rate_bp", type_="unique")
        batch_op.create_unique_constraint(
            "uq_ledger_rates_entry_id_tax_rate_bp", ["entry_id", "tax_rate_bp"]
        )
        batch_op.drop_column("tax_country")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_ledger_trigger()
    _rebuild_days(by_country=False)
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
