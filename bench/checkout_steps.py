"""Where a guest checkout's time goes: each of its six requests, in-process.

    python bench/checkout_steps.py [--orders 300] [--batch 50] [--sqlite]

Runs whole checkouts through the Flask test client (no HTTP server, no load generator) against a
scratch PostgreSQL database (SHOP_BENCH_POSTGRES_URL, default the local server) or SQLite, and
prints per step the best mean over batches of orders (the machine's noise only ever adds time)
and the SQL statements the step sends. For throughput under gunicorn use bench/web.py.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, event, text, update
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shop import create_app  # noqa: E402
from shop.catalog.models import Variant  # noqa: E402
from shop.config import load_settings  # noqa: E402
from shop.db import Database  # noqa: E402
from shop.demo import seed_demo  # noqa: E402
from shop.migrate import upgrade  # noqa: E402

ADMIN_URL = os.environ.get("SHOP_BENCH_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
STEPS = ("product page", "add to cart", "cart page", "checkout page", "place order", "order page")


def one_checkout(client, step) -> None:
    page = step("product page", lambda: client.get("/products/harbour-at-dawn")).text
    form = {"csrf_token": CSRF.search(page).group(1), "quantity": "1",
            "variant": re.search(r'name="variant" value="(\d+)" checked', page).group(1)}
    added = step("add to cart", lambda: client.post("/cart/add/harbour-at-dawn", data=form))
    assert added.status_code == 303, added.status_code
    step("cart page", lambda: client.get("/cart"))
    page = step("checkout page", lambda: client.get("/checkout")).text
    form = {"csrf_token": CSRF.search(page).group(1), "name": "Bench Customer",
            "street": "1 Test Street", "postal_code": "10115", "city": "Berlin", "country": "DE",
            "shipping_rate": re.search(r'name="shipping_rate" value="(\d+)" checked', page).group(1),
            "payment_method": "demo", "submit": "Place order"}
    placed = step("place order", lambda: client.post("/checkout", data=form))
    assert placed.status_code == 303, placed.status_code
    step("order page", lambda: client.get(placed.headers["Location"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    instance = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    name = f"shop_bench_{uuid.uuid4().hex[:8]}"
    admin = None
    if args.sqlite:
        url = f"sqlite:///{instance}/bench.sqlite3"
    else:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "SHOP_DATABASE_URL": url, "SHOP_INSTANCE_PATH": str(instance),
           "SHOP_SECRET_KEY": "bench-" + uuid.uuid4().hex * 2, "SHOP_DEMO_PAYMENTS": "1"}
    app = None
    try:
        database = Database(url)
        upgrade(database.engine)
        seed_demo(database, load_settings(env))
        with database.job_session() as s:
            s.execute(update(Variant).where(Variant.sku == "PRINT-HARB-A4").values(stock=10**6))
        database.dispose()
        app = create_app(environ=env)

        current: list[str | None] = [None]
        statements: collections.Counter[str] = collections.Counter()

        @event.listens_for(app.extensions["shop.db"].engine, "before_cursor_execute")
        def _count(*_args) -> None:
            if current[0]:
                statements[current[0]] += 1

        spent: collections.Counter[str] = collections.Counter()

        def step(label, request):
            current[0] = label
            started = time.perf_counter()
            response = request()
            spent[label] += time.perf_counter() - started
            current[0] = None
            return response

        for _ in range(20):  # warm-up: caches, prepared statements, the pool
            one_checkout(app.test_client(), step)
        spent.clear()
        statements.clear()
        best = {label: float("inf") for label in STEPS}
        batches = max(1, args.orders // args.batch)
        for _ in range(batches):
            spent.clear()
            for _ in range(args.batch):
                one_checkout(app.test_client(), step)
            for label in STEPS:
                best[label] = min(best[label], spent[label] / args.batch)
        orders = batches * args.batch
        backend = "SQLite" if args.sqlite else "PostgreSQL"
        print(f"{backend}, {orders} orders, best mean of {batches} batches of {args.batch}")
        for label in STEPS:
            print(f"{label:14s} {best[label] * 1000:6.2f} ms  "
                  f"{statements[label] / orders:4.1f} SQL statements")
        print(f"{'one order':14s} {sum(best.values()) * 1000:6.2f} ms  "
              f"{sum(statements.values()) / orders:4.1f} SQL statements")
    finally:
        if app is not None:
            app.extensions["shop.db"].dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
