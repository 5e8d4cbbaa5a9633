"""The schema is created only by migrations, and the migrations match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shop.db import make_engine
from shop.migrate import current_heads
from shop.models import metadata


def _derived(name: str) -> bool:
    """The product search index (and SQLite FTS5's shadow tables): derived, not modelled."""
    return name.startswith("product_search")


def test_migrations_match_models(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: kind != "table" or not _derived(name),
            },
        )
        diff = compare_metadata(context, metadata)
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    engine.dispose()
    assert diff == [], f"models and migrations differ; write a migration for: {diff}"
    assert (version,) == current_heads()


def test_every_table_comes_from_a_migration(db_url):
    engine = make_engine(db_url)
    tables = {
        t for t in inspect(engine).get_table_names() if t != "alembic_version" and not _derived(t)
    }
    engine.dispose()
    assert tables == set(metadata.tables)


def test_single_migration_head():
    assert len(current_heads()) == 1


def test_every_money_column_is_64_bit_on_postgresql():
    """A store priced in BTC counts satoshis: 32 bits end at 21.47 BTC."""
    import re

    from sqlalchemy.dialects import postgresql

    money = re.compile(
        r"(price|total|amount|_sats|^net$|^vat$|^gross$|^shipping$|free_over"
        r"|amount_paid|amount_refunded)"
    )
    narrow = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if money.search(column.name)
        and not column.name.endswith(("_id", "_bp"))
        and column.type.compile(dialect=postgresql.dialect()) in ("INTEGER", "SMALLINT")
    ]
    assert narrow == [], "money columns must use shop.db.Money (BIGINT)"
