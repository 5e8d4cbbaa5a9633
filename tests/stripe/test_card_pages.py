"""The whole card purchase through the pages, the hosted page and the webhook."""

from __future__ import annotations

import urllib.request
from urllib.parse import urljoin, urlsplit

import requests
from bs4 import BeautifulSoup
from sqlalchemy import select

from shop.orders.models import Order
from tests.browser import Browser
from tests.stripe.conftest import LiveServer, run_event_worker


def _to_card_order(client) -> tuple[Browser, str]:
    b = Browser(client)
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.follow("Check out")
    card = b.option_value("Card")
    order_page = b.submit(
        b.form("main form"),
        {"country": "FR", "payment_method": card, "digital_consent": "y"},
        button="Place order",
    )
    assert "Awaiting payment" in order_page.text
    assert "Pay by card" in order_page.text
    return b, order_page.url


def _press_pay_by_card(b: Browser) -> str:
    form = b.form(".card-pay form")
    data = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}
    response = b.client.post(form["action"], data=data)
    assert response.status_code == 303
    return response.headers["Location"]


def test_card_purchase_end_to_end(card_app, fake):
    b, order_url = _to_card_order(card_app.test_client())
    hosted = _press_pay_by_card(b)
    assert hosted.startswith(fake.api_base + "/pay/")

    # On Stripe's (fake) hosted page: the amount, then "Pay".
    page = requests.get(hosted, timeout=5)
    assert "Pay 799 EUR" in page.text
    pay_form = BeautifulSoup(page.text, "html.parser").find("form")
    back = requests.post(
        urljoin(hosted, pay_form["action"]),
        data={"outcome": "paid"},
        allow_redirects=False,
        timeout=5,
    )
    assert back.status_code == 303
    success = urlsplit(back.headers["Location"])
    assert success.path == "/card/return" and success.query.startswith("session_id=cs_test_")

    # Back at the shop: processing, not paid, until Stripe's webhook arrives.
    returned = b.get(f"{success.path}?{success.query}")
    assert returned.url == order_url
    assert "Stripe is confirming your payment" in " ".join(returned.messages())
    assert "Payment processing" in returned.text and "Awaiting payment" in returned.text
    with card_app.extensions["shop.db"].job_session() as s:
        assert s.scalar(select(Order.status)) == "pending_payment"

    [event] = [e for e in fake.events if e.type == "checkout.session.completed"]
    with LiveServer(card_app) as server:
        request = urllib.request.Request(
            f"{server.url}/webhooks/stripe",
            data=event.payload,
            headers={"Stripe-Signature": event.header, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    run_event_worker(card_app)  # the worker applies what the endpoint stored

    paid = b.get(order_url)
    assert "Status: Paid" in paid.text
    assert "Thank you! Your payment of €7.99 was received." in paid.text
    assert "Pay by card" not in paid.text


def test_cancel_on_the_hosted_page_returns_to_a_payable_order(card_app, fake):
    b, order_url = _to_card_order(card_app.test_client())
    hosted = _press_pay_by_card(b)
    cancel = BeautifulSoup(requests.get(hosted, timeout=5).text, "html.parser").find(
        "a", string="Cancel"
    )["href"]
    back = b.get(urlsplit(cancel).path)
    assert back.url == order_url
    assert "nothing was charged" in " ".join(back.messages())
    assert "Pay by card" in back.text
    # Paying again goes to the same, still open, page.
    assert _press_pay_by_card(b) == hosted


def test_return_without_the_cookie_tells_where_to_look(card_app, fake):
    page = Browser(card_app.test_client()).get("/card/return?session_id=cs_test_unknown")
    assert "Open your order from the private link" in page.text


def test_card_order_page_when_card_payments_were_switched_off(card_app, client):
    """An order placed by card while Stripe was configured, viewed after the keys are gone."""
    from tests.stripe.conftest import place_card_order

    order = place_card_order(card_app)
    page = Browser(client).get(f"/orders/{order.token}")  # same database, no Stripe keys
    assert "Card payments are not available at the moment" in page.text
    assert "Pay by card" not in page.text
    assert client.post(f"/orders/{order.token}/pay/card").status_code in (400, 404)
