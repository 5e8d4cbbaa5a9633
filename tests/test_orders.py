"""The orders service: placing, numbering, reserving, expiring, paying, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.jobs.worker import run_once
from shop.orders import service
from shop.orders.models import Order, PaymentRecord
from shop.orders.states import IllegalTransition, OrderStatus
from shop.payments.base import PaymentEvent, PaymentEventKind


def _variant(session, sku: str) -> Variant:
    return session.scalar(select(Variant).where(Variant.sku == sku))


def _place(session, sku: str, quantity: int = 1, *, now=None, rate_id=None, **kw) -> Order:
    variant = _variant(session, sku)
    if rate_id is None and variant.product.is_physical:
        from shop.cart.service import shipping_options

        rate_id = shipping_options(session, "DE", variant.price * quantity)[0].rate_id
    return service.place_order(
        session,
        service.PlaceOrder(
            digital_consent=True,
            cart=[CartLine(variant.id, quantity, variant.price)],
            country="DE",
            payment_method="demo",
            currency="EUR",
            expiry_minutes=30,
            shipping_rate_id=rate_id,
            **kw,
        ),
        now=now,
    )


def _paid(order: Order, key: str = "k1", amount: int | None = None, currency: str = "EUR"):
    return PaymentEvent(
        provider="test",
        key=key,
        order_ref=order.ref,
        kind=PaymentEventKind.PAID,
        amount=order.total if amount is None else amount,
        currency=currency,
    )


def test_place_order_reserves_stock_and_numbers_sequentially(demo_catalog, database):
    jan = datetime(2026, 1, 5, tzinfo=UTC)
    with database.job_session() as s:
        first = _place(s, "PRINT-HARB-A3", 2, now=jan)
        second = _place(s, "PRINT-HARB-A3", 1, now=jan)
        assert _variant(s, "PRINT-HARB-A3").available == 2
        assert (first.number, second.number) == ("2026-000001", "2026-000002")
        next_year = _place(s, "TOTE-NAT", now=datetime(2027, 1, 1, tzinfo=UTC))
        assert next_year.number == "2027-000001"
        assert len(first.token) >= 43 and first.token != second.token  # 256-bit tokens
        assert first.expires_at == jan + timedelta(minutes=30)


def test_out_of_stock_and_price_change_are_named_errors(demo_catalog, database):
    with database.job_session() as s:
        variant = _variant(s, "PRINT-NT-A4")  # stock 0
        with pytest.raises(service.CartChanged) as exc:
            _place(s, "PRINT-NT-A4")
        assert "sold out" in exc.value.problems[0]
        a3 = _variant(s, "PRINT-NT-A3")
        with pytest.raises(service.CartChanged) as exc:
            service.place_order(
                s,
                service.PlaceOrder(
                    digital_consent=True,
                    cart=[CartLine(a3.id, 1, a3.price - 100)],
                    country="DE",
                    payment_method="demo",
                    currency="EUR",
                    expiry_minutes=30,
                    shipping_rate_id=1,
                ),
            )
        assert "price" in exc.value.problems[0]
        assert exc.value.adjusted[0].price_seen == a3.price
        assert variant.available == 0


def test_shipping_must_match_country(demo_catalog, database):
    with database.job_session() as s:
        variant = _variant(s, "TOTE-NAT")
        with pytest.raises(service.ShippingUnavailable):
            service.place_order(
                s,
                service.PlaceOrder(
                    digital_consent=True,
                    cart=[CartLine(variant.id, 1, variant.price)],
                    country="BR",
                    payment_method="demo",
                    currency="EUR",
                    expiry_minutes=30,
                    shipping_rate_id=1,
                ),
            )


def test_expiry_runs_in_the_worker_and_releases_stock(demo_catalog, database):
    past = datetime.now(UTC) - timedelta(hours=1)
    with database.job_session() as s:
        stale = _place(s, "PRINT-HARB-A3", 3, now=past)
        fresh = _place(s, "PRINT-HARB-A3", 1)
        assert _variant(s, "PRINT-HARB-A3").available == 1
    assert run_once(database)["expire-orders"] == 1
    assert run_once(database)["expire-orders"] == 0  # nothing left to do, nothing done twice
    with database.job_session() as s:
        assert s.get(Order, stale.id).status == "expired"
        assert s.get(Order, fresh.id).status == "pending_payment"
        assert _variant(s, "PRINT-HARB-A3").available == 4
        with pytest.raises(IllegalTransition):
            service.cancel(s, s.get(Order, stale.id))


def test_cancel_releases_stock_once(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "TOTE-BLK", 4)
        assert _variant(s, "TOTE-BLK").available == 0
        service.cancel(s, order)
        assert _variant(s, "TOTE-BLK").available == 4
        with pytest.raises(IllegalTransition):
            service.cancel(s, order)
        assert _variant(s, "TOTE-BLK").available == 4


def test_payment_events_are_idempotent(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "EBOOK-SMALL", 2)
    for _ in range(3):
        with database.job_session() as s:
            outcome = service.apply_payment_event(s, _paid(order))
    with database.job_session() as s:
        stored = s.get(Order, order.id)
        assert (stored.status, stored.amount_paid) == ("paid", order.total)
        assert len(s.scalars(select(PaymentRecord)).all()) == 1
        assert outcome.duplicate and not outcome.applied
        assert [e.to_status for e in stored.events] == ["pending_payment", "paid"]


def test_underpayment_waits_and_wrong_currency_is_flagged(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "EBOOK-SMALL", 1)
        service.apply_payment_event(s, _paid(order, "a", amount=500))
        assert order.status == "pending_payment" and "Partial payment" in order.attention
        service.apply_payment_event(s, _paid(order, "b", amount=299))
        assert order.status == "paid" and order.amount_paid == 799
        other = _place(s, "EBOOK-SMALL", 1)
        service.apply_payment_event(s, _paid(other, "c", currency="USD"))
        assert other.status == "pending_payment" and "not applied" in other.attention


def test_late_payment_revives_order_when_stock_allows(demo_catalog, database):
    past = datetime.now(UTC) - timedelta(hours=1)
    with database.job_session() as s:
        late = _place(s, "PRINT-FOR-A3", 2, now=past)  # the last two
        service.expire_due_orders(s)
        assert _variant(s, "PRINT-FOR-A3").available == 2
        service.apply_payment_event(s, _paid(late, "late"))
        assert late.status == "paid" and _variant(s, "PRINT-FOR-A3").available == 0

        gone = _place(s, "TOTE-BLK", 4, now=past)
        service.expire_due_orders(s)
        _place(s, "TOTE-BLK", 4)  # someone else bought them meanwhile
        service.apply_payment_event(s, _paid(gone, "gone"))
        assert gone.status == "expired" and "out of stock" in gone.attention
        assert gone.amount_paid == gone.total and _variant(s, "TOTE-BLK").available == 0


def test_refunds_move_to_partially_then_fully_refunded(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "EBOOK-FIELD", 1)
        service.apply_payment_event(s, _paid(order))
        service.record_refund(s, order, 200)
        assert order.state == OrderStatus.PARTIALLY_REFUNDED
        with pytest.raises(service.OrderError):
            service.record_refund(s, order, order.total)
        service.record_refund(s, order, order.total - 200)
        assert order.state == OrderStatus.REFUNDED


def test_cart_review_is_not_reused_across_transactions(demo_catalog, database):
    """The review is remembered within one transaction only: a later one sees new stock."""
    from shop.cart.service import review_cart

    with database.job_session() as s:
        variant = s.scalar(select(Variant).where(Variant.sku == "TOTE-BLK"))
        cart = [CartLine(variant.id, 2, variant.price)]
        first = review_cart(s, cart)
        assert review_cart(s, cart) is first and first.problems == []
        s.commit()
        with database.job_session() as other:
            other.scalar(select(Variant).where(Variant.sku == "TOTE-BLK")).on_hand = 1
        again = review_cart(s, cart)
        assert again is not first
        assert again.adjusted[0].quantity == 1 and "Only 1" in again.problems[0]
