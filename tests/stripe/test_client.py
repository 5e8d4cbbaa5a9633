"""StripeGateway against the fake Stripe server, through the real stripe-python SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import stripe

from shop.payments.stripe.amounts import StripeAmountError
from shop.payments.stripe.client import (
    DEFAULT_MAX_NETWORK_RETRIES,
    STRIPE_API_VERSION,
    CardGatewayError,
    CardGatewayIdempotencyConflict,
    CardGatewayRejected,
    CardGatewayUnavailable,
    LineItem,
    StripeGateway,
)
from tests.stripe.fake_stripe import FakeStripe, fast_sdk_retries

API_KEY = "sk_test_shop_0123456789"
ATTEMPTS = 1 + DEFAULT_MAX_NETWORK_RETRIES


@pytest.fixture(autouse=True)
def _instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_sdk_retries(monkeypatch)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def gateway(fake: FakeStripe) -> Iterator[StripeGateway]:
    gw = StripeGateway(API_KEY, api_base=fake.api_base, timeout=5.0)
    yield gw
    gw.close()


def _checkout(gateway: StripeGateway, **overrides: object):
    args: dict[str, object] = {
        "order_ref": "ORD-1001",
        "attempt": 1,
        "currency": "EUR",
        "lines": [LineItem("T-shirt", 1999, 2), LineItem("Mug", 850, 1)],
        "shipping_minor": 490,
        "shipping_label": "DHL Paket",
        "success_url": "https://shop.example/orders/ORD-1001/card/return?s={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/orders/ORD-1001",
        "expires_at": int(time.time()) + 3600,
    }
    args.update(overrides)
    return gateway.create_checkout_session(**args)  # type: ignore[arg-type]


# -- what the shop sends --------------------------------------------------------------------


def test_checkout_session_request(fake: FakeStripe, gateway: StripeGateway) -> None:
    expires_at = int(time.time()) + 3600
    info = _checkout(gateway, expires_at=expires_at)

    assert info.id.startswith("cs_test_")
    assert info.url == f"{fake.api_base}/pay/{info.id}"
    assert info.expires_at == expires_at

    [request] = fake.api_requests("POST", "/v1/checkout/sessions")
    params = request.params
    assert params["mode"] == "payment"
    assert params["line_items"] == [
        {
            "price_data": {
                "currency": "eur",
                "unit_amount": "1999",
                "product_data": {"name": "T-shirt"},
            },
            "quantity": "2",
        },
        {
            "price_data": {
                "currency": "eur",
                "unit_amount": "850",
                "product_data": {"name": "Mug"},
            },
            "quantity": "1",
        },
    ]
    assert params["shipping_options"] == [
        {
            "shipping_rate_data": {
                "type": "fixed_amount",
                "fixed_amount": {"amount": "490", "currency": "eur"},
                "display_name": "DHL Paket",
            }
        }
    ]
    assert params["client_reference_id"] == "ORD-1001"
    assert params["metadata"] == {"order_ref": "ORD-1001"}
    assert params["expires_at"] == str(expires_at)
    # Nothing that creates a Customer or collects/pre-fills personal data.
    assert params["payment_intent_data"] == {"metadata": {"order_ref": "ORD-1001"}}
    assert set(params) == {
        "mode", "line_items", "shipping_options", "client_reference_id", "metadata",
        "payment_intent_data", "success_url", "cancel_url", "expires_at",
    }  # fmt: skip

    assert request.header("Idempotency-Key") == "checkout-ORD-1001-1"
    assert request.header("Stripe-Version") == STRIPE_API_VERSION == stripe.api_version
    assert request.header("Authorization") == f"Bearer {API_KEY}"
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"


def test_checkout_session_as_stripe_reports_it(fake: FakeStripe, gateway: StripeGateway) -> None:
    info = _checkout(gateway)
    state = gateway.retrieve_checkout_session(info.id)

    assert state.id == info.id
    assert state.status == "open"
    assert state.payment_status == "unpaid"
    assert state.amount_total_minor == 2 * 1999 + 850 + 490
    assert state.currency == "EUR"
    assert state.payment_intent is None  # Stripe creates it when the customer pays
    assert state.client_reference_id == "ORD-1001"
    assert state.expires_at == info.expires_at
    [get] = fake.api_requests("GET", f"/v1/checkout/sessions/{info.id}")
    assert get.header("Idempotency-Key") is None


def test_no_telemetry_sent(fake: FakeStripe, gateway: StripeGateway) -> None:
    info = _checkout(gateway)
    gateway.retrieve_checkout_session(info.id)  # telemetry would ride on the second request
    assert stripe.enable_telemetry is False
    for request in fake.api_requests():
        assert request.header("X-Stripe-Client-Telemetry") is None
        user_agent = json.loads(request.header("X-Stripe-Client-User-Agent") or "{}")
        assert "platform" not in user_agent
        assert user_agent.get("httplib") == "requests"


def test_free_shipping_sends_no_shipping_options(fake: FakeStripe, gateway: StripeGateway) -> None:
    _checkout(gateway, order_ref="ORD-A", shipping_minor=0)
    _checkout(gateway, order_ref="ORD-B", shipping_minor=None, shipping_label=None)
    for request in fake.api_requests("POST", "/v1/checkout/sessions"):
        assert "shipping_options" not in request.params


def test_zero_decimal_currency(fake: FakeStripe, gateway: StripeGateway) -> None:
    info = _checkout(
        gateway, currency="JPY", lines=[LineItem("Tenugui", 500, 3)], shipping_minor=800
    )
    [request] = fake.api_requests("POST", "/v1/checkout/sessions")
    assert request.params["line_items"][0]["price_data"]["unit_amount"] == "500"
    assert request.params["line_items"][0]["price_data"]["currency"] == "jpy"
    assert request.params["shipping_options"][0]["shipping_rate_data"]["fixed_amount"] == {
        "amount": "800",
        "currency": "jpy",
    }
    state = gateway.retrieve_checkout_session(info.id)
    assert (state.amount_total_minor, state.currency) == (2300, "JPY")


def test_three_decimal_currency(fake: FakeStripe, gateway: StripeGateway) -> None:
    _checkout(gateway, currency="BHD", lines=[LineItem("Dates", 1250, 1)], shipping_minor=None)
    [request] = fake.api_requests("POST", "/v1/checkout/sessions")
    assert request.params["line_items"][0]["price_data"]["unit_amount"] == "1250"

    with pytest.raises(StripeAmountError):
        _checkout(gateway, order_ref="ORD-2", currency="BHD", lines=[LineItem("Dates", 1255, 1)])
    assert len(fake.api_requests("POST", "/v1/checkout/sessions")) == 1  # nothing sent


def test_expires_at_window(fake: FakeStripe) -> None:
    now = int(time.time())
    gateway = StripeGateway(API_KEY, api_base=fake.api_base, clock=lambda: now)
    for too_soon_or_late in (now + 29 * 60, now, now + 24 * 3600 + 1):
        with pytest.raises(ValueError, match="30 minutes to 24 hours"):
            _checkout(gateway, expires_at=too_soon_or_late)
    assert fake.api_requests() == []

    # Right at the edges the value moves just inside, so Stripe still accepts it on arrival.
    assert _checkout(gateway, order_ref="ORD-3", expires_at=now + 30 * 60).expires_at == (
        now + 31 * 60
    )
    assert _checkout(gateway, order_ref="ORD-4", expires_at=now + 24 * 3600).expires_at == (
        now + 24 * 3600 - 60
    )


def test_invalid_arguments_are_refused_before_sending(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    with pytest.raises(ValueError):
        _checkout(gateway, lines=[])
    with pytest.raises(ValueError):
        _checkout(gateway, lines=[LineItem("Mug", 850, 0)])
    with pytest.raises(ValueError):
        _checkout(gateway, order_ref="")
    with pytest.raises(ValueError):
        _checkout(gateway, shipping_minor=-1)
    with pytest.raises(StripeAmountError):
        _checkout(gateway, lines=[LineItem("Mug", -850, 1)])
    assert fake.api_requests() == []


# -- idempotency ----------------------------------------------------------------------------


def test_double_click_returns_the_same_session(fake: FakeStripe, gateway: StripeGateway) -> None:
    expires_at = int(time.time()) + 3600
    first = _checkout(gateway, expires_at=expires_at)
    second = _checkout(gateway, expires_at=expires_at)

    assert second == first
    assert len(fake.sessions) == 1
    keys = {r.header("Idempotency-Key") for r in fake.api_requests("POST")}
    assert keys == {"checkout-ORD-1001-1"}

    third = _checkout(gateway, attempt=2, expires_at=expires_at)
    assert third.id != first.id
    assert len(fake.sessions) == 2


def test_same_attempt_with_different_parameters(fake: FakeStripe, gateway: StripeGateway) -> None:
    _checkout(gateway)
    with pytest.raises(CardGatewayIdempotencyConflict) as caught:
        _checkout(gateway, lines=[LineItem("T-shirt", 1999, 3)])
    assert isinstance(caught.value, CardGatewayRejected)
    assert caught.value.http_status == 400
    assert len(fake.sessions) == 1


# -- failures -------------------------------------------------------------------------------


def _assert_ours(exc: BaseException) -> None:
    # The domain catches only the gateway's errors; an SDK error type must never leak.
    assert isinstance(exc, CardGatewayError)
    assert not isinstance(exc, stripe.StripeError)


def test_server_error_is_retried_then_unavailable(fake: FakeStripe, gateway: StripeGateway) -> None:
    fake.fail_next(500, count=ATTEMPTS)
    with pytest.raises(CardGatewayUnavailable) as caught:
        _checkout(gateway)
    _assert_ours(caught.value)
    assert caught.value.http_status == 500

    attempts = fake.api_requests("POST", "/v1/checkout/sessions")
    assert len(attempts) == ATTEMPTS == 3  # first try + max_network_retries=2
    # Every retry carries the same key, so Stripe could never create two sessions.
    assert {r.header("Idempotency-Key") for r in attempts} == {"checkout-ORD-1001-1"}
    assert fake.sessions == {}


def test_server_error_recovers_within_retries(fake: FakeStripe, gateway: StripeGateway) -> None:
    fake.fail_next(503, count=ATTEMPTS - 1)
    info = _checkout(gateway)
    assert list(fake.sessions) == [info.id]
    assert len(fake.api_requests("POST", "/v1/checkout/sessions")) == ATTEMPTS


def test_rate_limit_is_unavailable(fake: FakeStripe, gateway: StripeGateway) -> None:
    # stripe-python does not retry a 429 on its own (only 409, 5xx, network errors, or when
    # Stripe sends Stripe-Should-Retry: true), so one request is made.
    fake.fail_next(429, count=ATTEMPTS)
    with pytest.raises(CardGatewayUnavailable) as caught:
        _checkout(gateway)
    _assert_ours(caught.value)
    assert caught.value.http_status == 429
    assert len(fake.api_requests("POST")) == 1


def test_rate_limit_with_should_retry_is_retried(fake: FakeStripe, gateway: StripeGateway) -> None:
    fake.fail_next(429, count=ATTEMPTS, should_retry=True)
    with pytest.raises(CardGatewayUnavailable):
        _checkout(gateway)
    assert len(fake.api_requests("POST")) == ATTEMPTS


def test_timeout_is_retried_then_unavailable(fake: FakeStripe) -> None:
    gateway = StripeGateway(API_KEY, api_base=fake.api_base, timeout=0.3)
    fake.delay_next(1.0, count=ATTEMPTS)
    started = time.monotonic()
    with pytest.raises(CardGatewayUnavailable) as caught:
        _checkout(gateway)
    _assert_ours(caught.value)
    assert caught.value.http_status is None
    assert len(fake.api_requests("POST")) == ATTEMPTS
    assert time.monotonic() - started < ATTEMPTS * 0.3 + 1.0


def test_invalid_request_is_rejected_without_retry(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    fake.fail_next(400, count=ATTEMPTS)
    with pytest.raises(CardGatewayRejected) as caught:
        _checkout(gateway)
    _assert_ours(caught.value)
    assert caught.value.http_status == 400
    assert len(fake.api_requests("POST")) == 1


def test_stripe_side_validation_is_rejected(fake: FakeStripe, gateway: StripeGateway) -> None:
    # The fake, like Stripe, refuses a session whose expiry is outside its window.
    gateway = StripeGateway(API_KEY, api_base=fake.api_base, clock=lambda: time.time() - 7200)
    with pytest.raises(CardGatewayRejected) as caught:
        _checkout(gateway, expires_at=int(time.time()) - 3600)
    assert caught.value.param == "expires_at"


def test_wrong_api_key_is_rejected(fake: FakeStripe) -> None:
    gateway = StripeGateway("sk_test_wrong", api_base=fake.api_base)
    with pytest.raises(CardGatewayRejected) as caught:
        _checkout(gateway)
    assert caught.value.http_status == 401


def test_unreachable_stripe_is_unavailable(fake: FakeStripe) -> None:
    base = fake.api_base
    fake.stop()
    gateway = StripeGateway(API_KEY, api_base=base, timeout=1.0)
    with pytest.raises(CardGatewayUnavailable):
        _checkout(gateway)


def test_unknown_session_is_rejected(gateway: StripeGateway) -> None:
    with pytest.raises(CardGatewayRejected) as caught:
        gateway.retrieve_checkout_session("cs_test_missing")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"


# -- after payment --------------------------------------------------------------------------


def test_paid_session_and_payment_intent(fake: FakeStripe, gateway: StripeGateway) -> None:
    info = _checkout(gateway)
    fake.complete_session(info.id)

    state = gateway.retrieve_checkout_session(info.id)
    assert (state.status, state.payment_status) == ("complete", "paid")
    assert state.payment_intent is not None and state.payment_intent.startswith("pi_")

    intent = gateway.retrieve_payment_intent(state.payment_intent)
    assert intent.status == "succeeded"
    assert intent.amount_received_minor == intent.amount_minor == state.amount_total_minor
    assert intent.currency == "EUR"
    assert intent.latest_charge is not None


def test_expire_session(fake: FakeStripe, gateway: StripeGateway) -> None:
    info = _checkout(gateway)
    state = gateway.expire_checkout_session(info.id)
    assert state.status == "expired"
    assert [e.type for e in fake.events] == ["checkout.session.expired"]
    with pytest.raises(CardGatewayRejected):
        gateway.expire_checkout_session(info.id)


# -- refunds --------------------------------------------------------------------------------


@pytest.fixture
def paid_intent(fake: FakeStripe) -> str:
    return fake.create_paid_payment_intent(5000, "EUR")["id"]


def test_refund(fake: FakeStripe, gateway: StripeGateway, paid_intent: str) -> None:
    refund = gateway.create_refund(
        payment_intent=paid_intent, amount_minor=1500, currency="EUR", refund_key="ORD-1001-1"
    )
    assert refund.id.startswith("re_")
    assert (refund.status, refund.amount_minor, refund.currency) == ("succeeded", 1500, "EUR")
    assert refund.payment_intent == paid_intent

    [request] = fake.api_requests("POST", "/v1/refunds")
    assert request.params == {"payment_intent": paid_intent, "amount": "1500"}
    assert request.header("Idempotency-Key") == "refund-ORD-1001-1"
    assert request.header("Stripe-Version") == STRIPE_API_VERSION

    assert gateway.retrieve_refund(refund.id) == refund


def test_refund_is_idempotent(fake: FakeStripe, gateway: StripeGateway, paid_intent: str) -> None:
    args = dict(payment_intent=paid_intent, amount_minor=1500, currency="EUR", refund_key="k1")
    assert gateway.create_refund(**args) == gateway.create_refund(**args)  # type: ignore[arg-type]
    assert len(fake.refunds) == 1


def test_refund_names_the_order(fake: FakeStripe, gateway: StripeGateway, paid_intent: str) -> None:
    gateway.create_refund(
        payment_intent=paid_intent,
        amount_minor=100,
        currency="EUR",
        refund_key="k2",
        order_ref="ORD-1001",
    )
    [request] = fake.api_requests("POST", "/v1/refunds")
    assert request.params["metadata"] == {"order_ref": "ORD-1001"}


def test_zero_decimal_refund(fake: FakeStripe, gateway: StripeGateway) -> None:
    intent = fake.create_paid_payment_intent(2300, "JPY")["id"]
    refund = gateway.create_refund(
        payment_intent=intent, amount_minor=800, currency="JPY", refund_key="jp-1"
    )
    assert (refund.amount_minor, refund.currency) == (800, "JPY")
    assert fake.api_requests("POST", "/v1/refunds")[0].params["amount"] == "800"


def test_refund_above_payment_is_rejected(gateway: StripeGateway, paid_intent: str) -> None:
    with pytest.raises(CardGatewayRejected) as caught:
        gateway.create_refund(
            payment_intent=paid_intent, amount_minor=5001, currency="EUR", refund_key="too-much"
        )
    assert caught.value.param == "amount"


def test_refund_requires_positive_amount(fake: FakeStripe, gateway: StripeGateway) -> None:
    with pytest.raises(ValueError):
        gateway.create_refund(
            payment_intent="pi_x", amount_minor=0, currency="EUR", refund_key="zero"
        )
    assert fake.api_requests() == []


@pytest.mark.parametrize(
    ("status", "should_retry", "requests_made"),
    [(500, None, ATTEMPTS), (429, None, 1), (429, True, ATTEMPTS)],
)
def test_refund_api_failure_is_unavailable(
    fake: FakeStripe,
    gateway: StripeGateway,
    paid_intent: str,
    status: int,
    should_retry: bool | None,
    requests_made: int,
) -> None:
    fake.fail_next(status, count=ATTEMPTS, should_retry=should_retry)
    with pytest.raises(CardGatewayUnavailable) as caught:
        gateway.create_refund(
            payment_intent=paid_intent, amount_minor=100, currency="EUR", refund_key="r-fail"
        )
    _assert_ours(caught.value)
    attempts = fake.api_requests("POST", "/v1/refunds")
    assert len(attempts) == requests_made
    assert {r.header("Idempotency-Key") for r in attempts} == {"refund-r-fail"}
    assert fake.refunds == {}


def test_refund_timeout_is_unavailable(fake: FakeStripe, paid_intent: str) -> None:
    gateway = StripeGateway(API_KEY, api_base=fake.api_base, timeout=0.3)
    fake.delay_next(1.0, count=ATTEMPTS)
    with pytest.raises(CardGatewayUnavailable):
        gateway.create_refund(
            payment_intent=paid_intent, amount_minor=100, currency="EUR", refund_key="r-slow"
        )
    assert len(fake.api_requests("POST", "/v1/refunds")) == ATTEMPTS


def test_refund_after_timeout_retry_makes_one_refund(fake: FakeStripe, paid_intent: str) -> None:
    # The first attempt stalls past the timeout but Stripe still executes it; the retry with
    # the same key must not refund twice.
    gateway = StripeGateway(API_KEY, api_base=fake.api_base, timeout=0.3)
    fake.delay_next(0.6, count=1)
    refund = gateway.create_refund(
        payment_intent=paid_intent, amount_minor=100, currency="EUR", refund_key="r-once"
    )
    time.sleep(0.5)  # let the stalled first attempt finish on the server
    assert list(fake.refunds) == [refund.id]
