"""Issue 12's minor findings, each against the fake Stripe with the real SDK: admin cancel,
refunds of late payments, events Stripe will not show, the wrong mode, a lost answer before a
second "Pay by card", and disputes and failed refunds reaching the order and the ledger."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from shop.catalog.models import Variant
from shop.db import utcnow
from shop.orders import service as orders
from shop.payments.stripe.models import StripeEventRecord
from shop.privacy.models import LedgerEntry
from tests.stripe.conftest import (
    csrf_token,
    load_order,
    place_card_order,
    post_event,
    session_id_of,
    start_card_payment,
)

SKU = "PRINT-HARB-A3"


def _admin(app):
    from shop.admin import auth
    from tests.admin.conftest import PASSWORD, sign_in

    with app.extensions["shop.db"].job_session() as s:
        auth.create_user(s, "merchant", PASSWORD)
    return sign_in(app.test_client())


def _admin_cancel(admin, app, order) -> str:
    number = load_order(app, order.id).number
    admin.get(f"/admin/orders/{number}")
    page = admin.submit(admin.form("form[action$='/cancel']"), {"reason": "Out of paper"})
    return " ".join(page.messages())


def _admin_refund(admin, app, order, amount: str) -> str:
    number = load_order(app, order.id).number
    admin.get(f"/admin/orders/{number}")
    page = admin.submit(admin.form("form[action$='/refund']"), {"amount": amount})
    return " ".join(page.messages())


def _ledger(app, order_id: int) -> list[tuple[str, int]]:
    number = load_order(app, order_id).number
    with app.extensions["shop.db"].job_session() as s:
        return [
            (e.kind, e.gross)
            for e in s.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.order_number == number)
                .order_by(LedgerEntry.id)
            )
        ]


def _paid(app, fake):
    client = app.test_client()
    order = place_card_order(app)
    session_id = session_id_of(start_card_payment(client, order))
    assert post_event(client, fake.complete_session(session_id)).status_code == 200
    assert load_order(app, order.id).status == "paid"
    return client, order, fake.sessions[session_id]["payment_intent"]


# ---------------------------------------------------------------- admin cancel


def test_admin_cancel_honours_stripe_refusing_to_expire_a_paid_page(card_app, fake):
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(card_app.test_client(), order))
    fake.complete_session(session_id)  # paid at Stripe; the webhook has not arrived yet
    messages = _admin_cancel(_admin(card_app), card_app, order)
    assert "just paid" in messages
    assert load_order(card_app, order.id).status == "pending_payment"


def test_admin_cancel_is_refused_while_a_payment_is_processing(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    post_event(client, fake.complete_session(session_id, paid=False))
    messages = _admin_cancel(_admin(card_app), card_app, order)
    assert "being processed" in messages
    assert load_order(card_app, order.id).status == "pending_payment"


# ---------------------------------------------------------------- late payments


def test_an_order_paid_after_expiry_can_be_refunded_and_says_it_was_paid(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    database = card_app.extensions["shop.db"]
    with database.job_session() as s:
        orders.expire_due_orders(s, utcnow() + timedelta(days=2))
    with database.job_session() as s:  # the last print sold meanwhile
        s.execute(update(Variant).where(Variant.sku == SKU).values(on_hand=0))
    post_event(client, fake.complete_session(session_id))
    late = load_order(card_app, order.id)
    assert (late.status, late.amount_paid) == ("expired", order.total)
    assert "out of stock" in late.attention
    page = client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "not paid in time" not in page
    assert "arrived after this order had expired" in page

    messages = _admin_refund(_admin(card_app), card_app, order, "43.90")
    assert "Card refund made" in messages, messages
    refunded = load_order(card_app, order.id)
    assert (refunded.status, refunded.amount_refunded) == ("refunded", order.total)
    assert len(fake.refunds) == 1
    assert _ledger(card_app, order.id) == []  # no sale was booked, so no refund either


# ---------------------------------------------------------------- events


def test_an_event_stripe_will_not_show_is_acknowledged_and_becomes_a_task(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    start_card_payment(client, order)
    unknown = {
        "id": "cs_test_gone",
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 4390,
        "currency": "eur",
        "client_reference_id": order.ref,
        "payment_intent": "pi_x",
        "metadata": {},
    }
    response = post_event(client, fake.signed_event("checkout.session.completed", unknown))
    assert response.status_code == 200
    with card_app.extensions["shop.db"].job_session() as s:
        [status] = s.scalars(
            select(StripeEventRecord.status).where(
                StripeEventRecord.type == "checkout.session.completed"
            )
        )
    assert status == "unmatched"
    flagged = load_order(card_app, order.id)
    assert flagged.status == "pending_payment"
    assert "could not be checked" in flagged.attention
    # Not retried for days: nothing is left waiting; the merchant's health page names it.
    with card_app.extensions["shop.db"].job_session() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(StripeEventRecord)
                .where(StripeEventRecord.status == "received")
            )
            == 0
        )
        [check] = card_app.extensions["shop.payment_methods"]["card"].health(s, utcnow())
    assert check.status == "warning"
    assert any("checkout.session.completed" in d and "Stripe refused" in d for d in check.details)


def test_an_event_of_the_other_mode_is_refused(card_app, fake, caplog):
    client = card_app.test_client()
    order = place_card_order(card_app)
    session_id = session_id_of(start_card_payment(client, order))
    fake.complete_session(session_id)
    live = fake.signed_event("checkout.session.completed", fake.sessions[session_id], livemode=True)
    response = post_event(client, live)
    assert response.status_code == 400
    assert "mode" in response.get_json()["error"]
    assert load_order(card_app, order.id).status == "pending_payment"
    with card_app.extensions["shop.db"].job_session() as s:
        assert s.scalar(select(func.count()).select_from(StripeEventRecord)) == 0
    assert any("livemode=True" in r.getMessage() for r in caplog.records)


def test_a_second_pay_by_card_after_a_lost_answer_expires_the_first_page(
    card_app, fake, monkeypatch
):
    from shop.payments.stripe import service

    client = card_app.test_client()
    order = place_card_order(card_app)
    page = client.get(f"/orders/{order.token}")
    token = csrf_token(page.get_data(as_text=True))
    fake.lose_next_answers(3)  # Stripe made the session; the shop never heard (3 tries)
    client.post(f"/orders/{order.token}/pay/card", data={"csrf_token": token})
    [first] = list(fake.sessions)
    # Minutes later the same request can no longer be repeated (its expires_at would be too
    # close for Stripe), so a new attempt is made.
    later = utcnow() + timedelta(minutes=4)
    monkeypatch.setattr(service, "utcnow", lambda: later)
    second = session_id_of(start_card_payment(client, order))
    assert second != first
    assert fake.sessions[first]["status"] == "expired"
    assert fake.sessions[second]["status"] == "open"


# ---------------------------------------------------------------- disputes, failed refunds


def test_dispute_funds_withdrawn_and_lost_reach_the_order_and_the_ledger(card_app, fake):
    client, order, intent = _paid(card_app, fake)
    post_event(client, fake.dispute(intent))
    [dispute_id] = list(fake.disputes)
    post_event(client, fake.dispute_update(dispute_id, "charge.dispute.funds_withdrawn"))
    assert _ledger(card_app, order.id) == [("sale", order.total), ("refund", -order.total)]
    post_event(client, fake.dispute_update(dispute_id, "charge.dispute.closed", "lost"))
    attention = load_order(card_app, order.id).attention
    assert "took 4390 EUR" in attention and "closed: lost" in attention


def test_dispute_won_gives_the_money_back_in_the_ledger(card_app, fake):
    client, order, intent = _paid(card_app, fake)
    post_event(client, fake.dispute(intent))
    [dispute_id] = list(fake.disputes)
    post_event(client, fake.dispute_update(dispute_id, "charge.dispute.funds_withdrawn"))
    post_event(client, fake.dispute_update(dispute_id, "charge.dispute.funds_reinstated"))
    post_event(client, fake.dispute_update(dispute_id, "charge.dispute.closed", "won"))
    assert _ledger(card_app, order.id) == [
        ("sale", order.total),
        ("refund", -order.total),
        ("refund", order.total),
    ]
    assert "closed: won" in load_order(card_app, order.id).attention


def test_a_refund_that_fails_after_succeeding_is_reversed_in_the_ledger(card_app, fake):
    client, order, _ = _paid(card_app, fake)
    assert "Card refund made" in _admin_refund(_admin(card_app), card_app, order, "10.00")
    [refund_id] = list(fake.refunds)
    assert _ledger(card_app, order.id) == [("sale", order.total), ("refund", -1000)]
    post_event(client, fake.update_refund(refund_id, "failed"))
    after = load_order(card_app, order.id)
    assert after.amount_refunded == 0
    assert "failed" in after.attention
    assert _ledger(card_app, order.id) == [
        ("sale", order.total),
        ("refund", -1000),
        ("refund", 1000),
    ]
