"""The four ways an independent check found the shop counting bitcoin wrongly (issue 11).

Each was written against the code that had the fault and failed there. They assert what the
customer and the merchant would see: the order's payment, its flags and its history.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from shop.orders.models import Order, OrderEvent, PaymentRecord
from shop.payments.bitcoin.models import BitcoinInvoice, BitcoinPayment
from tests.bitcoin.conftest import make_watcher, new_invoice
from tests.bitcoin.fake_node import random_p2wpkh
from tests.bitcoin.test_watcher import order_of

pytestmark = pytest.mark.timeout(120)


def invoice_of(database, invoice_id: int) -> BitcoinInvoice:
    with database.job_session() as s:
        invoice = s.get(BitcoinInvoice, invoice_id)
        s.expunge(invoice)
        return invoice


def test_payment_confirmed_again_long_after_a_reorg_settles_again(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    payment = node.make_payment(script, sats)
    node.mine(1, [payment])
    w.sync()
    assert order_of(db, order_id).status == "paid"
    node.reorg(1)  # its block leaves the chain: the transaction is back in the mempool
    clock.advance(seconds=30)
    w.sync()
    assert "do not ship" in order_of(db, order_id).attention
    clock.advance(seconds=75)  # well past any periodic reload of the watch list
    w.sync()
    node.mine(1)  # mined again
    clock.advance(seconds=5)
    w.sync()
    with db.job_session() as s:
        assert s.scalar(select(BitcoinPayment.status)) == "confirmed"
        notes = s.scalars(select(OrderEvent.note).where(OrderEvent.order_id == order_id)).all()
    order = order_of(db, order_id)
    assert not order.attention  # the "do not ship" flag is withdrawn ...
    assert any("confirmed again" in n for n in notes)  # ... and the history says why
    assert order.status == "paid" and order.amount_paid == order.total
    invoice = invoice_of(db, invoice_id)
    assert invoice.status == "settled" and invoice.credited_sats == sats


def test_replacement_announced_by_zmq_then_mined_is_not_counted_twice(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    original = node.make_payment(script, sats, rbf=True)
    node.add_to_mempool(original)
    w.sync()
    replacement = node.make_payment(script, sats, conflicts_with=original, fee=5000)
    node.replace(original, replacement)
    w.handle_raw_tx(replacement.serialize())  # what ZMQ rawtx delivers, before any poll
    node.mine(1)
    w.sync()
    order = order_of(db, order_id)
    assert order.status == "paid" and order.amount_paid == order.total
    assert "Overpaid" not in (order.attention or "")
    invoice = invoice_of(db, invoice_id)
    assert invoice.received_sats == sats
    assert invoice.exception == ""


def test_overpaid_flag_is_withdrawn_when_the_extra_money_is_replaced_away(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    node.mine(1, [node.make_payment(script, sats)])
    extra = node.make_payment(script, 5000, rbf=True)
    node.add_to_mempool(extra)
    w.sync()
    # Unconfirmed extra money is not "overpaid" yet: nothing to refund that may never arrive.
    assert "Overpaid" not in (order_of(db, order_id).attention or "")
    node.mine(1)
    w.sync()
    assert "Overpaid by 5000 sats" in order_of(db, order_id).attention
    node.reorg(1, [[node.make_payment(random_p2wpkh(), 5000, conflicts_with=extra)]])
    w.sync()
    order = order_of(db, order_id)
    assert "Overpaid" not in (order.attention or "")
    with db.job_session() as s:
        notes = s.scalars(select(OrderEvent.note).where(OrderEvent.order_id == order_id)).all()
    assert any(n.startswith("Withdrawn") and "Overpaid" in n for n in notes)


def test_zero_conf_never_counts_a_replaced_half_payment_twice(db, node, method, clock):
    policy = dataclasses.replace(method.policy, zero_conf_max_sats=1_000_000)
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, policy, clock)
    w.sync()
    half = node.make_payment(script, sats // 2)  # does not signal BIP125
    node.add_to_mempool(half)
    w.sync()
    same_half = node.make_payment(script, sats // 2, conflicts_with=half, fee=5000)
    node.replace(half, same_half)  # full-RBF: accepted without the signal
    w.handle_raw_tx(same_half.serialize())
    clock.advance(minutes=5)
    w.sync()
    order = order_of(db, order_id)
    assert order.status == "pending_payment" and order.amount_paid == 0
    with db.job_session() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(PaymentRecord)
                .where(PaymentRecord.order_id == order_id, PaymentRecord.kind == "paid")
            )
            == 0
        )


def test_btc_priced_store_holds_amounts_above_21_btc(db_url, tmp_path):
    from shop.demo import seed_demo
    from shop.orders import service
    from tests.bitcoin.conftest import place
    from tests.conftest import make_test_app

    app = make_test_app(db_url, tmp_path / "instance", currency="BTC")
    database = app.extensions["shop.db"]
    try:
        seed_demo(database, app.extensions["shop.settings"])
        from shop.catalog.models import Variant

        with database.job_session() as s:
            variant = s.scalar(select(Variant).where(Variant.sku == "EBOOK-SMALL"))
            variant.price = 30 * 100_000_000  # 30 BTC: past a 32-bit column
        with database.job_session() as s:
            order = place(s, "EBOOK-SMALL", quantity=2)
            order_id = order.id
        with database.job_session() as s:
            order = s.get(Order, order_id)
            assert order.subtotal == 60 * 100_000_000
            assert order.total >= order.subtotal
            service.mark_paid(s, order)
        with database.job_session() as s:
            assert s.get(Order, order_id).status == "paid"
    finally:
        database.dispose()
