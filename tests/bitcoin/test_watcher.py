"""Payment detection end to end: FakeNode (real JSON-RPC, real blocks) -> watcher -> invoice -> order.

Every scenario of the issue, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses

import pytest
from bitcoin.core import b2lx
from sqlalchemy import func, select

from shop.orders.models import Order, OrderEvent, PaymentRecord
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin import watcher as watcher_module
from shop.payments.bitcoin.models import BitcoinBlock, BitcoinInvoice, BitcoinPayment
from shop.payments.bitcoin.node import NodeUnavailable
from tests.bitcoin.conftest import make_watcher, new_invoice
from tests.bitcoin.fake_node import random_p2wpkh

pytestmark = pytest.mark.timeout(300)  # the thousand-invoice case on a busy machine


def wait_for(predicate, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def state(database, invoice_id: int) -> str:
    """ "status", or "status/exception" when there is one."""
    with database.job_session() as s:
        invoice = s.get(BitcoinInvoice, invoice_id)
        return invoice.status + (f"/{invoice.exception}" if invoice.exception else "")


def order_of(database, order_id: int) -> Order:
    with database.job_session() as s:
        order = s.get(Order, order_id)
        s.expunge(order)
        return order


def history(database, order_id: int) -> str:
    with database.job_session() as s:
        return "\n".join(s.scalars(select(OrderEvent.note).where(OrderEvent.order_id == order_id)))


def paid_records(database, order_id: int) -> int:
    with database.job_session() as s:
        return s.scalar(
            select(func.count())
            .select_from(PaymentRecord)
            .where(PaymentRecord.order_id == order_id, PaymentRecord.kind == "paid")
        )


def test_exact_payment_seen_then_confirmed(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    assert sats == 799 * 20  # 7.99 EUR at 50,000 EUR/BTC, in integer sats
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    tx = node.make_payment(script, sats)
    node.add_to_mempool(tx)
    w.sync()
    assert state(db, invoice_id) == "processing"
    order = order_of(db, order_id)
    assert order.status == "pending_payment"
    with db.job_session() as s:
        invoice = s.get(BitcoinInvoice, invoice_id)
        assert order.expires_at == invoice.monitor_until  # stock held until it confirms
    node.mine(1)
    w.sync()
    assert state(db, invoice_id) == "settled"
    order = order_of(db, order_id)
    assert order.status == "paid" and order.amount_paid == order.total and not order.attention
    w.sync()  # nothing new: nothing changes, nothing is counted twice
    assert paid_records(db, order_id) == 1


def test_underpayment_then_top_up(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    node.mine(1, [node.make_payment(script, sats - 1000)])
    w.sync()
    assert state(db, invoice_id) == "new/partial"
    assert order_of(db, order_id).status == "pending_payment"
    node.mine(1, [node.make_payment(script, 1000)])
    w.sync()
    assert state(db, invoice_id) == "settled"
    assert order_of(db, order_id).status == "paid"


def test_underpayment_within_tolerance_counts_as_paid(db, node, method, clock):
    policy = dataclasses.replace(method.policy, tolerance_bp=100)  # 1 %
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, policy, clock)
    node.mine(1, [node.make_payment(script, sats - sats // 100)])
    w.sync()
    assert state(db, invoice_id) == "settled"
    assert order_of(db, order_id).status == "paid"


def test_overpayment_is_paid_and_flagged(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    node.mine(1, [node.make_payment(script, sats + 5000)])
    w.sync()
    assert state(db, invoice_id) == "settled/over"
    order = order_of(db, order_id)
    assert order.status == "paid" and "Overpaid by 5000 sats" in order.attention


def test_two_payments_in_one_block_add_up(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    node.mine(
        1, [node.make_payment(script, sats // 2), node.make_payment(script, sats - sats // 2)]
    )
    w.sync()
    assert state(db, invoice_id) == "settled"
    with db.job_session() as s:
        assert s.scalar(select(func.count()).select_from(BitcoinPayment)) == 2
    assert order_of(db, order_id).status == "paid"


def test_payment_after_expiry_is_paid_late_and_flagged(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    clock.advance(minutes=31)
    from shop.orders import service

    with db.job_session() as s:
        assert inv.expire_invoices(s, method.policy, clock()) == 1
        service.expire_due_orders(s, clock())
    assert state(db, invoice_id) == "expired"
    assert order_of(db, order_id).status == "expired"
    clock.advance(minutes=10)
    node.mine(1, [node.make_payment(script, sats)])
    w.sync()
    assert state(db, invoice_id) == "settled/late"
    order = order_of(db, order_id)
    assert order.status == "paid"  # the e-book has unlimited stock, so it can still be sold
    assert "after the invoice expired" in order.attention


def test_payment_while_worker_stopped_is_caught_up(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    make_watcher(db, node, method.policy, clock).sync()
    with db.job_session() as s:
        start = s.scalar(select(func.max(BitcoinBlock.height)))
    # The worker is down while the payment confirms and the chain moves on.
    node.mine(1, [node.make_payment(script, sats)])
    node.mine(3)
    restarted = make_watcher(db, node, method.policy, clock)
    result = restarted.sync()
    assert result.blocks == 4  # resumed from the last processed block, not rescanned
    assert state(db, invoice_id) == "settled"
    assert order_of(db, order_id).status == "paid"
    with db.job_session() as s:
        assert s.scalar(select(func.max(BitcoinBlock.height))) == start + 4


def test_worker_killed_between_detecting_and_committing(db, node, method, clock, monkeypatch):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    node.mine(1, [node.make_payment(script, sats)])
    real = watcher_module.evaluate_all

    def crash(*args, **kwargs):
        real(*args, **kwargs)  # payment recorded and order marked paid ... then the crash
        raise RuntimeError("killed before commit")

    monkeypatch.setattr(watcher_module, "evaluate_all", crash)
    with pytest.raises(RuntimeError):
        w.sync()
    assert order_of(db, order_id).status == "pending_payment"
    with db.job_session() as s:
        assert s.scalar(select(func.count()).select_from(BitcoinPayment)) == 0
    monkeypatch.setattr(watcher_module, "evaluate_all", real)
    fresh = make_watcher(db, node, method.policy, clock)
    fresh.sync()
    fresh.sync()
    order = order_of(db, order_id)
    assert order.status == "paid" and order.amount_paid == order.total
    assert paid_records(db, order_id) == 1
    with db.job_session() as s:
        assert s.scalar(select(func.count()).select_from(BitcoinPayment)) == 1


def test_rbf_replacement_paying_elsewhere_makes_invoice_invalid(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    original = node.make_payment(script, sats, rbf=True)
    node.add_to_mempool(original)
    w.sync()
    assert state(db, invoice_id) == "processing"
    with db.job_session() as s:
        assert s.scalar(select(BitcoinPayment.spends)) == ",".join(
            f"{b2lx(i.prevout.hash)}:{i.prevout.n}" for i in original.vin
        )
    replacement = node.make_payment(random_p2wpkh(), sats, conflicts_with=original, fee=5000)
    node.replace(original, replacement)
    w.sync()
    assert state(db, invoice_id) == "invalid"
    order = order_of(db, order_id)
    assert order.status == "pending_payment" and not order.attention  # nothing to act on ...
    assert "replaced, double-spent" in history(db, order_id)  # ... but the history says it
    node.mine(1)
    w.sync()
    assert state(db, invoice_id) == "invalid"


def test_zero_conf_after_the_settling_time_and_only_for_small_amounts(db, node, method, clock):
    policy = dataclasses.replace(method.policy, zero_conf_max_sats=1_000_000)
    w = make_watcher(db, node, policy, clock)
    w.sync()
    a_order, a_invoice, a_script, a_sats = new_invoice(db, method, clock())
    b_order, b_invoice, b_script, b_sats = new_invoice(db, method, clock())
    node.add_to_mempool(node.make_payment(a_script, a_sats, rbf=True))  # the signal is moot
    node.add_to_mempool(node.make_payment(b_script, b_sats))
    w.sync()
    assert state(db, a_invoice) == "processing"  # a replacement usually follows in seconds
    clock.advance(seconds=policy.zero_conf_settle.total_seconds())
    w.sync()
    assert state(db, a_invoice) == "settled" and order_of(db, a_order).status == "paid"
    small = dataclasses.replace(policy, zero_conf_max_sats=b_sats - 1)
    w.policy = small
    c_order, c_invoice, c_script, c_sats = new_invoice(db, method, clock())
    node.add_to_mempool(node.make_payment(c_script, c_sats))
    w.sync()
    clock.advance(minutes=5)
    w.sync()
    assert state(db, c_invoice) == "processing"
    assert order_of(db, c_order).status == "pending_payment"


def test_reorg_before_settling_makes_invoice_invalid(db, node, method, clock):
    policy = dataclasses.replace(method.policy, confirmations=2)
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, policy, clock)
    w.sync()
    payment = node.make_payment(script, sats)
    node.mine(1, [payment])
    w.sync()
    assert state(db, invoice_id) == "processing"  # one confirmation of two
    double_spend = node.make_payment(random_p2wpkh(), sats, conflicts_with=payment)
    node.reorg(1, [[double_spend]])
    w.sync()
    assert state(db, invoice_id) == "invalid"
    order = order_of(db, order_id)
    assert order.status == "pending_payment" and "double-spent" in history(db, order_id)


def test_reorg_that_returns_the_tx_to_the_mempool_keeps_it_seen(db, node, method, clock):
    policy = dataclasses.replace(method.policy, confirmations=2)
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, policy, clock)
    node.mine(1, [node.make_payment(script, sats)])
    w.sync()
    node.reorg(1, extra_blocks=0)  # same height, the payment is back in the mempool
    w.sync()
    assert state(db, invoice_id) == "processing"
    node.mine(2)
    w.sync()
    assert state(db, invoice_id) == "settled"
    assert order_of(db, order_id).status == "paid"


def test_reorg_after_settling_reverts_and_flags_merchant(db, node, method, clock):
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    payment = node.make_payment(script, sats)
    node.mine(1, [payment])
    w.sync()
    assert state(db, invoice_id) == "settled"
    assert order_of(db, order_id).status == "paid"
    double_spend = node.make_payment(random_p2wpkh(), sats, conflicts_with=payment)
    node.reorg(1, [[double_spend]])
    result = w.sync()
    assert result.reorged == 1
    assert state(db, invoice_id) == "invalid/reverted"
    order = order_of(db, order_id)
    assert "reverted by a chain reorganisation" in order.attention

    def reverted_flags():
        return s.scalar(
            select(func.count())
            .select_from(PaymentRecord)
            .where(PaymentRecord.kind == "attention", PaymentRecord.note.contains("reverted"))
        )

    with db.job_session() as s:
        assert s.scalar(select(BitcoinPayment.status)) == "removed"
        assert reverted_flags() == 1
    w.sync()  # told once
    with db.job_session() as s:
        assert reverted_flags() == 1


def test_node_down_then_back(db, node, method, clock):
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    node.set_down(True)
    # Checkout still hands out addresses: they are derived locally.
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    with pytest.raises(NodeUnavailable):
        w.sync()
    with db.job_session() as s:
        assert method.detection_delayed(s, clock())
    node.set_down(False)
    node.mine(1, [node.make_payment(script, sats)])
    w.sync()
    with db.job_session() as s:
        assert not method.detection_delayed(s, clock())
    assert state(db, invoice_id) == "settled"
    assert order_of(db, order_id).status == "paid"


def test_pruned_node_without_wallet(db, node, method, clock):
    node.mine(20)
    node.prune(15)
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, method.policy, clock)  # first start: a few blocks back only
    w.sync()
    node.mine(1, [node.make_payment(script, sats)])
    w.sync()
    assert state(db, invoice_id) == "settled"
    assert not [
        c for c in node.calls if "wallet" in c or c in ("getreceivedbyaddress", "importdescriptors")
    ]


def test_thousand_open_invoices_paid_in_one_block(db, node, method, clock):
    from shop.payments.bitcoin.invoice import LockedRate, create_invoice
    from tests.bitcoin.conftest import RATE, place

    with db.job_session() as s:
        invoices = []
        for _ in range(1000):
            order = place(s, now=clock())
            invoice = create_invoice(
                s, order, method.descriptor, method.policy, LockedRate(RATE), now=clock()
            )
            invoices.append((bytes(invoice.script_pubkey), invoice.amount_sats))
            s.flush()
            s.expunge_all()  # keep the session small: every flush scans it
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    node.fill_block(200, include=[node.make_payment(spk, sats) for spk, sats in invoices])
    w.sync()
    with db.job_session() as s:
        states = dict(
            s.execute(
                select(BitcoinInvoice.status, func.count()).group_by(BitcoinInvoice.status)
            ).all()
        )
        paid = s.scalar(select(func.count()).select_from(Order).where(Order.status == "paid"))
        indexes = s.scalars(select(BitcoinInvoice.derivation_index)).all()
    assert states == {"settled": 1000}
    assert paid == 1000
    assert sorted(indexes) == list(range(1000))


def test_only_one_watcher_holds_the_lock_on_postgres(db, node, method):
    first = make_watcher(db, node, method.policy)
    second = make_watcher(db, node, method.policy)
    try:
        assert first.acquire()
        assert second.acquire() is (not db.is_postgres)
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()


def test_zmq_wakes_the_watcher_long_before_the_poll(db, method):
    import threading
    import time

    from shop.payments.bitcoin.models import BitcoinWatcherStatus
    from tests.bitcoin.fake_node import FakeNode

    with FakeNode(zmq_publisher=True) as zmq_node:
        order_id, invoice_id, script, sats = new_invoice(db, method, watcher_module.utcnow())
        w = make_watcher(db, zmq_node, method.policy)
        stop = threading.Event()
        thread = threading.Thread(
            target=w.run_forever,
            daemon=True,
            args=(stop, 60.0, zmq_node.zmq_endpoint, zmq_node.zmq_endpoint),
        )
        thread.start()
        try:

            def synced():
                with db.job_session() as s:
                    row = s.get(BitcoinWatcherStatus, 1)
                    return row is not None and row.last_success_at is not None

            assert wait_for(synced)
            time.sleep(0.3)  # ZMQ subscriptions take a moment to be established
            zmq_node.add_to_mempool(zmq_node.make_payment(script, sats))
            assert wait_for(lambda: state(db, invoice_id) == "processing"), "rawtx did not wake it"
            zmq_node.mine(1)
            assert wait_for(lambda: state(db, invoice_id) == "settled"), "hashblock did not"
        finally:
            stop.set()
            thread.join(10)
        assert order_of(db, order_id).status == "paid"


def test_block_transactions_match_the_full_block(node):
    from bitcoin.core import b2lx

    from shop.payments.bitcoin.node import NodeClient

    block_hash = node.fill_block(50)
    client = NodeClient(node.url, timeout=5)
    full = client.get_block(block_hash)
    fast = client.get_block_transactions(block_hash)
    assert fast.hashPrevBlock == full.hashPrevBlock
    assert [b2lx(t.GetTxid()) for t in fast.vtx] == [b2lx(t.GetTxid()) for t in full.vtx]
    assert len(fast.vtx) == 51


def test_gap_limit_warning(db, node, method, clock, caplog):
    import logging

    policy = dataclasses.replace(method.policy, gap_limit=2)
    for _ in range(3):
        new_invoice(db, method, clock())
    w = make_watcher(db, node, policy, clock, fingerprint=method.descriptor.fingerprint())
    with caplog.at_level(logging.WARNING, logger="shop.payments.bitcoin.watcher"):
        w.sync()
    assert "3 addresses handed out since the last one that received a payment" in caplog.text


def test_worker_starts_the_watcher_and_expires_invoices(btc_app, db, node, method):
    import threading
    import time
    from datetime import timedelta

    from shop.jobs.worker import run_once
    from shop.payments.bitcoin.models import BitcoinWatcherStatus

    settings = btc_app.extensions["shop.settings"]
    old = watcher_module.utcnow() - timedelta(minutes=31)
    order_id, invoice_id, script, sats = new_invoice(db, method, old)
    stop = threading.Event()
    thread = watcher_module.start_watcher(db, settings, stop)
    try:
        assert thread is not None and thread.is_alive()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.job_session() as s:
                row = s.get(BitcoinWatcherStatus, 1)
                if row is not None and row.last_success_at is not None:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the watcher thread never reached the node")
    finally:
        stop.set()
        thread.join(10)
    assert run_once(db)["bitcoin-invoices"] == 1
    assert state(db, invoice_id) == "expired"


def test_no_watcher_without_a_descriptor(db):
    import threading

    from shop.config import load_settings

    assert watcher_module.start_watcher(db, load_settings(environ={}), threading.Event()) is None


def test_accepted_zero_conf_payment_double_spent_is_reverted(db, node, method, clock):
    policy = dataclasses.replace(method.policy, zero_conf_max_sats=1_000_000)
    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    w = make_watcher(db, node, policy, clock)
    w.sync()
    payment = node.make_payment(script, sats)
    node.add_to_mempool(payment)
    w.sync()
    clock.advance(seconds=policy.zero_conf_settle.total_seconds())
    w.sync()
    assert order_of(db, order_id).status == "paid"
    # Full-RBF nodes accept a replacement even without the signal: the risk of 0-conf.
    node.replace(
        payment, node.make_payment(random_p2wpkh(), sats, conflicts_with=payment, fee=5000)
    )
    w.sync()
    assert state(db, invoice_id) == "invalid/reverted"
    assert "double spend" in order_of(db, order_id).attention


def test_zmq_sequence_removal_stops_counting_a_replaced_payment_at_once(db, method):
    import threading
    import time

    from tests.bitcoin.fake_node import FakeNode

    with FakeNode(zmq_publisher=True) as zmq_node:
        order_id, invoice_id, script, sats = new_invoice(db, method, watcher_module.utcnow())
        original = zmq_node.make_payment(script, sats, rbf=True)
        zmq_node.add_to_mempool(original)
        w = make_watcher(db, zmq_node, method.policy)
        stop = threading.Event()
        # No rawtx subscription: only the sequence notification can tell it in time.
        thread = threading.Thread(
            target=w.run_forever,
            daemon=True,
            args=(stop, 60.0, zmq_node.zmq_endpoint, "", zmq_node.zmq_endpoint),
        )
        thread.start()
        try:
            assert wait_for(lambda: state(db, invoice_id) == "processing")
            time.sleep(0.3)  # ZMQ subscriptions take a moment to be established
            zmq_node._publish("sequence", b"not a sequence frame")  # ignored, no crash
            zmq_node.replace(
                original,
                zmq_node.make_payment(random_p2wpkh(), sats, conflicts_with=original, fee=5000),
            )
            assert wait_for(lambda: state(db, invoice_id) == "invalid"), "'R' was not heard"
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(10)
        assert order_of(db, order_id).status == "pending_payment"


def test_a_node_on_another_chain_is_refused_and_changes_nothing(db, node, method, clock):
    from shop.payments.bitcoin.models import BitcoinWatcherStatus
    from shop.payments.bitcoin.node import NodeWrongChain
    from tests.bitcoin.fake_node import FakeNode

    order_id, invoice_id, script, sats = new_invoice(db, method, clock())
    node.mine(110)
    w = make_watcher(db, node, method.policy, clock)
    w.sync()
    node.mine(1, [node.make_payment(script, sats)])
    w.sync()
    assert order_of(db, order_id).status == "paid"
    with FakeNode() as other:  # same regtest genesis, a different chain after it
        # Empty regtest blocks mined in the same second are identical: make it differ early.
        other.mine(1, [other.make_payment(random_p2wpkh(), 10_000)])
        other.mine(129)
        wrong = make_watcher(db, other, method.policy, clock)
        with pytest.raises(NodeWrongChain):
            wrong.sync()
    assert state(db, invoice_id) == "settled"
    order = order_of(db, order_id)
    assert order.status == "paid" and not order.attention
    with db.job_session() as s:
        assert "another chain" in s.get(BitcoinWatcherStatus, 1).last_error
