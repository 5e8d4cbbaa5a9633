"""Run Alembic programmatically against the migrations shipped with the package."""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from shop.resources import resource_dir


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@dataclass(frozen=True)
class Upgraded:
    before: str | None  # the revision the database was at; None: it had no schema
    after: str | None
    tables: int  # tables in the schema afterwards

    def describe(self) -> str:
        if self.before is None:
            return (
                f"Created a new shop database: {self.tables} tables, schema revision {self.after}."
            )
        if self.before == self.after:
            return f"The database is already up to date (schema revision {self.after})."
        return f"Upgraded the database schema from revision {self.before} to {self.after}."


def _revision(connection) -> str | None:
    heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None


def upgrade(engine: Engine, revision: str = "heads") -> Upgraded:
    with engine.connect() as connection:
        before = _revision(connection)
        # End that read: on SQLite the migrations must start outside a transaction (env.py).
        connection.rollback()
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        after = _revision(connection)
        tables = len(set(inspect(connection).get_table_names()) - {"alembic_version"})
    return Upgraded(before, after, tables)


def downgrade(engine: Engine, revision: str) -> None:
    """Step the schema back (tests prove every migration reverses; DEPLOY.md's rollback)."""
    with engine.connect() as connection:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_heads() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())
