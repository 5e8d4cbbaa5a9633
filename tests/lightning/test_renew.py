"""An expired Lightning invoice is replaced only when the customer asks (a POST button on the
payment page, no JavaScript), at the rate of that moment; the old invoice is still watched, so
its late settlement is credited and flagged, and paying both flags an overpayment."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from pyln.proto.invoice import Invoice
from sqlalchemy import func, select, update

from shop.db import utcnow
from shop.orders.models import Order
from shop.orders.views import order_view
from shop.payments.lightning import service
from shop.payments.lightning.models import LightningInvoice
from tests.bitcoin.conftest import place, store_rate
from tests.browser import Browser
from tests.lightning.conftest import listen, ln_app, wait_for
from tests.lightning.test_lightning import SATS, _checkout

pytestmark = pytest.mark.timeout(90)

# 7.99 EUR at the new rate of 40,000 EUR/BTC.
SATS_AT_NEW_RATE = 19_975


@pytest.fixture
def app(db_url, tmp_path, node):
    # Orders wait a day for their payment (SHOP_ORDER_EXPIRY_MINUTES), longer than the
    # invoice's 30 minutes: an unpaid order can outlive its invoice.
    app = ln_app(db_url, tmp_path, node, order_expiry_minutes=24 * 60)
    yield app
    app.extensions["shop.db"].dispose()


def _expire(db, order_id: int) -> None:
    """Time passes: the invoice's window is over (the order's own deadline is not)."""
    with db.job_session() as session:
        session.execute(
            update(LightningInvoice)
            .where(LightningInvoice.order_id == order_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )


def _invoices(db, order_id: int) -> list[LightningInvoice]:
    with db.job_session() as session:
        return list(
            session.scalars(
                select(LightningInvoice)
                .where(LightningInvoice.order_id == order_id)
                .order_by(LightningInvoice.id)
            )
        )


def _order(db) -> Order:
    with db.job_session() as session:
        return session.scalar(select(Order))


def test_expired_invoice_is_replaced_on_request_at_a_new_rate(app, db, method, node):
    b = Browser(app.test_client())
    order_page = _checkout(b)
    page = b.submit(b.form(".lightning-pay form"))  # "Pay with Lightning"
    old_text = page.soup.select_one("#ln-invoice").get_text()
    order = _order(db)
    _expire(db, order.id)

    # Reloading the page (and the order page) shows the expiry and never makes an invoice.
    for _ in range(2):
        expired = b.get(page.url)
        assert "Expired" in expired.text
        assert expired.soup.select_one("#ln-invoice") is None
        assert expired.soup.find("meta", attrs={"http-equiv": "refresh"}) is None
    assert "expired" in b.get(order_page.url).text
    assert node.invoice_count() == 1
    b.get(page.url)
    renew = b.form("form.lightning-renew")
    assert renew.get("method") == "post"
    assert renew.find("input", attrs={"name": "csrf_token"})

    # The customer asks: a new invoice at the rate of now.
    store_rate(db, rate=Decimal("40000"))
    fresh = b.submit(renew)
    assert fresh.url == page.url
    new_text = fresh.soup.select_one("#ln-invoice").get_text()
    assert new_text != old_text
    assert int(Invoice.decode(new_text).amount * 10**11) == SATS_AT_NEW_RATE * 1000
    assert "40,000" in fresh.text or "40.000" in fresh.text or "40000" in fresh.text
    old, new = _invoices(db, order.id)
    assert (old.amount_msat, new.amount_msat) == (SATS * 1000, SATS_AT_NEW_RATE * 1000)
    assert new.rate == "40000" and new.bolt11 == new_text
    assert new.expires_at > utcnow() + timedelta(minutes=29)
    assert node.invoice_count() == 2

    # The same form again (a double click, the back button): nothing new.
    again = b.submit(renew)
    assert again.soup.select_one("#ln-invoice").get_text() == new_text
    assert node.invoice_count() == 2 and len(_invoices(db, order.id)) == 2

    # The old invoice is still watched: paid late, it settles the order and is flagged.
    with listen(db, method):
        node.settle(old.payment_hash)
        wait_for(lambda: _order(db).status in ("paid", "fulfilled"))
        order = _order(db)
        assert "after its invoice expired" in order.attention
        # The page no longer offers the new invoice: the order is paid.
        paid_page = b.get(page.url)
        assert paid_page.soup.select_one("#ln-invoice") is None
        assert "Your order is paid" in paid_page.text
        # Paying the new one too: an overpayment to refund, never lost.
        node.settle(new.payment_hash)
        wait_for(lambda: _order(db).amount_paid == 2 * order.total)
    order = _order(db)
    assert "Additional payment" in order.attention


def test_an_open_invoice_is_never_replaced(app, db, method, node):
    with db.job_session(write_lock=True) as session:
        view = order_view(place(session, method="lightning"))
    first = method.new_invoice(view)
    assert method.new_invoice(view, replaces=first.seq).payment_hash == first.payment_hash
    assert node.invoice_count() == 1


def test_two_requests_at_once_make_one_new_invoice(app, db, method, node):
    with db.job_session(write_lock=True) as session:
        view = order_view(place(session, method="lightning"))
    first = method.new_invoice(view)
    _expire(db, view.id)
    # The node takes its time, so both requests are inside it at once unless the database
    # lets only one of them ask.
    create = method.backend.create_invoice

    def slow_create(*args, **kwargs):
        time.sleep(1.0)
        return create(*args, **kwargs)

    method.backend.create_invoice = slow_create
    start = threading.Barrier(2)
    results: list = []

    def renew() -> None:
        start.wait(5)
        try:
            results.append(method.new_invoice(view, replaces=first.seq).payment_hash)
        except service.LightningUnavailable as exc:  # "being prepared; reload"
            results.append(str(exc))

    try:
        threads = [threading.Thread(target=renew) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        method.backend.create_invoice = create
    assert len(results) == 2
    # One made it; the other found it reserved and asks the customer to reload.
    assert sum("being prepared" in r for r in results) == 1, results
    assert node.invoice_count() == 2  # the first invoice and exactly one replacement
    with db.job_session() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(LightningInvoice)
            .where(LightningInvoice.order_id == view.id)
        )
    assert rows == 2
