"""POST /webhooks/stripe: signatures, idempotency, out-of-order delivery and what each event does."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

from sqlalchemy import func, select

from shop.catalog.models import Variant
from shop.orders.models import OrderEvent, PaymentRecord
from shop.payments.stripe.models import CardPayment, StripeEventRecord
from tests.stripe.conftest import (
    WEBHOOK_SECRET,
    LiveServer,
    load_order,
    place_card_order,
    post_event,
    run_event_worker,
    session_id_of,
    start_card_payment,
)
from tests.stripe.fake_stripe import sign_payload


def _paid_session(app, fake, paid: bool = True):
    client = app.test_client()
    order = place_card_order(app)
    session_id = session_id_of(start_card_payment(client, order))
    return client, order, session_id, fake.complete_session(session_id, paid=paid)


def _count(app, model, *where) -> int:
    with app.extensions["shop.db"].job_session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _attempt_status(app, session_id: str) -> str:
    with app.extensions["shop.db"].job_session() as s:
        return s.scalar(select(CardPayment.status).where(CardPayment.session_id == session_id))


def _stock(app, sku: str) -> int:
    with app.extensions["shop.db"].job_session() as s:
        return s.scalar(select(Variant).where(Variant.sku == sku)).available


def test_completed_and_paid_marks_the_order_paid(card_app, fake):
    client, order, session_id, event = _paid_session(card_app, fake)
    # Before the webhook the order is not paid, whatever the browser did.
    assert load_order(card_app, order.id).status == "pending_payment"
    response = post_event(client, event)
    assert response.status_code == 200, response.get_data(as_text=True)
    paid = load_order(card_app, order.id)
    assert (paid.status, paid.amount_paid) == ("paid", order.total)
    assert _attempt_status(card_app, session_id) == "paid"
    with card_app.extensions["shop.db"].job_session() as s:
        record = s.scalar(select(PaymentRecord).where(PaymentRecord.order_id == order.id))
        assert (record.provider, record.key, record.amount, record.currency) == (
            "stripe",
            f"{session_id}:paid",
            order.total,
            "EUR",
        )
        assert record.reference.startswith("pi_test_")
        # The event carried the customer's name, email and address; none of it was kept.
        assert "Jenny" not in record.note and "jenny" not in record.note
    page = client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "Status:</strong> Paid" in page


def test_bad_signatures_are_400_and_change_nothing(card_app, fake):
    client, order, _, (payload, header) = _paid_session(card_app, fake)
    tampered = payload.replace(b'"payment_status": "paid"', b'"payment_status": "paid" ')
    assert tampered != payload
    wrong_secret = sign_payload(payload, "whsec_someoneelse")
    old = int(time.time()) - 301
    expired = sign_payload(payload, WEBHOOK_SECRET, timestamp=old)
    for body, headers in [
        (tampered, {"Stripe-Signature": header}),
        (payload, {"Stripe-Signature": wrong_secret}),
        (payload, {"Stripe-Signature": expired}),
        (payload, {}),
        (payload, {"Stripe-Signature": "t=1,v1=nonsense"}),
        (b"\xff\xfe", {"Stripe-Signature": header}),
    ]:
        response = client.post(
            "/webhooks/stripe", data=body, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "error" in response.get_json()
    assert load_order(card_app, order.id).status == "pending_payment"
    assert _count(card_app, StripeEventRecord) == 0
    # Within the tolerance an older timestamp is fine.
    recent = sign_payload(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 200)
    assert (
        client.post(
            "/webhooks/stripe", data=payload, headers={"Stripe-Signature": recent}
        ).status_code
        == 200
    )
    run_event_worker(card_app)
    assert load_order(card_app, order.id).status == "paid"


def test_unknown_event_types_are_acknowledged(card_app, fake):
    client = card_app.test_client()
    response = post_event(
        client, fake.signed_event("customer.created", {"id": "cus_1", "object": "customer"})
    )
    assert response.status_code == 200
    assert response.get_json()["handled"] is False


def test_duplicate_delivery_is_applied_once(card_app, fake):
    client, order, _, event = _paid_session(card_app, fake)
    for _ in range(3):
        assert post_event(client, event).status_code == 200
    paid = load_order(card_app, order.id)
    assert (paid.status, paid.amount_paid) == ("paid", order.total)
    assert _count(card_app, PaymentRecord, PaymentRecord.order_id == order.id) == 1
    assert _count(card_app, StripeEventRecord) == 1


def test_fifty_concurrent_duplicates_apply_exactly_once(card_pg_app, fake):
    _, order, session_id, (payload, header) = _paid_session(card_pg_app, fake)
    statuses: list[int] = []
    start = threading.Barrier(50)

    with LiveServer(card_pg_app) as server:

        def deliver() -> None:
            request = urllib.request.Request(
                f"{server.url}/webhooks/stripe",
                data=payload,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            start.wait()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)

        threads = [threading.Thread(target=deliver) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert statuses == [200] * 50
    # Three workers apply the stored event at once: exactly one of them does.
    workers = [threading.Thread(target=run_event_worker, args=(card_pg_app,)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    paid = load_order(card_pg_app, order.id)
    assert (paid.status, paid.amount_paid) == ("paid", order.total)
    assert _count(card_pg_app, PaymentRecord, PaymentRecord.order_id == order.id) == 1
    assert _count(card_pg_app, StripeEventRecord) == 1
    assert (
        _count(
            card_pg_app,
            OrderEvent,
            OrderEvent.order_id == order.id,
            OrderEvent.to_status == "paid",
            OrderEvent.from_status == "pending_payment",
        )
        == 1
    )


def test_expired_after_completed_leaves_the_order_paid(card_app, fake):
    client, order, session_id, completed = _paid_session(card_app, fake)
    stale = dict(fake.sessions[session_id], status="expired", payment_status="unpaid")
    expired = fake.signed_event("checkout.session.expired", stale)
    # A stale "expired" first: the shop re-reads the session, which is complete and paid.
    assert post_event(client, expired).status_code == 200
    assert load_order(card_app, order.id).status == "paid"
    assert post_event(client, completed).status_code == 200
    assert post_event(client, expired).status_code == 200
    assert load_order(card_app, order.id).status == "paid"
    assert _stock(card_app, "PRINT-HARB-A3") == 4  # still taken by the paid order


def test_async_success_before_completed_pays_once(card_app, fake):
    client, order, session_id, completed = _paid_session(card_app, fake, paid=False)
    succeeded = fake.settle_async_payment(session_id, succeeded=True)
    assert post_event(client, succeeded).status_code == 200
    assert load_order(card_app, order.id).status == "paid"
    assert post_event(client, completed).status_code == 200
    paid = load_order(card_app, order.id)
    assert (paid.status, paid.amount_paid) == ("paid", order.total)
    assert (
        _count(
            card_app,
            PaymentRecord,
            PaymentRecord.order_id == order.id,
            PaymentRecord.kind == "paid",
        )
        == 1
    )


def test_processing_then_paid_and_the_page_says_so(card_app, fake):
    client, order, session_id, completed = _paid_session(card_app, fake, paid=False)
    assert post_event(client, completed).status_code == 200
    assert load_order(card_app, order.id).status == "pending_payment"
    assert _attempt_status(card_app, session_id) == "processing"
    page = client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "Payment processing" in page and "Pay by card" not in page
    assert post_event(client, fake.settle_async_payment(session_id)).status_code == 200
    assert load_order(card_app, order.id).status == "paid"


def test_expired_session_releases_the_stock(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    assert _stock(card_app, "PRINT-HARB-A3") == 4
    assert post_event(client, fake.expire_session(session_id)).status_code == 200
    assert load_order(card_app, order.id).status == "expired"
    assert _attempt_status(card_app, session_id) == "expired"
    assert _stock(card_app, "PRINT-HARB-A3") == 5


def test_amount_mismatch_is_flagged_never_paid(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    fake.sessions[session_id]["amount_total"] = 100  # what Stripe says was paid
    assert post_event(client, fake.complete_session(session_id)).status_code == 200
    flagged = load_order(card_app, order.id)
    assert (flagged.status, flagged.amount_paid) == ("pending_payment", 0)
    assert "was paid 100 EUR, but the order is 4390 EUR" in flagged.attention
    assert _attempt_status(card_app, session_id) == "mismatch"


def test_currency_mismatch_is_flagged_never_paid(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    fake.sessions[session_id]["currency"] = "usd"
    post_event(client, fake.complete_session(session_id))
    flagged = load_order(card_app, order.id)
    assert flagged.status == "pending_payment" and "USD" in flagged.attention


def test_stripe_unreachable_while_rereading_is_retried_by_the_worker(card_app, fake):
    from datetime import timedelta

    from shop.db import utcnow
    from shop.payments.stripe.service import process_events
    from tests.stripe.conftest import gateway

    client, order, _, event = _paid_session(card_app, fake)
    fake.fail_next(500, count=3)
    # Stored and answered at once; Stripe's outage only delays the worker.
    assert post_event(client, event).status_code == 200
    assert _count(card_app, StripeEventRecord, StripeEventRecord.status == "received") == 1
    assert load_order(card_app, order.id).status == "pending_payment"
    assert (
        process_events(
            card_app.extensions["shop.db"], gateway(card_app), now=utcnow() + timedelta(minutes=1)
        )
        == 1
    )
    assert load_order(card_app, order.id).status == "paid"


def test_dispute_flags_the_order(card_app, fake):
    client, order, session_id, event = _paid_session(card_app, fake)
    post_event(client, event)
    intent = fake.sessions[session_id]["payment_intent"]
    assert post_event(client, fake.dispute(intent)).status_code == 200
    disputed = load_order(card_app, order.id)
    assert disputed.status == "paid"
    assert "disputed" in disputed.attention


def test_events_for_other_shops_are_acknowledged(card_app, fake):
    client = card_app.test_client()
    stranger = {
        "id": "cs_test_elsewhere",
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 500,
        "currency": "eur",
        "client_reference_id": "not-ours",
        "payment_intent": "pi_x",
        "metadata": {},
    }
    fake.sessions["cs_test_elsewhere"] = stranger
    response = post_event(client, fake.signed_event("checkout.session.completed", stranger))
    assert response.status_code == 200
    assert _count(card_app, StripeEventRecord, StripeEventRecord.status == "unmatched") == 1


def test_malformed_signed_event_is_400(card_app, fake):
    client = card_app.test_client()
    payload = json.dumps(
        {
            "id": "evt_1",
            "type": "checkout.session.completed",
            "created": 1,
            "data": {"object": {"object": "charge"}},
        }
    ).encode()
    header = sign_payload(payload, WEBHOOK_SECRET)
    assert (
        client.post(
            "/webhooks/stripe", data=payload, headers={"Stripe-Signature": header}
        ).status_code
        == 400
    )
