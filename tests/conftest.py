"""Fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from SHOP_TEST_POSTGRES_URL (CI sets it and then it must be reachable); without
it the local default is tried and, if nothing answers, the PostgreSQL variants are skipped.
Each test run gets its own PostgreSQL database, so parallel runs on one server never collide.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shop import create_app
from shop.db import Database, make_engine
from shop.migrate import upgrade
from shop.models import metadata

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _postgres_admin_url() -> tuple[str | None, str]:
    explicit = os.environ.get("SHOP_TEST_POSTGRES_URL")
    url = explicit or DEFAULT_POSTGRES
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return url, ""
    except Exception as exc:
        if explicit:
            raise RuntimeError(f"SHOP_TEST_POSTGRES_URL is set but unreachable: {exc}") from exc
        return None, f"PostgreSQL not reachable at {DEFAULT_POSTGRES} (set SHOP_TEST_POSTGRES_URL)"


@pytest.fixture(scope="session")
def postgres_url():
    admin_url, reason = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(reason)
    name = f"shop_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A database with no schema at all, of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    admin_url, reason = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(reason)
    name = f"shop_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A freshly migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "shop.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _truncate_all(url)
    return url


@pytest.fixture
def pg_url(postgres_url) -> str:
    """PostgreSQL only: for tests about concurrency, which SQLite cannot show."""
    _truncate_all(postgres_url)
    return postgres_url


def make_test_app(db_url: str, instance: Path, **overrides):
    config = {
        "database_url": db_url,
        "instance_path": str(instance),
        "secret_key": TEST_SECRET,
        "demo_payments": True,
        **overrides,
    }
    app = create_app(config, environ={})
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(db_url, tmp_path):
    app = make_test_app(db_url, tmp_path / "instance")
    yield app
    app.extensions["shop.db"].dispose()


@pytest.fixture
def database(app) -> Database:
    return app.extensions["shop.db"]


@pytest.fixture
def settings(app):
    return app.extensions["shop.settings"]


@pytest.fixture
def demo_catalog(app):
    from shop.demo import seed_demo

    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    return app


@pytest.fixture
def client(demo_catalog):
    return demo_catalog.test_client()
