"""The merchant decides what the chain cannot: mark a Bitcoin payment settled or invalid."""

from __future__ import annotations

from sqlalchemy import select

from shop.admin import auth
from shop.orders.models import Order, OrderEvent
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.privacy.models import LedgerEntry
from tests.admin.conftest import PASSWORD, sign_in
from tests.bitcoin.conftest import make_watcher, new_invoice

MARK_FORM = "form[action*='/admin/bitcoin/']"


def test_mark_settled_and_invalid_from_the_order_page(btc_app, db, node, method, clock):
    with db.job_session() as s:
        auth.create_user(s, "merchant", PASSWORD)
    b = sign_in(btc_app.test_client())
    short_order, short_invoice, script, sats = new_invoice(db, method, clock())
    gone_order, gone_invoice, _, _ = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    node.mine(1, [node.make_payment(script, sats - 100)])  # 100 sats short
    w.sync()
    with db.job_session() as s:
        number = s.get(Order, short_order).number
        gone_number = s.get(Order, gone_order).number
    page = b.get(f"/admin/orders/{number}")
    assert "Decide what the chain cannot" in page.text
    refused = b.submit(b.form(MARK_FORM), {"decision": "settled", "reason": " "})
    assert "Say why" in refused.text
    b.get(f"/admin/orders/{number}")
    done = b.submit(
        b.form(MARK_FORM), {"decision": "settled", "reason": "customer paid 100 sats short"}
    )
    assert "marked settled" in done.text and "Decide what the chain cannot" not in done.text
    b.get(f"/admin/orders/{gone_number}")
    b.submit(b.form(MARK_FORM), {"decision": "invalid", "reason": "customer chose card instead"})
    with db.job_session() as s:
        short = s.get(BitcoinInvoice, short_invoice)
        assert (short.status, short.exception) == ("settled", "marked")
        order = s.get(Order, short_order)
        assert order.status == "paid" and order.amount_paid == order.total
        notes = s.scalars(select(OrderEvent.note).where(OrderEvent.order_id == short_order))
        assert any("customer paid 100 sats short" in n for n in notes)
        sale = s.scalar(select(LedgerEntry).where(LedgerEntry.order_number == number))
        assert sale.payment_reference.endswith("(marked settled by the merchant)")
        gone = s.get(BitcoinInvoice, gone_invoice)
        assert (gone.status, gone.exception) == ("invalid", "marked")
        assert s.get(Order, gone_order).status == "cancelled"
    w.sync()  # the chain does not undo a person's decision
    with db.job_session() as s:
        assert s.get(BitcoinInvoice, short_invoice).status == "settled"
    with db.job_session() as s:
        invoice = s.get(BitcoinInvoice, short_invoice)
        try:
            inv.mark(s, invoice, "invalid", "changed my mind", method.policy, None)
        except inv.CannotMark as exc:
            assert "already marked settled" in str(exc)
        else:
            raise AssertionError("a second decision was taken")
