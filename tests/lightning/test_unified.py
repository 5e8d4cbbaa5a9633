"""One payment request for both: the Bitcoin page's QR code is a BIP21 URI with the on-chain
address and amount plus `lightning=<bolt11>`; paying either way settles the order."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pyln.proto.invoice import Invoice
from sqlalchemy import select

from shop.orders.models import Order
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.payments.lightning import service
from shop.payments.lightning.listener import LightningListener
from tests.browser import Browser
from tests.lightning.conftest import ln_app, lnd_node
from tests.lightning.qr import decode_svg
from tests.lightning.test_lightning import SATS, _checkout

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def lnd():
    made = lnd_node(Path(tempfile.mkdtemp(prefix="ln-")))
    yield made
    made.stop()


@pytest.fixture
def unified_app(db_url, tmp_path, lnd):
    # On-chain on the simulated demo chain, Lightning through the (stand-in) LND node.
    app = ln_app(db_url, tmp_path, lnd, bitcoin_simulated=True)
    yield app
    app.extensions["shop.db"].dispose()


def _bitcoin_page(b: Browser):
    _checkout(b, "Bitcoin")
    return b.submit(b.form(".bitcoin-pay form"))  # "Pay with Bitcoin"


def _order(db) -> Order:
    with db.job_session() as session:
        return session.scalar(select(Order))


def test_one_qr_code_carries_address_amount_and_lightning_invoice(unified_app, lnd):
    db = unified_app.extensions["shop.db"]
    b = Browser(unified_app.test_client())
    page = _bitcoin_page(b)
    qr_text = decode_svg(page.soup.select_one("figure.btc-qr svg"))
    assert qr_text == page.soup.select_one("figure.btc-qr a")["href"]
    uri = urlsplit(qr_text)
    query = parse_qs(uri.query)
    assert uri.scheme == "bitcoin"
    assert uri.path == page.soup.select_one("#btc-address").get_text()
    assert query["amount"] == ["0.00015980"]
    (bolt11,) = query["lightning"]
    decoded = Invoice.decode(bolt11)
    assert int(decoded.amount * 10**11) == SATS * 1000  # the same amount as on-chain
    # Both parts as text to copy, and one Lightning invoice at the node.
    assert page.soup.select_one("#btc-part-lightning").get_text() == bolt11
    assert len(lnd.fake.invoices) == 1
    with db.job_session() as session:
        onchain = session.scalar(select(BitcoinInvoice))
        ln = service.get_invoice(session, onchain.order_id)
    assert ln.expires_at == onchain.expires_at  # the same deadline
    assert abs(dict(decoded.tags)["x"] - 30 * 60) <= 5
    assert decoded.paymenthash.hex() == ln.payment_hash
    b.get(page.url)  # a reload shows the same request
    assert len(lnd.fake.invoices) == 1
    onchain_button = b.form("form.demo-pay")

    # Paid over Lightning: the order is paid, the page says so and stops reloading.
    lnd.settle(ln.payment_hash)
    LightningListener(
        db, unified_app.extensions["shop.payment_methods"]["lightning"].backend
    ).reconcile()
    order = _order(db)
    assert order.status == "paid" and order.amount_paid == order.total
    paid_page = b.get(page.url)
    assert "Your order is paid" in paid_page.text
    assert paid_page.soup.find("meta", attrs={"http-equiv": "refresh"}) is None

    # Paying on-chain as well (the demo chain's button, kept from before): flagged as an
    # overpayment to refund, never lost.
    b.submit(onchain_button)
    order = _order(db)
    assert order.amount_paid == 2 * order.total
    assert "Additional payment" in order.attention


def test_node_unreachable_leaves_lightning_out_and_on_chain_still_works(unified_app, lnd):
    lnd.stop()
    db = unified_app.extensions["shop.db"]
    b = Browser(unified_app.test_client())
    page = _bitcoin_page(b)
    link = page.soup.select_one("figure.btc-qr a")["href"]
    assert "lightning=" not in link and "lightning=" not in decode_svg(
        page.soup.select_one("figure.btc-qr svg")
    )
    assert "Lightning is unavailable right now" in page.text
    assert "You can still pay on-chain" in page.text
    # On-chain goes on: the simulated chain pays the address.
    paid = b.submit(b.form("form.demo-pay"))
    assert _order(db).status == "paid", paid.text
    assert _order(db).paid_via == "bitcoin"


def test_too_little_inbound_liquidity_leaves_lightning_out(unified_app, lnd):
    lnd.fake.channels[0]["remote_balance"] = "10000"  # 10,000 sats, less the reserve: nothing
    b = Browser(unified_app.test_client())
    page = _bitcoin_page(b)
    assert "lightning=" not in page.soup.select_one("figure.btc-qr a")["href"]
    assert "cannot receive that much" in page.text
    assert not lnd.fake.invoices


def test_a_unified_request_paid_over_lightning_is_booked_as_lightning(unified_app, lnd):
    """The order chose "bitcoin" (one request for both); Lightning settled it: the order, the
    books and the admin say Lightning, with the payment hash as the reference."""
    from datetime import timedelta

    from shop.admin.auth import create_user
    from shop.db import utcnow
    from shop.privacy.ledger import export_csv
    from shop.privacy.models import LedgerEntry
    from tests.admin.conftest import PASSWORD, sign_in

    db = unified_app.extensions["shop.db"]
    b = Browser(unified_app.test_client())
    _bitcoin_page(b)
    with db.job_session() as session:
        ln = service.get_invoice(session, session.scalar(select(Order.id)))
    lnd.settle(ln.payment_hash)
    LightningListener(
        db, unified_app.extensions["shop.payment_methods"]["lightning"].backend
    ).reconcile()
    order = _order(db)
    assert order.status == "paid"
    assert (order.payment_method, order.paid_via) == ("bitcoin", "lightning")
    with db.job_session() as session:
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == "sale"))
        assert entry.payment_method == "lightning"
        assert entry.payment_reference == f"lightning:{ln.payment_hash}"
        today = utcnow().date()
        csv_text = export_csv(session, today - timedelta(days=1), today + timedelta(days=1))
    assert f",lightning,lightning:{ln.payment_hash}," in csv_text
    assert ",bitcoin," not in csv_text

    with db.job_session() as session:
        create_user(session, "merchant", PASSWORD)
    admin = sign_in(unified_app.test_client())
    detail = admin.get(f"/admin/orders/{order.number}")
    assert "by bitcoin, paid via lightning" in detail.text
