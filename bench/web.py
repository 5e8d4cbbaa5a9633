"""Storefront throughput under gunicorn on PostgreSQL.

    python bench/web.py [--workers N] [--connections 16] [--seconds 15] [--clients 8] [--only pages|checkout]

Creates a scratch PostgreSQL database (SHOP_BENCH_POSTGRES_URL, default the local server), seeds
the demo catalog, starts gunicorn on loopback and measures with wrk (Debian package `wrk`): the
catalog and product pages, adding to the cart (bench/add_to_cart.lua) and full checkouts
(bench/checkout.lua); then drops the database. Load and server share the machine's cores, so the
numbers are a floor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

import requests
from scratch import ROOT, SKU, SLUG, STOCK, scratch_shop
from sqlalchemy import func, select

from shop.catalog.models import Variant
from shop.db import Database
from shop.orders.models import OrderLine


def wrk(url: str, connections: int, seconds: int, script: str | None = None) -> dict[str, float]:
    # A script keeps state per thread, so it gets one connection per thread.
    threads = connections if script else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            *(["-s", str(ROOT / "bench" / script)] if script else []),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    result = {
        "rps": rps,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1) if errors else "",
    }
    adds = re.search(r"ADDS added=(\d+) requests=(\d+)", out)
    if adds:
        # Each connection's first request fetches the product page; every other one must add.
        result["not_added"] = int(adds.group(2)) - int(adds.group(1)) - connections
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    # One sync worker per core: with the database on the same host a request waits on it only
    # briefly, and more workers than cores measured slower here (contention, not parallelism).
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--only", choices=["pages", "checkout"], help="measure just one part")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    with scratch_shop() as (url, env):
        measure(args, url, env)


def measure(args, url: str, env: dict[str, str]) -> None:
    server = None
    database = Database(url)
    try:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(args.workers),
                "--threads",
                str(args.threads),
                "-b",
                f"127.0.0.1:{args.port}",
                "--log-level",
                "warning",
                "shop:create_app()",
            ],
            env=env,
            cwd=ROOT,
        )
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok and server.poll() is None:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"gunicorn did not start on port {args.port} (is it in use?)")
        results = {}
        pages = (
            []
            if args.only == "checkout"
            else [
                ("catalog page", "/", None),
                ("product page", f"/products/{SLUG}", None),
                ("add to cart (POST, 303)", "/", "add_to_cart.lua"),
            ]
        )
        for label, path, script in pages:
            wrk(base + path, args.connections, 3, script)  # warm-up
            results[label] = wrk(base + path, args.connections, args.seconds, script)

        if args.only != "pages":
            out = subprocess.run(
                [
                    "wrk",
                    f"-t{args.clients}",
                    f"-c{args.clients}",
                    f"-d{args.seconds}s",
                    "-s",
                    str(ROOT / "bench" / "checkout.lua"),
                    base,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            done = re.search(
                r"CHECKOUTS orders=(\d+) failed=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+)", out
            )
            # One statement, one snapshot: units sold against stock taken, after the last request.
            # (Unpaid orders hold their units as reserved, paid ones as committed: taken = both.)
            time.sleep(2)
            with database.job_session() as s:
                sold, held = s.execute(
                    select(
                        select(func.coalesce(func.sum(OrderLine.quantity), 0))
                        .where(OrderLine.sku == SKU)
                        .scalar_subquery(),
                        select(Variant.reserved + Variant.committed)
                        .where(Variant.sku == SKU)
                        .scalar_subquery(),
                    )
                ).one()
                stock = STOCK - held
            results["full checkout (6 requests)"] = {
                "orders_per_s": int(done.group(1)) / args.seconds,
                "p50_ms": float(done.group(3)),
                "p99_ms": float(done.group(4)),
                "failed": int(done.group(2)),
                "units_sold": sold,
                "stock_taken": STOCK - stock,
                "oversold": STOCK - stock != sold,
            }
        print(
            f"gunicorn -w {args.workers} --threads {args.threads}, wrk -t2 -c{args.connections} "
            f"-d{args.seconds}s, checkouts: wrk -t{args.clients} -c{args.clients} -s bench/checkout.lua"
        )
        for label, r in results.items():
            print(
                f"{label:28s} "
                + "  ".join(
                    f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                )
            )
    finally:
        database.dispose()
        if server is not None:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
