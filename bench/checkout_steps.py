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
import re
import time

from scratch import SLUG, scratch_shop
from sqlalchemy import event

from shop import create_app

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def HIDDEN(name: str) -> re.Pattern[str]:  # noqa: N802 (reads like the CSRF pattern)
    return re.compile(rf'name="{name}" type="hidden" value="([^"]*)"')


STEPS = ("product page", "add to cart", "cart page", "checkout page", "place order", "order page")


def one_checkout(client, step) -> None:
    page = step("product page", lambda: client.get(f"/products/{SLUG}")).text
    form = {
        "csrf_token": CSRF.search(page).group(1),
        "quantity": "1",
        "variant": re.search(r'name="variant" value="(\d+)" checked', page).group(1),
    }
    added = step("add to cart", lambda: client.post(f"/cart/add/{SLUG}", data=form))
    assert added.status_code == 303, added.status_code
    step("cart page", lambda: client.get("/cart"))
    page = step("checkout page", lambda: client.get("/checkout")).text
    form = {
        "csrf_token": CSRF.search(page).group(1),
        "name": "Bench Customer",
        "street": "1 Test Street",
        "postal_code": "10115",
        "city": "Berlin",
        "country": "DE",
        "shipping_rate": re.search(r'name="shipping_rate" value="(\d+)" checked', page).group(1),
        "payment_method": "demo",
        "submit": "Place order",
        "shown_country": "DE",
        # What the page showed: the order is placed once, and only for this total.
        "checkout_token": HIDDEN("checkout_token").search(page).group(1),
        "shown_total": HIDDEN("shown_total").search(page).group(1),
    }
    placed = step("place order", lambda: client.post("/checkout", data=form))
    assert placed.status_code == 303, placed.status_code
    step("order page", lambda: client.get(placed.headers["Location"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    with scratch_shop(sqlite=args.sqlite) as (_url, env):
        app = create_app(environ=env)
        try:
            measure(app, args)
        finally:
            app.extensions["shop.db"].dispose()


def measure(app, args) -> None:
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
        print(
            f"{label:14s} {best[label] * 1000:6.2f} ms  "
            f"{statements[label] / orders:4.1f} SQL statements"
        )
    print(
        f"{'one order':14s} {sum(best.values()) * 1000:6.2f} ms  "
        f"{sum(statements.values()) / orders:4.1f} SQL statements"
    )


if __name__ == "__main__":
    main()
