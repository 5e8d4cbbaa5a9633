"""A seeded demo shop in a throwaway database, for the storefront benchmarks."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shop.catalog.models import Variant  # noqa: E402
from shop.config import load_settings  # noqa: E402
from shop.db import Database  # noqa: E402
from shop.demo import seed_demo  # noqa: E402
from shop.migrate import upgrade  # noqa: E402

ADMIN_URL = os.environ.get(
    "SHOP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Every benchmark customer buys this print; its stock is made large enough for any run.
SKU, SLUG, STOCK = "PRINT-HARB-A4", "harbour-at-dawn", 10**6


@contextmanager
def scratch_shop(*, sqlite: bool = False) -> Iterator[tuple[str, dict[str, str]]]:
    """(database URL, environment for the app) of a new demo shop; all of it is gone after."""
    instance = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    name = f"shop_bench_{uuid.uuid4().hex[:8]}"
    admin = None
    if sqlite:
        url = f"sqlite:///{instance}/bench.sqlite3"
    else:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    env = {
        **os.environ,
        "SHOP_DATABASE_URL": url,
        "SHOP_INSTANCE_PATH": str(instance),
        "SHOP_SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
        "SHOP_DEMO_PAYMENTS": "1",
    }
    try:
        database = Database(url)
        upgrade(database.engine)
        seed_demo(database, load_settings(env))
        with database.job_session() as s:
            s.execute(update(Variant).where(Variant.sku == SKU).values(on_hand=STOCK))
        database.dispose()
        yield url, env
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(instance, ignore_errors=True)
