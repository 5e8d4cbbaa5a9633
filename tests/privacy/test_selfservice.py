"""The customer's own controls on the order page: download my data, erase my personal data."""

from __future__ import annotations

import json

from sqlalchemy import select

from shop.orders import service
from shop.orders.models import Order
from shop.privacy.keys import session_settings
from shop.privacy.purge import purge
from shop.privacy.store import read_contact
from tests.browser import Browser


def _checkout_physical(b: Browser, email="grace@example.net", name="Grace Hopper"):
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    b.get("/checkout")
    return b.submit(
        b.form("main form"),
        {
            "email": email,
            "name": name,
            "street": "7 Cobol Lane",
            "postal_code": "20095",
            "city": "Hamburg",
            "country": "DE",
        },
        button="Place order",
    )


def _order(database) -> Order:
    with database.job_session() as s:
        return s.scalar(select(Order).order_by(Order.id.desc()))


def test_download_my_data_is_everything_held_decrypted(client, database):
    b = Browser(client)
    page = _checkout_physical(b)
    section = page.soup.select_one("section.privacy")
    assert "encrypted" in section.get_text() and section.find("h2") is not None
    response = client.get(section.find("a", string="Download my data (JSON)")["href"])
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert data["personal_data"] == {
        "email": "grace@example.net",
        "name": "Grace Hopper",
        "street": "7 Cobol Lane",
        "postal_code": "20095",
        "city": "Hamburg",
    }
    order = _order(database)
    assert data["order"]["number"] == order.number and data["order"]["status"] == "pending_payment"
    assert data["order"]["lines"][0]["product"].startswith("Canvas tote bag")
    assert data["history"][0]["note"] == "Order placed"
    assert client.get("/orders/not-a-token/privacy/data.json").status_code == 404


def test_erase_is_scheduled_while_the_order_is_open_then_done(client, database):
    b = Browser(client)
    _checkout_physical(b)
    paid = b.submit(b.form(".demo-pay form"))
    assert "Status: Paid" in paid.text
    page = b.submit(b.form("form.erase"), button="Erase my personal data now")
    message = " ".join(page.messages())
    assert "cannot erase your details yet" in message and "not yet sent" in message
    assert "You asked us to erase them" in page.text
    assert page.soup.select_one("form.erase") is None  # asked once is enough
    order = _order(database)
    with database.job_session() as s:
        assert read_contact(s, s.get(Order, order.id)) is not None  # needed to ship
        service.fulfil(s, s.get(Order, order.id))
    with database.job_session() as s:  # the next purge honours the request at once
        report = purge(s, session_settings(s))
    assert [o.number for o in report.orders] == [order.number]
    page = b.get(page.url)
    assert "Your personal data for this order was erased on" in page.text
    data = json.loads(client.get(f"{page.url}/privacy/data.json").get_data(as_text=True))
    assert data["personal_data"] is None and data["personal_data_erased_at"]


def test_erase_now_when_nothing_is_pending(client, database):
    b = Browser(client)
    _checkout_physical(b)
    order = _order(database)
    with database.job_session() as s:
        service.cancel(s, s.get(Order, order.id), "Changed my mind")
    page = b.get(b.page.url)
    assert "erased automatically on or after" in page.text
    page = b.submit(b.form("form.erase"), button="Erase my personal data now")
    assert "has been erased" in " ".join(page.messages())
    assert "Personal data erased at the customer's request" in page.text  # in the history
    with database.job_session() as s:
        fresh = s.get(Order, order.id)
        assert read_contact(s, fresh) is None and fresh.personal_data_erased_at is not None


def test_erase_needs_the_form_token_and_a_real_order(client, database):
    b = Browser(client)
    page = _checkout_physical(b)
    order = _order(database)
    with database.job_session() as s:
        service.cancel(s, s.get(Order, order.id))
    assert client.post(f"{page.url}/privacy/erase").status_code == 400  # no CSRF token
    with database.job_session() as s:
        assert read_contact(s, s.get(Order, order.id)) is not None
    form = b.form("form.erase")
    token = form.find("input", attrs={"name": "csrf_token"})["value"]
    assert client.post("/orders/nope/privacy/erase", data={"csrf_token": token}).status_code == 404
    assert client.get(f"{page.url}/privacy/erase").status_code == 405


def test_garbage_to_the_privacy_routes_is_never_a_500(client, database):
    from tests.test_security import GARBAGE

    b = Browser(client)
    page = _checkout_physical(b)
    token = b.form("form.erase").find("input", attrs={"name": "csrf_token"})["value"]
    for garbage in GARBAGE:
        for url in (f"{page.url}/privacy/erase", f"/orders/{garbage}/privacy/erase"[:2000]):
            response = client.post(url, data={"csrf_token": token, "submit": garbage})
            assert response.status_code < 500, (url, garbage)
        assert client.get(f"/orders/{garbage}/privacy/data.json"[:2000]).status_code < 500
