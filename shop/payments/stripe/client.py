"""The shop's only door to Stripe's API: Checkout Sessions, PaymentIntents and refunds.

Callers get plain dataclasses in ISO minor units and the gateway's own exceptions; no `stripe.*`
object or error leaves this module, so the rest of the shop does not depend on the SDK's shapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import stripe

from shop import budget
from shop.payments.stripe.amounts import from_stripe_amount, normalize_currency, to_stripe_amount

# The API version stripe-python 16.1.0 is generated against (its default `stripe.api_version`).
# Pinned explicitly so an SDK upgrade, or a change of the account's default version in the
# Dashboard, cannot silently change the shapes this module and the webhooks parse.
STRIPE_API_VERSION = "2026-10-28.endive"

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_NETWORK_RETRIES = 2

# Stripe accepts a Checkout Session `expires_at` 30 minutes to 24 hours after creation.
CHECKOUT_MIN_LIFETIME = 30 * 60
CHECKOUT_MAX_LIFETIME = 24 * 60 * 60
# Our clock and Stripe's differ and the request takes time: stay this far inside the window.
_EXPIRY_MARGIN = 60

# Stripe's limits on client_reference_id (200) and idempotency keys (255); keeping refs short
# leaves room for the key prefixes.
_MAX_REF_LENGTH = 200


class CardGatewayError(Exception):
    """Stripe did not do what was asked. Base of every error this module raises."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.param = param
        self.request_id = request_id


class CardGatewayUnavailable(CardGatewayError):
    """Network error, timeout, rate limit or Stripe-side failure, after the SDK's retries.

    Worth trying again later with the same idempotency key.
    """


class CardGatewayRejected(CardGatewayError):
    """Stripe refused the request itself (invalid parameters, bad key, state conflict).

    Repeating the same request will fail the same way.
    """


class CardGatewayIdempotencyConflict(CardGatewayRejected):
    """The idempotency key was already used with different parameters.

    For checkout this means the caller rebuilt the request differently for the same attempt
    (e.g. a recomputed expires_at or a changed cart): start a new attempt instead.
    """


@dataclass(frozen=True)
class LineItem:
    name: str
    unit_amount_minor: int
    quantity: int


@dataclass(frozen=True)
class CheckoutSessionInfo:
    id: str
    url: str
    expires_at: int


@dataclass(frozen=True)
class CheckoutSessionState:
    id: str
    status: str | None  # "open" | "complete" | "expired"
    payment_status: str | None  # "paid" | "unpaid" | "no_payment_required"
    amount_total_minor: int | None  # ISO minor units
    currency: str | None  # upper-case ISO code
    payment_intent: str | None
    client_reference_id: str | None
    expires_at: int | None


@dataclass(frozen=True)
class PaymentIntentState:
    id: str
    status: str | None
    amount_minor: int | None
    amount_received_minor: int | None
    currency: str | None
    latest_charge: str | None


@dataclass(frozen=True)
class RefundInfo:
    id: str
    status: str | None  # "pending" | "requires_action" | "succeeded" | "failed" | "canceled"
    amount_minor: int
    currency: str | None = None
    payment_intent: str | None = None


def _id_of(value: Any) -> str | None:
    """An expandable field holds an id, an expanded object, or nothing."""
    if value is None or isinstance(value, str):
        return value
    found = value.get("id") if isinstance(value, Mapping) else None
    return found if isinstance(found, str) else None


def _minor_or_none(amount: Any, currency: str | None) -> int | None:
    if amount is None or currency is None:
        return None
    return from_stripe_amount(int(amount), currency)


def _upper(currency: Any) -> str | None:
    return currency.upper() if isinstance(currency, str) else None


def _require_ref(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > _MAX_REF_LENGTH:
        raise ValueError(f"{name} longer than {_MAX_REF_LENGTH} characters")


def _gateway_error(exc: stripe.StripeError) -> CardGatewayError:
    details: dict[str, Any] = {
        "http_status": exc.http_status,
        "code": exc.code,
        "param": getattr(exc, "param", None),
        "request_id": exc.request_id,
    }
    message = f"Stripe: {exc.user_message or type(exc).__name__}"
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)):
        return CardGatewayUnavailable(message, **details)
    if isinstance(exc, stripe.IdempotencyError):
        return CardGatewayIdempotencyConflict(message, **details)
    if isinstance(
        exc,
        (
            stripe.InvalidRequestError,
            stripe.CardError,
            stripe.AuthenticationError,
            stripe.PermissionError,
        ),
    ):
        return CardGatewayRejected(message, **details)
    if isinstance(exc, stripe.APIError):
        # 5xx, 409 and unparseable responses land here: Stripe's side, not our request.
        return CardGatewayUnavailable(message, **details)
    return CardGatewayError(message, **details)


@contextmanager
def _stripe_call() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        raise _gateway_error(exc) from exc


# Below this many seconds of budget a call is not started (it could not get an answer anyway).
_MIN_CALL_SECONDS = 0.2


class _BudgetedRequestsClient(stripe.RequestsClient):
    """RequestsClient whose timeout, retries and back-off fit the request's time budget
    (shop.budget): each try waits at most what is left, and none starts once it is spent."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout)

    # RequestsClient reads self._timeout for every try; the budget is per thread/context.
    @property
    def _timeout(self) -> float:
        left = budget.remaining()
        return self._base_timeout if left is None else max(0.01, min(self._base_timeout, left))

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._base_timeout = value

    def request(self, method, url, headers, post_data=None):  # type: ignore[override]
        left = budget.remaining()
        if left is not None and left < _MIN_CALL_SECONDS:
            raise stripe.APIConnectionError(
                "time budget for this request used up", should_retry=False
            )
        return super().request(method, url, headers, post_data)

    def _should_retry(self, response, api_connection_error, num_retries, max_network_retries):
        left = budget.remaining()
        if left is not None and left < _MIN_CALL_SECONDS + stripe.HTTPClient.INITIAL_DELAY:
            return False
        return super()._should_retry(
            response, api_connection_error, num_retries, max_network_retries
        )

    def _sleep_time_seconds(self, num_retries: int) -> float:
        left = budget.remaining()
        sleep = super()._sleep_time_seconds(num_retries)
        return sleep if left is None else max(0.0, min(sleep, left - _MIN_CALL_SECONDS))


class StripeGateway:
    """Thin, typed wrapper around one `stripe.StripeClient` for the calls the shop makes."""

    def __init__(
        self,
        secret_key: str,
        api_base: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_key:
            raise ValueError("a Stripe secret key is required")
        # The SDK otherwise reports request timings and the host's platform string to Stripe.
        stripe.enable_telemetry = False
        self._clock = clock
        # requests is a hard dependency of stripe-python, and RequestsClient is the one built-in
        # client with a timeout option (UrllibClient has none and would wait forever).
        self._http_client = _BudgetedRequestsClient(timeout=timeout)
        self._client = stripe.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=self._http_client,
        )

    def close(self) -> None:
        self._http_client.close()

    # -- Checkout -----------------------------------------------------------------------------

    def checkout_expiry_window(self) -> tuple[int, int]:
        """The (earliest, latest) `expires_at` Stripe accepts if the session is created now."""
        now = int(self._clock())
        return now + CHECKOUT_MIN_LIFETIME, now + CHECKOUT_MAX_LIFETIME

    def _checked_expires_at(self, expires_at: int) -> int:
        if not isinstance(expires_at, int) or isinstance(expires_at, bool):
            raise ValueError("expires_at is a unix time in whole seconds")
        earliest, latest = self.checkout_expiry_window()
        if not earliest <= expires_at <= latest:
            raise ValueError(
                "Stripe Checkout sessions expire 30 minutes to 24 hours after creation; "
                f"expires_at is {expires_at - int(self._clock())} s from now"
            )
        # Right at an edge, Stripe would see the value outside its window by the time the request
        # arrives: move it just inside rather than fail a customer's payment over seconds.
        return min(max(expires_at, earliest + _EXPIRY_MARGIN), latest - _EXPIRY_MARGIN)

    def create_checkout_session(
        self,
        *,
        order_ref: str,
        attempt: int,
        currency: str,
        lines: list[LineItem],
        shipping_minor: int | None,
        shipping_label: str | None,
        success_url: str,
        cancel_url: str,
        expires_at: int,
        replay: bool = False,
        locale: str | None = None,
    ) -> CheckoutSessionInfo:
        """Create (or, for the same order_ref and attempt, get back) a hosted Checkout Session.

        Idempotent per (order_ref, attempt): a double click returns the first session. Stripe
        keeps idempotency keys for at least 24 hours and refuses a reused key with different
        parameters (CardGatewayIdempotencyConflict), so pass the same `expires_at` for the same
        attempt (compute it once and store it) and use a new attempt for a changed order.
        `replay` sends `expires_at` unchecked: only to get back the answer of a request that was
        made before (Stripe replays it without validating it again).
        """
        _require_ref("order_ref", order_ref)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise ValueError("attempt is a non-negative integer")
        if not lines:
            raise ValueError("a checkout session needs at least one line")
        code = normalize_currency(currency)
        stripe_currency = code.lower()

        line_items: list[dict[str, Any]] = []
        for line in lines:
            if not line.name.strip():
                raise ValueError("line items need a name")
            if not isinstance(line.quantity, int) or line.quantity < 1:
                raise ValueError(f"quantity must be a positive integer, got {line.quantity!r}")
            line_items.append(
                {
                    "price_data": {
                        "currency": stripe_currency,
                        "unit_amount": to_stripe_amount(line.unit_amount_minor, code),
                        "product_data": {"name": line.name},
                    },
                    "quantity": line.quantity,
                }
            )

        # Deliberately absent: customer, customer_email, customer_creation (payment mode defaults
        # to "if_required"), billing_address_collection (defaults to "auto"), shipping address and
        # phone collection. The shop keeps personal data minimal and Stripe asks for what the
        # card needs.
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": line_items,
            # Opaque reference only; Stripe echoes both back on the session and its events.
            "client_reference_id": order_ref,
            "metadata": {"order_ref": order_ref},
            # The PaymentIntent and its charges carry the reference too, so refunds and
            # disputes seen in the Dashboard (and charge.* events) name the order.
            "payment_intent_data": {"metadata": {"order_ref": order_ref}},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": expires_at if replay else self._checked_expires_at(expires_at),
        }
        if locale:
            # A language Stripe's page has (en, de, nl, fr, ...); without it Stripe uses "auto".
            params["locale"] = locale
        if shipping_minor is not None and shipping_minor > 0:
            params["shipping_options"] = [
                {
                    "shipping_rate_data": {
                        "type": "fixed_amount",
                        "fixed_amount": {
                            "amount": to_stripe_amount(shipping_minor, code),
                            "currency": stripe_currency,
                        },
                        "display_name": shipping_label or "Shipping",
                    }
                }
            ]
        elif shipping_minor is not None and shipping_minor < 0:
            raise ValueError("shipping cannot be negative")

        with _stripe_call():
            # .to_dict() throughout: a StripeObject is not a Mapping (no .get) in stripe-python 16.
            session = self._client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"checkout-{order_ref}-{attempt}"},
            ).to_dict()
        if not session.get("url"):
            raise CardGatewayError("Stripe returned a Checkout Session without a hosted page URL")
        return CheckoutSessionInfo(
            id=session["id"], url=session["url"], expires_at=int(session["expires_at"])
        )

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSessionState:
        _require_ref("session_id", session_id)
        with _stripe_call():
            session = self._client.v1.checkout.sessions.retrieve(session_id).to_dict()
        return _session_state(session)

    def expire_checkout_session(self, session_id: str) -> CheckoutSessionState:
        """Close an open session so it can no longer be paid (Stripe refuses non-open ones)."""
        _require_ref("session_id", session_id)
        with _stripe_call():
            session = self._client.v1.checkout.sessions.expire(session_id).to_dict()
        return _session_state(session)

    # -- PaymentIntents and refunds -----------------------------------------------------------

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentState:
        _require_ref("payment_intent_id", payment_intent_id)
        with _stripe_call():
            intent = self._client.v1.payment_intents.retrieve(payment_intent_id).to_dict()
        currency = intent.get("currency")
        return PaymentIntentState(
            id=intent["id"],
            status=intent.get("status"),
            amount_minor=_minor_or_none(intent.get("amount"), currency),
            amount_received_minor=_minor_or_none(intent.get("amount_received"), currency),
            currency=_upper(currency),
            latest_charge=_id_of(intent.get("latest_charge")),
        )

    def create_refund(
        self,
        *,
        payment_intent: str,
        amount_minor: int,
        currency: str,
        refund_key: str,
        order_ref: str | None = None,
    ) -> RefundInfo:
        """Refund part or all of a payment, idempotent per `refund_key`.

        `currency` is the payment's currency, needed only to convert the amount: Stripe refunds
        in the charge's currency. `order_ref`, if given, goes to the refund's metadata so refund
        webhooks can name the order.
        """
        _require_ref("payment_intent", payment_intent)
        _require_ref("refund_key", refund_key)
        if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
            raise ValueError("a refund is for a positive amount")
        params: dict[str, Any] = {
            "payment_intent": payment_intent,
            "amount": to_stripe_amount(amount_minor, currency),
        }
        if order_ref is not None:
            _require_ref("order_ref", order_ref)
            params["metadata"] = {"order_ref": order_ref}
        with _stripe_call():
            refund = self._client.v1.refunds.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"refund-{refund_key}"},
            ).to_dict()
        return _refund_info(refund)

    def list_refunds(self, payment_intent: str) -> list[RefundInfo]:
        """Every refund of a payment, as Stripe sees it now (newest first)."""
        _require_ref("payment_intent", payment_intent)
        with _stripe_call():
            page = self._client.v1.refunds.list(
                {"payment_intent": payment_intent, "limit": 100}
            ).to_dict()
        return [_refund_info(refund) for refund in page.get("data") or []]

    def retrieve_refund(self, refund_id: str) -> RefundInfo:
        _require_ref("refund_id", refund_id)
        with _stripe_call():
            refund = self._client.v1.refunds.retrieve(refund_id).to_dict()
        return _refund_info(refund)


def _session_state(session: Mapping[str, Any]) -> CheckoutSessionState:
    currency = session.get("currency")
    expires_at = session.get("expires_at")
    return CheckoutSessionState(
        id=session["id"],
        status=session.get("status"),
        payment_status=session.get("payment_status"),
        amount_total_minor=_minor_or_none(session.get("amount_total"), currency),
        currency=_upper(currency),
        payment_intent=_id_of(session.get("payment_intent")),
        client_reference_id=session.get("client_reference_id"),
        expires_at=int(expires_at) if expires_at is not None else None,
    )


def _refund_info(refund: Mapping[str, Any]) -> RefundInfo:
    currency = refund.get("currency")
    amount = _minor_or_none(refund.get("amount"), currency)
    return RefundInfo(
        id=refund["id"],
        status=refund.get("status"),
        amount_minor=amount if amount is not None else 0,
        currency=_upper(currency),
        payment_intent=_id_of(refund.get("payment_intent")),
    )
