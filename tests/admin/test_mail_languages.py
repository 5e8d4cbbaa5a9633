"""Emails go out in the language of the order, though the worker renders them with no request.

The customer shops under /de/ or /nl/ (or their browser asks for it); the order keeps that
language and every later email, sent by the worker through a real SMTP server, is written in it.
"""

from __future__ import annotations

from sqlalchemy import select

from shop.jobs.worker import send_emails
from shop.mail import outbox
from shop.orders import service
from shop.orders.models import Order
from tests.browser import Browser

EMAIL = "ada@example.org"


def _buy(client, lang: str, button: str, headers: dict | None = None) -> str:
    b = Browser(client)
    prefix = f"/{lang}" if lang else ""
    if headers:
        client.environ_base.update(
            {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        )
    b.get(f"{prefix}/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    b.get(f"{prefix}/checkout")
    page = b.submit(
        b.form("main form"),
        {
            "email": EMAIL,
            "country": "DE",
            "name": "Ada Lovelace",
            "street": "1 Harbour Road",
            "postal_code": "10115",
            "city": "Berlin",
        },
        button=button,
    )
    b.submit(b.form(".demo-pay form"))
    return page.url


def _bodies(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_a_german_order_gets_german_emails(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    url = _buy(mail_app.test_client(), "de", "Zahlungspflichtig bestellen")
    assert url.startswith("/de/orders/")
    with database.job_session() as session:
        order = session.scalar(select(Order))
        number = order.number
        assert order.locale == "de"
        service.ship(session, order, "DHL 0034")
    assert send_emails(database) == 3
    received, paid, shipped = smtp_server.messages()
    assert received["Subject"] == f"Bestellung {number} eingegangen"
    assert paid["Subject"] == f"Zahlung für Bestellung {number} eingegangen"
    assert shipped["Subject"] == f"Bestellung {number} ist unterwegs"
    assert received["Content-Language"] == "de"
    plain, html = _bodies(received)
    assert f"Vielen Dank für Ihre Bestellung {number} bei Harbour Prints." in plain
    assert "Gesamt: 20,90\xa0€" in plain and "Versand: 4,90\xa0€" in plain
    assert f"Ihre Bestellseite: https://shop.example{url}" in plain
    assert '<html lang="de">' in html and "Ihre Bestellseite</a>" in html
    plain, _ = _bodies(shipped)
    assert "Sendungsnummer: DHL 0034" in plain
    for message in (received, paid, shipped):
        text = " ".join(_bodies(message))
        assert "Your order" not in text and "Total" not in text and "€20.90" not in text


def test_a_dutch_order_gets_dutch_emails_even_from_a_german_store(db_url, tmp_path, smtp_server):
    from shop.demo import seed_demo
    from tests.conftest import make_test_app

    app = make_test_app(
        db_url,
        tmp_path / "instance",
        locale="de_DE",
        smtp_url=f"smtp://127.0.0.1:{smtp_server.port}",
        mail_from="orders@shop.example",
        base_url="https://shop.example",
        store_name="Harbour Prints",
    )
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    database = app.extensions["shop.db"]
    # No prefix: the browser's Accept-Language chooses Dutch (Belgian Dutch, here).
    url = _buy(
        app.test_client(),
        "",
        "Bestelling plaatsen en betalen",
        headers={"Accept-Language": "nl-BE,nl;q=0.9,en;q=0.5"},
    )
    with database.job_session() as session:
        order = session.scalar(select(Order))
        number, token = order.number, order.token
        assert order.locale == "nl_BE"
        service.record_refund(session, order, 500, "Gedeeltelijke terugbetaling")
    outbox.deliver_due(database)
    received, paid, refund = smtp_server.messages()
    assert received["Subject"] == f"Bestelling {number} ontvangen"
    assert paid["Subject"] == f"Betaling voor bestelling {number} ontvangen"
    assert refund["Subject"] == f"Terugbetaling voor bestelling {number}"
    plain, html = _bodies(paid)
    assert "We hebben uw betaling van €\xa020,90 voor bestelling" in plain
    # The link opens the order in Dutch, though this store's own language is German.
    assert url == f"/orders/{token}"
    assert f"Uw bestelpagina: https://shop.example/nl/orders/{token}" in plain
    assert '<html lang="nl">' in html
    plain, _ = _bodies(refund)
    assert "We hebben €\xa05,00 voor uw bestelling" in plain
    app.extensions["shop.db"].dispose()


def test_orders_from_before_languages_use_the_store_language(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    _buy(mail_app.test_client(), "en", "Place order")
    with database.job_session() as session:
        order = session.scalar(select(Order))
        order.locale = None  # as migration 0017 leaves existing orders
    send_emails(database)
    assert smtp_server.messages()[0]["Subject"].endswith(" received")
