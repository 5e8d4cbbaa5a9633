"""Webhook signature checks and the translation of Stripe events into CardEvents."""

from __future__ import annotations

import copy
import dataclasses
import http.client
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from shop.payments.stripe.client import LineItem, StripeGateway
from shop.payments.stripe.webhooks import (
    HANDLED_EVENT_TYPES,
    CardEvent,
    CardEventKind,
    StripeEvent,
    WebhookPayloadError,
    WebhookSignatureError,
    translate,
    verify_event,
)
from tests.stripe.fake_stripe import (
    FAKE_CUSTOMER_DETAILS,
    FakeStripe,
    sign_payload,
    signed_event,
)

SECRET = "whsec_test_0123456789abcdef"
PERSONAL = ["jenny", "rosen", "hauptstrasse", "10115", "+4915112345678", "berlin"]


def _session(**overrides: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "id": "cs_test_a1",
        "object": "checkout.session",
        "amount_subtotal": 4348,
        "amount_total": 4838,
        "client_reference_id": "ORD-1001",
        "currency": "eur",
        "customer": None,
        "customer_details": copy.deepcopy(FAKE_CUSTOMER_DETAILS),
        "customer_email": None,
        "expires_at": 1_900_000_000,
        "metadata": {"order_ref": "ORD-1001"},
        "mode": "payment",
        "payment_intent": "pi_test_1",
        "payment_status": "paid",
        "status": "complete",
        "url": None,
    }
    session.update(overrides)
    return session


def _event(event_type: str, data_object: dict[str, Any], event_id: str = "evt_1") -> StripeEvent:
    payload, header = signed_event(event_type, data_object, SECRET, event_id=event_id)
    return verify_event(payload, header, SECRET)


def _no_personal_data(card_event: CardEvent) -> None:
    text = repr(card_event).lower()
    for fragment in PERSONAL:
        assert fragment not in text


# -- signature ------------------------------------------------------------------------------


def test_valid_signature() -> None:
    session = _session()
    payload, header = signed_event("checkout.session.completed", session, SECRET, event_id="evt_9")
    event = verify_event(payload, header, SECRET)
    assert event.id == "evt_9"
    assert event.type == "checkout.session.completed"
    assert abs(event.created - time.time()) < 60
    assert event.livemode is False
    assert event.data_object == session


def test_tampered_body() -> None:
    payload, header = signed_event("checkout.session.completed", _session(), SECRET)
    tampered = payload.replace(b'"amount_total": 4838', b'"amount_total": 1')
    assert tampered != payload
    with pytest.raises(WebhookSignatureError):
        verify_event(tampered, header, SECRET)


def test_reserialised_body_fails() -> None:
    # Why the endpoint must hand over the raw bytes: equal JSON, different bytes.
    payload, header = signed_event("checkout.session.completed", _session(), SECRET)
    with pytest.raises(WebhookSignatureError):
        verify_event(json.dumps(json.loads(payload)).encode(), header, SECRET)


def test_wrong_secret() -> None:
    payload, header = signed_event("checkout.session.completed", _session(), "whsec_other")
    with pytest.raises(WebhookSignatureError):
        verify_event(payload, header, SECRET)


def test_expired_timestamp() -> None:
    old = int(time.time()) - 301
    payload, header = signed_event("checkout.session.completed", _session(), SECRET, old)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_event(payload, header, SECRET)
    # Same event within a wider tolerance, and a recent one within the default.
    assert verify_event(payload, header, SECRET, tolerance=600).type == "checkout.session.completed"
    recent = int(time.time()) - 200
    payload, header = signed_event("checkout.session.completed", _session(), SECRET, recent)
    verify_event(payload, header, SECRET)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=notanumber,v1=abc", "t=123"])
def test_missing_or_malformed_header(header: str | None) -> None:
    payload, _ = signed_event("checkout.session.completed", _session(), SECRET)
    with pytest.raises(WebhookSignatureError):
        verify_event(payload, header, SECRET)


def test_malformed_json_with_valid_signature() -> None:
    payload = b'{"id": "evt_1", "type": '
    with pytest.raises(WebhookPayloadError):
        verify_event(payload, sign_payload(payload, SECRET), SECRET)


def test_malformed_json_with_bad_signature_is_a_signature_error() -> None:
    payload = b'{"id": "evt_1", "type": '
    with pytest.raises(WebhookSignatureError):
        verify_event(payload, sign_payload(payload, "whsec_other"), SECRET)


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'"event"',
        b'{"object": "event", "type": "checkout.session.completed"}',
        b'{"object": "event", "id": "evt_1", "type": "x", "created": 1, "data": {}}',
        b'{"object": "v2.core.event", "id": "evt_1", "type": "v1.billing.meter.error"}',
    ],
)
def test_signed_json_that_is_not_an_event(payload: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        verify_event(payload, sign_payload(payload, SECRET), SECRET)


def test_non_utf8_body() -> None:
    with pytest.raises(WebhookSignatureError):
        verify_event(b"\xff\xfe{}", "t=1,v1=abc", SECRET)


def test_unconfigured_secret_is_a_server_error() -> None:
    payload, header = signed_event("checkout.session.completed", _session(), SECRET)
    with pytest.raises(ValueError) as caught:
        verify_event(payload, header, "")
    assert not isinstance(caught.value, (WebhookSignatureError, WebhookPayloadError))


def test_body_must_be_raw_bytes() -> None:
    payload, header = signed_event("checkout.session.completed", _session(), SECRET)
    with pytest.raises(TypeError):
        verify_event(payload.decode(), header, SECRET)  # type: ignore[arg-type]


# -- translation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "overrides", "kind"),
    [
        ("checkout.session.completed", {}, CardEventKind.PAID),
        ("checkout.session.completed", {"payment_status": "unpaid"}, CardEventKind.PROCESSING),
        ("checkout.session.async_payment_succeeded", {}, CardEventKind.PAID),
        (
            "checkout.session.async_payment_failed",
            {"payment_status": "unpaid"},
            CardEventKind.FAILED,
        ),
    ],
)
def test_session_events(event_type: str, overrides: dict[str, Any], kind: CardEventKind) -> None:
    card_event = translate(_event(event_type, _session(**overrides), event_id="evt_s"))
    assert card_event == CardEvent(
        event_id="evt_s",
        kind=kind,
        stripe_type=event_type,
        order_ref="ORD-1001",
        session_id="cs_test_a1",
        payment_intent="pi_test_1",
        amount_minor=4838,
        currency="EUR",
    )
    _no_personal_data(card_event)


def test_session_expired() -> None:
    session = _session(
        status="expired", payment_status="unpaid", payment_intent=None, customer_details=None
    )
    card_event = translate(_event("checkout.session.expired", session))
    assert card_event is not None
    assert card_event.kind is CardEventKind.EXPIRED
    assert (card_event.order_ref, card_event.session_id) == ("ORD-1001", "cs_test_a1")
    assert card_event.payment_intent is None


def test_order_ref_from_metadata_when_no_client_reference() -> None:
    session = _session(client_reference_id=None)
    card_event = translate(_event("checkout.session.completed", session))
    assert card_event is not None and card_event.order_ref == "ORD-1001"


def test_expanded_payment_intent() -> None:
    session = _session(payment_intent={"id": "pi_test_x", "object": "payment_intent"})
    card_event = translate(_event("checkout.session.completed", session))
    assert card_event is not None and card_event.payment_intent == "pi_test_x"


@pytest.mark.parametrize(
    ("currency", "stripe_amount", "minor"),
    [("jpy", 2300, 2300), ("bhd", 12500, 12500), ("isk", 50000, 500), ("huf", 150000, 1500)],
)
def test_amounts_come_back_in_iso_minor_units(currency: str, stripe_amount: int, minor: int):
    session = _session(currency=currency, amount_total=stripe_amount)
    card_event = translate(_event("checkout.session.completed", session))
    assert card_event is not None
    assert (card_event.amount_minor, card_event.currency) == (minor, currency.upper())


def test_unrepresentable_amount_is_a_payload_error() -> None:
    session = _session(currency="isk", amount_total=50050)
    with pytest.raises(WebhookPayloadError):
        translate(_event("checkout.session.completed", session))


def _refund(**overrides: Any) -> dict[str, Any]:
    refund: dict[str, Any] = {
        "id": "re_test_1",
        "object": "refund",
        "amount": 1500,
        "charge": "ch_test_1",
        "created": 1_700_000_000,
        "currency": "eur",
        "metadata": {"order_ref": "ORD-1001"},
        "payment_intent": "pi_test_1",
        "reason": "requested_by_customer",
        "status": "succeeded",
    }
    refund.update(overrides)
    return refund


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("refund.created", "pending"),
        ("refund.updated", "succeeded"),
        ("refund.failed", "failed"),
        ("charge.refund.updated", "succeeded"),
    ],
)
def test_refund_events(event_type: str, status: str) -> None:
    card_event = translate(_event(event_type, _refund(status=status), event_id="evt_r"))
    assert card_event == CardEvent(
        event_id="evt_r",
        kind=CardEventKind.REFUND,
        stripe_type=event_type,
        order_ref="ORD-1001",
        payment_intent="pi_test_1",
        amount_minor=1500,
        currency="EUR",
        refund_id="re_test_1",
        refund_status=status,
    )


def _charge(**overrides: Any) -> dict[str, Any]:
    charge: dict[str, Any] = {
        "id": "ch_test_1",
        "object": "charge",
        "amount": 4838,
        "amount_captured": 4838,
        "amount_refunded": 1500,
        "billing_details": {
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": None,
            "address": FAKE_CUSTOMER_DETAILS["address"],
        },
        "currency": "eur",
        "metadata": {},
        "payment_intent": "pi_test_1",
        "refunded": False,
    }
    charge.update(overrides)
    return charge


def test_charge_refunded() -> None:
    card_event = translate(_event("charge.refunded", _charge()))
    assert card_event is not None
    assert card_event.kind is CardEventKind.REFUND
    assert (card_event.payment_intent, card_event.amount_minor) == ("pi_test_1", 1500)
    assert card_event.refund_id is None  # current API versions do not embed refunds
    assert card_event.order_ref is None  # the shop maps the payment intent to its order
    _no_personal_data(card_event)


def test_charge_refunded_with_embedded_refunds() -> None:
    refunds = {
        "object": "list",
        "data": [
            _refund(id="re_old", amount=1000, created=1, status="succeeded"),
            _refund(id="re_new", amount=500, created=2, status="pending"),
        ],
    }
    card_event = translate(_event("charge.refunded", _charge(refunds=refunds)))
    assert card_event is not None
    assert (card_event.refund_id, card_event.refund_status) == ("re_new", "pending")
    assert card_event.amount_minor == 1500  # cumulative, from the charge


def test_dispute_created() -> None:
    dispute = {
        "id": "dp_test_1",
        "object": "dispute",
        "amount": 4838,
        "charge": "ch_test_1",
        "currency": "eur",
        "evidence": {
            "customer_email_address": "jenny.rosen@example.com",
            "customer_name": "Jenny Rosen",
            "billing_address": "Hauptstrasse 1, 10115 Berlin",
        },
        "metadata": {},
        "payment_intent": "pi_test_1",
        "reason": "fraudulent",
        "status": "needs_response",
    }
    card_event = translate(_event("charge.dispute.created", dispute, event_id="evt_d"))
    assert card_event == CardEvent(
        event_id="evt_d",
        kind=CardEventKind.DISPUTED,
        stripe_type="charge.dispute.created",
        payment_intent="pi_test_1",
        amount_minor=4838,
        currency="EUR",
        dispute_id="dp_test_1",
        dispute_stage="created",
        dispute_status="needs_response",
    )
    _no_personal_data(card_event)


@pytest.mark.parametrize(
    "event_type",
    ["customer.created", "payment_intent.succeeded", "charge.succeeded", "invoice.paid"],
)
def test_other_events_are_ignored(event_type: str) -> None:
    obj = {"id": "x_1", "object": event_type.split(".")[0], **FAKE_CUSTOMER_DETAILS}
    assert translate(_event(event_type, obj)) is None


def test_handled_types() -> None:
    assert {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.dispute.created",
    } <= HANDLED_EVENT_TYPES


def test_wrong_object_for_type_is_a_payload_error() -> None:
    with pytest.raises(WebhookPayloadError):
        translate(_event("checkout.session.completed", _refund()))


def test_card_event_has_no_field_for_personal_data() -> None:
    names = {f.name for f in dataclasses.fields(CardEvent)}
    assert names == {
        "event_id", "kind", "stripe_type", "order_ref", "session_id", "payment_intent",
        "dispute_stage", "dispute_status",
        "amount_minor", "currency", "refund_id", "refund_status", "dispute_id",
    }  # fmt: skip


# -- end to end with the fake server --------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key="sk_test_e2e", webhook_secret=SECRET) as server:
        yield server


def _create(fake: FakeStripe) -> str:
    gateway = StripeGateway("sk_test_e2e", api_base=fake.api_base)
    info = gateway.create_checkout_session(
        order_ref="ORD-7",
        attempt=1,
        currency="EUR",
        lines=[LineItem("Poster", 2500, 1)],
        shipping_minor=490,
        shipping_label="Post",
        success_url="https://shop.example/return?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://shop.example/cancel",
        expires_at=int(time.time()) + 3600,
    )
    return info.id


def test_fake_completion_webhook_translates(fake: FakeStripe) -> None:
    session_id = _create(fake)
    payload, header = fake.complete_session(session_id)
    assert b"jenny.rosen@example.com" in payload  # Stripe does send it ...

    card_event = translate(verify_event(payload, header, SECRET))
    assert card_event is not None
    assert card_event.kind is CardEventKind.PAID
    assert (card_event.order_ref, card_event.session_id) == ("ORD-7", session_id)
    assert (card_event.amount_minor, card_event.currency) == (2990, "EUR")
    assert card_event.payment_intent == fake.sessions[session_id]["payment_intent"]
    _no_personal_data(card_event)  # ... and the shop never keeps it


def test_async_payment_flow(fake: FakeStripe) -> None:
    session_id = _create(fake)
    kinds = [translate(verify_event(*fake.complete_session(session_id, paid=False), SECRET))]
    kinds.append(translate(verify_event(*fake.settle_async_payment(session_id), SECRET)))
    assert [k.kind for k in kinds if k] == [CardEventKind.PROCESSING, CardEventKind.PAID]


def test_pay_through_hosted_page(fake: FakeStripe) -> None:
    session_id = _create(fake)
    host = urlsplit(fake.api_base)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
    conn.request("GET", f"/pay/{session_id}")
    page = conn.getresponse()
    body = page.read().decode()
    assert page.status == 200
    assert f'action="/pay/{session_id}"' in body and ">Pay<" in body

    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
    conn.request(
        "POST",
        f"/pay/{session_id}",
        body="outcome=paid",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    redirect = conn.getresponse()
    redirect.read()
    assert redirect.status == 303
    assert redirect.getheader("Location") == f"https://shop.example/return?session={session_id}"

    [event] = fake.events
    card_event = translate(verify_event(event.payload, event.header, SECRET))
    assert card_event is not None and card_event.kind is CardEventKind.PAID


def test_fake_delivers_webhooks_when_given_a_url(fake: FakeStripe) -> None:
    received: list[tuple[bytes, str | None]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers.get("Stripe-Signature")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        fake.webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/stripe"
        fake.complete_session(_create(fake))
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join()

    [(body, signature)] = received
    event = verify_event(body, signature, SECRET)
    assert event.type == "checkout.session.completed"
