"""refund(session, gateway, order, amount): full, partial, pending, failures and webhooks."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from shop.payments.stripe import service
from shop.payments.stripe.models import CardRefund
from tests.stripe.conftest import (
    gateway,
    load_order,
    place_card_order,
    post_event,
    session_id_of,
    start_card_payment,
)


@pytest.fixture
def paid(card_app, fake):
    """A card order paid through Checkout and confirmed by webhook: (client, order, intent)."""
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    assert post_event(client, fake.complete_session(session_id)).status_code == 200
    assert load_order(card_app, order.id).status == "paid"
    return client, order, fake.sessions[session_id]["payment_intent"]


def _refund(app, order_id: int, amount: int):
    """As the admin calls it: in one unit of work that is committed even when the refund
    raises (the view shows the message), so what refund() wrote is kept."""
    row = service.refund(app.extensions["shop.db"], gateway(app), order_id, amount)
    return row.status, row.refund_id, row.key


def _rows(app, order_id: int) -> list[tuple[str, int]]:
    with app.extensions["shop.db"].job_session() as s:
        return [(r.status, r.amount) for r in service.refunds_of(s, order_id)]


def test_full_refund_succeeds_at_once(card_app, fake, paid):
    _, order, intent = paid
    status, refund_id, key = _refund(card_app, order.id, order.total)
    assert status == "succeeded" and refund_id.startswith("re_test_")
    [request] = fake.api_requests("POST", "/v1/refunds")
    assert request.header("Idempotency-Key") == f"refund-{order.ref}-1" == f"refund-{key}"
    assert request.params == {
        "payment_intent": intent,
        "amount": "4390",
        "metadata": {"order_ref": order.ref},
    }
    refunded = load_order(card_app, order.id)
    assert (refunded.status, refunded.amount_refunded) == ("refunded", order.total)


def test_partial_refunds_then_the_rest(card_app, fake, paid):
    _, order, _ = paid
    _refund(card_app, order.id, 1000)
    partly = load_order(card_app, order.id)
    assert (partly.status, partly.amount_refunded) == ("partially_refunded", 1000)
    with pytest.raises(service.NotRefundable, match="between 1 and 3390"):
        _refund(card_app, order.id, 3391)
    _refund(card_app, order.id, 3390)
    assert load_order(card_app, order.id).status == "refunded"
    keys = [r.header("Idempotency-Key") for r in fake.api_requests("POST", "/v1/refunds")]
    assert keys == [f"refund-{order.ref}-1", f"refund-{order.ref}-2"]
    assert _rows(card_app, order.id) == [("succeeded", 1000), ("succeeded", 3390)]


def test_pending_refund_completes_by_webhook(card_app, fake, paid):
    client, order, intent = paid
    fake.refund_status = "pending"
    status, refund_id, _ = _refund(card_app, order.id, 1500)
    assert status == "pending"
    assert load_order(card_app, order.id).status == "paid"
    # While it is pending, its amount is not refundable again.
    with pytest.raises(service.NotRefundable, match="between 1 and 2890"):
        _refund(card_app, order.id, 4390)
    assert post_event(client, fake.update_refund(refund_id, "succeeded")).status_code == 200
    settled = load_order(card_app, order.id)
    assert (settled.status, settled.amount_refunded) == ("partially_refunded", 1500)
    # charge.refunded afterwards, and a redelivery, change nothing more.
    assert post_event(client, fake.charge_refunded(intent)).status_code == 200
    assert load_order(card_app, order.id).amount_refunded == 1500


def test_pending_refund_that_fails_is_flagged(card_app, fake, paid):
    client, order, _ = paid
    fake.refund_status = "pending"
    _, refund_id, _ = _refund(card_app, order.id, 4390)
    post_event(client, fake.update_refund(refund_id, "failed"))
    failed = load_order(card_app, order.id)
    assert failed.status == "paid" and "refund of 4390 EUR failed" in failed.attention
    assert _rows(card_app, order.id) == [("failed", 4390)]


@pytest.mark.parametrize("failure", ["500", "429", "timeout"])
def test_refund_when_stripe_fails_is_repeated_with_the_same_key(card_app, fake, paid, failure):
    _, order, _ = paid
    tries = 1 if failure == "429" else 3
    if failure == "timeout":
        fake.delay_next(1.5, count=tries)
    else:
        fake.fail_next(int(failure), count=tries)
    with pytest.raises(service.RefundUnavailable):
        _refund(card_app, order.id, 1000)
    assert _rows(card_app, order.id) == [("sending", 1000)]
    assert load_order(card_app, order.id).status == "paid"
    # A different amount must wait until the unconfirmed one is settled.
    with pytest.raises(service.RefundInFlight):
        _refund(card_app, order.id, 2000)
    if failure == "timeout":
        time.sleep(0.6)  # the stalled requests were handled by Stripe after all
    _refund(card_app, order.id, 1000)
    requests = fake.api_requests("POST", "/v1/refunds")
    assert len(requests) == tries + 1
    assert {r.header("Idempotency-Key") for r in requests} == {f"refund-{order.ref}-1"}
    assert len(fake.refunds) == 1  # never refunded twice
    assert load_order(card_app, order.id).amount_refunded == 1000


def test_refund_refused_by_stripe_is_recorded_as_failed(card_app, fake, paid):
    _, order, _ = paid
    fake.fail_next(400)
    with pytest.raises(service.RefundRejected):
        _refund(card_app, order.id, 1000)
    assert _rows(card_app, order.id) == [("failed", 1000)]
    _refund(card_app, order.id, 1000)
    assert _rows(card_app, order.id) == [("failed", 1000), ("succeeded", 1000)]


def test_refund_made_in_the_dashboard_reaches_the_order(card_app, fake, paid):
    client, order, intent = paid
    gateway(card_app).create_refund(
        payment_intent=intent, amount_minor=4390, currency="EUR", refund_key="dashboard-1"
    )
    created = fake.events[-1]
    assert created.type == "refund.created"
    assert post_event(client, (created.payload, created.header)).status_code == 200
    assert post_event(client, fake.charge_refunded(intent)).status_code == 200
    refunded = load_order(card_app, order.id)
    assert (refunded.status, refunded.amount_refunded) == ("refunded", 4390)
    with card_app.extensions["shop.db"].job_session() as s:
        [row] = s.scalars(select(CardRefund))
        assert row.key == row.refund_id and row.status == "succeeded"


def test_only_paid_card_orders_are_refundable(card_app, fake):
    order = place_card_order(card_app)
    with pytest.raises(service.NotRefundable, match="pending_payment"):
        _refund(card_app, order.id, 100)
    assert fake.api_requests("POST", "/v1/refunds") == []


def test_refund_retried_after_a_timeout_is_not_made_twice(card_app, fake, paid):
    _, order, _ = paid
    fake.delay_next(1.5, count=3)
    with pytest.raises(service.RefundUnavailable):
        _refund(card_app, order.id, 1000)
    # The row was committed before Stripe was called: a killed request leaves this trace.
    assert _rows(card_app, order.id) == [("sending", 1000)]
    time.sleep(0.6)  # Stripe handled the stalled request after all
    _refund(card_app, order.id, 1000)
    assert len(fake.refunds) == 1
    assert {r.header("Idempotency-Key") for r in fake.api_requests("POST", "/v1/refunds")} == {
        f"refund-{order.ref}-1"
    }
    assert load_order(card_app, order.id).amount_refunded == 1000


def test_the_card_method_offers_refund_to_the_admin(card_app, fake, paid):
    _, order, _ = paid
    method = card_app.extensions["shop.payment_methods"]["card"]
    assert method.refund(card_app.extensions["shop.db"], order.id, 500) == "Card refund made."
    assert load_order(card_app, order.id).status == "partially_refunded"


def test_webhook_before_the_answer_then_the_retry_refunds_once(card_app, fake, paid):
    client, order, _ = paid
    fake.delay_next(1.5, count=3)
    with pytest.raises(service.RefundUnavailable):
        _refund(card_app, order.id, 1000)
    time.sleep(0.6)  # Stripe made the refund and sent its webhook; the shop had given up
    created = next(e for e in fake.events if e.type == "refund.created")
    assert post_event(client, (created.payload, created.header)).status_code == 200
    assert load_order(card_app, order.id).amount_refunded == 1000
    assert _rows(card_app, order.id) == [("succeeded", 1000)]
    _refund(card_app, order.id, 1000)  # the merchant repeats it, as the message said
    assert len(fake.refunds) == 1
    assert load_order(card_app, order.id).amount_refunded == 1000
    assert _rows(card_app, order.id) == [("succeeded", 1000)]
    _refund(card_app, order.id, 1000)  # a new refund now is a new refund
    assert load_order(card_app, order.id).amount_refunded == 2000
