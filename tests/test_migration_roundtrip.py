"""Every migration reverses: down to nothing and up again gives the models' schema exactly.

An upgrade that cannot be undone leaves a merchant with no way back from a bad release; one that
undoes only part of itself leaves a schema the next upgrade trips over.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shop.db import make_engine
from shop.migrate import current_heads, downgrade, upgrade
from shop.models import metadata
from tests.test_schema import _derived


def _tables(engine) -> set[str]:
    return {
        t for t in inspect(engine).get_table_names() if t != "alembic_version" and not _derived(t)
    }


def _diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(
            MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, kind, _parent: (
                        kind != "table" or not _derived(name)
                    ),
                },
            ),
            metadata,
        )


def test_upgrade_downgrade_upgrade_gives_the_models_schema(empty_url):
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        assert _tables(engine) == set(metadata.tables)
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set(), (
            "a downgrade left tables behind"
        )
        upgrade(engine)
        assert _diff(engine) == [], "after down and up again, models and schema differ"
        assert upgrade(engine).after == ",".join(current_heads())
    finally:
        engine.dispose()


def test_each_step_down_and_up_again(empty_url):
    """One revision back from the head and forward again: what a rollback of the latest
    release does to a database that is in use."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        downgrade(engine, "-1")
        assert upgrade(engine).after == ",".join(current_heads())
        assert _diff(engine) == []
    finally:
        engine.dispose()
