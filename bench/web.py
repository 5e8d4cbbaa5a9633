"""Storefront throughput under gunicorn on PostgreSQL.

    python bench/web.py [--workers 4] [--connections 32] [--seconds 15] [--orders 600]

Creates a scratch PostgreSQL database (SHOP_BENCH_POSTGRES_URL, default the local server), seeds
the demo catalog, starts gunicorn on loopback, measures the catalog and product pages with wrk
(Debian package `wrk`) and full checkouts with a multi-process Python client, then drops the
database. Load and server share the machine's cores, so the numbers are a floor.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import statistics
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
from shop.orders.models import Order  # noqa: E402

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


def _value(html: str, pattern: str) -> str:
    # Regular expressions, not an HTML parser: the load generator shares the server's two cores
    # and must stay cheap (the page structure is covered by the test suite, not here).
    return re.search(pattern, html).group(1)


CSRF = r'name="csrf_token" type="hidden" value="([^"]+)"'


def checkout_once(base: str) -> tuple[bool, float]:
    s = requests.Session()
    started = time.perf_counter()
    page = s.get(f"{base}/products/harbour-at-dawn").text
    data = {"csrf_token": _value(page, CSRF), "quantity": "1",
            "variant": _value(page, r'name="variant" value="(\d+)" checked')}
    s.post(f"{base}/cart/add/harbour-at-dawn", data=data)
    page = s.get(f"{base}/checkout").text
    data = {"csrf_token": _value(page, CSRF), "name": "Bench Customer",
            "street": "1 Test Street", "postal_code": "10115", "city": "Berlin", "country": "DE",
            "shipping_rate": _value(page, r'name="shipping_rate" value="(\d+)" checked'),
            "payment_method": "demo", "submit": "Place order"}
    response = s.post(f"{base}/checkout", data=data)
    return "/orders/" in response.url, time.perf_counter() - started


def _checkout_worker(args):
    base, count = args
    return [checkout_once(base) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=8765)
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
        for label, path in [("catalog page", "/"), ("product page", "/products/harbour-at-dawn")]:
            wrk(base + path, args.connections, 3)  # warm-up
            results[label] = wrk(base + path, args.connections, args.seconds)

        per_client = args.orders // args.clients
        started = time.perf_counter()
        with multiprocessing.Pool(args.clients) as pool:
            runs = [r for batch in pool.map(_checkout_worker, [(base, per_client)] * args.clients)
                    for r in batch]
        elapsed = time.perf_counter() - started
        ok = [d for success, d in runs if success]
        with database.job_session() as s:
            orders = s.scalar(select(func.count()).select_from(Order))
            stock = s.scalar(select(Variant.stock).where(Variant.sku == SKU))
        durations = sorted(ok)
        results["full checkout (4 requests)"] = {
            "orders_per_s": len(ok) / elapsed,
            "p50_ms": statistics.median(durations) * 1000,
            "p99_ms": durations[int(len(durations) * 0.99) - 1] * 1000,
            "failed": len(runs) - len(ok),
            "oversold": (10**6 - stock) != orders,
        }
        database.dispose()
        print(f"gunicorn -w {args.workers} --threads {args.threads}, wrk -t2 -c{args.connections} "
              f"-d{args.seconds}s, checkouts: {args.clients} client processes x {per_client}")
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
