"""Emails that tell the customer what happened (issue 14): a cancellation with the merchant's
reason, and a payment email that mentions the e-book's download."""

from __future__ import annotations

from sqlalchemy import select

from shop.mail import outbox
from shop.orders import service
from shop.orders.models import Order
from tests.admin.conftest import buy
from tests.browser import Browser

EMAIL = "ada@example.org"


def test_cancelling_an_order_emails_the_reason(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    buy(mail_app.test_client(), email=EMAIL, pay=False)
    with database.job_session() as session:
        service.cancel(session, session.scalar(select(Order)), "The print is out of stock")
    outbox.deliver_due(database)
    received, cancelled = smtp_server.messages()
    assert "cancelled" in cancelled["Subject"].lower()
    assert "The print is out of stock" in cancelled.get_body(("plain",)).get_content()
    assert "The print is out of stock" in cancelled.get_body(("html",)).get_content()


def test_the_payment_email_of_an_order_with_an_ebook_mentions_the_download(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    b = Browser(mail_app.test_client())
    for slug in ("small-hours", "tote-bag"):  # an e-book and a parcel in one order
        b.get(f"/products/{slug}")
        b.submit(b.form(f"form[action$='/cart/add/{slug}']"))
    b.get("/checkout")
    b.submit(
        b.form("main form"),
        {
            "email": EMAIL,
            "name": "Ada",
            "street": "1 Road",
            "postal_code": "10115",
            "city": "Berlin",
            "country": "DE",
            "digital_consent": "y",
        },
        button="Place order",
    )
    b.submit(b.form(".demo-pay form"))
    outbox.deliver_due(database)
    paid = smtp_server.messages()[1]
    text = paid.get_body(("plain",)).get_content()
    assert "The Small Hours" in text and "download" in text.lower()
    assert "parcel" in text  # and the tote is still shipped
