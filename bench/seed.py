"""Fill a shop database with many products and orders, for the scale benchmarks.

    python bench/seed.py URL --products 100000 --orders 1000000 [--days 365] [--seed 1]

URL is a SQLAlchemy URL (``sqlite:///path.sqlite3`` or ``postgresql://user@host/db``). The
schema comes from the shop's own migrations (run first); rows go in through the shop's tables
with PostgreSQL's COPY or, on SQLite, one large executemany per table in one transaction. Each
product has 1–3 variants; each order 1–3 lines, and each paid order its ledger sale (entry,
lines, one row per VAT rate) as the order service would have written it. Data is
deterministic for a given --seed. Run it on an empty database, or again to add more (ids and
order numbers continue). Afterwards the search index is rebuilt and statistics are gathered.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shop.catalog import search  # noqa: E402
from shop.db import make_engine  # noqa: E402
from shop.migrate import upgrade  # noqa: E402
from shop.models import metadata  # noqa: E402
from shop.money import vat_included  # noqa: E402

ADJECTIVES = (
    "dark",
    "light",
    "smoky",
    "fruity",
    "mild",
    "strong",
    "organic",
    "wild",
    "golden",
    "harbour",
    "mountain",
    "forest",
    "river",
    "salted",
    "spiced",
    "classic",
    "royal",
    "rustic",
    "velvet",
    "crisp",
    "bitter",
    "sweet",
    "morning",
    "evening",
    "winter",
)
NOUNS = (
    "roast",
    "blend",
    "print",
    "poster",
    "notebook",
    "mug",
    "teapot",
    "kettle",
    "grinder",
    "scarf",
    "candle",
    "map",
    "book",
    "album",
    "jam",
    "honey",
    "tea",
    "coffee",
    "soap",
    "basket",
    "lamp",
    "blanket",
    "puzzle",
    "card",
    "bowl",
)
# Description words: common ones appear in many products, rare ones in few, so searches of
# different selectivity can be measured.
COMMON = (
    "handmade",
    "small",
    "batch",
    "gift",
    "local",
    "made",
    "with",
    "care",
    "from",
    "our",
    "workshop",
    "fair",
    "trade",
    "natural",
    "quality",
    "favourite",
    "every",
    "day",
)
RARE = tuple(
    f"{a}{n}"
    for a in ("zan", "mor", "tel", "vik", "qua", "bre", "dos", "lum")
    for n in ("ar", "el", "ix", "on", "ur", "ia", "et", "os", "ik", "um")
)
GERMAN = ("Kaffee", "Röstung", "Bohnen", "Geschenk", "handgemacht", "Tasse", "Kaffees", "Tees")
COUNTRIES = ("DE", "DE", "DE", "AT", "FR", "NL", "IT", "ES", "BE", "PL")
METHODS = ("card", "card", "bitcoin", "demo")
RATES = (1900, 700)


DAY_SUMS = """
    INSERT INTO ledger_days (day, currency, tax_country, destination_country, tax_rate_bp,
                             net, vat, gross)
    SELECT (e.entry_date AT TIME ZONE 'UTC')::date, e.currency, COALESCE(r.tax_country, '-'),
           e.destination_country, r.tax_rate_bp, sum(r.net), sum(r.vat), sum(r.gross)
    FROM ledger_rates r JOIN ledger_entries e ON e.id = r.entry_id
    WHERE r.id >= :first
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (day, currency, tax_country, destination_country, tax_rate_bp) DO UPDATE
    SET net = ledger_days.net + EXCLUDED.net, vat = ledger_days.vat + EXCLUDED.vat,
        gross = ledger_days.gross + EXCLUDED.gross"""


# The columns each row written below fills, in its order; any other column (added by a later
# migration) gets its default.
SEEDED_COLUMNS = {
    "products": [
        "id",
        "slug",
        "title",
        "description",
        "kind",
        "active",
        "tax_class_id",
        "position",
        "created_at",
    ],
    "variants": [
        "id",
        "product_id",
        "sku",
        "label",
        "price",
        "on_hand",
        "reserved",
        "committed",
        "active",
        "position",
    ],
    "orders": [
        "id",
        "number",
        "token",
        "ref",
        "status",
        "currency",
        "subtotal",
        "shipping",
        "shipping_tax_rate_bp",
        "total",
        "vat_total",
        "amount_paid",
        "amount_refunded",
        "requires_shipping",
        "shipping_method",
        "country",
        "payment_method",
        "checkout_token",
        "placed_at",
        "expires_at",
        "paid_at",
        "fulfilled_at",
        "closed_at",
        "cancelled_at",
        "expired_at",
        "attention",
        "personal_data_erase_requested_at",
        "personal_data_erased_at",
    ],
    "order_lines": [
        "id",
        "order_id",
        "variant_id",
        "product_title",
        "variant_label",
        "sku",
        "kind",
        "unit_price",
        "quantity",
        "tax_rate_bp",
        "line_total",
        "stock_state",
    ],
    "ledger_entries": [
        "id",
        "key",
        "kind",
        "order_number",
        "order_date",
        "entry_date",
        "currency",
        "net",
        "vat",
        "gross",
        "payment_method",
        "payment_reference",
        "destination_country",
        "created_at",
    ],
    "ledger_lines": [
        "id",
        "entry_id",
        "position",
        "description",
        "sku",
        "quantity",
        "unit_price",
        "tax_rate_bp",
        "gross",
    ],
    "ledger_rates": ["id", "entry_id", "tax_rate_bp", "net", "vat", "gross"],
}


def _table_ids(conn, table: str) -> int:
    return conn.execute(
        select(func.coalesce(func.max(metadata.tables[table].c.id), 0))
    ).scalar_one()


class Writer:
    """Rows per table, written in chunks: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, conn, chunk: int = 50_000):
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.chunk = chunk
        self.pending: dict[str, list[tuple]] = {}
        self.counts: dict[str, int] = {}

    def add(self, table: str, row: tuple) -> None:
        rows = self.pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        # Parents before children: the foreign keys are checked row by row.
        for name in [t.name for t in metadata.sorted_tables if t.name in self.pending]:
            rows = self.pending.get(name)
            if not rows:
                continue
            columns = SEEDED_COLUMNS[name]
            if self.pg:
                raw = self.conn.connection.dbapi_connection
                with (
                    raw.cursor() as cur,
                    cur.copy(f'COPY "{name}" ({", ".join(columns)}) FROM STDIN') as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
            else:
                raw = self.conn.connection.dbapi_connection
                marks = ", ".join("?" * len(columns))
                raw.executemany(
                    f'INSERT INTO "{name}" ({", ".join(columns)}) VALUES ({marks})',
                    [tuple(_sqlite(v) for v in row) for row in rows],
                )
            self.counts[name] = self.counts.get(name, 0) + len(rows)
            rows.clear()


def _sqlite(value):
    # What shop.db.UTCDateTime stores on SQLite: naive UTC text.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def seed(
    url: str,
    products: int,
    orders: int,
    days: int = 365,
    seed_value: int = 1,
    now: datetime | None = None,
    quiet: bool = False,
    locale: str = "en",
) -> dict[str, int]:
    rng = random.Random(seed_value)
    now = now or datetime.now(UTC).replace(microsecond=0)
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        writer = Writer(conn)
        tax_ids = _tax_classes(conn)
        product_id, variant_id = _table_ids(conn, "products"), _table_ids(conn, "variants")
        first_product = product_id + 1
        variants: list[tuple[int, str, str, str, int, int, str]] = []  # for order lines
        for i in range(products):
            product_id += 1
            adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
            words = rng.choices(COMMON, k=8) + [rng.choice(RARE)]
            if rng.random() < 0.05:
                words.append(rng.choice(GERMAN))
            rng.shuffle(words)
            title = f"{adjective.title()} {noun} no. {product_id}"
            kind = (
                "digital" if noun in ("album", "book", "map") and rng.random() < 0.5 else "physical"
            )
            rate = 700 if noun in ("book", "jam", "honey", "tea", "coffee") else 1900
            # Ties in the listing's sort key: many products share a position.
            writer.add(
                "products",
                (
                    product_id,
                    f"p{product_id}-{adjective}-{noun}",
                    title,
                    " ".join(words).capitalize() + ".",
                    kind,
                    rng.random() > 0.02,
                    tax_ids[rate],
                    i // 10,
                    now - timedelta(days=rng.randrange(days)),
                ),
            )
            for position in range(rng.choice((1, 1, 2, 3))):
                variant_id += 1
                label = ("", "Large", "Gift box")[position]
                price = rng.randrange(300, 20_000, 10)
                sku = f"S{variant_id}"
                writer.add(
                    "variants",
                    (
                        variant_id,
                        product_id,
                        sku,
                        label,
                        price,
                        None if kind == "digital" else 1_000_000,
                        0,
                        0,
                        True,
                        position,
                    ),
                )
                if len(variants) < 20_000:
                    variants.append((variant_id, title, label, sku, price, rate, kind))
        writer.flush()
        if orders and not variants:
            variants = _existing_variants(conn)
        first_rate = _table_ids(conn, "ledger_rates") + 1
        if pg:
            # The per-row trigger that keeps the day sums is the slowest part of a bulk load:
            # off while copying (this locks the table: a benchmark database, not a live shop),
            # then the same sums in one statement.
            conn.exec_driver_sql("ALTER TABLE ledger_rates DISABLE TRIGGER ledger_rates_days")
        _orders(writer, conn, rng, variants, orders, days, now)
        writer.flush()
        if pg:
            conn.exec_driver_sql("ALTER TABLE ledger_rates ENABLE TRIGGER ledger_rates_days")
            conn.execute(text(DAY_SUMS), {"first": first_rate})
        if pg:
            for table in (
                "products",
                "variants",
                "orders",
                "order_lines",
                "ledger_entries",
                "ledger_rates",
                "ledger_lines",
                "tax_classes",
            ):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        if products:
            search.reindex(conn, search.config_for(locale), first_id=first_product)
    # Statistics for the planner, outside the transaction (VACUUM cannot run inside one).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()
    if not quiet:
        print(
            f"seeded in {time.perf_counter() - started:.1f} s: "
            + ", ".join(f"{k} {v}" for k, v in writer.counts.items())
        )
    return writer.counts


def _tax_classes(conn) -> dict[int, int]:
    table = metadata.tables["tax_classes"]
    ids = {rate: id_ for id_, rate in conn.execute(select(table.c.id, table.c.rate_bp))}
    for rate, code in ((1900, "bench-standard"), (700, "bench-reduced")):
        if rate not in ids:
            ids[rate] = conn.execute(
                table.insert().values(code=code, name=code, rate_bp=rate).returning(table.c.id)
            ).scalar_one()
    return ids


def _existing_variants(conn) -> list[tuple]:
    rows = conn.execute(
        text(
            "SELECT v.id, p.title, v.label, v.sku, v.price, t.rate_bp, p.kind FROM variants v "
            "JOIN products p ON p.id = v.product_id JOIN tax_classes t ON t.id = p.tax_class_id "
            "ORDER BY v.id LIMIT 20000"
        )
    ).all()
    if not rows:
        raise SystemExit("orders need products: seed some with --products")
    return [tuple(r) for r in rows]


def _orders(
    writer: Writer, conn, rng: random.Random, variants, count: int, days: int, now: datetime
) -> None:
    order_id, line_id = _table_ids(conn, "orders"), _table_ids(conn, "order_lines")
    entry_id, rate_id = _table_ids(conn, "ledger_entries"), _table_ids(conn, "ledger_rates")
    ledger_line_id = _table_ids(conn, "ledger_lines")
    counters = dict(conn.execute(text("SELECT year, last FROM order_number_counters")).all())
    span = days * 86_400
    # Spread evenly over the period, oldest first, so ids grow with time as in a real shop.
    for i in range(count):
        order_id += 1
        placed = now - timedelta(seconds=span * (count - i) // count)
        year = placed.year
        counters[year] = counters.get(year, 0) + 1
        number = f"{year}-{counters[year]:06d}"
        roll = rng.random()
        status = (
            "closed"
            if roll < 0.6
            else "fulfilled"
            if roll < 0.75
            else "paid"
            if roll < 0.85
            else "expired"
            if roll < 0.95
            else "pending_payment"
        )
        paid = status in ("closed", "fulfilled", "paid")
        lines = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            v_id, title, label, sku, price, rate, kind = rng.choice(variants)
            quantity = rng.choice((1, 1, 1, 2))
            lines.append((v_id, title, label, sku, kind, price, quantity, rate, price * quantity))
        physical = any(line[4] == "physical" for line in lines)
        shipping = 490 if physical else 0
        subtotal = sum(line[8] for line in lines)
        gross_by_rate: dict[int, int] = {}
        for line in lines:
            gross_by_rate[line[7]] = gross_by_rate.get(line[7], 0) + line[8]
        if shipping:
            gross_by_rate[1900] = gross_by_rate.get(1900, 0) + shipping
        vat_by_rate = {r: vat_included(g, r) for r, g in gross_by_rate.items()}
        total = subtotal + shipping
        method = rng.choice(METHODS)
        paid_at = placed + timedelta(minutes=rng.randrange(1, 30)) if paid else None
        attention = (
            "Paid after the invoice expired; check and decide." if rng.random() < 0.001 else None
        )
        token = f"{rng.getrandbits(256):064x}"
        country = rng.choice(COUNTRIES)
        writer.add(
            "orders",
            (
                order_id,
                number,
                token,
                f"{rng.getrandbits(128):032x}",
                status,
                "EUR",
                subtotal,
                shipping,
                1900 if shipping else 0,
                total,
                sum(vat_by_rate.values()),
                total if paid else 0,
                0,
                physical,
                "Standard" if physical else "",
                country,
                method,
                None,
                placed,
                placed + timedelta(hours=1),
                paid_at,
                placed + timedelta(days=2) if status in ("closed", "fulfilled") else None,
                placed + timedelta(days=9) if status == "closed" else None,
                None,
                placed + timedelta(hours=1) if status == "expired" else None,
                attention,
                None,
                None,
            ),
        )
        state = "committed" if status == "paid" else "shipped" if paid else "none"
        for v_id, title, label, sku, kind, price, quantity, rate, line_total in lines:
            line_id += 1
            writer.add(
                "order_lines",
                (
                    line_id,
                    order_id,
                    v_id,
                    title,
                    label,
                    sku,
                    kind,
                    price,
                    quantity,
                    rate,
                    line_total,
                    state,
                ),
            )
        if not paid:
            continue
        entry_id += 1
        vat = sum(vat_by_rate.values())
        writer.add(
            "ledger_entries",
            (
                entry_id,
                f"sale:{number}",
                "sale",
                number,
                placed,
                paid_at,
                "EUR",
                total - vat,
                vat,
                total,
                method,
                f"ref_{order_id}",
                country,
                paid_at,
            ),
        )
        for rate in sorted(gross_by_rate, reverse=True):
            rate_id += 1
            writer.add(
                "ledger_rates",
                (
                    rate_id,
                    entry_id,
                    rate,
                    gross_by_rate[rate] - vat_by_rate[rate],
                    vat_by_rate[rate],
                    gross_by_rate[rate],
                ),
            )
        for position, (_, title, label, sku, _, price, quantity, rate, line_total) in enumerate(
            lines, 1
        ):
            ledger_line_id += 1
            writer.add(
                "ledger_lines",
                (
                    ledger_line_id,
                    entry_id,
                    position,
                    f"{title} — {label}" if label else title,
                    sku,
                    quantity,
                    price,
                    rate,
                    line_total,
                ),
            )
        if shipping:
            ledger_line_id += 1
            writer.add(
                "ledger_lines",
                (
                    ledger_line_id,
                    entry_id,
                    len(lines) + 1,
                    "Shipping: Standard",
                    "",
                    1,
                    shipping,
                    1900,
                    shipping,
                ),
            )
    writer.flush()
    table = metadata.tables["order_number_counters"]
    for year, last in counters.items():
        conn.execute(table.delete().where(table.c.year == year))
        conn.execute(table.insert().values(year=year, last=last))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365, help="orders spread over this many days")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--locale", default="en", help="the store's SHOP_LOCALE (search language)")
    args = parser.parse_args()
    seed(args.url, args.products, args.orders, args.days, args.seed, locale=args.locale)


if __name__ == "__main__":
    main()
