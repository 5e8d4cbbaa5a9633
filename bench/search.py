"""Product search alone: the service call a search page makes, timed in-process.

    python bench/seed.py URL --products 100000 --orders 0          # once
    python bench/search.py URL [--repeat 40] [--rounds 3] [--code DIR] [--explain]

For each query, ``shop.catalog.service.list_products`` (what the storefront runs on a cache
miss, without the template) is called --repeat times after a warm-up, in --rounds rounds that
go through every query in turn, so a busy moment of a shared machine hits all queries alike.
Reports the median and the 90th percentile of all calls, in ms. ``--code DIR`` imports the
shop from another checkout (a worktree of an older commit) to compare the same database.
``--explain`` prints PostgreSQL's EXPLAIN ANALYZE of each query's statement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

QUERIES = [
    ("rare word (~1.3 %)", "zanar"),
    ("title word (~4 %)", "roast"),
    ("prefix + stem (~1 %)", "kaffee"),
    ("two common words (~13 %)", "gift handmade"),
    ("common word (~37 %)", "handmade"),
    ("one-letter prefix (~43 %)", "h"),
    ("four words (~1 %)", "local made care gift"),
    ("no match", "qqqq"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--locale", default="en")
    parser.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.code))

    from sqlalchemy import event

    from shop.catalog import search, service
    from shop.db import Database

    database = Database(args.url, search_config=search.config_for(args.locale))
    statements: list[tuple[str, object]] = []
    event.listen(
        database.engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, params, context, many: statements.append((sql, params)),
    )
    times: dict[str, list[float]] = {label: [] for label, _ in QUERIES}
    found: dict[str, int] = {}
    with database.job_session() as s:
        for _ in range(args.rounds):
            for label, query in QUERIES:
                found[label] = len(service.list_products(s, query=query).items)  # warm-up
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    service.list_products(s, query=query)
                    times[label].append((time.perf_counter() - t0) * 1000)
        print(
            f"{database.engine.dialect.name}, code {args.code}: median / p90 of "
            f"{args.rounds} x {args.repeat} calls, ms; load average {os.getloadavg()[0]:.1f}"
        )
        for label, query in QUERIES:
            t = sorted(times[label])
            print(
                f"  {label:28s} {query!r:24s} {statistics.median(t):7.2f} "
                f"{t[int(len(t) * 0.9)]:7.2f}   {found[label]} shown"
            )
        if args.explain and database.is_postgres:
            for label, query in QUERIES:
                statements.clear()
                service.list_products(s, query=query)
                print(f"\n--- {label}: {query!r}")
                for sql, params in list(statements):
                    if "product_search" in sql:
                        print(params)
                        plan = s.connection().exec_driver_sql(
                            "EXPLAIN (ANALYZE, COSTS OFF) " + sql, params
                        )
                        print("\n".join(row[0] for row in plan))
    database.dispose()


if __name__ == "__main__":
    main()
