"""The order's domain events: ledger, emails and downloads subscribe (shop/subscribers.py).

Subscribers run inside the transition's transaction and in a fixed order, a failing one takes
the transition back with it, and every entry point has them (a fresh `shop worker` process
books the sale and queues the email of an order it marks paid).
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import func, select

from shop import subscribers
from shop.cart.service import shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.downloads.models import DownloadGrant
from shop.mail.models import OutboxMessage
from shop.orders import events, service
from shop.orders.models import Order
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.privacy import purge
from shop.privacy.crypto import generate_master_key_text
from shop.privacy.models import LedgerEntry
from shop.privacy.store import ContactDetails
from tests.conftest import make_test_app
from tests.stripe.conftest import (
    API_KEY,
    WEBHOOK_SECRET,
    build_card_app,
    place_card_order,
    session_id_of,
    start_card_payment,
)
from tests.stripe.fake_stripe import FakeStripe
from tests.test_workers import Workers, wait_for, worker_env

PRINT = "PRINT-HARB-A3"  # physical, stocked


def _place(session, sku: str = PRINT, email: str | None = "ada@example.org") -> Order:
    variant = session.scalar(select(Variant).where(Variant.sku == sku))
    rate_id = None
    if variant.product.is_physical:
        rate_id = shipping_options(session, "DE", variant.price)[0].rate_id
    return service.place_order(
        session,
        service.PlaceOrder(
            digital_consent=True,
            cart=[CartLine(variant.id, 1, variant.price)],
            country="DE",
            payment_method="demo",
            currency="EUR",
            expiry_minutes=30,
            shipping_rate_id=rate_id,
            contact=ContactDetails(email=email),
        ),
    )


def _pay(session, order: Order) -> None:
    service.apply_payment_event(
        session,
        PaymentEvent(
            provider="test",
            key=f"paid:{order.id}",
            order_ref=order.ref,
            kind=PaymentEventKind.PAID,
            amount=order.total,
            currency=order.currency,
        ),
    )


def _kinds(session, order_id: int) -> list[str]:
    return list(
        session.scalars(
            select(OutboxMessage.kind)
            .where(OutboxMessage.order_id == order_id)
            .order_by(OutboxMessage.id)
        )
    )


def _count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def subscribed():
    """Subscribe extra functions for one test, and take them away again."""
    added: list[tuple[type, str]] = []

    def add(event_type, name, fn):
        events.subscribe(event_type, name, fn)
        added.append((event_type, name))

    yield add
    for event_type, name in added:
        events.unsubscribe(event_type, name)


def test_create_app_connects_every_subscriber_in_the_tables_order(db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(events, "_SUBSCRIBERS", {})  # as in a fresh process
    monkeypatch.setattr(purge, "_ERASERS", {})
    app = make_test_app(db_url, tmp_path / "instance")
    app.extensions["shop.db"].dispose()
    for event_type in {event_type for event_type, _ in subscribers.SUBSCRIPTIONS}:
        assert events.subscribers(event_type) == [
            f"{fn.__module__}.{fn.__qualname__}"
            for subscribed_type, fn in subscribers.SUBSCRIPTIONS
            if subscribed_type is event_type
        ]
    assert events.subscribers(events.OrderPaid) == [
        "shop.privacy.ledger.book_sale",
        "shop.mail.outbox.on_order_paid",
        "shop.downloads.service.deliver_on_payment",
    ]
    # The purge's erasers too: not left to whichever module an entry point happened to import.
    assert {"shipment-tracking", "refund-addresses"} <= set(purge._ERASERS)
    subscribers.connect()  # every create_app calls it again: nothing doubles
    assert len(events.subscribers(events.OrderPaid)) == 3


def test_subscribers_run_in_the_transaction_in_order_and_see_the_change(
    demo_catalog, database, subscribed
):
    seen = []

    def audit(session, event):
        order = event.order(session)
        seen.append(
            (
                type(event).__name__,
                event.from_status,
                event.to_status,
                order.status,
                # What the subscribers before this one wrote, unflushed or not, is there.
                _count(session, LedgerEntry, LedgerEntry.order_number == order.number),
                _kinds(session, order.id),
                session.in_transaction(),
            )
        )

    subscribed(events.OrderPaid, "test.audit", audit)
    subscribed(events.OrderShipped, "test.audit", audit)
    with database.job_session() as s:
        order = _place(s)
        _pay(s, order)
        service.ship(s, order, "TRACK-1")
    assert seen == [
        ("OrderPaid", "pending_payment", "paid", "paid", 1, ["order_received", "payment_received"], True),
        ("OrderShipped", "paid", "fulfilled", "fulfilled", 1, ["order_received", "payment_received", "shipped"], True),
    ]  # fmt: skip


def test_an_event_recorded_by_a_subscriber_runs_after_the_current_events_subscribers(
    app, database, subscribed
):
    """An e-book's payment fulfils the order (the downloads subscriber): every subscriber of the
    payment runs before those of the fulfilment, so what they write follows the events' order."""
    from shop.demo import seed_demo, seed_ebook_files

    seed_demo(database, app.extensions["shop.settings"])
    seed_ebook_files(database, app.extensions["shop.settings"])
    seen = []
    subscribed(events.OrderPaid, "test.late", lambda session, event: seen.append(event))
    subscribed(events.OrderFulfilled, "test.late", lambda session, event: seen.append(event))
    with database.job_session() as s:
        order = _place(s, "EBOOK-SMALL")
        _pay(s, order)
        assert order.status == "fulfilled"
        assert _count(s, DownloadGrant, DownloadGrant.order_id == order.id) == 1
    # "test.late" is subscribed after the downloads, yet heard of the payment first.
    assert [(type(e).__name__, e.from_status, e.to_status) for e in seen] == [
        ("OrderPaid", "pending_payment", "paid"),
        ("OrderFulfilled", "paid", "fulfilled"),
    ]


def test_a_failing_subscriber_rolls_the_transition_back(demo_catalog, database, subscribed):
    with database.job_session() as s:
        order = _place(s)
        order_id, number = order.id, order.number
        available = s.scalar(select(Variant).where(Variant.sku == PRINT)).available

    def fail(session, event):
        raise RuntimeError("the bookkeeping export is down")

    subscribed(events.OrderPaid, "test.fail", fail)  # after the ledger, the email, the downloads
    with pytest.raises(RuntimeError, match="bookkeeping"), database.job_session() as s:
        _pay(s, s.get(Order, order_id))
    with database.job_session() as s:
        order = s.get(Order, order_id)
        assert (order.status, order.amount_paid, order.paid_at) == ("pending_payment", 0, None)
        assert _count(s, LedgerEntry, LedgerEntry.order_number == number) == 0
        assert _kinds(s, order_id) == ["order_received"]
        variant = s.scalar(select(Variant).where(Variant.sku == PRINT))
        assert (variant.available, variant.committed) == (available, 0)
    # The payment was not lost with it: delivered again, it applies.
    events.unsubscribe(events.OrderPaid, "test.fail")
    with database.job_session() as s:
        _pay(s, s.get(Order, order_id))
    with database.job_session() as s:
        assert s.get(Order, order_id).status == "paid"
        assert _count(s, LedgerEntry, LedgerEntry.order_number == number) == 1
        assert _kinds(s, order_id) == ["order_received", "payment_received"]


def test_an_entry_point_without_subscribers_cannot_change_orders(
    demo_catalog, database, monkeypatch
):
    with database.job_session() as s:
        order_id = _place(s).id
    monkeypatch.setattr(events, "_SUBSCRIBERS", {})  # a process that never called connect()
    with pytest.raises(events.NotConnected), database.job_session() as s:
        _pay(s, s.get(Order, order_id))
    monkeypatch.undo()
    with database.job_session() as s:
        assert s.get(Order, order_id).status == "pending_payment"


def test_a_fresh_worker_process_books_the_sale_and_queues_the_email(db_url, tmp_path):
    """`shop worker` builds its app through the CLI like an operator's: the Stripe payment it
    applies is booked in the ledger and emailed, in the same transaction as the order's change."""
    data_key = generate_master_key_text()
    instance = tmp_path / "instance"
    with FakeStripe(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        card = {
            "stripe_secret_key": API_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_api_base": fake.api_base,
            "stripe_checkout_origin": fake.api_base,
            "stripe_timeout_seconds": 1.0,
        }
        app = build_card_app(db_url, instance, fake, data_key=data_key)
        database = app.extensions["shop.db"]
        client = app.test_client()
        order = place_card_order(app)
        payload, header = fake.complete_session(session_id_of(start_card_payment(client, order)))
        stored = client.post(
            "/webhooks/stripe",
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        assert stored.status_code == 200
        with database.job_session() as s:  # stored for the worker, not applied by the request
            assert s.get(Order, order.id).status == "pending_payment"

        workers = Workers(tmp_path, worker_env(db_url, instance, data_key, **card))
        try:
            worker = workers.start()

            def paid() -> bool:
                with database.job_session() as s:
                    return s.get(Order, order.id).status == "paid"

            wait_for("the worker to apply the payment", paid, 60)
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(15) == 0
        finally:
            workers.cleanup()
            app.extensions["shop.payment_methods"]["card"].close()
    with database.job_session() as s:
        number = s.get(Order, order.id).number
        [sale] = s.scalars(select(LedgerEntry).where(LedgerEntry.order_number == number)).all()
        assert (sale.key, sale.kind) == (f"sale:{number}", "sale")
        assert _kinds(s, order.id) == ["order_received", "payment_received"]
    database.dispose()
