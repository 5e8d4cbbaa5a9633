"""Shared set-up for the Bitcoin benchmarks: a scratch database, a shop app and a FakeNode.

The database is SQLite in a temporary folder, or a scratch PostgreSQL database created on the
server given with --postgres (and dropped afterwards).
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shop.db import make_engine  # noqa: E402
from shop.migrate import upgrade  # noqa: E402
from shop.orders.models import Order  # noqa: E402
from shop.payments.bitcoin.models import BitcoinInvoice  # noqa: E402
from tests.bitcoin.conftest import btc_settings  # noqa: E402
from tests.conftest import make_test_app  # noqa: E402


@contextmanager
def scratch_database(postgres: str | None):
    tmp = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    if not postgres:
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        try:
            yield url, tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    admin_url = postgres.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"shop_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url, tmp
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def shop_app(url: str, tmp: Path, node, **overrides):
    from shop.demo import seed_demo

    app = make_test_app(url, tmp / "instance", **btc_settings(node), **overrides)
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    return app


def bulk_watched(database, count: int, fingerprint: str = "bench") -> list[bytes]:
    """`count` open invoices with synthetic P2WPKH scripts (no key derivation), in bulk."""
    now = datetime.now(UTC)
    scripts = [b"\x00\x14" + secrets.token_bytes(20) for _ in range(count)]
    with database.engine.begin() as conn:
        for start in range(0, count, 5000):
            chunk = range(start, min(start + 5000, count))
            conn.execute(
                insert(Order),
                [
                    dict(
                        number=f"B-{i:09d}",
                        token=secrets.token_urlsafe(32),
                        ref=secrets.token_hex(16),
                        status="pending_payment",
                        currency="EUR",
                        subtotal=799,
                        shipping=0,
                        shipping_tax_rate_bp=0,
                        total=799,
                        vat_total=52,
                        amount_paid=0,
                        amount_refunded=0,
                        requires_shipping=False,
                        shipping_method="",
                        country="DE",
                        payment_method="bitcoin",
                        placed_at=now,
                        expires_at=now + timedelta(hours=1),
                    )
                    for i in chunk
                ],
            )
        ids = [
            row[0]
            for row in conn.execute(
                text("SELECT id FROM orders WHERE number LIKE 'B-%' ORDER BY id")
            )
        ]
        for start in range(0, count, 5000):
            conn.execute(
                insert(BitcoinInvoice),
                [
                    dict(
                        order_id=ids[i],
                        descriptor_fingerprint=fingerprint,
                        derivation_index=i,
                        address=f"synthetic-{i}",
                        script_pubkey=scripts[i],
                        amount_sats=15980,
                        order_total=799,
                        currency="EUR",
                        rate="50000",
                        state="new",
                        created_at=now,
                        expires_at=now + timedelta(hours=1),
                        monitor_until=now + timedelta(days=7),
                        paid_reported=False,
                        received_sats=0,
                        confirmed_sats=0,
                        simulated=False,
                    )
                    for i in range(start, min(start + 5000, count))
                ],
            )
    return scripts


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)
