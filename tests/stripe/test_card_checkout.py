"""Starting a card payment: the Checkout Session the shop asks for, reuse, and Stripe failures."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from shop.db import utcnow
from shop.payments.stripe.models import CardPayment
from tests.stripe.conftest import (
    csrf_token,
    load_order,
    place_card_order,
    session_id_of,
    start_card_payment,
)


def _attempts(app, order_id: int) -> list[CardPayment]:
    with app.extensions["shop.db"].job_session() as s:
        rows = list(
            s.scalars(
                select(CardPayment)
                .where(CardPayment.order_id == order_id)
                .order_by(CardPayment.attempt)
            )
        )
        s.expunge_all()
        return rows


def test_pay_by_card_creates_a_checkout_session_without_personal_data(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)  # one A3 print (3900) + DHL shipping (490)
    before = load_order(card_app, order.id)

    page = client.get(f"/orders/{order.token}")
    html = page.get_data(as_text=True)
    assert "Pay by card" in html
    assert f"form-action 'self' {fake.api_base}" in page.headers["Content-Security-Policy"]

    started = time.time()
    url = start_card_payment(client, order)
    assert url.startswith(f"{fake.api_base}/pay/cs_test_")

    [request] = fake.api_requests("POST", "/v1/checkout/sessions")
    p = request.params
    assert request.header("Idempotency-Key") == f"checkout-{order.ref}-1"
    assert request.header("Stripe-Version")
    assert p["mode"] == "payment"
    assert p["client_reference_id"] == order.ref
    assert p["metadata"] == {"order_ref": order.ref}
    assert p["payment_intent_data"] == {"metadata": {"order_ref": order.ref}}
    [line] = p["line_items"]
    assert line["quantity"] == "1"
    assert line["price_data"]["currency"] == "eur"
    assert line["price_data"]["unit_amount"] == "3900"
    assert line["price_data"]["product_data"]["name"] == "Harbour at Dawn — art print (A3)"
    assert p["shipping_options"][0]["shipping_rate_data"]["fixed_amount"] == {
        "amount": "490",
        "currency": "eur",
    }
    assert fake.sessions[session_id_of(url)]["amount_total"] == order.total == 4390
    # The 30-minute reservation is below Stripe's minimum: the page lives 35 minutes and the
    # order's reservation is extended to exactly when the page closes.
    expires_at = int(p["expires_at"])
    assert started + 35 * 60 - 5 <= expires_at <= time.time() + 35 * 60
    after = load_order(card_app, order.id)
    assert int(after.expires_at.timestamp()) == expires_at > before.expires_at.timestamp()
    # No personal data and no customer object; the order page's secret token stays home.
    for secret in (
        "ada@example.org",
        "Ada",
        "Lovelace",
        "Harbour Road",
        "10115",
        "Berlin",
        order.token,
    ):
        assert secret not in request.body
    for absent in (
        "customer",
        "customer_email",
        "customer_creation",
        "phone_number_collection",
        "shipping_address_collection",
        "billing_address_collection",
    ):
        assert absent not in p
    assert p["success_url"].endswith("/card/return?session_id={CHECKOUT_SESSION_ID}")
    assert p["cancel_url"].endswith("/card/cancel")

    [attempt] = _attempts(card_app, order.id)
    assert (attempt.status, attempt.attempt, attempt.amount, attempt.currency) == (
        "open",
        1,
        4390,
        "EUR",
    )
    assert attempt.session_id == session_id_of(url)


def test_double_click_reuses_the_open_session(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    first = start_card_payment(client, order)
    second = start_card_payment(client, order)
    assert first == second
    assert len(fake.api_requests("POST", "/v1/checkout/sessions")) == 1
    assert len(fake.sessions) == 1


@pytest.mark.parametrize("failure", ["500", "429", "timeout"])
def test_stripe_failure_shows_a_message_and_the_retry_repeats_the_same_request(
    card_app, fake, failure
):
    client = card_app.test_client()
    order = place_card_order(card_app)
    page = client.get(f"/orders/{order.token}")
    # The SDK tries three times on timeouts and 5xx; a 429 without Stripe-Should-Retry once.
    tries = 1 if failure == "429" else 3
    if failure == "timeout":
        fake.delay_next(1.5, count=tries)  # the shop waits 1 s per try
    else:
        fake.fail_next(int(failure), count=tries)

    response = client.post(
        f"/orders/{order.token}/pay/card",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert response.request.path == f"/orders/{order.token}"
    text = response.get_data(as_text=True)
    assert "Card payments are unavailable at the moment" in text
    assert "Pay by card" in text
    assert load_order(card_app, order.id).status == "pending_payment"
    [attempt] = _attempts(card_app, order.id)
    assert attempt.status == "creating" and attempt.session_id is None

    if failure == "timeout":
        time.sleep(0.6)  # the stalled requests reach the fake and are handled after all
    url = start_card_payment(client, order)
    requests = fake.api_requests("POST", "/v1/checkout/sessions")
    assert len(requests) == tries + 1  # the failed tries and the successful retry
    assert {r.header("Idempotency-Key") for r in requests} == {f"checkout-{order.ref}-1"}
    assert len({r.params["expires_at"] for r in requests}) == 1
    # Even if Stripe handled a timed-out request, the retry found that very session again.
    assert list(fake.sessions) == [session_id_of(url)]
    [attempt] = _attempts(card_app, order.id)
    assert (attempt.status, attempt.session_id) == ("open", session_id_of(url))


def test_rejected_request_is_a_clear_message_and_a_new_attempt_follows(card_app, fake):
    client = card_app.test_client()
    order = place_card_order(card_app)
    page = client.get(f"/orders/{order.token}")
    fake.fail_next(400)
    response = client.post(
        f"/orders/{order.token}/pay/card",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
        follow_redirects=True,
    )
    assert "The card payment page could not be opened" in response.get_data(as_text=True)
    url = start_card_payment(client, order)
    assert [a.status for a in _attempts(card_app, order.id)] == ["failed", "open"]
    assert (
        fake.api_requests("POST", "/v1/checkout/sessions")[-1].header("Idempotency-Key")
        == f"checkout-{order.ref}-2"
    )
    assert url.startswith(fake.api_base)


def test_stale_creating_attempt_is_replaced_by_a_new_one(card_app, fake):
    """Once the stored expires_at is too close for Stripe, a new attempt (new key) is made."""
    client = card_app.test_client()
    order = place_card_order(card_app)
    fake.fail_next(500, count=3)
    page = client.get(f"/orders/{order.token}")
    client.post(
        f"/orders/{order.token}/pay/card",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    with card_app.extensions["shop.db"].job_session() as s:
        attempt = s.scalar(select(CardPayment).where(CardPayment.order_id == order.id))
        attempt.expires_at = utcnow() + timedelta(minutes=31)
    start_card_payment(client, order)
    # The old attempt's request is replayed under its key to learn its session, which is
    # expired before the new one is made: no page of this order stays payable elsewhere.
    assert [(a.attempt, a.status) for a in _attempts(card_app, order.id)] == [
        (1, "expired"),
        (2, "open"),
    ]


def test_card_option_hidden_without_keys_and_routes_absent(client):
    checkout_methods = client.application.extensions["shop.payment_methods"]
    availability = checkout_methods["card"].availability()
    assert not availability.ok
    assert "SHOP_STRIPE_SECRET_KEY" in availability.reason
    assert "form-action 'self';" in client.get("/").headers["Content-Security-Policy"] + ";"
    assert client.post("/webhooks/stripe", data=b"{}").status_code == 404
    from tests.browser import Browser

    b = Browser(client)
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    page = b.get("/checkout")
    assert "Card" not in [label.get_text(" ").strip() for label in page.soup.find_all("label")]


def test_zero_decimal_currency_is_sent_in_whole_units(db_url, tmp_path, fake):
    from tests.stripe.conftest import _close, build_card_app

    app = build_card_app(db_url, tmp_path / "jpy", fake, currency="JPY")
    try:
        order = place_card_order(app, sku="EBOOK-SMALL")  # 7.99 in the demo: ¥8 in JPY
        assert load_order(app, order.id).currency == "JPY"
        start_card_payment(app.test_client(), order)
        [request] = fake.api_requests("POST", "/v1/checkout/sessions")
        price = request.params["line_items"][0]["price_data"]
        assert (price["currency"], price["unit_amount"]) == ("jpy", str(order.total))
        assert "shipping_options" not in request.params
    finally:
        _close(app)


def test_merchant_can_close_open_pages_before_cancelling(card_app, fake):
    from shop.payments.stripe import service
    from tests.stripe.conftest import gateway

    order = place_card_order(card_app)
    url = start_card_payment(card_app.test_client(), order)
    service.cancel_order(card_app.extensions["shop.db"], gateway(card_app), order.id, "test")
    assert fake.sessions[session_id_of(url)]["status"] == "expired"
    assert load_order(card_app, order.id).status == "cancelled"
    assert [a.status for a in _attempts(card_app, order.id)] == ["expired"]


def _admin_cancel(app, order, expect_status: str) -> str:
    from shop.admin import auth
    from tests.admin.conftest import PASSWORD, sign_in

    with app.extensions["shop.db"].job_session() as s:
        auth.create_user(s, "merchant", PASSWORD)
    admin = sign_in(app.test_client())
    number = load_order(app, order.id).number
    admin.get(f"/admin/orders/{number}")
    page = admin.submit(admin.form("form[action$='/cancel']"), {"reason": "Out of paper"})
    assert load_order(app, order.id).status == expect_status
    return " ".join(page.messages())


def test_admin_cancel_closes_the_open_payment_page_first(card_app, fake):
    order = place_card_order(card_app)
    url = start_card_payment(card_app.test_client(), order)
    messages = _admin_cancel(card_app, order, "cancelled")
    assert "Order cancelled" in messages
    assert fake.sessions[session_id_of(url)]["status"] == "expired"
    assert [a.status for a in _attempts(card_app, order.id)] == ["expired"]


def test_admin_cancel_waits_while_stripe_is_unreachable(card_app, fake):
    order = place_card_order(card_app)
    url = start_card_payment(card_app.test_client(), order)
    fake.fail_next(503, count=10)
    messages = _admin_cancel(card_app, order, "pending_payment")
    assert "Stripe could not be reached" in messages
    assert fake.sessions[session_id_of(url)]["status"] == "open"


def test_concurrent_clicks_make_one_session(card_pg_app, fake):
    import threading

    import requests

    from tests.stripe.conftest import LiveServer

    order = place_card_order(card_pg_app)
    with LiveServer(card_pg_app) as server:
        browser = requests.Session()
        page = browser.get(f"{server.url}/orders/{order.token}", timeout=10)
        token = csrf_token(page.text)
        locations: list[str] = []
        start = threading.Barrier(8)

        def click() -> None:
            start.wait()
            response = browser.post(
                f"{server.url}/orders/{order.token}/pay/card",
                data={"csrf_token": token},
                allow_redirects=False,
                timeout=30,
            )
            locations.append(response.headers.get("Location", str(response.status_code)))

        threads = [threading.Thread(target=click) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(locations) == 8 and len(set(locations)) == 1
    assert locations[0].startswith(f"{fake.api_base}/pay/")
    assert len(fake.sessions) == 1
    # No lock is held across the call to Stripe: simultaneous clicks send the same request
    # under the same idempotency key, and Stripe makes one session of them.
    assert {
        r.header("Idempotency-Key") for r in fake.api_requests("POST", "/v1/checkout/sessions")
    } == {f"checkout-{order.ref}-1"}
    assert [a.status for a in _attempts(card_pg_app, order.id)] == ["open"]


def test_stripes_page_opens_in_the_language_the_order_was_placed_in(card_app, fake):
    from shop.orders.models import Order

    client = card_app.test_client()
    order = place_card_order(card_app)
    with card_app.extensions["shop.db"].job_session() as s:
        s.get(Order, order.id).locale = "nl_BE"  # as a checkout under /nl/ with nl-BE records
    page = client.get(f"/nl/orders/{order.token}").get_data(as_text=True)
    assert "Betalen met kaart" in page and "Pay by card" not in page
    start_card_payment(client, order)
    [request] = fake.api_requests("POST", "/v1/checkout/sessions")
    assert request.params["locale"] == "nl"
    # An order without a recorded language lets Stripe follow the browser ("auto").
    other = place_card_order(card_app)
    start_card_payment(client, other)
    assert "locale" not in fake.api_requests("POST", "/v1/checkout/sessions")[-1].params
