"""The only writers of orders: placing, paying, expiring, cancelling, fulfilling, refunding.

Every status change goes through `_transition`, which checks the state machine, stamps the time
and logs the advance; then the change is recorded as an event (orders/events.py), to which what
other features do about it (ledger, emails, downloads) subscribes. Functions take a Session and
never commit: the caller's scope does.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from shop.cart.pricing import compute_totals
from shop.cart.service import forget_review, localize_lines, review_cart, shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import DIGITAL, StockAdjustment, Variant
from shop.db import insert_for, rowcount, utcnow
from shop.i18n import N_, Text
from shop.i18n import lazy_gettext as _l
from shop.orders import consent as digital_consent
from shop.orders import events
from shop.orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    OrderNumberCounter,
    PaymentRecord,
    Shipment,
)
from shop.orders.states import (
    IllegalTransition,
    OrderError,
    OrderStatus,
    StockChoice,
    StockState,
    check_transition,
)
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.privacy.store import ContactDetails, seal, set_contact

S = OrderStatus
St = StockState


class EmptyCart(OrderError):
    def __init__(self) -> None:
        super().__init__(_l("Your cart is empty."))


class CartChanged(OrderError):
    """The cart no longer matches the catalog; the customer must look again before paying."""

    def __init__(self, problems: list[Text], adjusted: list[CartLine]):
        self.problems, self.adjusted = problems, adjusted
        super().__init__(" ".join(str(p) for p in problems))


class OutOfStock(OrderError):
    def __init__(self, title: str):
        self.title = title
        super().__init__(
            _l("Sorry, “%(product)s” sold out while you were checking out.", product=title)
        )


class ShippingUnavailable(OrderError):
    def __init__(self) -> None:
        super().__init__(_l("Please choose one of the shipping methods offered for your country."))


class TotalChanged(OrderError):
    """The order would cost something else than the customer was shown: show it again first."""

    def __init__(self, shown: int, total: int):
        self.shown, self.total = shown, total
        super().__init__(_l("The total changed since the page was shown."))


class ConsentMissing(OrderError):
    """Digital content delivered at once needs the customer's consent, and this store refuses
    the order without it (SHOP_DIGITAL_WITHOUT_CONSENT=refuse)."""

    def __init__(self) -> None:
        super().__init__(
            "Please confirm that delivery may start now and that you thereby lose "
            "your right of withdrawal, or remove the digital items."
        )


class AlreadyPlaced(OrderError):
    """This checkout (its one-time token) already placed an order."""

    def __init__(self, checkout_token: str):
        self.checkout_token = checkout_token
        super().__init__(_l("This order was already placed."))


@dataclass(frozen=True)
class PlaceOrder:
    cart: list[CartLine]
    country: str
    payment_method: str
    currency: str
    expiry_minutes: int
    contact: ContactDetails = ContactDetails()
    shipping_rate_id: int | None = None
    # The checkout form's one-time token: one order per token (a repeat raises AlreadyPlaced).
    checkout_token: str | None = None
    # The total the customer was shown; anything else raises TotalChanged instead of charging it.
    shown_total: int | None = None
    # The language of the checkout (a locale such as de_DE): the order's emails use it.
    locale: str | None = None
    # The customer ticked the consent to immediate delivery of digital content (wording
    # consent.VERSION). Without it: refused or delivered after the withdrawal period, as the
    # store's SHOP_DIGITAL_WITHOUT_CONSENT says.
    digital_consent: bool = False


# ---------------------------------------------------------------- transitions

_STAMP = {
    S.PAID: "paid_at",
    S.FULFILLED: "fulfilled_at",
    S.CLOSED: "closed_at",
    S.CANCELLED: "cancelled_at",
    S.EXPIRED: "expired_at",
}


class _Change(TypedDict):
    """What every status change's event carries (events.StatusChanged)."""

    order_id: int
    at: datetime
    from_status: OrderStatus
    to_status: OrderStatus


def _transition(
    session: Session, order: Order, target: OrderStatus, note: str, now: datetime
) -> _Change:
    current = order.state
    check_transition(current, target)
    order.status = target.value
    if target in _STAMP and getattr(order, _STAMP[target]) is None:
        setattr(order, _STAMP[target], now)
    session.add(
        OrderEvent(
            order=order, at=now, from_status=current.value, to_status=target.value, note=note
        )
    )
    return {"order_id": order.id, "at": now, "from_status": current, "to_status": target}


def _flag(session: Session, order: Order, message: str, now: datetime) -> None:
    order.attention = (order.attention + "\n" if order.attention else "") + message
    session.add(
        OrderEvent(
            order=order,
            at=now,
            from_status=order.status,
            to_status=order.status,
            note=f"Needs attention: {message}",
        )
    )


# ---------------------------------------------------------------- placing


def _unflag(session: Session, order: Order, message: str, now: datetime) -> None:
    """Take back a flag whose reason is gone; the history keeps both."""
    lines = (order.attention or "").split("\n")
    if message in lines:
        lines.remove(message)
    order.attention = "\n".join(lines) or None
    session.add(
        OrderEvent(
            order=order,
            at=now,
            from_status=order.status,
            to_status=order.status,
            note=f"Withdrawn (no longer true): {message}"[:500],
        )
    )


def refuses_without_consent(session: Session) -> bool:
    """Whether this store refuses digital orders without the consent to immediate delivery
    (SHOP_DIGITAL_WITHOUT_CONSENT=refuse) rather than delaying their downloads."""
    settings = session.info.get("shop.settings")
    return (
        getattr(settings, "digital_without_consent", digital_consent.REFUSE)
        == digital_consent.REFUSE
    )


def _reviewed_cart(session: Session, request: PlaceOrder):
    """The cart as the catalog prices it now; raises if it cannot be ordered as it is."""
    if request.checkout_token and get_by_checkout_token(session, request.checkout_token):
        raise AlreadyPlaced(request.checkout_token)
    if not request.cart:
        raise EmptyCart()
    review = review_cart(session, request.cart)
    if review.problems:
        raise CartChanged(review.problems, review.adjusted)
    if not review.lines:
        raise EmptyCart()
    return review


def _chosen_shipping(
    session: Session, request: PlaceOrder, goods_total: int, required: bool
) -> tuple[int, int, str | None, str]:
    """(price, VAT rate, VAT country, name) of the shipping the customer chose, if the goods
    need any; raises ShippingUnavailable if that is not one offered to the country."""
    if not required:
        return 0, 0, None, ""
    options = {o.rate_id: o for o in shipping_options(session, request.country, goods_total)}
    option = options.get(request.shipping_rate_id or -1)
    if option is None:
        raise ShippingUnavailable()
    return option.price, option.tax_rate_bp, option.tax_country, option.name


def _placed_note(digital: bool, consented: bool) -> str:
    # Message ids: the order page shows the history translated.
    if consented:
        return N_("Order placed; the customer agreed to immediate delivery of the digital content")
    if digital:
        return N_(
            "Order placed; no consent to immediate delivery: downloads start when the "
            "14-day withdrawal period has ended"
        )
    return N_("Order placed")


def place_order(session: Session, request: PlaceOrder, now: datetime | None = None) -> Order:
    now = now or utcnow()
    review = _reviewed_cart(session, request)
    digital = any(line.kind == DIGITAL for line in review.lines)
    consented = digital and request.digital_consent
    if digital and not consented and refuses_without_consent(session):
        raise ConsentMissing()

    lines = localize_lines(session, review.lines, request.country)
    shipping, shipping_tax_bp, shipping_tax_country, shipping_name = _chosen_shipping(
        session, request, sum(line.total for line in lines), review.requires_shipping
    )
    totals = compute_totals(lines, shipping, shipping_tax_bp, shipping_tax_country)
    if request.shown_total is not None and totals.total != request.shown_total:
        raise TotalChanged(request.shown_total, totals.total)

    # Lock variants in id order so concurrent orders for overlapping items cannot deadlock.
    for line in sorted(lines, key=lambda l: l.variant_id):
        _hold(session, line.variant_id, line.quantity, line.product_title, "reserved")

    order = Order(
        number=_next_number(session, now.year),
        token=secrets.token_urlsafe(32),
        ref=secrets.token_hex(16),
        status=S.PENDING_PAYMENT.value,
        currency=request.currency,
        subtotal=totals.subtotal,
        shipping=totals.shipping,
        shipping_tax_rate_bp=shipping_tax_bp,
        shipping_tax_country=shipping_tax_country,
        total=totals.total,
        vat_total=totals.vat_total,
        requires_shipping=review.requires_shipping,
        shipping_method=shipping_name,
        country=request.country.upper(),
        payment_method=request.payment_method,
        locale=request.locale,
        checkout_token=request.checkout_token,
        placed_at=now,
        expires_at=now + timedelta(minutes=request.expiry_minutes),
        digital_consent_at=now if consented else None,
        digital_consent_version=digital_consent.VERSION if consented else None,
        downloads_from=now + digital_consent.WITHDRAWAL_PERIOD
        if digital and not consented
        else None,
    )
    for line in lines:
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
                tax_country=line.tax_country,
                line_total=line.total,
                stock_state=St.RESERVED.value,
            )
        )
    contact = request.contact
    if not review.requires_shipping:
        # Digital goods need no postal address: never keep one even if a form sent it.
        contact = ContactDetails(email=contact.email)
    session.add(order)
    note = _placed_note(digital, consented)
    session.add(
        OrderEvent(order=order, at=now, from_status=None, to_status=order.status, note=note)
    )
    try:
        # The token's unique index is what stops the same checkout posted twice at once: the
        # second insert waits for the first transaction and then fails. (The caller rolls back,
        # which also gives back the stock and the order number this attempt took.)
        session.flush()
    except IntegrityError:
        if request.checkout_token:
            raise AlreadyPlaced(request.checkout_token) from None
        raise
    if not contact.is_empty():
        set_contact(session, order, contact)  # flushes; encrypted under the order's own data key
    events.record(
        session, events.OrderPlaced(order_id=order.id, at=now, has_email=bool(contact.email))
    )
    return order


def _hold(session: Session, variant_id: int | None, quantity: int, title: str, column: str) -> None:
    """Reserve or commit units with one conditional UPDATE: atomic on every backend, and never
    more than is available (on hand minus what other orders hold)."""
    forget_review(session)
    held = getattr(Variant, column)
    result = session.execute(
        update(Variant)
        .where(
            Variant.id == variant_id,
            Variant.on_hand.is_(None)
            | (Variant.on_hand - Variant.reserved - Variant.committed >= quantity),
        )
        .values({column: held + quantity})
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise OutOfStock(title)


def _shift(
    session: Session,
    variant_id: int | None,
    *,
    reserved: int = 0,
    committed: int = 0,
    on_hand: int = 0,
) -> tuple[int | None, int | None] | None:
    """Move units between the variant's counters; returns on hand (before, after), or None if
    the variant is gone or unlimited. On hand never goes below zero: a shipment the last count
    did not find still left the shelf."""
    forget_review(session)
    values: dict = {}
    if reserved:
        values["reserved"] = Variant.reserved + reserved
    if committed:
        values["committed"] = Variant.committed + committed
    if on_hand:
        values["on_hand"] = case(
            (Variant.on_hand + on_hand < 0, 0), else_=Variant.on_hand + on_hand
        )
    before = session.scalar(
        select(Variant.on_hand).where(Variant.id == variant_id).with_for_update()
    )
    if values:
        session.execute(
            update(Variant)
            .where(Variant.id == variant_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )
    if before is None:
        return None
    after = session.scalar(select(Variant.on_hand).where(Variant.id == variant_id))
    return before, after


def _flush_states(session: Session) -> None:
    # The counters moved by SQL already; write the lines' states now too, so the two never
    # part (a caller that expunges the order before committing would otherwise lose them).
    session.flush()


def _movement(
    session: Session,
    line: OrderLine,
    order: Order,
    kind: str,
    levels: tuple[int | None, int | None] | None,
    reason: str,
    now: datetime,
) -> None:
    if levels is None:
        return  # unlimited or deleted variant: there is no shelf to account for
    session.add(
        StockAdjustment(
            variant_id=line.variant_id,
            order_id=order.id,
            kind=kind,
            quantity=line.quantity,
            stock_before=levels[0],
            stock_after=levels[1],
            reason=reason[:300],
            at=now,
        )
    )


def _stock_lines(order: Order, state: StockState) -> list[OrderLine]:
    # Variant order again, so two orders moving the same variants cannot deadlock.
    return sorted(
        (l for l in order.lines if l.stock_state == state.value and l.variant_id is not None),
        key=lambda l: l.variant_id or 0,
    )


def _release(
    session: Session, order: Order, choice: StockChoice, reason: str, now: datetime
) -> None:
    """An unpaid order gives back what it reserved (expired or cancelled)."""
    for line in _stock_lines(order, St.RESERVED):
        if choice == StockChoice.WRITE_OFF:
            levels = _shift(
                session, line.variant_id, reserved=-line.quantity, on_hand=-line.quantity
            )
            line.stock_state = St.WRITTEN_OFF.value
            _movement(session, line, order, "written_off", levels, reason, now)
        else:
            levels = _shift(session, line.variant_id, reserved=-line.quantity)
            line.stock_state = St.RELEASED.value
            if choice == StockChoice.RESTOCK:  # a cancellation; an expiry is not worth a line
                line.stock_state = St.RESTOCKED.value
                _movement(session, line, order, "restocked", levels, reason, now)
    _flush_states(session)


def _commit(session: Session, order: Order) -> None:
    """A paid order's reserved units become committed: still on the shelf, no longer for sale."""
    for line in _stock_lines(order, St.RESERVED):
        _shift(session, line.variant_id, reserved=-line.quantity, committed=line.quantity)
        line.stock_state = St.COMMITTED.value
    _flush_states(session)


def _take_shipped(session: Session, order: Order, reason: str, now: datetime) -> None:
    for line in _stock_lines(order, St.COMMITTED):
        levels = _shift(session, line.variant_id, committed=-line.quantity, on_hand=-line.quantity)
        line.stock_state = St.SHIPPED.value
        _movement(session, line, order, "shipped", levels, reason, now)
    _flush_states(session)


def settle_stock(
    session: Session,
    order: Order,
    choice: StockChoice | str,
    reason: str = "",
    *,
    returned: bool = False,
    now: datetime | None = None,
) -> int:
    """What a refund or cancellation does with the order's units; returns how many moved.

    Unshipped units are restocked (free to sell again), written off (gone from the shelf), or
    kept (the order still ships them). ``returned`` puts shipped units back on the shelf.
    Each unit moves once: a second call finds nothing left to move.
    """
    now = now or utcnow()
    choice = StockChoice(choice)
    why = f"Order {order.number}: {reason}" if reason else f"Order {order.number}"
    moved = 0
    if choice == StockChoice.WRITE_OFF:
        # Units restocked already (a full refund does that by default) can still turn out gone.
        for line in _stock_lines(order, St.RESTOCKED):
            levels = _shift(session, line.variant_id, on_hand=-line.quantity)
            line.stock_state = St.WRITTEN_OFF.value
            _movement(session, line, order, "written_off", levels, why, now)
            moved += line.quantity
    if choice != StockChoice.KEEP:
        for line in _stock_lines(order, St.COMMITTED):
            if choice == StockChoice.RESTOCK:
                levels = _shift(session, line.variant_id, committed=-line.quantity)
                line.stock_state, kind = St.RESTOCKED.value, "restocked"
            else:
                levels = _shift(
                    session, line.variant_id, committed=-line.quantity, on_hand=-line.quantity
                )
                line.stock_state, kind = St.WRITTEN_OFF.value, "written_off"
            _movement(session, line, order, kind, levels, why, now)
            moved += line.quantity
        _release(session, order, choice, why, now)
    if returned:
        for line in _stock_lines(order, St.SHIPPED):
            levels = _shift(session, line.variant_id, on_hand=line.quantity)
            line.stock_state = St.RETURNED.value
            _movement(session, line, order, "returned", levels, why, now)
            moved += line.quantity
    if moved:
        session.add(
            OrderEvent(
                order=order,
                at=now,
                from_status=order.status,
                to_status=order.status,
                note=f"Stock: {moved} unit(s) {_CHOICE_NOTE[choice]}"
                f"{' (returned goods back on the shelf)' if returned else ''}",
            )
        )
    _flush_states(session)
    return moved


_CHOICE_NOTE = {
    StockChoice.RESTOCK: "back in stock",
    StockChoice.WRITE_OFF: "written off",
    StockChoice.KEEP: "kept",
}


def _next_number(session: Session, year: int) -> str:
    """Next number of the year. Taken last in place_order so the row lock is held briefly."""
    stmt = insert_for(session, OrderNumberCounter).values(year=year, last=1)
    last = session.execute(
        stmt.on_conflict_do_update(
            index_elements=["year"], set_={"last": OrderNumberCounter.last + 1}
        ).returning(OrderNumberCounter.last)
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
    return (
        session.scalars(
            select(Order)
            .where(Order.token == token)
            .options(joinedload(Order.lines), joinedload(Order.events), joinedload(Order.contact))
        )
        .unique()
        .one_or_none()
    )


def get_by_checkout_token(session: Session, checkout_token: str) -> Order | None:
    if not checkout_token or not _TOKEN_SHAPE.fullmatch(checkout_token):
        return None
    return session.scalar(select(Order).where(Order.checkout_token == checkout_token))


def get_by_ref(session: Session, ref: str, *, lock: bool = False) -> Order | None:
    stmt = select(Order).where(Order.ref == ref)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


# ---------------------------------------------------------------- transitions by cause


def mark_paid(session: Session, order: Order, note: str = "", now: datetime | None = None) -> None:
    now = now or utcnow()
    if order.state == S.EXPIRED:
        # Its reservation ended with the expiry; commit the units again if they are still there.
        lines = _stock_lines(order, St.RELEASED)
        try:
            with session.begin_nested():
                for line in lines:
                    _hold(session, line.variant_id, line.quantity, line.product_title, "committed")
        except OutOfStock as exc:
            _flag(
                session,
                order,
                f"Paid after expiry, but {exc.title} is out of stock: refund or restock.",
                now,
            )
            return
        for line in lines:
            line.stock_state = St.COMMITTED.value
        _flush_states(session)
    _commit(session, order)
    paid = _transition(session, order, S.PAID, note or N_("Payment received"), now)
    events.record(session, events.OrderPaid(**paid))


def expire(
    session: Session,
    order: Order,
    now: datetime | None = None,
    note: str = N_("Not paid in time; items released"),
) -> None:
    now = now or utcnow()
    expired = _transition(session, order, S.EXPIRED, note, now)
    _release(session, order, StockChoice.KEEP, "", now)
    events.record(session, events.OrderExpired(**expired))


def extend_reservation(
    session: Session, order: Order, until: datetime, note: str = "", now: datetime | None = None
) -> None:
    """Hold an unpaid order's stock until `until`, e.g. while a payment page can still be paid.

    Never shortens a reservation; raises IllegalTransition if the order is no longer pending.
    """
    now = now or utcnow()
    if order.state != S.PENDING_PAYMENT:
        raise IllegalTransition(order.state, S.PENDING_PAYMENT)
    if until > order.expires_at:
        order.expires_at = until
        session.add(
            OrderEvent(
                order=order,
                at=now,
                from_status=order.status,
                to_status=order.status,
                note=note or f"Reservation extended to {until:%Y-%m-%d %H:%M} UTC",
            )
        )


def cancel(
    session: Session,
    order: Order,
    reason: str = "",
    now: datetime | None = None,
    *,
    restock: bool = True,
) -> None:
    """Cancel an unpaid order. Its units go back in stock, or (``restock=False``) off the shelf
    when they are gone; either way a stock movement records the reason."""
    now = now or utcnow()
    cancelled = _transition(session, order, S.CANCELLED, reason or N_("Cancelled"), now)
    settle_stock(
        session,
        order,
        StockChoice.RESTOCK if restock else StockChoice.WRITE_OFF,
        f"cancelled ({reason})" if reason else "cancelled",
        now=now,
    )
    events.record(session, events.OrderCancelled(**cancelled, reason=reason))


def fulfil(
    session: Session,
    order: Order,
    note: str = "",
    now: datetime | None = None,
    *,
    stock_reason: str = "",
) -> None:
    """Fulfilled without a parcel to track; `stock_reason` says why the units left the shelf
    (default: the note)."""
    now = now or utcnow()
    fulfilled = _transition(session, order, S.FULFILLED, note or N_("Fulfilled"), now)
    _take_shipped(session, order, stock_reason or note or "Fulfilled", now)
    events.record(session, events.OrderFulfilled(**fulfilled))


def ship(session: Session, order: Order, tracking: str = "", now: datetime | None = None) -> None:
    """Hand the parcel to the carrier: fulfilled, with the tracking reference for the customer."""
    now = now or utcnow()
    tracking = " ".join(tracking.split())[:200]
    # The reference is personal (the carrier maps it to the address): sealed under the order's
    # data key wherever it is kept, never in the order's history.
    sealed = (
        seal(session, order, "tracking", tracking)
        if tracking and not order.personal_data_erased_at
        else None
    )
    shipped = _transition(session, order, S.FULFILLED, N_("Shipped"), now)
    _take_shipped(session, order, f"Order {order.number} shipped", now)
    session.add(Shipment(order_id=order.id, tracking_sealed=sealed, shipped_at=now))
    events.record(session, events.OrderShipped(**shipped, tracking_sealed=sealed))


def resolve_attention(
    session: Session, order: Order, note: str = "", now: datetime | None = None
) -> None:
    """The merchant has dealt with what the order was flagged for."""
    if not order.attention:
        return
    order.attention = None
    session.add(
        OrderEvent(
            order=order,
            at=now or utcnow(),
            from_status=order.status,
            to_status=order.status,
            note=f"Resolved by the merchant: {note}"[:500] if note else "Resolved by the merchant",
        )
    )


def close(session: Session, order: Order, now: datetime | None = None) -> None:
    closed = _transition(session, order, S.CLOSED, N_("Closed"), now or utcnow())
    events.record(session, events.OrderClosed(**closed))


def record_refund(
    session: Session,
    order: Order,
    amount: int,
    note: str = "",
    now: datetime | None = None,
    *,
    reference: str = "",
) -> None:
    now = now or utcnow()
    if amount <= 0 or order.amount_refunded + amount > order.amount_paid:
        raise OrderError("a refund must be positive and at most what was paid")
    order.amount_refunded += amount
    target = S.REFUNDED if order.amount_refunded >= order.amount_paid else S.PARTIALLY_REFUNDED
    refunded = _transition(session, order, target, note or N_("Refund issued"), now)
    if target == S.REFUNDED:
        # Nothing of a fully refunded order ships any more: unless the merchant chose otherwise
        # (settle_stock before the refund), its unshipped units are for sale again.
        settle_stock(session, order, StockChoice.RESTOCK, "refunded in full", now=now)
    events.record(
        session,
        events.OrderRefunded(
            **refunded,
            amount=amount,
            refunded=order.amount_refunded,
            paid=order.amount_paid,
            reference=reference,
        ),
    )


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


def _money_back_and_forth(
    session: Session, order: Order, event: PaymentEvent, now: datetime
) -> None:
    """Money that left or came back after the sale and its refunds were booked: the ledger gets
    a correcting entry (records are immutable) and the merchant a task."""
    _flag(session, order, event.note or f"{event.provider}: {event.kind.value}", now)
    if event.kind == PaymentEventKind.REFUND_FAILED:
        order.amount_refunded = max(0, order.amount_refunded - event.amount)
    moved = _MONEY_MOVED[event.kind]
    events.record(session, moved(order_id=order.id, at=now, amount=event.amount))


_MONEY_MOVED: dict[PaymentEventKind, type[events.MoneyMoved]] = {
    PaymentEventKind.CHARGEBACK: events.ChargebackReceived,
    PaymentEventKind.CHARGEBACK_REVERSED: events.ChargebackReversed,
    PaymentEventKind.REFUND_FAILED: events.RefundFailed,
}


@dataclass(frozen=True)
class EventOutcome:
    applied: bool
    duplicate: bool = False
    order_id: int | None = None


def apply_payment_event(
    session: Session, event: PaymentEvent, now: datetime | None = None
) -> EventOutcome:
    """The single entry point for what payment backends report. Idempotent by (provider, key)."""
    now = now or utcnow()
    order = get_by_ref(session, event.order_ref, lock=True)
    # One statement instead of a savepoint, a flush and its release: a repeat inserts nothing.
    recorded = session.execute(
        insert_for(session, PaymentRecord)
        .values(
            order_id=order.id if order else None,
            provider=event.provider,
            key=event.key,
            kind=event.kind.value,
            amount=event.amount,
            currency=event.currency,
            reference=event.reference,
            note=event.note[:500],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider", "key"])
        .returning(PaymentRecord.id)
    ).scalar()
    if recorded is None:
        return EventOutcome(applied=False, duplicate=True, order_id=order.id if order else None)
    if order is None:
        return EventOutcome(applied=False)

    if event.currency != order.currency and event.kind in (
        PaymentEventKind.PAID,
        PaymentEventKind.REFUNDED,
    ):
        _flag(
            session,
            order,
            f"{event.provider} reported {event.amount} {event.currency}, "
            f"but the order is in {order.currency}: not applied.",
            now,
        )
        return EventOutcome(applied=False, order_id=order.id)

    if event.kind == PaymentEventKind.PAID:
        order.amount_paid += event.amount
        if order.state in (S.PENDING_PAYMENT, S.EXPIRED):
            if order.amount_paid >= order.total:
                order.paid_via = event.method or order.payment_method
                mark_paid(session, order, event.note or f"Paid via {event.provider}", now)
            else:
                _flag(
                    session, order, f"Partial payment: {order.amount_paid} of {order.total}.", now
                )
        else:
            _flag(
                session,
                order,
                f"Additional payment of {event.amount} via {event.provider} while {order.status}.",
                now,
            )
    elif event.kind == PaymentEventKind.REFUNDED:
        record_refund(
            session, order, event.amount, event.note, now, reference=event.reference or event.key
        )
    elif event.kind in (PaymentEventKind.REVERTED, PaymentEventKind.ATTENTION):
        _flag(session, order, event.note or f"{event.provider}: {event.kind.value}", now)
    elif event.kind == PaymentEventKind.WITHDRAWN:
        _unflag(session, order, event.note, now)
    elif event.kind in (
        PaymentEventKind.CHARGEBACK,
        PaymentEventKind.CHARGEBACK_REVERSED,
        PaymentEventKind.REFUND_FAILED,
    ):
        _money_back_and_forth(session, order, event, now)
    else:
        session.add(
            OrderEvent(
                order=order,
                at=now,
                from_status=order.status,
                to_status=order.status,
                note=event.note or event.kind.value,
            )
        )
    return EventOutcome(applied=True, order_id=order.id)
