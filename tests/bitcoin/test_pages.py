"""Bitcoin checkout through the pages, as a browser without JavaScript would use them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from shop.orders.models import Order
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.payments.bitcoin.settings import SIMULATED_DESCRIPTOR
from tests.bitcoin.conftest import btc_settings, make_watcher, store_rate
from tests.bitcoin.fake_node import FakeNode
from tests.browser import Browser
from tests.conftest import make_test_app

pytestmark = pytest.mark.timeout(60)


def _app(db_url, tmp_path, **overrides):
    from shop.demo import seed_demo

    app = make_test_app(db_url, tmp_path / "instance", **{"rate_providers": "", **overrides})
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    return app


def _checkout_with_bitcoin(b: Browser):
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.follow("Check out")
    order_page = b.submit(
        b.form("main form"),
        {"payment_method": b.option_value("Bitcoin"), "digital_consent": "y"},
        button="Place order",
    )
    assert re.fullmatch(r"/orders/[A-Za-z0-9_-]{43}", order_page.url)
    assert "Awaiting payment" in order_page.text
    return b.submit(b.form(".bitcoin-pay form"))  # "Pay with Bitcoin"


def _check_payment_page(page, address_prefix: str):
    html = page.html
    assert page.url.endswith("/bitcoin")
    address = page.soup.select_one("#btc-address").get_text()
    assert address.startswith(address_prefix)
    svg = page.soup.select_one("figure.btc-qr svg")
    assert svg is not None and svg.find("path") is not None
    link = page.soup.select_one("figure.btc-qr a")["href"]
    assert link.startswith(f"bitcoin:{address}?amount=0.")
    refresh = page.soup.find("meta", attrs={"http-equiv": "refresh"})
    assert refresh is not None and int(refresh["content"]) > 0
    assert f"reloads itself every {refresh['content']} seconds" in page.text
    # Strict CSP: no inline script, no style attributes (the QR uses presentation attributes).
    assert "style=" not in html
    assert all(s.get("src") for s in page.soup.find_all("script"))
    csp = page.response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "Time left" in page.text
    return address, link


def test_demo_purchase_on_the_simulated_chain(db_url, tmp_path):
    app = _app(db_url, tmp_path, bitcoin_simulated=True)
    database = app.extensions["shop.db"]
    b = Browser(app.test_client())
    page = _checkout_with_bitcoin(b)
    address, link = _check_payment_page(page, "bcrt1q")
    # 7.99 EUR at the labelled demo rate of 50,000 EUR/BTC.
    assert "0.00015980 BTC (15,980 sats)" in page.text
    assert "simulated Bitcoin network" in page.text and "made-up demo rate" in page.text
    # The demo's simulated Lightning node rides along (tests/lightning/ checks that part).
    assert link.split("&lightning=")[0] == f"bitcoin:{address}?amount=0.00015980"

    again = b.get(page.url)  # reloading never creates a second invoice
    assert again.soup.select_one("#btc-address").get_text() == address
    order_page = b.get(page.url.removesuffix("/bitcoin"))
    assert order_page.soup.select_one(".bitcoin-pay form") is None
    b.follow("show the address and amount")
    # Sending the "Pay with Bitcoin" form again (back button, double click) changes nothing.
    token = page.url.split("/")[2]
    with app.test_client() as other:
        response = other.post(f"/orders/{token}/bitcoin", data={})
        assert response.status_code == 400  # no CSRF token from another session
    resent = b.client.post(
        f"/orders/{token}/bitcoin",
        data={"csrf_token": again.soup.select_one("form.demo-pay input")["value"]},
        follow_redirects=True,
    )
    assert resent.status_code == 200 and address in resent.get_data(as_text=True)
    with database.job_session() as s:
        assert s.scalar(select(func.count()).select_from(BitcoinInvoice)) == 1

    paid = b.get(page.url)
    paid = b.submit(b.form("form.demo-pay"), button="Simulate payment")
    assert "Status: Paid" in paid.text
    assert paid.soup.find("meta", attrs={"http-equiv": "refresh"}) is None
    order_page = b.follow("Back to your order")
    assert "Status: Paid" in order_page.text
    with database.job_session() as s:
        order = s.scalar(select(Order))
        invoice = s.scalar(select(BitcoinInvoice))
        assert (order.status, order.amount_paid) == ("paid", order.total)
        assert (invoice.status, invoice.received_sats, invoice.simulated) == (
            "settled",
            15980,
            True,
        )
    app.extensions["shop.db"].dispose()


def test_purchase_paid_from_a_wallet_through_fake_node(db_url, tmp_path):
    with FakeNode() as node:
        app = _app(db_url, tmp_path, **btc_settings(node))
        database = app.extensions["shop.db"]
        store_rate(database)
        method = app.extensions["shop.payment_methods"]["bitcoin"]
        watcher = make_watcher(database, node, method.policy)
        watcher.sync()
        b = Browser(app.test_client())
        page = _checkout_with_bitcoin(b)
        address, _ = _check_payment_page(page, "bcrt1q")
        assert "0.00015980 BTC" in page.text and "Simulate" not in page.text
        assert "detection is delayed" not in page.text
        # The customer's wallet pays the address shown (decoded independently of the shop).
        from embit.script import address_to_scriptpubkey

        script = address_to_scriptpubkey(address).data
        node.add_to_mempool(node.make_payment(script, 15980))
        watcher.sync()
        seen = b.get(page.url)
        assert "Payment seen, waiting for confirmation" in seen.text
        order_page = b.get(page.url.removesuffix("/bitcoin"))
        assert "Bitcoin payment of 15980 sats seen" in order_page.text
        node.mine(1)
        watcher.sync()
        assert "Status: Paid" in b.get(page.url).text
        assert "Status: Paid" in b.get(page.url.removesuffix("/bitcoin")).text
        database.dispose()


def test_no_rate_means_bitcoin_unavailable_and_card_still_works(db_url, tmp_path, node):
    app = _app(
        db_url,
        tmp_path,
        stripe_secret_key="sk_test_123",
        stripe_webhook_secret="whsec_123",
        **btc_settings(node),
    )
    b = Browser(app.test_client())
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    checkout = b.follow("Check out")
    assert "Bitcoin is temporarily unavailable" in checkout.text
    labels = [l.get_text(" ").strip() for l in checkout.soup.select("fieldset label")]
    assert "Card" in labels and "Bitcoin" not in labels
    app.extensions["shop.db"].dispose()


def test_rate_disappearing_after_the_order_was_placed(db_url, tmp_path, node):
    app = _app(db_url, tmp_path, **btc_settings(node))
    database = app.extensions["shop.db"]
    store_rate(database)
    b = Browser(app.test_client())
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.follow("Check out")
    b.submit(
        b.form("main form"),
        {"payment_method": b.option_value("Bitcoin"), "digital_consent": "y"},
        button="Place order",
    )
    with database.job_session() as s:
        from shop.payments.bitcoin.rate_models import RateQuote

        s.query(RateQuote).delete()
    page = b.submit(b.form(".bitcoin-pay form"))
    assert "temporarily unavailable" in " ".join(page.messages())
    with database.job_session() as s:
        assert s.scalar(select(func.count()).select_from(BitcoinInvoice)) == 0
    database.dispose()


def test_node_unreachable_still_hands_out_addresses(db_url, tmp_path):
    app = _app(db_url, tmp_path, **btc_settings(None))  # nothing listens there
    database = app.extensions["shop.db"]
    store_rate(database)
    page = _checkout_with_bitcoin(Browser(app.test_client()))
    _check_payment_page(page, "bcrt1q")
    assert "Payment detection is delayed" in page.text
    database.dispose()


def test_bitcoin_pages_are_404_for_other_orders(db_url, tmp_path):
    app = _app(db_url, tmp_path, bitcoin_simulated=True)
    client = app.test_client()
    assert client.get("/orders/unknown-token/bitcoin").status_code == 404
    b = Browser(client)
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.follow("Check out")
    order_page = b.submit(
        b.form("main form"),
        {"payment_method": b.option_value("Demo"), "digital_consent": "y"},
        button="Place order",
    )
    assert client.get(order_page.url + "/bitcoin").status_code == 404
    app.extensions["shop.db"].dispose()


def test_simulate_button_absent_with_a_real_descriptor(db_url, tmp_path, node):
    app = _app(db_url, tmp_path, **btc_settings(node))
    store_rate(app.extensions["shop.db"])
    page = _checkout_with_bitcoin(Browser(app.test_client()))
    assert page.soup.select_one("form.demo-pay") is None
    token = page.url.split("/")[2]
    assert app.test_client().post(f"/orders/{token}/bitcoin/simulate").status_code in (400, 404)
    app.extensions["shop.db"].dispose()


def test_simulated_descriptor_is_watch_only():
    from shop.payments.bitcoin.descriptor import parse_watch_only

    d = parse_watch_only(SIMULATED_DESCRIPTOR, "regtest")
    assert d.address(0).startswith("bcrt1q")


def test_customer_can_turn_off_the_automatic_reload(db_url, tmp_path):
    """WCAG 2.2.1: a timed page change must be possible to turn off, without JavaScript."""
    app = _app(db_url, tmp_path, bitcoin_simulated=True)
    b = Browser(app.test_client())
    page = _checkout_with_bitcoin(b)
    assert page.soup.find("meta", attrs={"http-equiv": "refresh"}) is not None
    assert page.soup.find("a", string="Stop automatic updates")["href"].endswith(
        "/bitcoin?updates=off"
    )
    off = b.follow("Stop automatic updates")
    assert off.soup.find("meta", attrs={"http-equiv": "refresh"}) is None
    assert "Automatic updates are off" in off.text
    assert off.soup.select_one("#btc-address") is not None  # still the whole payment request
    again = b.follow("Check the status now")
    assert again.soup.find("meta", attrs={"http-equiv": "refresh"}) is None
    on = b.follow("Turn automatic updates on")
    assert on.soup.find("meta", attrs={"http-equiv": "refresh"}) is not None
    app.extensions["shop.db"].dispose()
