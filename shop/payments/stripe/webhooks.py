"""Stripe webhooks: verify the signature on the raw body, then reduce the event to a CardEvent.

Only events the shop acts on are translated; the rest return None so the endpoint can answer
200 and Stripe stops resending them. A CardEvent carries references and amounts, never the
customer's name, email, address or phone that Stripe's objects (Checkout Session
`customer_details`, Charge `billing_details`) contain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import stripe

from shop.payments.stripe.amounts import StripeAmountError, from_stripe_amount

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookError(Exception):
    """The request is not a usable Stripe event; answer 400."""


class WebhookSignatureError(WebhookError):
    """Missing, malformed, wrong or expired Stripe-Signature: not (provably) from Stripe."""


class WebhookPayloadError(WebhookError):
    """Correctly signed, but not an event this code can read (bad JSON, wrong shape)."""


@dataclass(frozen=True)
class StripeEvent:
    """The parts of a verified Stripe event the shop reads."""

    id: str
    type: str
    created: int
    livemode: bool
    api_version: str | None
    data_object: dict[str, Any]


def verify_event(
    payload: bytes,
    sig_header: str | None,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> StripeEvent:
    """Check `payload` (the raw request body, byte for byte) against its Stripe-Signature.

    Re-serialised JSON would not match the signature, so this must get the body as received.
    """
    if not secret or not secret.strip():
        # A configuration error, not the sender's fault: let it surface as a server error.
        raise ValueError("the Stripe webhook signing secret is not configured")
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("verify_event needs the raw request body as bytes")
    try:
        # Verifies the signature first and only then parses the body.
        event = stripe.Webhook.construct_event(bytes(payload), sig_header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureError(exc.user_message or "invalid signature") from None
    except UnicodeDecodeError:
        # The SDK decodes before checking the signature; Stripe always sends UTF-8.
        raise WebhookSignatureError("webhook body is not UTF-8, so not from Stripe") from None
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        # Only reached once the signature matched: Stripe signed something we cannot read
        # (bad JSON, JSON that is not an object, a v2 "thin" event).
        raise WebhookPayloadError(f"webhook body is not a Stripe event: {exc}") from None

    raw = event.to_dict()
    data = raw.get("data")
    data_object = data.get("object") if isinstance(data, dict) else None
    event_id, event_type, created = raw.get("id"), raw.get("type"), raw.get("created")
    if (
        not isinstance(event_id, str)
        or not isinstance(event_type, str)
        or not isinstance(created, int)
        or not isinstance(data_object, dict)
    ):
        raise WebhookPayloadError("webhook body lacks id, type, created or data.object")
    return StripeEvent(
        id=event_id,
        type=event_type,
        created=created,
        livemode=bool(raw.get("livemode")),
        api_version=raw.get("api_version"),
        data_object=data_object,
    )


class CardEventKind(StrEnum):
    PAID = "paid"
    # Checkout finished but an asynchronous payment method has not settled yet.
    PROCESSING = "processing"
    FAILED = "failed"
    EXPIRED = "expired"
    # Refund created or changed; refund_status says where it stands.
    REFUND = "refund"
    DISPUTED = "disputed"


@dataclass(frozen=True)
class CardEvent:
    event_id: str
    kind: CardEventKind
    stripe_type: str
    order_ref: str | None = None
    session_id: str | None = None
    payment_intent: str | None = None
    amount_minor: int | None = None  # ISO minor units
    currency: str | None = None  # upper-case ISO code
    refund_id: str | None = None
    refund_status: str | None = None
    dispute_id: str | None = None
    # created, funds_withdrawn, funds_reinstated or closed; with closed, Stripe's outcome.
    dispute_stage: str | None = None
    dispute_status: str | None = None


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    # Expanded objects (e.g. payment_intent) carry their id inside.
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def _order_ref(obj: Mapping[str, Any]) -> str | None:
    ref = obj.get("client_reference_id")
    if isinstance(ref, str) and ref:
        return ref
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        ref = metadata.get("order_ref")
        if isinstance(ref, str) and ref:
            return ref
    return None


def _amount(obj: Mapping[str, Any], key: str) -> tuple[int | None, str | None]:
    currency = obj.get("currency")
    amount = obj.get(key)
    if not isinstance(currency, str):
        return None, None
    if amount is None:
        return None, currency.upper()
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise WebhookPayloadError(f"{key} is not an integer amount")
    try:
        return from_stripe_amount(amount, currency), currency.upper()
    except StripeAmountError as exc:
        raise WebhookPayloadError(str(exc)) from None


def _require_object(event: StripeEvent, expected: str) -> dict[str, Any]:
    obj = event.data_object
    if obj.get("object") != expected or not isinstance(obj.get("id"), str):
        raise WebhookPayloadError(f"{event.type} does not carry a {expected} object")
    return obj


def _session_event(event: StripeEvent, kind: CardEventKind) -> CardEvent:
    session = _require_object(event, "checkout.session")
    amount, currency = _amount(session, "amount_total")
    return CardEvent(
        event_id=event.id,
        kind=kind,
        stripe_type=event.type,
        order_ref=_order_ref(session),
        session_id=session["id"],
        payment_intent=_str(session, "payment_intent"),
        amount_minor=amount,
        currency=currency,
    )


def _session_completed(event: StripeEvent) -> CardEvent:
    # "unpaid" after completion means an asynchronous method (SEPA debit, ...) is still
    # settling; async_payment_succeeded/failed follows.
    paid = event.data_object.get("payment_status") == "paid"
    return _session_event(event, CardEventKind.PAID if paid else CardEventKind.PROCESSING)


def _refund_event(event: StripeEvent) -> CardEvent:
    refund = _require_object(event, "refund")
    amount, currency = _amount(refund, "amount")
    return CardEvent(
        event_id=event.id,
        kind=CardEventKind.REFUND,
        stripe_type=event.type,
        order_ref=_order_ref(refund),
        payment_intent=_str(refund, "payment_intent"),
        amount_minor=amount,
        currency=currency,
        refund_id=refund["id"],
        refund_status=_str(refund, "status"),
    )


def _charge_refunded(event: StripeEvent) -> CardEvent:
    """charge.refunded: amount_minor is the charge's cumulative refunded amount.

    The charge names its latest refund only when Stripe embeds `refunds` (older API versions);
    refund.* events carry each refund individually.
    """
    charge = _require_object(event, "charge")
    amount, currency = _amount(charge, "amount_refunded")
    refund_id = refund_status = None
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, Mapping) else None
    if isinstance(listed, list):
        candidates = [r for r in listed if isinstance(r, Mapping) and isinstance(r.get("id"), str)]
        if candidates:
            latest = max(candidates, key=lambda r: r.get("created") or 0)
            refund_id, refund_status = latest["id"], _str(latest, "status")
    return CardEvent(
        event_id=event.id,
        kind=CardEventKind.REFUND,
        stripe_type=event.type,
        order_ref=_order_ref(charge),
        payment_intent=_str(charge, "payment_intent"),
        amount_minor=amount,
        currency=currency,
        refund_id=refund_id,
        refund_status=refund_status,
    )


def _dispute_event(event: StripeEvent) -> CardEvent:
    dispute = _require_object(event, "dispute")
    amount, currency = _amount(dispute, "amount")
    return CardEvent(
        dispute_stage=event.type.removeprefix("charge.dispute."),
        dispute_status=_str(dispute, "status"),
        event_id=event.id,
        kind=CardEventKind.DISPUTED,
        stripe_type=event.type,
        order_ref=_order_ref(dispute),
        payment_intent=_str(dispute, "payment_intent"),
        amount_minor=amount,
        currency=currency,
        dispute_id=dispute["id"],
    )


_HANDLERS: dict[str, Callable[[StripeEvent], CardEvent]] = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": lambda e: _session_event(e, CardEventKind.PAID),
    "checkout.session.async_payment_failed": lambda e: _session_event(e, CardEventKind.FAILED),
    "checkout.session.expired": lambda e: _session_event(e, CardEventKind.EXPIRED),
    "charge.refunded": _charge_refunded,
    "refund.created": _refund_event,
    "refund.updated": _refund_event,
    "refund.failed": _refund_event,
    # Older accounts still receive refund changes under this name.
    "charge.refund.updated": _refund_event,
    "charge.dispute.created": _dispute_event,
    "charge.dispute.funds_withdrawn": _dispute_event,
    "charge.dispute.funds_reinstated": _dispute_event,
    "charge.dispute.closed": _dispute_event,
}

HANDLED_EVENT_TYPES = frozenset(_HANDLERS)


def translate(event: StripeEvent) -> CardEvent | None:
    """The shop-level meaning of `event`, or None for event types the shop ignores."""
    handler = _HANDLERS.get(event.type)
    return handler(event) if handler is not None else None
