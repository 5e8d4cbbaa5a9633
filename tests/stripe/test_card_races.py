"""Issue 12's major findings: the success URL racing the webhook, and payment methods that
settle days later (SEPA Debit and others), against the fake Stripe and the real SDK."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shop.catalog.models import Variant
from shop.db import utcnow
from shop.orders import service as orders
from shop.orders.models import Order
from shop.payments.stripe.models import CardPayment
from shop.privacy.purge import purge
from shop.privacy.store import read_contact
from tests.stripe.conftest import (
    load_order,
    place_card_order,
    post_event,
    session_id_of,
    start_card_payment,
)


def _attempt_status(app, session_id: str) -> str:
    with app.extensions["shop.db"].job_session() as s:
        return s.scalar(select(CardPayment.status).where(CardPayment.session_id == session_id))


def _stock(app, sku: str = "PRINT-HARB-A3") -> int:
    """What can still be sold."""
    with app.extensions["shop.db"].job_session() as s:
        return s.scalar(select(Variant).where(Variant.sku == sku)).available


def test_webhook_landing_while_the_return_waits_for_stripe_stays_paid(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    event = fake.complete_session(session_id)
    answers = []
    # Stripe redirects the customer and sends the webhook at the same moment: the webhook is
    # applied while the success URL's request waits for Stripe's answer.
    fake.on_next_request(lambda: answers.append(post_event(card_app.test_client(), event)))
    response = client.get(f"/card/return?session_id={session_id}")
    assert response.status_code == 303
    assert answers and answers[0].status_code == 200
    assert load_order(card_app, order.id).status == "paid"
    assert _attempt_status(card_app, session_id) == "paid"


def test_return_notes_processing_without_the_webhook(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    fake.complete_session(session_id)
    assert client.get(f"/card/return?session_id={session_id}").status_code == 303
    assert _attempt_status(card_app, session_id) == "processing"
    assert load_order(card_app, order.id).status == "pending_payment"


def _processing(app, fake):
    client = app.test_client()
    order = place_card_order(app)
    session_id = session_id_of(start_card_payment(client, order))
    assert post_event(client, fake.complete_session(session_id, paid=False)).status_code == 200
    assert _attempt_status(app, session_id) == "processing"
    return client, order, session_id


def _run_worker_at(app, when) -> None:
    database = app.extensions["shop.db"]
    with database.job_session() as s:
        orders.expire_due_orders(s, when)
    with database.job_session() as s:
        purge(s, app.extensions["shop.settings"], as_of=when)


def _contact(app, order_id: int):
    with app.extensions["shop.db"].job_session() as s:
        return read_contact(s, s.get(Order, order_id))


def test_a_processing_payment_holds_the_order_and_its_address(card_app, fake):
    client, order, session_id = _processing(card_app, fake)
    # Days later (SEPA Debit takes up to 14 business days) the worker and the purge run.
    _run_worker_at(card_app, utcnow() + timedelta(days=5))
    held = load_order(card_app, order.id)
    assert held.status == "pending_payment"
    assert held.personal_data_erased_at is None
    assert _stock(card_app) == 4
    page = client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "Payment processing" in page
    assert "released" not in page
    assert post_event(client, fake.settle_async_payment(session_id)).status_code == 200
    paid = load_order(card_app, order.id)
    assert paid.status == "paid" and not paid.attention
    assert _contact(card_app, order.id).street == "1 Harbour Road"


def test_the_hold_of_a_processing_payment_is_bounded(card_app, fake):
    _, order, _ = _processing(card_app, fake)
    days = card_app.extensions["shop.settings"].card_processing_hold_days
    assert days == 14
    _run_worker_at(card_app, utcnow() + timedelta(days=days, hours=1))
    assert load_order(card_app, order.id).status == "expired"


def test_a_failed_delayed_payment_releases_the_order_and_says_so(card_app, fake):
    client, order, session_id = _processing(card_app, fake)
    failed = fake.settle_async_payment(session_id, succeeded=False)
    assert post_event(client, failed).status_code == 200
    assert _attempt_status(card_app, session_id) == "failed"
    released = load_order(card_app, order.id)
    assert released.status == "expired"
    assert _stock(card_app) == 5
    page = client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "Your card payment failed" in page
    assert "not paid in time" not in page


def test_an_attempt_moves_only_from_an_allowed_status(card_app, fake):
    import pytest

    from shop.payments.stripe.service import IllegalAttemptTransition, move_attempt

    client, order, session_id = _processing(card_app, fake)
    with card_app.extensions["shop.db"].job_session() as s:
        attempt = s.scalar(select(CardPayment).where(CardPayment.session_id == session_id))
        assert move_attempt(s, attempt, "open", utcnow()) is False
        with pytest.raises(IllegalAttemptTransition, match="processing cannot become open"):
            move_attempt(s, attempt, "open", utcnow(), strict=True)
        assert move_attempt(s, attempt, "paid", utcnow()) is True
        assert attempt.status == "paid"
