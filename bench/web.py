"""Storefront throughput under gunicorn on PostgreSQL.

    python bench/web.py [--workers N] [--connections 16] [--seconds 15] [--clients 8] [--only pages|checkout]

Creates a scratch PostgreSQL database (SHOP_BENCH_POSTGRES_URL, default the local server), seeds
the demo catalog, starts gunicorn on loopback, measures the catalog and product pages with wrk
(Debian package `wrk`) and full checkouts with wrk driven by bench/checkout.lua, then drops the
database. Load and server share the machine's cores, so the numbers are a floor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shop.catalog.models import Variant  # noqa: E402
from shop.config import load_settings  # noqa: E402
from shop.db import Database  # noqa: E402
from shop.demo import seed_demo  # noqa: E402
from shop.migrate import upgrade  # noqa: E402
from shop.orders.models import OrderLine  # noqa: E402

ADMIN_URL = os.environ.get("SHOP_BENCH_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SKU = "PRINT-HARB-A4"


def wrk(url: str, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {"rps": rps, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "errors": errors.group(1) if errors else ""}


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

    name = f"shop_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    instance = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    env = {**os.environ, "SHOP_DATABASE_URL": url, "SHOP_INSTANCE_PATH": str(instance),
           "SHOP_SECRET_KEY": "bench-" + uuid.uuid4().hex * 2, "SHOP_DEMO_PAYMENTS": "1"}
    server = None
    try:
        settings = load_settings(env)
        database = Database(url)
        upgrade(database.engine)
        seed_demo(database, settings)
        with database.job_session() as s:
            s.execute(update(Variant).where(Variant.sku == SKU).values(stock=10**6))
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "--threads", str(args.threads),
             "-b", f"127.0.0.1:{args.port}", "--log-level", "warning", "shop:create_app()"],
            env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        results = {}
        pages = [] if args.only == "checkout" else [
            ("catalog page", "/"), ("product page", "/products/harbour-at-dawn")]
        for label, path in pages:
            wrk(base + path, args.connections, 3)  # warm-up
            results[label] = wrk(base + path, args.connections, args.seconds)

        if args.only != "pages":
            out = subprocess.run(
                ["wrk", f"-t{args.clients}", f"-c{args.clients}", f"-d{args.seconds}s",
                 "-s", str(ROOT / "bench" / "checkout.lua"), base],
                capture_output=True, text=True, check=True).stdout
            done = re.search(r"CHECKOUTS orders=(\d+) failed=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+)", out)
            # One statement, one snapshot: units sold against stock taken, after the last request.
            time.sleep(2)
            with database.job_session() as s:
                sold, stock = s.execute(
                    select(select(func.coalesce(func.sum(OrderLine.quantity), 0))
                           .where(OrderLine.sku == SKU).scalar_subquery(),
                           select(Variant.stock).where(Variant.sku == SKU).scalar_subquery())
                ).one()
            results["full checkout (6 requests)"] = {
                "orders_per_s": int(done.group(1)) / args.seconds,
                "p50_ms": float(done.group(3)),
                "p99_ms": float(done.group(4)),
                "failed": int(done.group(2)),
                "units_sold": sold, "stock_taken": 10**6 - stock,
                "oversold": 10**6 - stock != sold,
            }
        database.dispose()
        print(f"gunicorn -w {args.workers} --threads {args.threads}, wrk -t2 -c{args.connections} "
              f"-d{args.seconds}s, checkouts: wrk -t{args.clients} -c{args.clients} -s bench/checkout.lua")
        for label, r in results.items():
            print(f"{label:28s} " + "  ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
