"""The only writers of orders: placing, paying, expiring, cancelling, fulfilling, refunding.

Every status change goes through `_transition`, which checks the state machine, stamps the time
and logs the advance. Functions take a Session and never commit: the caller's scope does.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from shop.admin.models import Shipment
from shop.cart.pricing import compute_totals
from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.checkout.service import forget_review, review_cart, shipping_options
from shop.db import utcnow
from shop.downloads import service as downloads
from shop.mail import outbox
from shop.orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    OrderNumberCounter,
    PaymentRecord,
)
from shop.orders.states import IllegalTransition, OrderError, OrderStatus, check_transition
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.privacy import ledger
from shop.privacy.store import ContactDetails, seal, set_contact

S = OrderStatus


class EmptyCart(OrderError):
    def __init__(self) -> None:
        super().__init__("Your cart is empty.")


class CartChanged(OrderError):
    """The cart no longer matches the catalog; the customer must look again before paying."""

    def __init__(self, problems: list[str], adjusted: list[CartLine]):
        self.problems, self.adjusted = problems, adjusted
        super().__init__(" ".join(problems))


class OutOfStock(OrderError):
    def __init__(self, title: str):
        self.title = title
        super().__init__(f"Sorry, “{title}” sold out while you were checking out.")


class ShippingUnavailable(OrderError):
    def __init__(self) -> None:
        super().__init__("Please choose one of the shipping methods offered for your country.")


@dataclass(frozen=True)
class PlaceOrder:
    cart: list[CartLine]
    country: str
    payment_method: str
    currency: str
    expiry_minutes: int
    contact: ContactDetails = ContactDetails()
    shipping_rate_id: int | None = None


# ---------------------------------------------------------------- transitions

_STAMP = {
    S.PAID: "paid_at",
    S.FULFILLED: "fulfilled_at",
    S.CLOSED: "closed_at",
    S.CANCELLED: "cancelled_at",
    S.EXPIRED: "expired_at",
}


def _transition(session: Session, order: Order, target: OrderStatus, note: str, now: datetime) -> None:
    current = order.state
    check_transition(current, target)
    order.status = target.value
    if target in _STAMP and getattr(order, _STAMP[target]) is None:
        setattr(order, _STAMP[target], now)
    session.add(OrderEvent(order=order, at=now, from_status=current.value, to_status=target.value, note=note))


def _flag(session: Session, order: Order, message: str, now: datetime) -> None:
    order.attention = (order.attention + "\n" if order.attention else "") + message
    session.add(OrderEvent(order=order, at=now, from_status=order.status, to_status=order.status,
                           note=f"Needs attention: {message}"))


# ---------------------------------------------------------------- placing

def _unflag(session: Session, order: Order, message: str, now: datetime) -> None:
    """Take back a flag whose reason is gone; the history keeps both."""
    lines = (order.attention or "").split("\n")
    if message in lines:
        lines.remove(message)
    order.attention = "\n".join(lines) or None
    session.add(OrderEvent(order=order, at=now, from_status=order.status, to_status=order.status,
                           note=f"Withdrawn (no longer true): {message}"[:500]))


def place_order(session: Session, request: PlaceOrder, now: datetime | None = None) -> Order:
    now = now or utcnow()
    if not request.cart:
        raise EmptyCart()
    review = review_cart(session, request.cart)
    if review.problems:
        raise CartChanged(review.problems, review.adjusted)
    if not review.lines:
        raise EmptyCart()

    shipping, shipping_tax_bp, shipping_name = 0, 0, ""
    if review.requires_shipping:
        options = {o.rate_id: o for o in shipping_options(session, request.country, review.subtotal)}
        option = options.get(request.shipping_rate_id or -1)
        if option is None:
            raise ShippingUnavailable()
        shipping, shipping_tax_bp, shipping_name = option.price, option.tax_rate_bp, option.name
    totals = compute_totals(review.lines, shipping, shipping_tax_bp)

    # Lock variants in id order so concurrent orders for overlapping items cannot deadlock.
    for line in sorted(review.lines, key=lambda l: l.variant_id):
        _reserve(session, line.variant_id, line.quantity, line.product_title)

    order = Order(
        number=_next_number(session, now.year),
        token=secrets.token_urlsafe(32),
        ref=secrets.token_hex(16),
        status=S.PENDING_PAYMENT.value,
        currency=request.currency,
        subtotal=totals.subtotal,
        shipping=totals.shipping,
        shipping_tax_rate_bp=shipping_tax_bp,
        total=totals.total,
        vat_total=totals.vat_total,
        requires_shipping=review.requires_shipping,
        shipping_method=shipping_name,
        country=request.country.upper(),
        payment_method=request.payment_method,
        placed_at=now,
        expires_at=now + timedelta(minutes=request.expiry_minutes),
    )
    for line in review.lines:
        order.lines.append(
            OrderLine(
                variant_id=line.variant_id,
                product_title=line.product_title,
                variant_label=line.variant_label,
                sku=line.sku,
                kind=line.kind,
                unit_price=line.unit_price,
                quantity=line.quantity,
                tax_rate_bp=line.tax_rate_bp,
                line_total=line.total,
                stock_reserved=True,
            )
        )
    contact = request.contact
    if not review.requires_shipping:
        # Digital goods need no postal address: never keep one even if a form sent it.
        contact = ContactDetails(email=contact.email)
    session.add(order)
    session.add(OrderEvent(order=order, at=now, from_status=None, to_status=order.status,
                           note="Order placed"))
    if contact.is_empty():
        session.flush()
    else:
        set_contact(session, order, contact)  # flushes; encrypted under the order's own data key
    outbox.enqueue(session, order, outbox.ORDER_RECEIVED, has_email=bool(contact.email), now=now)
    return order


_TAKE_STOCK = (
    update(Variant)
    .where(Variant.id == bindparam("variant_id"),
           Variant.stock.is_(None) | (Variant.stock >= bindparam("quantity")))
    .values(stock=Variant.stock - bindparam("quantity"))  # NULL - n stays NULL: unlimited stays so
    .execution_options(synchronize_session=False)
)


def _reserve(session: Session, variant_id: int, quantity: int, title: str) -> None:
    """Take stock with one conditional UPDATE: atomic on every backend, never below zero."""
    forget_review(session)
    result = session.execute(_TAKE_STOCK, {"variant_id": variant_id, "quantity": quantity})
    if result.rowcount != 1:
        raise OutOfStock(title)


def _release(session: Session, order: Order) -> None:
    forget_review(session)
    for line in order.lines:
        if line.stock_reserved and line.variant_id is not None:
            session.execute(
                update(Variant)
                .where(Variant.id == line.variant_id, Variant.stock.is_not(None))
                .values(stock=Variant.stock + line.quantity)
                .execution_options(synchronize_session=False)
            )
        line.stock_reserved = False


def _next_number(session: Session, year: int) -> str:
    """Next number of the year. Taken last in place_order so the row lock is held briefly."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(OrderNumberCounter).values(year=year, last=1)
    last = session.execute(
        stmt.on_conflict_do_update(index_elements=["year"],
                                   set_={"last": OrderNumberCounter.last + 1})
        .returning(OrderNumberCounter.last)
    ).scalar_one()
    return f"{year}-{last:06d}"


# ---------------------------------------------------------------- lookups

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def get_by_token(session: Session, token: str) -> Order | None:
    # Anything that is not a token we could have issued never reaches the database (a NUL byte
    # would make PostgreSQL refuse the query).
    if not token or not _TOKEN_SHAPE.fullmatch(token):
        return None
    # One query: an order has a handful of lines and events, so joining both costs less than a
    # round trip and a second ORM pass each.
    return session.scalars(
        select(Order).where(Order.token == token).options(
            joinedload(Order.lines), joinedload(Order.events), joinedload(Order.contact)
        )
    ).unique().one_or_none()


def get_by_ref(session: Session, ref: str, *, lock: bool = False) -> Order | None:
    stmt = select(Order).where(Order.ref == ref)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


# ---------------------------------------------------------------- transitions by cause

def mark_paid(session: Session, order: Order, note: str = "", now: datetime | None = None) -> None:
    now = now or utcnow()
    if order.state == S.EXPIRED:
        # Stock went back on the shelf when the order expired; take it again or flag it.
        try:
            with session.begin_nested():
                for line in sorted(order.lines, key=lambda l: l.variant_id or 0):
                    if line.variant_id is not None:
                        _reserve(session, line.variant_id, line.quantity, line.product_title)
                        line.stock_reserved = True
        except OutOfStock as exc:
            for line in order.lines:
                line.stock_reserved = False
            _flag(session, order, f"Paid after expiry, but {exc.title} is out of stock: "
                                  "refund or restock.", now)
            return
    _transition(session, order, S.PAID, note or "Payment received", now)
    ledger.record_sale(session, order, now)
    outbox.enqueue(session, order, outbox.PAYMENT_RECEIVED, now=now)
    if downloads.grant_for_paid_order(session, order, now) and not order.requires_shipping:
        _transition(session, order, S.FULFILLED, "Downloads ready: fulfilled automatically", now)


def expire(session: Session, order: Order, now: datetime | None = None,
           note: str = "Not paid in time; items released") -> None:
    now = now or utcnow()
    _transition(session, order, S.EXPIRED, note, now)
    _release(session, order)


def extend_reservation(session: Session, order: Order, until: datetime, note: str = "",
                       now: datetime | None = None) -> None:
    """Hold an unpaid order's stock until `until`, e.g. while a payment page can still be paid.

    Never shortens a reservation; raises IllegalTransition if the order is no longer pending.
    """
    now = now or utcnow()
    if order.state != S.PENDING_PAYMENT:
        raise IllegalTransition(order.state, S.PENDING_PAYMENT)
    if until > order.expires_at:
        order.expires_at = until
        session.add(OrderEvent(order=order, at=now, from_status=order.status,
                               to_status=order.status,
                               note=note or f"Reservation extended to {until:%Y-%m-%d %H:%M} UTC"))


def cancel(session: Session, order: Order, reason: str = "", now: datetime | None = None) -> None:
    now = now or utcnow()
    _transition(session, order, S.CANCELLED, reason or "Cancelled", now)
    _release(session, order)


def fulfil(session: Session, order: Order, note: str = "", now: datetime | None = None) -> None:
    _transition(session, order, S.FULFILLED, note or "Fulfilled", now or utcnow())


def ship(session: Session, order: Order, tracking: str = "", now: datetime | None = None) -> None:
    """Hand the parcel to the carrier: fulfilled, with the tracking reference for the customer."""
    now = now or utcnow()
    tracking = " ".join(tracking.split())[:200]
    # The reference is personal (the carrier maps it to the address): sealed under the order's
    # data key wherever it is kept, never in the order's history.
    sealed = seal(session, order, "tracking", tracking) if tracking and not order.personal_data_erased_at else None
    _transition(session, order, S.FULFILLED, "Shipped", now)
    session.add(Shipment(order_id=order.id, tracking_sealed=sealed, shipped_at=now))
    outbox.enqueue(session, order, outbox.SHIPPED, now=now,
                   **({"tracking_sealed": base64.b64encode(sealed).decode()} if sealed else {}))


def resolve_attention(session: Session, order: Order, note: str = "",
                      now: datetime | None = None) -> None:
    """The merchant has dealt with what the order was flagged for."""
    if not order.attention:
        return
    order.attention = None
    session.add(OrderEvent(order=order, at=now or utcnow(), from_status=order.status,
                           to_status=order.status, note=f"Resolved by the merchant: {note}"[:500]
                           if note else "Resolved by the merchant"))


def close(session: Session, order: Order, now: datetime | None = None) -> None:
    _transition(session, order, S.CLOSED, "Closed", now or utcnow())


def record_refund(session: Session, order: Order, amount: int, note: str = "",
                  now: datetime | None = None) -> None:
    now = now or utcnow()
    if amount <= 0 or order.amount_refunded + amount > order.amount_paid:
        raise OrderError("a refund must be positive and at most what was paid")
    order.amount_refunded += amount
    target = S.REFUNDED if order.amount_refunded >= order.amount_paid else S.PARTIALLY_REFUNDED
    _transition(session, order, target, note or "Refund issued", now)
    if order.paid_at is not None:  # no sale was booked for money that came after the order ended
        ledger.record_refund(session, order, amount, now)
    outbox.enqueue(session, order, outbox.REFUND_ISSUED, amount=amount, now=now)


def expire_due_orders(session: Session, now: datetime | None = None, limit: int = 500) -> int:
    """Expire unpaid orders past their deadline; safe to run from several workers at once."""
    now = now or utcnow()
    stmt = (
        select(Order)
        .where(Order.status == S.PENDING_PAYMENT.value, Order.expires_at <= now)
        .order_by(Order.expires_at)
        .limit(limit)
        .options(selectinload(Order.lines))
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Order)
    orders = session.scalars(stmt).all()
    for order in orders:
        expire(session, order, now)
    return len(orders)


# ---------------------------------------------------------------- payment events

def _money_back_and_forth(session: Session, order: Order, event: PaymentEvent,
                          now: datetime) -> None:
    """Money that left or came back after the sale and its refunds were booked: the ledger gets
    a correcting entry (records are immutable) and the merchant a task."""
    _flag(session, order, event.note or f"{event.provider}: {event.kind.value}", now)
    if event.kind == PaymentEventKind.REFUND_FAILED:
        order.amount_refunded = max(0, order.amount_refunded - event.amount)
    if order.paid_at is None or event.amount <= 0:
        return
    if event.kind == PaymentEventKind.CHARGEBACK:
        ledger.record_refund(session, order, event.amount, now)
    else:
        ledger.record_reversal(session, order, event.amount, now)


@dataclass(frozen=True)
class EventOutcome:
    applied: bool
    duplicate: bool = False
    order_id: int | None = None


def apply_payment_event(session: Session, event: PaymentEvent, now: datetime | None = None) -> EventOutcome:
    """The single entry point for what payment backends report. Idempotent by (provider, key)."""
    now = now or utcnow()
    order = get_by_ref(session, event.order_ref, lock=True)
    record = PaymentRecord(
        order_id=order.id if order else None, provider=event.provider, key=event.key,
        kind=event.kind.value, amount=event.amount, currency=event.currency,
        reference=event.reference, note=event.note[:500], created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        return EventOutcome(applied=False, duplicate=True, order_id=order.id if order else None)
    if order is None:
        return EventOutcome(applied=False)

    if event.currency != order.currency and event.kind in (PaymentEventKind.PAID, PaymentEventKind.REFUNDED):
        _flag(session, order, f"{event.provider} reported {event.amount} {event.currency}, "
                              f"but the order is in {order.currency}: not applied.", now)
        return EventOutcome(applied=False, order_id=order.id)

    if event.kind == PaymentEventKind.PAID:
        order.amount_paid += event.amount
        if order.state in (S.PENDING_PAYMENT, S.EXPIRED):
            if order.amount_paid >= order.total:
                mark_paid(session, order, event.note or f"Paid via {event.provider}", now)
            else:
                _flag(session, order, f"Partial payment: {order.amount_paid} of {order.total}.", now)
        else:
            _flag(session, order, f"Additional payment of {event.amount} via {event.provider} "
                                  f"while {order.status}.", now)
    elif event.kind == PaymentEventKind.REFUNDED:
        record_refund(session, order, event.amount, event.note, now)
    elif event.kind in (PaymentEventKind.REVERTED, PaymentEventKind.ATTENTION):
        _flag(session, order, event.note or f"{event.provider}: {event.kind.value}", now)
    elif event.kind == PaymentEventKind.WITHDRAWN:
        _unflag(session, order, event.note, now)
    elif event.kind in (PaymentEventKind.CHARGEBACK, PaymentEventKind.CHARGEBACK_REVERSED,
                        PaymentEventKind.REFUND_FAILED):
        _money_back_and_forth(session, order, event, now)
    else:
        session.add(OrderEvent(order=order, at=now, from_status=order.status,
                               to_status=order.status, note=event.note or event.kind.value))
    return EventOutcome(applied=True, order_id=order.id)
