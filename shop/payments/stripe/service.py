"""Card payments on the shop's side: Checkout attempts, webhook events and refunds.

Imports no Flask and never commits. Orders change only through shop.orders.service, mostly via
`apply_payment_event`, whose PaymentRecord keys name the money movement (a session paid, a
refund settled); Stripe event ids are kept in `stripe_events`. Both are written in the caller's
transaction, so a redelivered event and a second event about the same payment are no-ops.

Stripe sends events in no particular order and may resend old ones, so an event is only a hint:
the Session, PaymentIntent or refunds are read back from the API before anything is changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shop import i18n
from shop.db import Database, rowcount, utcnow
from shop.i18n import N_
from shop.i18n import lazy_gettext as _l
from shop.orders import service as orders
from shop.orders.models import Order, PaymentRecord
from shop.orders.states import REFUNDABLE, OrderError, OrderStatus
from shop.payments.base import PaymentActionError, PaymentEvent, PaymentEventKind
from shop.payments.stripe.amounts import StripeAmountError
from shop.payments.stripe.client import (
    CHECKOUT_MAX_LIFETIME,
    CHECKOUT_MIN_LIFETIME,
    CardGatewayError,
    CardGatewayIdempotencyConflict,
    CardGatewayRejected,
    CardGatewayUnavailable,
    CheckoutSessionInfo,
    CheckoutSessionState,
    LineItem,
    RefundInfo,
    StripeGateway,
)
from shop.payments.stripe.models import CardPayment, CardRefund, StripeEventRecord
from shop.payments.stripe.webhooks import CardEvent, CardEventKind

log = logging.getLogger(__name__)
S = OrderStatus
PROVIDER = "stripe"

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


class CardPaymentError(PaymentActionError):
    """Base of this module's errors; the message can be shown to the customer or merchant."""


class CardUnavailable(CardPaymentError):
    def __init__(self) -> None:
        super().__init__(
            _l(
                "Card payments are unavailable at the moment (our payment provider "
                "did not answer). Nothing was charged and your order is still "
                "reserved; please try again in a minute."
            )
        )


class CardCheckoutFailed(CardPaymentError):
    def __init__(self) -> None:
        super().__init__(
            _l(
                "The card payment page could not be opened. Nothing was charged and "
                "your order is still reserved; please try again, or contact us."
            )
        )


class NotPayable(CardPaymentError):
    pass


class PaymentProcessing(CardPaymentError):
    def __init__(self) -> None:
        super().__init__(_l("Your card payment is being confirmed; there is nothing more to pay."))


class NotRefundable(CardPaymentError):
    pass


class RefundInFlight(CardPaymentError):
    def __init__(self, amount: int) -> None:
        self.amount = amount
        super().__init__(
            f"An earlier refund of {amount} (minor units) was sent but not confirmed "
            "by Stripe; repeat that refund first."
        )


class RefundUnavailable(CardPaymentError):
    def __init__(self) -> None:
        super().__init__(
            "Stripe did not answer; the refund was not confirmed. Repeat it with the "
            "same amount: it will not be made twice."
        )


class RefundRejected(CardPaymentError):
    pass


# ---------------------------------------------------------------- lookups


def latest_attempt(session: Session, order_id: int) -> CardPayment | None:
    return session.scalar(
        select(CardPayment)
        .where(CardPayment.order_id == order_id)
        .order_by(CardPayment.attempt.desc())
        .limit(1)
    )


def refunds_of(session: Session, order_id: int) -> list[CardRefund]:
    return list(
        session.scalars(
            select(CardRefund).where(CardRefund.order_id == order_id).order_by(CardRefund.id)
        )
    )


def _lock_order(session: Session, order_id: int) -> Order:
    # populate_existing: the caller's copy may be stale by the time the lock is granted.
    return session.scalars(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# ---------------------------------------------------------------- attempt states

# Which status an attempt may move to from which. Every change is a conditional UPDATE from an
# allowed previous status (move_attempt), so a slow request acting on what it read before
# calling Stripe can never overwrite what a webhook committed meanwhile.
_ATTEMPT_MOVES: dict[str, frozenset[str]] = {
    "creating": frozenset({"open", "processing", "paid", "failed", "expired", "mismatch"}),
    "open": frozenset({"processing", "paid", "failed", "expired", "mismatch"}),
    "processing": frozenset({"paid", "failed", "mismatch"}),
    # Stripe's word, re-read, wins over a page the shop had given up on: the money is there.
    "failed": frozenset({"paid"}),
    "expired": frozenset({"paid"}),
    "paid": frozenset(),
    "mismatch": frozenset(),
}


class IllegalAttemptTransition(CardPaymentError):
    def __init__(self, current: str, target: str) -> None:
        self.current, self.target = current, target
        super().__init__(f"a card payment attempt that is {current} cannot become {target}")


def move_attempt(
    session: Session,
    attempt: CardPayment,
    target: str,
    now: datetime,
    *,
    strict: bool = False,
    **values,
) -> bool:
    """The only writer of an attempt's status. False (or IllegalTransition with `strict`) if
    the row, as committed now, is not in a status that may become `target`."""
    sources = [s for s, targets in _ATTEMPT_MOVES.items() if target in targets]
    result = session.execute(
        update(CardPayment)
        .where(CardPayment.id == attempt.id, CardPayment.status.in_(sources))
        .values(status=target, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(attempt)
    if rowcount(result) == 1:
        return True
    if strict and attempt.status != target:
        raise IllegalAttemptTransition(attempt.status, target)
    return False


# ---------------------------------------------------------------- checkout


@dataclass(frozen=True)
class CheckoutLink:
    url: str
    attempt: int
    reused: bool


@dataclass(frozen=True)
class _CheckoutRequest:
    """Everything sent to create one attempt's session: the same again on a retry."""

    attempt_id: int
    attempt: int
    order_ref: str
    currency: str
    lines: tuple[LineItem, ...]
    shipping_minor: int | None
    shipping_label: str | None
    expires_at: int
    # Stripe's page in the language the customer shopped in (None: Stripe follows the browser).
    locale: str | None = None


def _line_items(order: Order) -> list[LineItem]:
    return [
        LineItem(
            f"{line.product_title} ({line.variant_label})"
            if line.variant_label
            else line.product_title,
            line.unit_price,
            line.quantity,
        )
        for line in order.lines
    ]


def _request_for(order: Order, attempt: CardPayment) -> _CheckoutRequest:
    return _CheckoutRequest(
        attempt.id,
        attempt.attempt,
        order.ref,
        order.currency,
        tuple(_line_items(order)),
        order.shipping or None,
        order.shipping_method or None,
        _unix(attempt.expires_at),
        i18n.language_of(order.locale) if order.locale else None,
    )


def _new_attempt(session: Session, order: Order, number: int, now: datetime) -> CardPayment:
    expires = min(max(order.expires_at, now + MIN_SESSION_LIFETIME), now + _MAX_LIFETIME)
    attempt = CardPayment(
        order_id=order.id,
        attempt=number,
        status="creating",
        amount=order.total,
        currency=order.currency,
        expires_at=expires.replace(microsecond=0),
        created_at=now,
        updated_at=now,
    )
    session.add(attempt)
    session.flush()
    return attempt


def _create(
    gateway: StripeGateway,
    request: _CheckoutRequest,
    success_url: str,
    cancel_url: str,
    replay: bool = False,
):
    return gateway.create_checkout_session(
        order_ref=request.order_ref,
        attempt=request.attempt,
        currency=request.currency,
        lines=list(request.lines),
        shipping_minor=request.shipping_minor,
        shipping_label=request.shipping_label,
        success_url=success_url,
        cancel_url=cancel_url,
        expires_at=request.expires_at,
        replay=replay,
        locale=request.locale,
    )


def start_checkout(
    database: Database,
    gateway: StripeGateway,
    order_id: int,
    *,
    success_url: str,
    cancel_url: str,
    now: datetime | None = None,
) -> CheckoutLink:
    """The hosted payment page for the order: the open one again, or a new Checkout Session.

    No transaction is open while Stripe is called. The attempt row (with its expires_at) is
    committed first: if Stripe does not answer, or the request is killed, it stays `creating`,
    and the next click repeats the identical request under the same idempotency key, so a
    session Stripe did create is found again, never doubled. An older page that might still be
    open is expired at Stripe before another one is made.
    """
    now = now or utcnow()
    with database.write_session() as session:
        order = _lock_order(session, order_id)
        if order.payment_method != "card":
            raise NotPayable(_l("This order is not paid by card."))
        if order.state != S.PENDING_PAYMENT:
            raise NotPayable(_l("This order is not awaiting payment."))
        latest = latest_attempt(session, order.id)
        if latest is not None:
            if latest.status == "open" and latest.url and latest.expires_at > now + _REUSE_MARGIN:
                return CheckoutLink(latest.url, latest.attempt, reused=True)
            if latest.status in ("processing", "paid"):
                raise PaymentProcessing()
        if (
            latest is not None
            and latest.status == "creating"
            and latest.amount == order.total
            and latest.expires_at >= now + _RETRY_HEADROOM
        ):
            attempt = latest
        else:
            attempt = _new_attempt(session, order, (latest.attempt + 1) if latest else 1, now)
        request = _request_for(order, attempt)
        older = [
            (a.id, a.session_id, _request_for(order, a))
            for a in session.scalars(
                select(CardPayment).where(
                    CardPayment.order_id == order.id,
                    CardPayment.id != attempt.id,
                    CardPayment.status.in_(("open", "creating")),
                )
            )
        ]

    for attempt_id, session_id, old_request in older:
        _close_page(
            database, gateway, attempt_id, session_id, old_request, success_url, cancel_url, now
        )

    info, request = _create_page(database, gateway, order_id, request, success_url, cancel_url, now)
    return _record_page(database, order_id, request, info, now)


def _create_page(
    database: Database,
    gateway: StripeGateway,
    order_id: int,
    request: _CheckoutRequest,
    success_url: str,
    cancel_url: str,
    now: datetime,
) -> tuple[CheckoutSessionInfo, _CheckoutRequest]:
    """Have Stripe create the attempt's Checkout Session (no transaction open meanwhile).
    Returns the session and the request it answers: a fresh attempt's if the first one's
    idempotency key turned out to be stale."""
    for _ in range(2):
        try:
            return _create(gateway, request, success_url, cancel_url), request
        except CardGatewayIdempotencyConflict:
            # This attempt's key was used for a different request (the shop's address or
            # catalog names changed in between): the old request never produced a page the
            # customer saw, so a fresh attempt is safe.
            with database.write_session() as session:
                old = session.get(CardPayment, request.attempt_id)
                move_attempt(session, old, "failed", now)
                order = _lock_order(session, order_id)
                request = _request_for(order, _new_attempt(session, order, old.attempt + 1, now))
        except CardGatewayUnavailable as exc:
            log.warning(
                "Stripe unavailable creating a Checkout Session (request %s, status %s)",
                exc.request_id,
                exc.http_status,
            )
            raise CardUnavailable() from exc
        except (CardGatewayError, StripeAmountError, ValueError) as exc:
            log.error("Stripe refused a Checkout Session: %s", exc)
            _fail(database, request.attempt_id, now)
            raise CardCheckoutFailed() from exc
    # Two conflicts in a row cannot come from a stale key.
    _fail(database, request.attempt_id, now)
    raise CardCheckoutFailed()


def _record_page(
    database: Database,
    order_id: int,
    request: _CheckoutRequest,
    info: CheckoutSessionInfo,
    now: datetime,
) -> CheckoutLink:
    """The attempt's page is open: record it, and hold the order's stock until it closes.
    Unless another click or a webhook recorded something first."""
    with database.write_session() as session:
        attempt = session.get(CardPayment, request.attempt_id)
        expires_at = _from_unix(info.expires_at)
        if not move_attempt(
            session, attempt, "open", now, session_id=info.id, url=info.url, expires_at=expires_at
        ):
            if attempt.status == "open" and attempt.session_id == info.id:
                # A concurrent click sent the same request (same key) and recorded it first.
                return CheckoutLink(info.url, request.attempt, reused=True)
            # A webhook got here first (the customer paid on a page from a replayed request).
            if attempt.status in ("processing", "paid"):
                raise PaymentProcessing()
            raise CardCheckoutFailed()
        order = _lock_order(session, order_id)
        if order.state == S.PENDING_PAYMENT:
            orders.extend_reservation(
                session,
                order,
                expires_at,
                "Card payment page opened; items reserved until it closes",
                now,
            )
    return CheckoutLink(info.url, request.attempt, reused=False)


def _fail(database: Database, attempt_id: int, now: datetime) -> None:
    with database.write_session() as session:
        move_attempt(session, session.get(CardPayment, attempt_id), "failed", now)


def _close_page(
    database: Database,
    gateway: StripeGateway,
    attempt_id: int,
    session_id: str | None,
    request: _CheckoutRequest,
    success_url: str,
    cancel_url: str,
    now: datetime,
) -> None:
    """Make sure an older attempt's page can no longer be paid. Raises PaymentProcessing if
    the customer already paid on it, CardUnavailable if Stripe cannot tell."""
    try:
        if session_id is None:
            # Its answer was lost: the same request under the same key gives the session back
            # (Stripe keeps the answer 24 hours; a session never lives longer).
            try:
                session_id = _create(gateway, request, success_url, cancel_url, replay=True).id
            except CardGatewayRejected:
                state = None  # never created, or long gone: nothing can be paid there
            else:
                state = _expire_or_read(gateway, session_id)
        else:
            state = _expire_or_read(gateway, session_id)
    except CardGatewayUnavailable as exc:
        raise CardUnavailable() from exc
    with database.write_session() as session:
        attempt = session.get(CardPayment, attempt_id)
        if state is None or state.status == "expired":
            values: dict[str, Any] = (
                {"session_id": session_id} if session_id and not attempt.session_id else {}
            )
            move_attempt(session, attempt, "expired", now, **values)
    if state is not None and state.status == "complete":
        # Paid (or being paid) there: its webhook records it; never open a second page.
        raise PaymentProcessing()


def _expire_or_read(gateway: StripeGateway, session_id: str):
    try:
        return gateway.expire_checkout_session(session_id)
    except CardGatewayRejected:
        # Stripe refuses to expire a session that is no longer open: read what it is.
        return gateway.retrieve_checkout_session(session_id)


class CannotCancel(CardPaymentError):
    pass


def cancel_order(
    database: Database,
    gateway: StripeGateway,
    order_id: int,
    reason: str,
    now: datetime | None = None,
    *,
    urls: tuple[str, str] = ("", ""),
) -> None:
    """Cancel an unpaid card order: its pages are closed at Stripe first, so nobody pays for an
    order that no longer exists. Refused (CannotCancel) if a payment is processing or Stripe
    says a page was paid; CardUnavailable if Stripe cannot be reached."""
    now = now or utcnow()
    with database.write_session() as session:
        order = _lock_order(session, order_id)
        if order.state != S.PENDING_PAYMENT:
            orders.cancel(session, order, reason, now)  # raises the named order error
        attempts = list(
            session.scalars(
                select(CardPayment).where(
                    CardPayment.order_id == order_id,
                    CardPayment.status.in_(("open", "creating", "processing")),
                )
            )
        )
        if any(a.status == "processing" for a in attempts):
            raise CannotCancel(_PROCESSING_REFUSAL)
        pending = [(a.id, a.session_id, _request_for(order, a)) for a in attempts]
    for attempt_id, session_id, request in pending:
        try:
            _close_page(database, gateway, attempt_id, session_id, request, *urls, now)
        except CardUnavailable:
            raise CannotCancel(
                "Stripe could not be reached, so the customer's payment page may "
                "still be open. The order was not cancelled; please try again."
            ) from None
        except PaymentProcessing:
            raise CannotCancel(
                "Stripe says the customer has just paid on the payment page, so "
                "the order was not cancelled. Refund it once the payment is "
                "confirmed."
            ) from None
    with database.write_session() as session:
        order = _lock_order(session, order_id)
        if session.scalar(
            select(func.count())
            .select_from(CardPayment)
            .where(
                CardPayment.order_id == order_id,
                CardPayment.status.in_(("open", "creating", "processing", "paid")),
            )
        ):
            raise CannotCancel(_PROCESSING_REFUSAL)
        orders.cancel(session, order, reason, now)


_PROCESSING_REFUSAL = (
    "A card payment for this order is being processed by Stripe, so it was "
    "not cancelled: wait for its outcome, then refund it if it succeeds."
)


def note_return(
    database: Database,
    gateway: StripeGateway,
    order_id: int,
    session_id: str,
    now: datetime | None = None,
) -> bool:
    """The customer came back from the success URL: show "processing" if Stripe agrees that
    the session is complete. Never marks anything paid; only a webhook does. True if noted."""
    with database.job_session() as session:
        attempt = session.scalar(
            select(CardPayment).where(
                CardPayment.session_id == session_id, CardPayment.order_id == order_id
            )
        )
        if attempt is None or attempt.status not in ("open", "creating"):
            return False
    try:
        state = gateway.retrieve_checkout_session(session_id)
    except CardGatewayError:
        return False
    if state.status != "complete":
        return False
    with database.write_session() as session:
        # Conditional: a webhook applied while Stripe answered has already moved it further.
        return move_attempt(
            session,
            session.get(CardPayment, attempt.id),
            "processing",
            now or utcnow(),
            payment_intent=state.payment_intent,
        )


# ---------------------------------------------------------------- webhooks
#
# The endpoint only verifies, stores and answers (receive_event); the worker applies
# (process_events), re-reading from Stripe with no transaction open and no customer waiting.

# Re-reading a stored event that Stripe could not answer is tried again after this long,
# doubling up to a day: Stripe's own redelivery covers about three days the same way.
_RETRY_FIRST = timedelta(seconds=30)
_RETRY_MAX = timedelta(hours=24)


@dataclass(frozen=True)
class WebhookOutcome:
    status: str  # applied | unmatched
    order_id: int | None = None


def receive_event(session: Session, event: CardEvent, now: datetime | None = None) -> bool:
    """Store a verified event for the worker. False if it was already stored (a redelivery).

    Only the CardEvent is kept: references and amounts, none of the personal data Stripe's
    objects carry."""
    now = now or utcnow()
    try:
        with session.begin_nested():
            session.add(
                StripeEventRecord(
                    event_id=event.event_id,
                    type=event.stripe_type,
                    received_at=now,
                    status="received",
                    data=json.dumps(asdict(event)),
                    tries=0,
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class _Facts:
    """What the API says now, read before the transaction that acts on it."""

    session_state: CheckoutSessionState | None = None
    intent_status: str | None = None
    refunds: tuple[RefundInfo, ...] = ()


def read_facts(gateway: StripeGateway, event: CardEvent) -> _Facts:
    """Re-read what the event is about. Raises CardGatewayUnavailable if Stripe cannot be
    reached (tried again later), CardGatewayRejected if Stripe does not know the object."""
    if (
        event.kind
        in (
            CardEventKind.PAID,
            CardEventKind.PROCESSING,
            CardEventKind.FAILED,
            CardEventKind.EXPIRED,
        )
        and event.session_id
    ):
        state = gateway.retrieve_checkout_session(event.session_id)
        intent_status = None
        if state.status == "complete" and state.payment_status != "paid" and state.payment_intent:
            intent_status = gateway.retrieve_payment_intent(state.payment_intent).status
        return _Facts(session_state=state, intent_status=intent_status)
    if event.kind == CardEventKind.REFUND and event.payment_intent:
        return _Facts(refunds=tuple(gateway.list_refunds(event.payment_intent)))
    return _Facts()


def process_events(
    database: Database,
    gateway: StripeGateway,
    *,
    hold: timedelta = timedelta(days=14),
    now: datetime | None = None,
    limit: int = 100,
) -> int:
    """The worker's job: apply stored events, oldest first. Returns how many were settled.

    Safe with several workers: an event is claimed by a conditional UPDATE in the transaction
    that applies it, so only one of them applies it."""
    now = now or utcnow()
    with database.job_session() as session:
        ids = list(
            session.scalars(
                select(StripeEventRecord.event_id)
                .where(
                    StripeEventRecord.status == "received",
                    (StripeEventRecord.next_try_at.is_(None))
                    | (StripeEventRecord.next_try_at <= now),
                )
                .order_by(StripeEventRecord.received_at, StripeEventRecord.event_id)
                .limit(limit)
            )
        )
    done = 0
    for event_id in ids:
        with database.job_session() as session:
            row = session.get(StripeEventRecord, event_id)
            if row is None or row.status != "received":
                continue
            event = _card_event(row)
        try:
            facts = read_facts(gateway, event)
        except CardGatewayRejected as exc:
            # Stripe does not know the object (another account, a deleted test object):
            # retrying would not change that. Recorded, and the merchant told.
            done += _settle_unmatched(
                database, event, now, f"Stripe refused to show it ({exc.http_status})"
            )
            continue
        except CardGatewayError as exc:
            with database.write_session() as session:
                row = session.get(StripeEventRecord, event_id)
                row.tries += 1
                row.next_try_at = now + min(_RETRY_FIRST * 2 ** (row.tries - 1), _RETRY_MAX)
                row.last_error = f"{type(exc).__name__} {exc.http_status or ''}".strip()[:200]
            log.warning(
                "Stripe unavailable re-reading %s (%s); tried again later",
                event_id,
                type(exc).__name__,
            )
            continue
        with database.write_session() as session:
            if _claim(session, event_id, now):
                apply_event(session, event, facts, now, hold=hold)
                done += 1
    return done


def _card_event(row: StripeEventRecord) -> CardEvent:
    data = json.loads(row.data or "{}")
    data["kind"] = CardEventKind(data["kind"])
    return CardEvent(**data)


def _claim(session: Session, event_id: str, now: datetime) -> bool:
    return (
        rowcount(
            session.execute(
                update(StripeEventRecord)
                .where(
                    StripeEventRecord.event_id == event_id, StripeEventRecord.status == "received"
                )
                .values(status="applied", applied_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        == 1
    )


def _settle_unmatched(database: Database, event: CardEvent, now: datetime, why: str) -> int:
    with database.write_session() as session:
        if not _claim(session, event.event_id, now):
            return 0
        row = session.get(StripeEventRecord, event.event_id)
        row.status, row.last_error = "unmatched", why[:200]
        log.warning(
            "Stripe event %s (%s) left unmatched: %s", event.event_id, event.stripe_type, why
        )
        order = orders.get_by_ref(session, event.order_ref, lock=True) if event.order_ref else None
        if order is not None and order.payment_method == "card":
            row.order_id = order.id
            _apply(
                session,
                order,
                f"unmatched:{event.event_id}",
                PaymentEventKind.ATTENTION,
                0,
                order.currency,
                now,
                note=f"Stripe event {event.event_id} ({event.stripe_type}) could not be "
                f"checked: {why}. Look it up in the Stripe Dashboard.",
            )
    return 1


def unmatched_events(session: Session, limit: int = 50) -> list[StripeEventRecord]:
    """For the merchant's task list: events the shop could not match to one of its payments."""
    return list(
        session.scalars(
            select(StripeEventRecord)
            .where(
                StripeEventRecord.status == "unmatched", StripeEventRecord.dismissed_at.is_(None)
            )
            .order_by(StripeEventRecord.received_at.desc())
            .limit(limit)
        )
    )


def apply_event(
    session: Session, event: CardEvent, facts: _Facts, now: datetime, *, hold: timedelta
) -> WebhookOutcome:
    """Apply one claimed event, given what the API said about it."""
    record = session.get_one(StripeEventRecord, event.event_id)
    order, attempt = _find_order(session, event, facts)
    if order is None:
        log.info(
            "Stripe event %s (%s) matches no order of this shop", event.event_id, event.stripe_type
        )
        record.status = "unmatched"
        record.last_error = "matches no order of this shop"
        return WebhookOutcome("unmatched")
    record.order_id = order.id
    if event.kind == CardEventKind.REFUND:
        _sync_refunds(session, order, event.payment_intent or "", facts.refunds, now)
    elif event.kind == CardEventKind.DISPUTED:
        _dispute(session, order, event, now)
    elif (state := facts.session_state) is not None:
        _sync_session(session, order, attempt, state, facts, now, hold)
    return WebhookOutcome("applied", order.id)


def _find_order(
    session: Session, event: CardEvent, facts: _Facts
) -> tuple[Order | None, CardPayment | None]:
    attempt = None
    state = facts.session_state
    if state is not None:
        attempt = session.scalar(select(CardPayment).where(CardPayment.session_id == state.id))
    elif event.payment_intent:
        attempt = session.scalar(
            select(CardPayment).where(CardPayment.payment_intent == event.payment_intent).limit(1)
        )
    if attempt is not None:
        return _lock_order(session, attempt.order_id), attempt
    ref = (state.client_reference_id if state is not None else None) or event.order_ref
    order = orders.get_by_ref(session, ref, lock=True) if ref else None
    if order is not None and order.payment_method != "card":
        return None, None
    return order, None


def _apply(
    session: Session,
    order: Order,
    key: str,
    kind: PaymentEventKind,
    amount: int,
    currency: str,
    now: datetime,
    note: str,
    reference: str = "",
) -> bool:
    outcome = orders.apply_payment_event(
        session,
        PaymentEvent(
            provider=PROVIDER,
            key=key,
            order_ref=order.ref,
            kind=kind,
            amount=amount,
            currency=currency,
            reference=reference,
            note=note,
        ),
        now,
    )
    return outcome.applied


_DISPUTE_NOTES = {
    "created": "Card payment disputed by the cardholder ({id}): respond in the Stripe Dashboard "
    "before the deadline.",
    "funds_withdrawn": "Stripe took {amount} {currency} from your balance for the dispute {id}.",
    "funds_reinstated": "Stripe gave back {amount} {currency} of the dispute {id}.",
    "won": "Dispute {id} closed: won; the payment stays yours.",
    "lost": "Dispute {id} closed: lost; the money went back to the cardholder.",
}


def _dispute(session: Session, order: Order, event: CardEvent, now: datetime) -> None:
    stage = event.dispute_stage or "created"
    if stage == "closed":
        stage = event.dispute_status if event.dispute_status in ("won", "lost") else "closed"
    kind = {
        "funds_withdrawn": PaymentEventKind.CHARGEBACK,
        "funds_reinstated": PaymentEventKind.CHARGEBACK_REVERSED,
    }.get(stage, PaymentEventKind.ATTENTION)
    amount, currency = event.amount_minor or 0, event.currency or order.currency
    note = _DISPUTE_NOTES.get(stage, "Dispute {id} closed ({status}).").format(
        id=event.dispute_id, amount=amount, currency=currency, status=event.dispute_status
    )
    _apply(
        session,
        order,
        f"dispute:{event.dispute_id}:{stage}",
        kind,
        amount,
        currency,
        now,
        note=note,
        reference=event.dispute_id or "",
    )


def _sync_session(
    session: Session,
    order: Order,
    attempt: CardPayment | None,
    state: CheckoutSessionState,
    facts: _Facts,
    now: datetime,
    hold: timedelta,
) -> None:
    if attempt is None:
        # A session the shop did not record: its create timed out and a later attempt was
        # made, yet the customer paid this one. Record it so refunds can find the payment.
        latest = latest_attempt(session, order.id)
        attempt = CardPayment(
            order_id=order.id,
            attempt=(latest.attempt + 1) if latest else 1,
            status="open",
            session_id=state.id,
            amount=state.amount_total_minor or 0,
            currency=state.currency or order.currency,
            expires_at=_from_unix(state.expires_at) if state.expires_at else now,
            created_at=now,
            updated_at=now,
        )
        session.add(attempt)
        session.flush()
    if state.status == "complete":
        if state.payment_intent and attempt.payment_intent != state.payment_intent:
            attempt.payment_intent = state.payment_intent
            session.flush()
        if state.payment_status == "paid":
            _session_paid(session, order, attempt, state, now)
        elif facts.intent_status in ("requires_payment_method", "canceled"):
            move_attempt(session, attempt, "failed", now)
            _apply(
                session,
                order,
                f"{state.id}:failed",
                PaymentEventKind.FAILED,
                0,
                order.currency,
                now,
                "Card payment failed",
            )
            if order.state == S.PENDING_PAYMENT and not _others_open(session, order, attempt):
                orders.expire(
                    session,
                    order,
                    now,
                    note=N_("Your card payment failed; the order and its items were released"),
                )
        elif move_attempt(session, attempt, "processing", now) or attempt.status == "processing":
            _apply(
                session,
                order,
                f"{state.id}:processing",
                PaymentEventKind.PENDING,
                0,
                order.currency,
                now,
                "Card payment processing",
            )
            # A delayed method (SEPA Debit, ...) settles days later: hold the order, its stock
            # and its personal data until then, within a bound.
            if order.state == S.PENDING_PAYMENT:
                orders.extend_reservation(
                    session,
                    order,
                    now + hold,
                    f"Card payment processing; order held until it settles (at most "
                    f"{hold.days} days)",
                    now,
                )
    elif state.status == "expired":
        move_attempt(session, attempt, "expired", now)
        # Release the stock now only if the reservation ended with this page; a longer
        # reservation (over Stripe's 24 h) stays, and the customer may open a new page.
        if (
            order.state == S.PENDING_PAYMENT
            and not _others_open(session, order, attempt)
            and order.expires_at <= attempt.expires_at + _EXPIRY_SLACK
        ):
            orders.expire(session, order, now)


def _others_open(session: Session, order: Order, attempt: CardPayment) -> bool:
    return bool(
        session.scalar(
            select(func.count())
            .select_from(CardPayment)
            .where(
                CardPayment.order_id == order.id,
                CardPayment.id != attempt.id,
                CardPayment.status.in_(("open", "processing")),
            )
        )
    )


def _session_paid(
    session: Session, order: Order, attempt: CardPayment, state, now: datetime
) -> None:
    amount, currency = state.amount_total_minor, state.currency
    if amount != order.total or currency != order.currency:
        move_attempt(session, attempt, "mismatch", now)
        _apply(
            session,
            order,
            f"{state.id}:mismatch",
            PaymentEventKind.ATTENTION,
            amount or 0,
            currency or order.currency,
            now,
            note=f"Stripe Checkout {state.id} was paid {amount} {currency}, but the order is "
            f"{order.total} {order.currency}: not marked paid. Refund it or settle by "
            "hand.",
            reference=state.payment_intent or "",
        )
        return
    move_attempt(session, attempt, "paid", now)
    _apply(
        session,
        order,
        f"{state.id}:paid",
        PaymentEventKind.PAID,
        amount,
        currency,
        now,
        note=N_("Paid by card (Stripe)"),
        reference=state.payment_intent or "",
    )


# ---------------------------------------------------------------- refunds

_REFUND_STATUS = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}


def _sync_refunds(
    session: Session,
    order: Order,
    payment_intent: str,
    refunds: tuple[RefundInfo, ...],
    now: datetime,
) -> None:
    for info in sorted(refunds, key=lambda r: r.id):
        row = session.scalar(select(CardRefund).where(CardRefund.refund_id == info.id))
        if row is None:
            # Ours whose answer was lost, or one made in Stripe's Dashboard.
            row = session.scalar(
                select(CardRefund)
                .where(
                    CardRefund.order_id == order.id,
                    CardRefund.refund_id.is_(None),
                    CardRefund.answered_at.is_(None),
                    CardRefund.amount == info.amount_minor,
                )
                .limit(1)
            )
            if row is None:
                row = CardRefund(
                    order_id=order.id,
                    key=info.id,
                    payment_intent=payment_intent,
                    amount=info.amount_minor,
                    currency=info.currency or order.currency,
                    answered_at=now,
                    created_at=now,
                )
                session.add(row)
            row.refund_id = info.id
        _refund_status(session, order, row, info.status, now)


def _refund_status(
    session: Session, order: Order, row: CardRefund, stripe_status: str | None, now: datetime
) -> None:
    previous = row.status
    row.status = _REFUND_STATUS.get(stripe_status or "", "pending")
    row.updated_at = now
    if row.status == "succeeded":
        try:
            with session.begin_nested():
                _apply(
                    session,
                    order,
                    f"refund:{row.refund_id}",
                    PaymentEventKind.REFUNDED,
                    row.amount,
                    row.currency,
                    now,
                    note=N_("Card refund") if previous != "sending" else N_("Card refund issued"),
                    reference=row.refund_id or "",
                )
        except OrderError as exc:
            _apply(
                session,
                order,
                f"refund:{row.refund_id}:unapplied",
                PaymentEventKind.ATTENTION,
                row.amount,
                row.currency,
                now,
                note=f"Stripe refunded {row.amount} {row.currency} ({row.refund_id}), but the "
                f"order could not record it: {exc}.",
            )
    elif row.status == "failed" and previous != "failed":
        counted = previous == "succeeded" and session.scalar(
            select(PaymentRecord.id).where(
                PaymentRecord.provider == PROVIDER, PaymentRecord.key == f"refund:{row.refund_id}"
            )
        )
        # A refund already booked is reversed in the order and the ledger, not only flagged.
        _apply(
            session,
            order,
            f"refund:{row.refund_id}:failed",
            PaymentEventKind.REFUND_FAILED if counted else PaymentEventKind.ATTENTION,
            row.amount,
            row.currency,
            now,
            note=f"Card refund of {row.amount} {row.currency} failed ({row.refund_id})"
            + (
                " after it had succeeded; the money is back in your Stripe balance"
                if previous == "succeeded"
                else ""
            )
            + ": refund another way.",
        )


def refund(
    database: Database,
    gateway: StripeGateway,
    order_id: int,
    amount: int,
    now: datetime | None = None,
) -> CardRefund:
    """Refund `amount` (minor units) of a card-paid order, fully or in part.

    The Idempotency-Key is the order's ref and the refund's sequence number, and the row is
    committed before Stripe is called (no transaction stays open across the call): if Stripe
    does not answer, repeating the call with the same amount sends the identical request, so a
    refund Stripe did make is never made twice. The order moves to refunded /
    partially_refunded when Stripe reports the refund succeeded (now, or later by webhook).
    Orders paid late (after they expired or were cancelled) can be refunded too.
    """
    now = now or utcnow()
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise NotRefundable("A refund amount is a whole number of minor units.")
    with database.write_session() as session:
        order = _lock_order(session, order_id)
        if order.payment_method != "card":
            raise NotRefundable("This order was not paid by card.")
        if order.state not in REFUNDABLE or order.amount_paid <= 0:
            raise NotRefundable(f"An order that is {order.status} cannot be refunded.")
        paid = _settled_attempt(session, order.id)
        if paid is None:
            raise NotRefundable("No settled card payment was found for this order.")
        rows = refunds_of(session, order.id)
        unsent = next((r for r in rows if r.answered_at is None), None)
        if unsent is not None:
            if unsent.amount != amount:
                raise RefundInFlight(unsent.amount)
            row = unsent
        else:
            refundable = refundable_amount(session, order)
            if not 0 < amount <= refundable:
                raise NotRefundable(f"A refund must be between 1 and {refundable} (minor units).")
            row = CardRefund(
                order_id=order.id,
                key=f"{order.ref}-{len(rows) + 1}",
                payment_intent=paid.payment_intent,
                status="sending",
                amount=amount,
                currency=order.currency,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
        row_id, intent, currency, key, ref = (
            row.id,
            row.payment_intent,
            row.currency,
            row.key,
            order.ref,
        )

    try:
        info = gateway.create_refund(
            payment_intent=intent,
            amount_minor=amount,
            currency=currency,
            refund_key=key,
            order_ref=ref,
        )
    except CardGatewayUnavailable as exc:
        log.warning(
            "Stripe unavailable creating a refund (request %s, status %s)",
            exc.request_id,
            exc.http_status,
        )
        raise RefundUnavailable() from exc
    except (CardGatewayRejected, CardGatewayError) as exc:
        with database.write_session() as session:
            row = session.get(CardRefund, row_id)
            row.status, row.answered_at, row.updated_at = "failed", now, now
        raise RefundRejected(f"Stripe refused the refund: {exc}") from exc

    with database.write_session() as session:
        order = _lock_order(session, order_id)
        row = session.get(CardRefund, row_id)
        known = session.scalar(select(CardRefund).where(CardRefund.refund_id == info.id))
        if known is not None and known.id != row.id:
            # A webhook recorded this refund while our request was unanswered: keep that row.
            session.delete(row)
            session.flush()
            row = known
        row.refund_id, row.answered_at = info.id, now
        _refund_status(session, order, row, info.status, now)
        session.flush()
        session.expunge(row)
    return row


def _settled_attempt(session: Session, order_id: int) -> CardPayment | None:
    return session.scalar(
        select(CardPayment)
        .where(
            CardPayment.order_id == order_id,
            CardPayment.status == "paid",
            CardPayment.payment_intent.is_not(None),
        )
        .order_by(CardPayment.attempt.desc())
        .limit(1)
    )


def refundable_amount(session: Session, order: Order) -> int:
    """What can still be given back by card: paid, less refunded and refunds under way."""
    reserved = sum(
        r.amount for r in refunds_of(session, order.id) if r.status in ("pending", "sending")
    )
    return max(0, order.amount_paid - order.amount_refunded - reserved)
