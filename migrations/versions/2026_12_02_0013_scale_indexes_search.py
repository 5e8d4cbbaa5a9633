"""indexes for keyset lists, product full-text search, VAT totals per day

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 00:13:00

- products (active, position, id): the catalog listing's filter and sort, read by keyset.
- orders: a partial index on the attention flag (tasks), (status, id) for the list filtered by
  status newest first, and placed_at (date filter).
- product_search: the full-text index of title and description. PostgreSQL: a table of
  weighted tsvectors (title A, description B) with a GIN index, in the text search
  configuration of the store's language, accents folded when the unaccent extension can be
  added (written by shop.catalog.search). SQLite: an FTS5
  table (porter stemmer, diacritics folded), rowid = product id. Neither is in the models'
  metadata: they are a derived index, not data.
- ledger_days: net, VAT and gross per UTC day, currency, destination and rate, kept by a
  trigger on every ledger rate row written, so a VAT summary reads at most one row per day
  and combination instead of every rate row of the period.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Money = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PG_TRIGGER = """
CREATE FUNCTION ledger_days_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_days (day, currency, destination_country, tax_rate_bp, net, vat, gross)
    SELECT (e.entry_date AT TIME ZONE 'UTC')::date, e.currency, e.destination_country,
           NEW.tax_rate_bp, NEW.net, NEW.vat, NEW.gross
    FROM ledger_entries e WHERE e.id = NEW.entry_id
    ON CONFLICT (day, currency, destination_country, tax_rate_bp) DO UPDATE
    SET net = ledger_days.net + EXCLUDED.net, vat = ledger_days.vat + EXCLUDED.vat,
        gross = ledger_days.gross + EXCLUDED.gross;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_rates_days AFTER INSERT ON ledger_rates
    FOR EACH ROW EXECUTE FUNCTION ledger_days_add();
"""

# shop.db.UTCDateTime keeps naive UTC text on SQLite: its first ten characters are the day.
SQLITE_TRIGGER = """
CREATE TRIGGER ledger_rates_days AFTER INSERT ON ledger_rates BEGIN
    INSERT INTO ledger_days (day, currency, destination_country, tax_rate_bp, net, vat, gross)
    SELECT substr(e.entry_date, 1, 10), e.currency, e.destination_country,
           NEW.tax_rate_bp, NEW.net, NEW.vat, NEW.gross
    FROM ledger_entries e WHERE e.id = NEW.entry_id
    ON CONFLICT (day, currency, destination_country, tax_rate_bp) DO UPDATE
    SET net = ledger_days.net + excluded.net, vat = ledger_days.vat + excluded.vat,
        gross = ledger_days.gross + excluded.gross;
END
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Not partial: SQLite uses a partial index only when the query repeats its WHERE word for
    # word, and SQLAlchemy writes "active = 1" there; an equality on the first column serves
    # both databases.
    op.create_index("ix_products_listing", "products", ["active", "position", "id"])
    attention = sa.text("attention IS NOT NULL")
    op.create_index(
        "ix_orders_attention", "orders", ["id"], postgresql_where=attention, sqlite_where=attention
    )
    op.create_index("ix_orders_placed_at", "orders", ["placed_at"])
    op.create_index("ix_orders_status_id", "orders", ["status", "id"])

    op.create_table(
        "ledger_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("destination_country", sa.String(2), nullable=False),
        sa.Column("tax_rate_bp", sa.Integer(), nullable=False),
        sa.Column("net", Money, nullable=False),
        sa.Column("vat", Money, nullable=False),
        sa.Column("gross", Money, nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "currency", "destination_country", "tax_rate_bp", name="pk_ledger_days"
        ),
    )
    day = "(e.entry_date AT TIME ZONE 'UTC')::date" if postgres else "substr(e.entry_date, 1, 10)"
    op.execute(f"""
        INSERT INTO ledger_days (day, currency, destination_country, tax_rate_bp, net, vat, gross)
        SELECT {day}, e.currency, e.destination_country, r.tax_rate_bp,
               sum(r.net), sum(r.vat), sum(r.gross)
        FROM ledger_rates r JOIN ledger_entries e ON e.id = r.entry_id
        GROUP BY {day}, e.currency, e.destination_country, r.tax_rate_bp""")
    op.execute(PG_TRIGGER if postgres else SQLITE_TRIGGER)

    if postgres:
        # Accent folding for search if this role may add the extension (PostgreSQL 13+ lets a
        # database owner add unaccent); without it search works, accents count.
        bind = op.get_bind()
        try:
            with bind.begin_nested():
                bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS unaccent")
        except sa.exc.DBAPIError:
            pass
        op.execute("""
            CREATE TABLE product_search (
                product_id integer PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
                language text NOT NULL,
                document tsvector NOT NULL)""")
        op.execute("CREATE INDEX ix_product_search_document ON product_search USING gin (document)")
        op.execute("""
            INSERT INTO product_search (product_id, language, document)
            SELECT id, 'simple', setweight(to_tsvector('simple', title), 'A')
                                 || setweight(to_tsvector('simple', description), 'B')
            FROM products""")
    else:
        op.execute("""
            CREATE VIRTUAL TABLE product_search USING fts5(
                title, description, tokenize = 'porter unicode61 remove_diacritics 2',
                prefix = '2 3')""")
        op.execute(
            "INSERT INTO product_search (rowid, title, description) "
            "SELECT id, title, description FROM products"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TABLE product_search")
    op.execute("DROP TRIGGER ledger_rates_days" + (" ON ledger_rates" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION ledger_days_add()")
    op.drop_table("ledger_days")
    op.drop_index("ix_orders_status_id", table_name="orders")
    op.drop_index("ix_orders_placed_at", table_name="orders")
    op.drop_index("ix_orders_attention", table_name="orders")
    op.drop_index("ix_products_listing", table_name="products")
