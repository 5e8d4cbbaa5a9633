"""Card payments on the shop's side: Checkout attempts, webhook events and refunds.

Imports no Flask and never commits. Orders change only through shop.orders.service, mostly via
`apply_payment_event`, whose PaymentRecord keys name the money movement (a session paid, a
refund settled); Stripe event ids are kept in `stripe_events`. Both are written in the caller's
transaction, so a redelivered event and a second event about the same payment are no-ops.

Stripe sends events in no particular order and may resend old ones, so an event is only a hint:
the Session, PaymentIntent or refunds are read back from the API before anything is changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shop.db import utcnow
from shop.orders import service as orders
from shop.orders.models import Order
from shop.orders.states import OrderError, OrderStatus
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.payments.stripe.amounts import StripeAmountError
from shop.payments.stripe.client import (
    CHECKOUT_MAX_LIFETIME,
    CHECKOUT_MIN_LIFETIME,
    CardGatewayError,
    CardGatewayIdempotencyConflict,
    CardGatewayRejected,
    CardGatewayUnavailable,
    LineItem,
    RefundInfo,
    StripeGateway,
)
from shop.payments.stripe.method import PROVIDER
from shop.payments.stripe.models import CardPayment, CardRefund, StripeEventRecord
from shop.payments.stripe.webhooks import CardEvent, CardEventKind

log = logging.getLogger(__name__)
S = OrderStatus

# A card session lives as long as the order's stock reservation, but at least this long:
# Stripe's minimum is 30 minutes, and the extra minutes let a create that timed out be retried
# with the very same request (same idempotency key, same expires_at) for a while. The order's
# reservation is extended to match, so stock is never released while the page can be paid.
MIN_SESSION_LIFETIME = timedelta(minutes=35)
# Stripe moves an expires_at that is within a minute of its window's edge (client.py);
# a retry must stay clear of that to send identical parameters.
_RETRY_HEADROOM = timedelta(seconds=CHECKOUT_MIN_LIFETIME + 90)
_MAX_LIFETIME = timedelta(seconds=CHECKOUT_MAX_LIFETIME) - timedelta(minutes=5)
# An open session whose page is this close to expiry is not handed out again.
_REUSE_MARGIN = timedelta(minutes=2)
# Stripe's expiry may be up to a minute before the reservation's (see above).
_EXPIRY_SLACK = timedelta(minutes=2)

REFUNDABLE = (S.PAID, S.PARTIALLY_REFUNDED, S.FULFILLED)


class CardPaymentError(Exception):
    """Base of this module's errors; the message can be shown to the customer or merchant."""


class CardUnavailable(CardPaymentError):
    def __init__(self) -> None:
        super().__init__("Card payments are unavailable at the moment (our payment provider did "
                         "not answer). Nothing was charged and your order is still reserved; "
                         "please try again in a minute.")


class CardCheckoutFailed(CardPaymentError):
    def __init__(self) -> None:
        super().__init__("The card payment page could not be opened. Nothing was charged and "
                         "your order is still reserved; please try again, or contact us.")


class NotPayable(CardPaymentError):
    pass


class PaymentProcessing(CardPaymentError):
    def __init__(self) -> None:
        super().__init__("Your card payment is being confirmed; there is nothing more to pay.")


class NotRefundable(CardPaymentError):
    pass


class RefundInFlight(CardPaymentError):
    def __init__(self, amount: int) -> None:
        self.amount = amount
        super().__init__(f"An earlier refund of {amount} (minor units) was sent but not confirmed "
                         "by Stripe; repeat that refund first.")


class RefundUnavailable(CardPaymentError):
    def __init__(self) -> None:
        super().__init__("Stripe did not answer; the refund was not confirmed. Repeat it with the "
                         "same amount: it will not be made twice.")


class RefundRejected(CardPaymentError):
    pass


# ---------------------------------------------------------------- lookups


def latest_attempt(session: Session, order_id: int) -> CardPayment | None:
    return session.scalar(
        select(CardPayment).where(CardPayment.order_id == order_id)
        .order_by(CardPayment.attempt.desc()).limit(1)
    )


def refunds_of(session: Session, order_id: int) -> list[CardRefund]:
    return list(session.scalars(
        select(CardRefund).where(CardRefund.order_id == order_id).order_by(CardRefund.id)
    ))


def _lock_order(session: Session, order_id: int) -> Order:
    # populate_existing: the caller's copy may be stale by the time the lock is granted.
    return session.scalars(
        select(Order).where(Order.id == order_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# ---------------------------------------------------------------- checkout


@dataclass(frozen=True)
class CheckoutLink:
    url: str
    attempt: int
    reused: bool


def _line_items(order: Order) -> list[LineItem]:
    return [
        LineItem(
            f"{line.product_title} ({line.variant_label})" if line.variant_label
            else line.product_title,
            line.unit_price, line.quantity,
        )
        for line in order.lines
    ]


def _new_attempt(session: Session, order: Order, number: int, now: datetime) -> CardPayment:
    expires = min(max(order.expires_at, now + MIN_SESSION_LIFETIME), now + _MAX_LIFETIME)
    attempt = CardPayment(
        order_id=order.id, attempt=number, status="creating", amount=order.total,
        currency=order.currency, expires_at=expires.replace(microsecond=0),
        created_at=now, updated_at=now,
    )
    session.add(attempt)
    session.flush()
    return attempt


def start_checkout(session: Session, gateway: StripeGateway, order: Order, *, success_url: str,
                   cancel_url: str, now: datetime | None = None) -> CheckoutLink:
    """The hosted payment page for `order`: the open one again, or a new Checkout Session.

    The attempt row (with its expires_at) is written before Stripe is called; if Stripe does
    not answer, it stays `creating` and the next click repeats the identical request under the
    same idempotency key, so a session Stripe did create is found again, never doubled.
    """
    now = now or utcnow()
    order = _lock_order(session, order.id)
    if order.payment_method != "card":
        raise NotPayable("This order is not paid by card.")
    if order.state != S.PENDING_PAYMENT:
        raise NotPayable("This order is not awaiting payment.")
    latest = latest_attempt(session, order.id)
    if latest is not None:
        if latest.status == "open" and latest.url and latest.expires_at > now + _REUSE_MARGIN:
            return CheckoutLink(latest.url, latest.attempt, reused=True)
        if latest.status in ("processing", "paid"):
            raise PaymentProcessing()

    if (latest is not None and latest.status == "creating" and latest.amount == order.total
            and latest.expires_at >= now + _RETRY_HEADROOM):
        attempt = latest
    else:
        attempt = _new_attempt(session, order, (latest.attempt + 1) if latest else 1, now)

    for _ in range(2):
        try:
            info = gateway.create_checkout_session(
                order_ref=order.ref, attempt=attempt.attempt, currency=order.currency,
                lines=_line_items(order),
                shipping_minor=order.shipping or None,
                shipping_label=order.shipping_method or None,
                success_url=success_url, cancel_url=cancel_url,
                expires_at=_unix(attempt.expires_at),
            )
            break
        except CardGatewayIdempotencyConflict:
            # This attempt's key was used for a different request (the shop's address or
            # catalog names changed in between): the old request never produced a page the
            # customer saw, so a fresh attempt is safe.
            attempt.status, attempt.updated_at = "failed", now
            attempt = _new_attempt(session, order, attempt.attempt + 1, now)
        except CardGatewayUnavailable as exc:
            log.warning("Stripe unavailable creating a Checkout Session (request %s, status %s)",
                        exc.request_id, exc.http_status)
            raise CardUnavailable() from exc
        except (CardGatewayError, StripeAmountError, ValueError) as exc:
            log.error("Stripe refused a Checkout Session: %s", exc)
            attempt.status, attempt.updated_at = "failed", now
            raise CardCheckoutFailed() from exc
    else:  # two conflicts in a row cannot come from a stale key
        attempt.status, attempt.updated_at = "failed", now
        raise CardCheckoutFailed()

    attempt.session_id, attempt.url, attempt.status = info.id, info.url, "open"
    attempt.expires_at, attempt.updated_at = _from_unix(info.expires_at), now
    orders.extend_reservation(session, order, attempt.expires_at,
                              "Card payment page opened; items reserved until it closes", now)
    return CheckoutLink(info.url, attempt.attempt, reused=False)


def close_open_pages(session: Session, gateway: StripeGateway, order: Order,
                     now: datetime | None = None) -> int:
    """Expire the order's open Checkout pages at Stripe, e.g. before the merchant cancels it,
    so nobody pays for an order that no longer exists. Returns how many were closed; raises
    CardUnavailable if Stripe cannot be reached (the pages may still be payable)."""
    now = now or utcnow()
    closed = 0
    for attempt in session.scalars(select(CardPayment).where(
            CardPayment.order_id == order.id, CardPayment.status == "open")):
        try:
            state = gateway.expire_checkout_session(attempt.session_id or "")
        except CardGatewayUnavailable as exc:
            raise CardUnavailable() from exc
        except CardGatewayRejected:
            # Not open any more at Stripe (paid or expired): its webhook tells the rest.
            continue
        if state.status == "expired":
            attempt.status, attempt.updated_at = "expired", now
            closed += 1
    return closed


def note_return(session: Session, gateway: StripeGateway, order: Order, session_id: str,
                now: datetime | None = None) -> bool:
    """The customer came back from the success URL: show "processing" if Stripe agrees that
    the session is complete. Never marks anything paid; only a webhook does. True if noted."""
    attempt = session.scalar(select(CardPayment).where(
        CardPayment.session_id == session_id, CardPayment.order_id == order.id))
    if attempt is None or attempt.status not in ("open", "creating"):
        return False
    try:
        state = gateway.retrieve_checkout_session(session_id)
    except CardGatewayError:
        return False
    if state.status != "complete":
        return False
    attempt.status, attempt.updated_at = "processing", now or utcnow()
    attempt.payment_intent = state.payment_intent
    return True


# ---------------------------------------------------------------- webhooks


@dataclass(frozen=True)
class WebhookOutcome:
    status: str  # applied | duplicate | unmatched
    order_id: int | None = None


def already_processed(session: Session, event_id: str) -> bool:
    return session.get(StripeEventRecord, event_id) is not None


@dataclass(frozen=True)
class _Facts:
    """What the API says now, read before the transaction that acts on it."""

    session_state: object | None = None
    intent_status: str | None = None
    refunds: tuple[RefundInfo, ...] = ()


def read_facts(gateway: StripeGateway, event: CardEvent) -> _Facts:
    """Re-read what the event is about. Raises CardGatewayError if Stripe cannot be reached:
    the endpoint then answers 5xx and Stripe delivers the event again later."""
    if event.kind in (CardEventKind.PAID, CardEventKind.PROCESSING, CardEventKind.FAILED,
                      CardEventKind.EXPIRED) and event.session_id:
        state = gateway.retrieve_checkout_session(event.session_id)
        intent_status = None
        if state.status == "complete" and state.payment_status != "paid" and state.payment_intent:
            intent_status = gateway.retrieve_payment_intent(state.payment_intent).status
        return _Facts(session_state=state, intent_status=intent_status)
    if event.kind == CardEventKind.REFUND and event.payment_intent:
        return _Facts(refunds=tuple(gateway.list_refunds(event.payment_intent)))
    return _Facts()


def record_event(session: Session, event: CardEvent, facts: _Facts,
                 now: datetime | None = None) -> WebhookOutcome:
    """Apply one verified event, given what the API said about it. Idempotent by event id."""
    now = now or utcnow()
    record = StripeEventRecord(event_id=event.event_id, type=event.stripe_type, received_at=now)
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        return WebhookOutcome("duplicate")

    order, attempt = _find_order(session, event, facts)
    if order is None:
        log.info("Stripe event %s (%s) matches no order of this shop", event.event_id,
                 event.stripe_type)
        return WebhookOutcome("unmatched")
    record.order_id = order.id
    if event.kind == CardEventKind.REFUND:
        _sync_refunds(session, order, event.payment_intent or "", facts.refunds, now)
    elif event.kind == CardEventKind.DISPUTED:
        _apply(session, order, f"dispute:{event.dispute_id}", PaymentEventKind.ATTENTION,
               event.amount_minor or 0, event.currency or order.currency, now,
               note=f"Card payment disputed by the cardholder ({event.dispute_id}): respond in "
                    "the Stripe Dashboard before the deadline.")
    elif facts.session_state is not None:
        _sync_session(session, order, attempt, facts, now)
    return WebhookOutcome("applied", order.id)


def _find_order(session: Session, event: CardEvent,
                facts: _Facts) -> tuple[Order | None, CardPayment | None]:
    attempt = None
    state = facts.session_state
    if state is not None:
        attempt = session.scalar(select(CardPayment).where(CardPayment.session_id == state.id))
    elif event.payment_intent:
        attempt = session.scalar(select(CardPayment).where(
            CardPayment.payment_intent == event.payment_intent).limit(1))
    if attempt is not None:
        return _lock_order(session, attempt.order_id), attempt
    ref = (state.client_reference_id if state is not None else None) or event.order_ref
    order = orders.get_by_ref(session, ref, lock=True) if ref else None
    if order is not None and order.payment_method != "card":
        return None, None
    return order, None


def _apply(session: Session, order: Order, key: str, kind: PaymentEventKind, amount: int,
           currency: str, now: datetime, note: str, reference: str = "") -> bool:
    outcome = orders.apply_payment_event(session, PaymentEvent(
        provider=PROVIDER, key=key, order_ref=order.ref, kind=kind, amount=amount,
        currency=currency, reference=reference, note=note,
    ), now)
    return outcome.applied


def _sync_session(session: Session, order: Order, attempt: CardPayment | None, facts: _Facts,
                  now: datetime) -> None:
    state = facts.session_state
    if attempt is None:
        # A session the shop did not record: its create timed out and a later attempt was
        # made, yet the customer paid this one. Record it so refunds can find the payment.
        latest = latest_attempt(session, order.id)
        attempt = CardPayment(
            order_id=order.id, attempt=(latest.attempt + 1) if latest else 1, status="open",
            session_id=state.id, amount=state.amount_total_minor or 0,
            currency=state.currency or order.currency,
            expires_at=_from_unix(state.expires_at) if state.expires_at else now,
            created_at=now, updated_at=now,
        )
        session.add(attempt)
    attempt.updated_at = now
    if state.status == "complete":
        attempt.payment_intent = state.payment_intent
        if state.payment_status == "paid":
            _session_paid(session, order, attempt, state, now)
        elif facts.intent_status in ("requires_payment_method", "canceled"):
            attempt.status = "failed"
            _apply(session, order, f"{state.id}:failed", PaymentEventKind.FAILED, 0,
                   order.currency, now, "Card payment failed; the order can be paid again.")
        else:
            attempt.status = "processing"
            _apply(session, order, f"{state.id}:processing", PaymentEventKind.PENDING, 0,
                   order.currency, now, "Card payment processing")
    elif state.status == "expired":
        if attempt.status in ("open", "creating"):
            attempt.status = "expired"
        others_open = session.scalar(select(func.count()).select_from(CardPayment).where(
            CardPayment.order_id == order.id, CardPayment.id != attempt.id,
            CardPayment.status.in_(("open", "processing"))))
        # Release the stock now only if the reservation ended with this page; a longer
        # reservation (over Stripe's 24 h) stays, and the customer may open a new page.
        if (order.state == S.PENDING_PAYMENT and not others_open
                and order.expires_at <= attempt.expires_at + _EXPIRY_SLACK):
            orders.expire(session, order, now)


def _session_paid(session: Session, order: Order, attempt: CardPayment, state,
                  now: datetime) -> None:
    amount, currency = state.amount_total_minor, state.currency
    if amount != order.total or currency != order.currency:
        attempt.status = "mismatch"
        _apply(session, order, f"{state.id}:mismatch", PaymentEventKind.ATTENTION, amount or 0,
               currency or order.currency, now,
               note=f"Stripe Checkout {state.id} was paid {amount} {currency}, but the order is "
                    f"{order.total} {order.currency}: not marked paid. Refund it or settle by "
                    "hand.", reference=state.payment_intent or "")
        return
    attempt.status = "paid"
    _apply(session, order, f"{state.id}:paid", PaymentEventKind.PAID, amount, currency, now,
           note="Paid by card (Stripe)", reference=state.payment_intent or "")


# ---------------------------------------------------------------- refunds

_REFUND_STATUS = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}


def _sync_refunds(session: Session, order: Order, payment_intent: str,
                  refunds: tuple[RefundInfo, ...], now: datetime) -> None:
    for info in sorted(refunds, key=lambda r: r.id):
        row = session.scalar(select(CardRefund).where(CardRefund.refund_id == info.id))
        if row is None:
            # Ours whose answer was lost, or one made in Stripe's Dashboard.
            row = session.scalar(select(CardRefund).where(
                CardRefund.order_id == order.id, CardRefund.refund_id.is_(None),
                CardRefund.answered_at.is_(None), CardRefund.amount == info.amount_minor
            ).limit(1))
            if row is None:
                row = CardRefund(order_id=order.id, key=info.id, payment_intent=payment_intent,
                                 amount=info.amount_minor, currency=info.currency or order.currency,
                                 answered_at=now, created_at=now)
                session.add(row)
            row.refund_id = info.id
        _refund_status(session, order, row, info.status, now)


def _refund_status(session: Session, order: Order, row: CardRefund, stripe_status: str | None,
                   now: datetime) -> None:
    previous = row.status
    row.status = _REFUND_STATUS.get(stripe_status or "", "pending")
    row.updated_at = now
    if row.status == "succeeded":
        try:
            with session.begin_nested():
                _apply(session, order, f"refund:{row.refund_id}", PaymentEventKind.REFUNDED,
                       row.amount, row.currency, now,
                       note="Card refund" if previous != "sending" else "Card refund issued",
                       reference=row.refund_id or "")
        except OrderError as exc:
            _apply(session, order, f"refund:{row.refund_id}:unapplied",
                   PaymentEventKind.ATTENTION, row.amount, row.currency, now,
                   note=f"Stripe refunded {row.amount} {row.currency} ({row.refund_id}), but the "
                        f"order could not record it: {exc}.")
    elif row.status == "failed" and previous != "failed":
        _apply(session, order, f"refund:{row.refund_id}:failed", PaymentEventKind.ATTENTION,
               row.amount, row.currency, now,
               note=f"Card refund of {row.amount} {row.currency} failed ({row.refund_id})"
                    + (" after it had succeeded; the money is back in your Stripe balance"
                       if previous == "succeeded" else "") + ": refund another way.")


def refund(session: Session, gateway: StripeGateway, order: Order, amount: int,
           now: datetime | None = None) -> CardRefund:
    """Refund `amount` (minor units) of a card-paid order, fully or in part.

    The Idempotency-Key is the order's ref and the refund's sequence number, and the row is
    written before Stripe is called: if Stripe does not answer, repeating the call with the same
    amount sends the identical request, so a refund Stripe did make is never made twice.
    The order moves to refunded / partially_refunded when Stripe reports the refund succeeded
    (now, or later by webhook).
    """
    now = now or utcnow()
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise NotRefundable("A refund amount is a whole number of minor units.")
    order = _lock_order(session, order.id)
    if order.payment_method != "card":
        raise NotRefundable("This order was not paid by card.")
    if order.state not in REFUNDABLE:
        raise NotRefundable(f"An order that is {order.status} cannot be refunded.")
    paid = session.scalar(select(CardPayment).where(
        CardPayment.order_id == order.id, CardPayment.status == "paid",
        CardPayment.payment_intent.is_not(None)).order_by(CardPayment.attempt.desc()).limit(1))
    if paid is None:
        raise NotRefundable("No settled card payment was found for this order.")

    rows = refunds_of(session, order.id)
    unsent = next((r for r in rows if r.answered_at is None), None)
    if unsent is not None:
        if unsent.amount != amount:
            raise RefundInFlight(unsent.amount)
        row = unsent
    else:
        reserved = sum(r.amount for r in rows if r.status == "pending")
        refundable = order.amount_paid - order.amount_refunded - reserved
        if not 0 < amount <= refundable:
            raise NotRefundable(f"A refund must be between 1 and {refundable} (minor units).")
        row = CardRefund(order_id=order.id, key=f"{order.ref}-{len(rows) + 1}",
                         payment_intent=paid.payment_intent, status="sending", amount=amount,
                         currency=order.currency, created_at=now, updated_at=now)
        session.add(row)
        session.flush()

    try:
        info = gateway.create_refund(payment_intent=row.payment_intent, amount_minor=amount,
                                     currency=row.currency, refund_key=row.key,
                                     order_ref=order.ref)
    except CardGatewayUnavailable as exc:
        log.warning("Stripe unavailable creating a refund (request %s, status %s)",
                    exc.request_id, exc.http_status)
        raise RefundUnavailable() from exc
    except (CardGatewayRejected, CardGatewayError) as exc:
        row.status, row.answered_at, row.updated_at = "failed", now, now
        raise RefundRejected(f"Stripe refused the refund: {exc}") from exc

    known = session.scalar(select(CardRefund).where(CardRefund.refund_id == info.id))
    if known is not None and known is not row:
        # A webhook recorded this refund while our request was unanswered: keep that row.
        session.delete(row)
        session.flush()
        row = known
    row.refund_id, row.answered_at = info.id, now
    _refund_status(session, order, row, info.status, now)
    return row
