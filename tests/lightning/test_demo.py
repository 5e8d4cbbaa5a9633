"""`shop demo`: Lightning on the simulated network, with "Simulate payment"."""

from __future__ import annotations

import pytest
from pyln.proto.invoice import Invoice
from sqlalchemy import select

from shop.orders.models import Order
from shop.payments.lightning.simulated import DEMO_NODE_KEY
from tests.browser import Browser
from tests.lightning.conftest import ln_app
from tests.lightning.test_lightning import SATS, _checkout

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def demo_app(db_url, tmp_path):
    # What `shop demo` sets: the simulated network, no node configured.
    app = ln_app(db_url, tmp_path, None, bitcoin_simulated=True)
    yield app
    app.extensions["shop.db"].dispose()


def _order(app) -> Order:
    with app.extensions["shop.db"].job_session() as session:
        return session.scalar(select(Order))


def test_demo_offers_lightning_and_simulates_a_payment(demo_app):
    from coincurve import PrivateKey

    b = Browser(demo_app.test_client())
    _checkout(b, "Lightning")
    page = b.submit(b.form(".lightning-pay form"))
    assert "simulated network" in page.text
    decoded = Invoice.decode(page.soup.select_one("#ln-invoice").get_text())
    assert decoded.currency == "bcrt"  # regtest: no real wallet pays it
    assert decoded.pubkey.format() == PrivateKey(bytes.fromhex(DEMO_NODE_KEY)).public_key.format()
    assert int(decoded.amount * 10**11) == SATS * 1000
    done = b.submit(b.form("form.demo-pay"))
    assert "Simulated Lightning payment received" in done.text
    assert _order(demo_app).status == "paid"
    assert "Thank you" in b.get(page.url).text


def test_demo_unified_request_can_be_paid_over_lightning(demo_app):
    b = Browser(demo_app.test_client())
    _checkout(b, "Bitcoin")
    page = b.submit(b.form(".bitcoin-pay form"))
    assert "lightning=lnbcrt" in page.soup.select_one("figure.btc-qr a")["href"]
    buttons = page.soup.select("form.demo-pay")
    assert len(buttons) == 2  # on-chain, or the Lightning invoice instead
    b.submit(b.form("form.demo-pay", index=1))
    order = _order(demo_app)
    assert order.status == "paid" and order.amount_paid == order.total
    assert "Your order is paid" in b.get(page.url).text
