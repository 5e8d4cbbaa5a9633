"""The issue's "done when": a merchant signs in, creates a product with an image, a customer buys
it by card, the merchant ships it, refunds part of it and exports the ledger; the customer's
emails arrive. Every step is checked in the database and in the pages."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from urllib.parse import urljoin, urlsplit

import requests
from bs4 import BeautifulSoup
from sqlalchemy import select

from shop.catalog.models import Product, Variant
from shop.mail import outbox
from shop.orders.models import Order
from shop.privacy.models import LedgerEntry
from tests.admin.conftest import PASSWORD, SmtpSink, free_port
from tests.admin.test_products import _jpeg_with_gps
from tests.browser import Browser
from tests.stripe.conftest import build_card_app, post_event
from tests.stripe.fake_stripe import FakeStripe, fast_sdk_retries

EMAIL = "grace@example.org"


def test_sell_ship_refund_and_export(db_url, tmp_path, monkeypatch):
    from aiosmtpd.controller import Controller

    from shop.admin import auth

    fast_sdk_retries(monkeypatch)
    sink = SmtpSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    with FakeStripe(
        api_key="sk_test_cardshop_0123456789", webhook_secret="whsec_cardshop0123456789"
    ) as fake:
        app = build_card_app(
            db_url,
            tmp_path / "instance",
            fake,
            smtp_url=f"smtp://127.0.0.1:{smtp.port}",
            mail_from="shop@prints.example",
            base_url="https://prints.example",
        )
        database = app.extensions["shop.db"]
        try:
            with database.job_session() as session:
                auth.create_user(session, "merchant", PASSWORD)
            _scenario(app, database, fake, sink)
        finally:
            app.extensions["shop.payment_methods"]["card"].close()
            database.dispose()
            smtp.stop()


def _scenario(app, database, fake, sink):
    # 1. The merchant signs in.
    merchant = Browser(app.test_client())
    merchant.get("/admin")
    page = merchant.submit(
        merchant.form("main form"), {"username": "merchant", "password": PASSWORD}
    )
    assert page.url == "/admin" and "Overview" in page.text

    # 2. ... creates a product with a variant and an image.
    merchant.follow("Products")
    merchant.follow("New product")
    page = merchant.submit(
        merchant.form("main form"),
        {"title": "Linen apron", "description": "Heavy washed linen.", "kind": "physical"},
    )
    product_path = page.url
    merchant.submit(
        merchant.form("form[action$='/variants']"),
        {"sku": "APRON", "label": "One size", "price": "30.00", "stock": "3"},
    )
    token = merchant.get(product_path).soup.select_one(
        "form[action$='/images'] input[name=csrf_token]"
    )["value"]
    response = merchant.client.post(
        f"{product_path}/images",
        data={
            "csrf_token": token,
            "alt": "A linen apron",
            "image": (io.BytesIO(_jpeg_with_gps()), "apron.jpg"),
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert response.status_code == 200 and "Image added." in response.get_data(as_text=True)
    with database.job_session() as s:
        product = s.scalar(select(Product).where(Product.slug == "linen-apron"))
        assert product.active and len(product.images) == 1
        image = product.images[0].filename
        assert s.scalar(select(Variant).where(Variant.sku == "APRON")).available == 3

    # 3. A customer finds it in the shop and pays by card.
    customer = Browser(app.test_client())
    page = customer.get("/products/linen-apron")
    assert "€30.00" in page.text
    assert any(image in (img.get("src") or "") for img in page.soup.find_all("img"))
    customer.submit(customer.form("form[action$='/cart/add/linen-apron']"))
    customer.follow("Check out")
    page = customer.submit(
        customer.form("main form"),
        {
            "email": EMAIL,
            "name": "Grace Hopper",
            "street": "2 Dock Street",
            "postal_code": "20095",
            "city": "Hamburg",
            "country": "DE",
            "payment_method": customer.option_value("Card"),
        },
        button="Place order",
    )
    order_url = page.url
    assert "Awaiting payment" in page.text
    form = customer.form(".card-pay form")
    response = customer.client.post(
        form["action"],
        data={i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")},
    )
    hosted = response.headers["Location"]
    pay_form = BeautifulSoup(requests.get(hosted, timeout=5).text, "html.parser").find("form")
    back = requests.post(
        urljoin(hosted, pay_form["action"]),
        data={"outcome": "paid"},
        allow_redirects=False,
        timeout=5,
    )
    assert urlsplit(back.headers["Location"]).path == "/card/return"
    [event] = [e for e in fake.events if e.type == "checkout.session.completed"]
    assert post_event(app.test_client(), (event.payload, event.header)).status_code == 200
    assert "Status: Paid" in customer.get(order_url).text
    with database.job_session() as s:
        order = s.scalar(select(Order))
        number, total = order.number, order.total
        assert (order.status, order.amount_paid, order.payment_method) == ("paid", total, "card")
        assert total == 3000 + 490  # apron + standard parcel in Germany
        assert s.scalar(select(Variant).where(Variant.sku == "APRON")).available == 2

    # 4. The merchant sees it, with the address, and ships it.
    page = merchant.get("/admin/orders?status=paid")
    merchant.follow(number)
    assert "Grace Hopper" in merchant.page.text and "20095 Hamburg" in merchant.page.text
    page = merchant.submit(merchant.form("form[action$='/ship']"), {"tracking": "DHL 00340434"})
    assert "Marked as shipped." in page.messages()
    with database.job_session() as s:
        assert s.scalar(select(Order.status)) == "fulfilled"
    assert "Tracking reference: DHL 00340434" in customer.get(order_url).text

    # 5. ... and refunds part of it to the card.
    page = merchant.submit(merchant.form("form[action$='/refund']"), {"amount": "10.00"})
    assert "Card refund made." in page.messages(), page.messages()
    [refund_request] = fake.api_requests("POST", "/v1/refunds")
    assert refund_request.params["amount"] == "1000"
    with database.job_session() as s:
        order = s.scalar(select(Order))
        assert (order.status, order.amount_refunded) == ("partially_refunded", 1000)
        kinds = sorted(s.scalars(select(LedgerEntry.kind)).all())
        assert kinds == ["refund", "sale"]
    assert "refunded €10.00" in page.text

    # 6. ... and exports the ledger for the period, and reads the VAT summary.
    merchant.follow("Bookkeeping")
    assert "DE" in merchant.page.soup.select_one("#vat-by-country").get_text()
    response = merchant.client.get(
        merchant.page.soup.find("a", string="Download the ledger as CSV")["href"]
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    sale = [r for r in rows if r["kind"] == "sale"]
    refund = [r for r in rows if r["kind"] == "refund"]
    assert sum(Decimal(r["gross"]) for r in sale) == Decimal("34.90")
    assert sum(Decimal(r["gross"]) for r in refund) == Decimal("-10.00")
    assert all(r["order_number"] == number and r["destination_country"] == "DE" for r in rows)
    assert "Grace" not in response.get_data(as_text=True) and EMAIL not in response.get_data(
        as_text=True
    )
    vat = merchant.page.soup.select_one("#vat-by-rate").get_text(" ")
    assert "19%" in vat

    # 7. The customer's emails go out through the worker: received, paid, shipped, refunded.
    assert outbox.deliver_due(database) == 4
    subjects = [m["Subject"] for m in sink.messages()]
    assert subjects == [
        f"Order {number} received",
        f"Payment for order {number} received",
        f"Order {number} is on its way",
        f"Refund for order {number}",
    ]
    assert all(e.rcpt_tos == [EMAIL] for e in sink.envelopes)
    assert "DHL 00340434" in sink.messages()[2].get_body(("plain",)).get_content()
