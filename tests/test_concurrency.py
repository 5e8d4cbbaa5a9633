"""No overselling: many customers racing for the last units on PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from shop.cart.service import shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.db import Database
from shop.demo import seed_demo
from shop.orders import service
from shop.orders.models import Order, OrderLine
from tests.conftest import make_test_app

RACERS = 24
UNITS = 5


def test_concurrent_checkouts_never_oversell(pg_url, tmp_path):
    app = make_test_app(pg_url, tmp_path / "instance")
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    setup = app.extensions["shop.db"]
    with setup.job_session() as s:
        variant = s.scalar(select(Variant).where(Variant.sku == "PRINT-HARB-A3"))
        variant.on_hand = UNITS
        variant_id, price = variant.id, variant.price
        rate_id = shipping_options(s, "DE", price)[0].rate_id

    barrier = threading.Barrier(RACERS)
    results: list[str] = []
    lock = threading.Lock()

    def customer() -> None:
        # Each customer has its own engine, so its own connection: a real race in PostgreSQL.
        db = Database(pg_url, pool_size=1)
        try:
            barrier.wait()
            with db.job_session() as s:
                service.place_order(
                    s,
                    service.PlaceOrder(
                        digital_consent=True,
                        cart=[CartLine(variant_id, 1, price)],
                        country="DE",
                        payment_method="demo",
                        currency="EUR",
                        expiry_minutes=30,
                        shipping_rate_id=rate_id,
                    ),
                )
            outcome = "ok"
        except service.OutOfStock:
            outcome = "sold out"
        except service.CartChanged:
            outcome = "sold out"  # saw zero stock already while checking the cart
        finally:
            db.dispose()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=customer) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(results) == RACERS
    assert results.count("ok") == UNITS
    with setup.job_session() as s:
        assert s.scalar(select(Variant).where(Variant.id == variant_id)).available == 0
        sold = s.scalar(
            select(func.sum(OrderLine.quantity)).where(OrderLine.variant_id == variant_id)
        )
        assert sold == UNITS
        numbers = sorted(s.scalars(select(Order.number)).all())
        # Gapless numbering even under contention: failed attempts consumed no number.
        assert numbers == [f"{numbers[0][:4]}-{i:06d}" for i in range(1, UNITS + 1)]
    setup.dispose()
