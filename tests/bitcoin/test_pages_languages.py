"""The Bitcoin page in the customer's language: words, and numbers in their notation.

Before, a German store showed "28,90000000 BTC" at checkout and "28.90000000 BTC
(2,890,000,000 sats)" on the payment page. Every amount now follows the page's locale, while
what a wallet reads (the QR code's URI and the copy button) keeps the wallet notation.
"""

from __future__ import annotations

import re

import pytest

from tests.browser import Browser
from tests.conftest import make_test_app

pytestmark = pytest.mark.timeout(60)


def _app(db_url, tmp_path, **overrides):
    from shop.demo import seed_demo

    app = make_test_app(
        db_url,
        tmp_path / "instance",
        **{"rate_providers": "", "bitcoin_simulated": True, **overrides},
    )
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    return app


def _pay_with_bitcoin(b: Browser, lang: str, button: str):
    b.get(f"/{lang}/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.get(f"/{lang}/checkout")
    checkout = b.page
    order_page = b.submit(
        b.form("main form"),
        {"payment_method": b.option_value("Bitcoin"), "digital_consent": "y"},
        button=button,
    )
    assert re.fullmatch(rf"/{lang}/orders/[A-Za-z0-9_-]{{43}}", order_page.url)
    return checkout, b.submit(b.form(".bitcoin-pay form"))


@pytest.mark.parametrize(
    "lang, button, amount, rate, words",
    [
        (
            "de",
            "Zahlungspflichtig bestellen",
            "0,00015980 BTC (15.980 sats)",
            "Kurs: 1 BTC = 50.000,00\xa0€.",
            "Senden Sie genau",
        ),
        (
            "nl",
            "Bestelling plaatsen en betalen",
            "0,00015980 BTC (15.980 sats)",
            "Koers: 1 BTC = €\xa050.000,00.",
            "Stuur precies",
        ),
        (
            "en",
            "Place order",
            "0.00015980 BTC (15,980 sats)",
            "Rate: 1 BTC = €50,000.00.",
            "Send exactly",
        ),
    ],
)
def test_the_payment_page_speaks_and_counts_in_the_customers_language(
    db_url, tmp_path, lang, button, amount, rate, words
):
    app = _app(db_url, tmp_path)
    b = Browser(app.test_client())
    _checkout, page = _pay_with_bitcoin(b, lang, button)
    assert page.url == page.url.split("?")[0] and page.url.startswith(f"/{lang}/orders/")
    assert page.soup.html["lang"] == lang
    text = " ".join(page.soup.get_text(" ").split()).replace(" )", ")").replace("( ", "(")
    assert amount in text
    assert rate.replace("\xa0", " ") in text.replace("\xa0", " ")
    assert words in text
    # What the wallet reads stays in the wallet's notation, whatever the page's language.
    address = page.soup.select_one("#btc-address").get_text()
    # (The demo's simulated Lightning node rides along: `&lightning=` follows the amount.)
    assert (
        page.soup.select_one("figure.btc-qr a")["href"].split("&lightning=")[0]
        == f"bitcoin:{address}?amount=0.00015980"
    )
    assert page.soup.select_one("#btc-amount")["data-copy"] == "0.00015980"


def test_a_store_priced_in_bitcoin_writes_amounts_alike_at_checkout_and_payment(db_url, tmp_path):
    app = _app(db_url, tmp_path, currency="BTC", locale="de_DE")
    b = Browser(app.test_client())
    checkout, page = _pay_with_bitcoin(b, "de", "Zahlungspflichtig bestellen")
    total = checkout.soup.select_one("tr.grand td").get_text(strip=True)
    assert re.fullmatch(r"\d{1,3}(\.\d{3})*,\d{8} BTC", total), total
    shown = page.soup.select_one("#btc-amount").get_text(strip=True) + " BTC"
    assert shown == total
    assert "," not in page.soup.select_one("#btc-amount")["data-copy"]


def test_the_scripted_page_gets_its_words_in_the_customers_language(db_url, tmp_path):
    """bitcoin.js writes only what the page hands it: button labels and the status label."""
    from shop.payments.bitcoin import invoice as inv

    app = _app(db_url, tmp_path)
    b = Browser(app.test_client())
    _checkout, page = _pay_with_bitcoin(b, "de", "Zahlungspflichtig bestellen")
    body = page.soup.select_one("#btc-body")
    assert body["data-text-copy-address"] == "Adresse kopieren"
    assert body["data-text-copy-amount"] == "Betrag kopieren"
    assert body["data-text-updating"].startswith("Diese Seite aktualisiert sich alle")
    status = b.client.get(body["data-status-url"])
    assert body["data-status-url"].startswith("/de/")
    assert status.get_json()["state_label"] == page.soup.select_one("#btc-state").get_text()
    assert status.get_json()["state_label"] != inv.STATUS_LABELS[inv.Status.NEW]
