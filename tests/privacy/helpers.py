"""Shared helpers for the privacy tests: place orders through the real service."""

from __future__ import annotations

from sqlalchemy import select

from shop.cart.service import shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.orders import service
from shop.orders.models import Order
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.privacy.store import ContactDetails

ADA = ContactDetails(
    email="ada@example.org",
    name="Ada Lovelace",
    street="1 Harbour Road",
    postal_code="10115",
    city="Berlin",
)


def place(
    session,
    sku: str = "TOTE-NAT",
    quantity: int = 1,
    *,
    now=None,
    contact: ContactDetails = ADA,
    country: str = "DE",
) -> Order:
    variant = session.scalar(select(Variant).where(Variant.sku == sku))
    rate_id = None
    if variant.product.is_physical:
        rate_id = shipping_options(session, country, variant.price * quantity)[0].rate_id
    return service.place_order(
        session,
        service.PlaceOrder(
            digital_consent=True,
            cart=[CartLine(variant.id, quantity, variant.price)],
            country=country,
            payment_method="demo",
            currency="EUR",
            expiry_minutes=30,
            shipping_rate_id=rate_id,
            contact=contact,
        ),
        now=now,
    )


def pay(session, order: Order, *, now=None, key: str | None = None, reference: str = "ref-1"):
    return service.apply_payment_event(
        session,
        PaymentEvent(
            provider="demo",
            key=key or f"pay:{order.ref}",
            order_ref=order.ref,
            kind=PaymentEventKind.PAID,
            amount=order.total,
            currency=order.currency,
            reference=reference,
        ),
        now=now,
    )


def refund(session, order: Order, amount: int, *, now=None, key: str = "refund-1"):
    return service.apply_payment_event(
        session,
        PaymentEvent(
            provider="demo",
            key=key,
            order_ref=order.ref,
            kind=PaymentEventKind.REFUNDED,
            amount=amount,
            currency=order.currency,
            reference=key,
        ),
        now=now,
    )
