"""Engine, session scopes and the declarative Base.

Only two places commit: the request scope (after the view returned) and the job scope (after a
job ran). Services take a Session and never commit, so a failed request leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Engine, Result
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

# Amounts in minor units or satoshis: 64 bits, or a store priced in BTC stops at 21.47 BTC.
# SQLite keeps every INTEGER in up to 8 bytes already, so its columns stay as they were.
Money = BigInteger().with_variant(Integer(), "sqlite")

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def personal(**info: object) -> dict[str, object]:
    """Column info marking personal data; docs/PRIVACY.md must list every such column."""
    return {"personal": True, **info}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use shop.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. Session.execute is typed as returning a Result; for
    these statements it is a CursorResult, which counts them."""
    return cast("CursorResult[Any]", result).rowcount


def make_engine(url: str, **kwargs: object) -> Engine:
    # SQL parameters carry order tokens and ciphertext: keep them out of logged statements and
    # out of the text of database errors (which reach the error log with their traceback).
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; the bare scheme would pick psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling delays BEGIN until the first write, so a read
        # and the write that depends on it would not be one transaction; emit BEGIN ourselves.
        # Writers (requests that change something, short jobs that ask: Database.writer) begin
        # IMMEDIATE: they take the write lock up front and wait (busy_timeout) for each other
        # instead of failing with "database is locked" when their snapshot went stale between
        # their read and their write. Everything else begins deferred and only reads.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_begin(conn) -> None:
    immediate = conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE"
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten content is zeroed in the file instead of lingering in free pages.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def checkpoint_sqlite(engine: Engine) -> None:
    """Fold the write-ahead log into the file and truncate it (after an erasure: the WAL still
    holds the old pages). Best effort: a reader in the middle of a snapshot makes it partial."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        # On the driver's connection: through SQLAlchemy the statement would open a transaction
        # (our BEGIN hook), inside which the checkpoint cannot truncate the log.
        driver = conn.connection.dbapi_connection
        assert driver is not None  # None only after the connection was invalidated
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class Database:
    def __init__(self, url: str, *, search_config: str = "simple", **engine_kwargs: object):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        # The text search configuration the product index is written in (shop.catalog.search).
        self.search_config = search_config
        self.sessionmaker = sessionmaker(
            self.engine, expire_on_commit=False, info={"search_config": search_config}
        )
        # Bind a session here for work that writes (see _sqlite_begin); on PostgreSQL it is the
        # same engine and pool.
        self.writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def job_session(self, *, write_lock: bool = False) -> Iterator[Session]:
        """One unit of work for a background job: commit on success, roll back on error.

        ``write_lock=True`` for a short job that reads and then writes while others may write
        too (on SQLite it takes the write lock up front and waits for it instead of failing);
        never for a job that does slow work, such as a network call, inside."""
        session = self.sessionmaker(bind=self.writer) if write_lock else self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def write_session(self):
        """A short unit of work that writes, e.g. between two calls to a payment provider."""
        return self.job_session(write_lock=True)

    def dispose(self) -> None:
        self.engine.dispose()


class AdvisoryLock:
    """A PostgreSQL session advisory lock, so one process of several does a job (the chain
    watcher, the Lightning listener). It lives as long as its connection; SQLite has one
    worker, so there it is always granted."""

    def __init__(self, database: Database, key: int, name: str):
        self.database, self.key, self.name = database, key, name
        self.conn: Connection | None = None

    def acquire(self) -> bool:
        if not self.database.is_postgres:
            return True
        if self.conn is not None:
            try:
                # If the connection broke (database restart, network), another worker may hold
                # the lock now: take it anew.
                self.conn.execute(select(1))
                self.conn.commit()
                return True
            except SQLAlchemyError:
                log.warning("lost the %s's lock connection; taking the lock again", self.name)
                self.conn.invalidate()
                self.conn.close()
                self.conn = None
        conn = self.database.engine.connect()
        got = conn.execute(select(func.pg_try_advisory_lock(self.key))).scalar()
        conn.commit()
        if not got:
            conn.close()
            return False
        self.conn = conn
        return True

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(select(func.pg_advisory_unlock(self.key)))
                self.conn.commit()
            finally:
                self.conn.close()
                self.conn = None


def insert_for(session: Session, model: type) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (PostgreSQL and SQLite share the syntax)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)
