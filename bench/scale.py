"""Page costs on a large database: catalog, search, admin lists, VAT summary, ledger export.

    python bench/seed.py URL --products 100000 --orders 1000000      # once
    python bench/scale.py URL [--repeat 20] [--export-days 365]

Pages go through the app (Flask test client, catalog cache off, so every request queries),
signed in as a merchant for the admin pages; each figure is the median of --repeat requests
after one warm-up. The ledger export runs in a child process (the `shop privacy ledger-export`
code path, writing to /dev/null) to measure its time to first byte, total time and the extra
memory it took (peak RSS minus RSS before the export started).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shop import create_app  # noqa: E402
from shop.admin import auth  # noqa: E402
from shop.catalog.models import Product  # noqa: E402
from shop.db import utcnow  # noqa: E402
from shop.orders.models import Order  # noqa: E402

EXPORT_CHILD = r"""
import json, sys, time
from datetime import date
sys.path.insert(0, sys.argv[1])
from shop.db import Database
from shop.privacy.ledger import stream_csv
database = Database(sys.argv[2])
start, end = date.fromisoformat(sys.argv[3]), date.fromisoformat(sys.argv[4])
def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field))
before = status_kb("VmRSS:")
t0 = time.perf_counter()
first = None
size = 0
with open("/dev/null", "w") as out:
    for chunk in stream_csv(database.engine, start, end):
        if first is None:
            first = time.perf_counter() - t0
        size += len(chunk)
        out.write(chunk)
total = time.perf_counter() - t0
peak = status_kb("VmHWM:")  # this process's peak (ru_maxrss would count the parent's)
print(json.dumps({"first_byte_s": first, "total_s": total, "mb": size / 1e6,
                  "extra_rss_mb": (peak - before) / 1024}))
"""


def timed(client, url: str, repeat: int) -> tuple[float, int]:
    client.get(url)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), len(response.data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--export-days", type=int, default=365)
    parser.add_argument("--locale", default="en")
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args()

    instance = Path(tempfile.mkdtemp(prefix="shop-scale-"))
    app = create_app(
        {
            "database_url": args.url,
            "instance_path": str(instance),
            "secret_key": "scale-bench-" + "x" * 40,
            "catalog_cache_seconds": 0,
            "locale": args.locale,
        },
        environ={},
    )
    database = app.extensions["shop.db"]
    with database.job_session() as s:
        products = s.scalar(select(func.count()).select_from(Product))
        orders = s.scalar(select(func.count()).select_from(Order))
        last = s.execute(
            select(Product.position, Product.id)
            .where(Product.active.is_(True))
            .order_by(Product.position.desc(), Product.id.desc())
            .limit(1)
        ).one()
        oldest = s.scalar(select(func.min(Order.id)))
        if s.scalar(select(auth.AdminUser).where(auth.AdminUser.username == "bench")) is None:
            auth.create_user(s, "bench", "bench password for scale.py")
    client = app.test_client()
    page = client.get("/admin/login")
    token = (
        page.get_data(as_text=True)
        .split('name="csrf_token" type="hidden" value="')[1]
        .split('"')[0]
    )
    signed_in = client.post(
        "/admin/login",
        data={"csrf_token": token, "username": "bench", "password": "bench password for scale.py"},
    )
    assert signed_in.status_code in (302, 303), signed_in.status_code

    today = utcnow().date()
    year_ago = today - timedelta(days=args.export_days - 1)
    pages = [
        ("catalog page 1", "/"),
        ("catalog last page", f"/?before={last.position}~{last.id + 1}"),
        ("catalog page 2", None),
        ("search 'zanar' (rare word)", "/?q=zanar"),
        ("search 'roast' (title word, ~4%)", "/?q=roast"),
        ("search 'kaffee' (prefix+stem)", "/?q=kaffee"),
        ("search 'gift handmade' (2 common words)", "/?q=gift+handmade"),
        ("search 'handmade' (common word, ~37%)", "/?q=handmade"),
        ("search 'h' (one-letter prefix, ~43%)", "/?q=h"),
        ("search 'gift handmade' page 2", None),
        ("admin orders page 1", "/admin/orders"),
        ("admin orders, status=expired", "/admin/orders?status=expired"),
        ("admin orders, oldest page", f"/admin/orders?after={oldest - 1}"),
        ("admin orders, number '4242'", "/admin/orders?q=4242"),
        ("admin tasks", "/admin/tasks"),
        (
            "VAT summary, 2 days",
            f"/admin/bookkeeping?start={today - timedelta(days=1)}&end={today}",
        ),
        (
            f"VAT summary, {args.export_days} days",
            f"/admin/bookkeeping?start={year_ago}&end={today}",
        ),
    ]
    print(
        f"{database.engine.dialect.name}: {products} products, {orders} orders "
        f"(median of {args.repeat}, ms, catalog cache off)"
    )
    for label, url in pages:
        if url is None:  # the second page, by the first page's Next link
            html = client.get("/?q=gift+handmade" if "search" in label else "/").get_data(
                as_text=True
            )
            url = "/" + html.split('rel="next" href="/')[1].split('"')[0].replace("&amp;", "&")
        ms, size = timed(client, url, args.repeat)
        print(f"  {label:42s} {ms:8.1f} ms  {size / 1024:6.1f} KB")
    database.dispose()
    if not args.skip_export:
        out = subprocess.run(
            [sys.executable, "-c", EXPORT_CHILD, str(ROOT), args.url, str(year_ago), str(today)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        print(
            f"  ledger export, {args.export_days} days: first byte {r['first_byte_s'] * 1000:.0f} ms, "
            f"total {r['total_s']:.1f} s, {r['mb']:.0f} MB of CSV, "
            f"extra memory {r['extra_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
