"""The books add up (issue 14): refunds reverse what the sale booked, per rate, to the cent."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select

from shop.cart.service import shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.mail import outbox
from shop.mail.models import OutboxMessage
from shop.orders import service
from shop.privacy.models import LedgerEntry
from tests.privacy.helpers import ADA, pay, refund

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _mixed_order(s):
    """An e-book at 7 % and a print at 19 % plus shipping at 19 %: two rates, odd amounts."""
    book = s.scalar(select(Variant).where(Variant.sku == "EBOOK-SMALL"))
    bag = s.scalar(select(Variant).where(Variant.sku == "TOTE-NAT"))
    goods = book.price * 3 + bag.price
    rate = shipping_options(s, "DE", goods)[0].rate_id
    return service.place_order(
        s,
        service.PlaceOrder(
            digital_consent=True,
            cart=[CartLine(book.id, 3, book.price), CartLine(bag.id, 1, bag.price)],
            country="DE",
            payment_method="demo",
            currency="EUR",
            expiry_minutes=30,
            shipping_rate_id=rate,
            contact=ADA,
        ),
        now=T0,
    )


def _per_rate(s, number):
    sums = defaultdict(lambda: [0, 0, 0])
    for entry in s.scalars(select(LedgerEntry).where(LedgerEntry.order_number == number)):
        for r in entry.rates:
            sums[r.tax_rate_bp][0] += r.gross
            sums[r.tax_rate_bp][1] += r.vat
            sums[r.tax_rate_bp][2] += r.net
    return {rate: tuple(v) for rate, v in sums.items()}


def test_a_fully_refunded_order_nets_to_exactly_zero_per_rate(demo_catalog, database):
    with database.job_session() as s:
        order = _mixed_order(s)
        pay(s, order, now=T0)
        total = order.total  # 3 x 7.99 + 16.00 + 4.90 = 44.87
        for i, amount in enumerate((1001, 1333, 777, total - 1001 - 1333 - 777)):
            refund(s, order, amount, now=T0, key=f"re_{i}")
        assert order.status == "refunded"
        # Before: each refund's VAT was rounded on its own and the cents drifted.
        assert _per_rate(s, order.number) == {700: (0, 0, 0), 1900: (0, 0, 0)}


def test_each_refund_entry_names_only_its_own_reference(demo_catalog, database):
    with database.job_session() as s:
        order = _mixed_order(s)
        pay(s, order, now=T0, reference="pi_1")
        refund(s, order, 500, now=T0, key="re_first")
        refund(s, order, 700, now=T0, key="re_second")
        refs = [
            e.payment_reference
            for e in s.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "refund").order_by(LedgerEntry.id)
            )
        ]
        assert refs == ["re_first", "re_second"]  # before: "re_first, re_second" on the second


def test_a_refund_email_states_the_amounts_of_its_own_refund(demo_catalog, database, settings):
    with database.job_session() as s:
        order = _mixed_order(s)
        pay(s, order, now=T0)
        refund(s, order, 500, now=T0, key="re_first")
        refund(s, order, 700, now=T0, key="re_second")  # both queued before the worker sends
    with database.job_session() as s:
        first = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == outbox.REFUND_ISSUED)
            .order_by(OutboxMessage.id)
        ).first()
        order = s.get(type(order), order.id)
        text = (
            outbox.render(settings, order, first.kind, json.loads(first.payload), "ada@example.org")
            .get_body(("plain",))
            .get_content()
        )
        assert "We refunded €5.00" in text
        # Before: the first email, sent late, said €12.00 refunded in total.
        assert "Refunded in total: €5.00 of €44.87 paid." in text
