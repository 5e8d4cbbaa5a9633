"""Alembic environment: the shop's models are the target; the connection comes from shop.migrate."""

from __future__ import annotations

from alembic import context

from shop.db import make_engine
from shop.models import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode drops and recreates tables; with foreign keys enforced, dropping a parent
        # table deletes its children through ON DELETE CASCADE. SQLite's own recipe: switch
        # enforcement off outside any transaction, migrate, check, switch it on again.
        _sqlite_foreign_keys(connection, False)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()
    if sqlite:
        _sqlite_foreign_keys(connection, True)
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if connection.in_transaction():
            connection.commit()
        if problems:
            raise RuntimeError(f"the migration left broken foreign keys: {problems[:5]}")


def _sqlite_foreign_keys(connection, on: bool) -> None:
    raw = connection.connection.driver_connection
    if raw.in_transaction:
        raise RuntimeError("cannot change SQLite's foreign key enforcement inside a transaction")
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run `shop db upgrade`")
run_migrations()
