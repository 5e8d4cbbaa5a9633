"""Random chain histories: what the shop credits always equals what the node's chain holds.

Each sequence, drawn from its own seed, pays a few invoices exactly, partly or too much,
replaces payments (to the invoice or elsewhere, announced by ZMQ or found by the poll), mines,
reorganises 1-3 blocks with or without the payment (or with a double spend of it), takes the
node down and up, kills and restarts the watcher, and lets time pass beyond the invoices'
windows (with the expiry jobs running). Once the chain settles, for every invoice:

* credited = the sum of its outputs in the active chain with enough confirmations;
* the order was paid at most once, and it is paid exactly when that sum reaches the amount;
* no flag refers to money that is not there.

SHOP_BITCOIN_PROPERTY_SEQUENCES (default 200 on each database, half with zero-conf on) and
SHOP_BITCOIN_PROPERTY_SEED choose how many and from where; a failure names its seed and the
steps taken, and how to replay it. `SHOP_BITCOIN_PROPERTY_SEQUENCES=5000 pytest tests/bitcoin/test_chain_property.py` (see
bench/bitcoin_soak.sh) is the longer soak.
"""

from __future__ import annotations

import dataclasses
import os
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shop.orders import service as orders
from shop.orders.models import Order, PaymentRecord
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.payments.bitcoin.node import NodeError
from tests.bitcoin.conftest import make_watcher, new_invoice
from tests.bitcoin.fake_node import FakeNodeError, random_p2wpkh

SEQUENCES = int(os.environ.get("SHOP_BITCOIN_PROPERTY_SEQUENCES", "200"))
BASE_SEED = int(os.environ.get("SHOP_BITCOIN_PROPERTY_SEED", "20261202"))

pytestmark = pytest.mark.timeout(max(600, SEQUENCES * 6))  # a few seconds each, loaded


class History:
    """One random history against one node, one database and one (restartable) watcher."""

    def __init__(self, db, node, method, clock, policy, rng: random.Random):
        self.db, self.node, self.method, self.clock, self.policy = db, node, method, clock, policy
        self.rng = rng
        self.watcher = make_watcher(db, node, policy, clock)
        self.invoices: list[tuple[int, int, bytes, int]] = []  # order, invoice, script, sats
        self.unconfirmed: list = []  # our transactions that may still be in the mempool
        self.steps: list[str] = []

    def sync(self) -> None:
        try:
            self.watcher.sync()
        except NodeError:
            pass  # the node is down: the next round catches up

    def new_invoice(self) -> None:
        self.invoices.append(new_invoice(self.db, self.method, self.clock()))
        self.steps.append("invoice")

    def pay(self) -> None:
        _, _, script, sats = self.rng.choice(self.invoices)
        kind = self.rng.choice(["exact", "exact", "part", "over"])
        amount = {"exact": sats, "part": sats // 2, "over": sats + 700}[kind]
        tx = self.node.make_payment(script, amount, rbf=self.rng.random() < 0.5)
        self.node.add_to_mempool(tx)
        self.unconfirmed.append(tx)
        self.steps.append(f"pay {kind}")
        if self.rng.random() < 0.5:
            self.watcher.handle_raw_tx(tx.serialize())  # ZMQ rawtx

    def replace(self) -> None:
        waiting = [
            tx for tx in self.unconfirmed if any(t == tx for t in self.node.mempool.values())
        ]
        if not waiting:
            return
        old = self.rng.choice(waiting)
        amount = int(old.vout[0].nValue)
        to_invoice = self.rng.random() < 0.5
        script = bytes(old.vout[0].scriptPubKey) if to_invoice else random_p2wpkh()
        new = self.node.make_payment(script, amount, conflicts_with=old, fee=3000 + len(self.steps))
        try:
            self.node.replace(old, new)
        except FakeNodeError:
            return
        self.unconfirmed.append(new)
        self.steps.append(f"replace {'to invoice' if to_invoice else 'elsewhere'}")
        if self.rng.random() < 0.6:
            self.watcher.handle_raw_tx(new.serialize())

    def mine(self) -> None:
        self.node.mine(1)
        self.steps.append("mine")

    def reorg(self) -> None:
        depth = min(self.rng.randint(1, 3), self.node.height - 1)
        how = self.rng.choice(["back to mempool", "re-mined", "double spent"])
        dropped = [tx for block in self.node.blocks[-depth:] for tx in block.vtx[1:]]
        mine = [tx for tx in dropped if any(tx == t for t in self.unconfirmed)]
        if how == "double spent" and mine:
            victim = self.rng.choice(mine)
            thief = self.node.make_payment(
                random_p2wpkh(), int(victim.vout[0].nValue), conflicts_with=victim
            )
            self.node.reorg(depth, [[thief]])
        else:
            self.node.reorg(depth, include_orphaned=how == "re-mined")
        self.steps.append(f"reorg {depth} {how}")

    def outage(self) -> None:
        self.node.set_down(True)
        self.sync()
        self.node.set_down(False)
        self.steps.append("node down and up")

    def restart(self) -> None:
        self.watcher = make_watcher(self.db, self.node, self.policy, self.clock)
        self.steps.append("worker restarted")

    def time_passes(self) -> None:
        minutes = self.rng.choice([1, 5, 31, 90])
        self.clock.advance(minutes=minutes)
        with self.db.job_session() as s:
            inv.expire_invoices(s, self.policy, self.clock())
            orders.expire_due_orders(s, self.clock())
        self.steps.append(f"+{minutes} min")

    def run(self, n_steps: int) -> None:
        actions = [
            self.pay,
            self.pay,
            self.replace,
            self.mine,
            self.mine,
            self.reorg,
            self.outage,
            self.restart,
            self.time_passes,
            self.new_invoice,
        ]
        self.new_invoice()
        if self.rng.random() < 0.5:
            self.new_invoice()
        self.sync()
        for _ in range(n_steps):
            self.rng.choice(actions)()
            if self.rng.random() < 0.7:
                self.sync()
        # The chain settles: everything left in the mempool confirms deeply enough.
        self.node.mine(self.policy.confirmations)
        self.sync()
        self.sync()

    def check(self) -> None:
        due_scripts = {script: sats for _, _, script, sats in self.invoices}
        chain = self.node.blocks
        tip = len(chain) - 1
        deep: dict[bytes, int] = dict.fromkeys(due_scripts, 0)
        anywhere: dict[bytes, int] = dict.fromkeys(due_scripts, 0)
        for height, block in enumerate(chain):
            for tx in block.vtx:
                for out in tx.vout:
                    script = bytes(out.scriptPubKey)
                    if script in deep:
                        anywhere[script] += int(out.nValue)
                        if tip - height + 1 >= self.policy.confirmations:
                            deep[script] += int(out.nValue)
        with self.db.job_session() as s:
            for order_id, invoice_id, script, sats in self.invoices:
                invoice = s.get(BitcoinInvoice, invoice_id)
                order = s.get(Order, order_id)
                paid = s.scalar(
                    select(func.count())
                    .select_from(PaymentRecord)
                    .where(PaymentRecord.order_id == order_id, PaymentRecord.kind == "paid")
                )
                where = f"invoice {invoice_id} ({invoice.status}/{invoice.exception})"
                assert invoice.credited_sats == deep[script], where
                assert invoice.confirmed_sats == anywhere[script], where
                assert paid <= 1, where
                assert order.amount_paid == paid * invoice.order_total, where
                enough = sats - self.policy.tolerance_for(sats)
                if deep[script] >= enough:
                    assert invoice.status == "settled" and paid == 1, where
                    assert order.status == "paid", where
                else:
                    assert invoice.status != "settled", where
                    if paid:
                        assert invoice.exception == "reverted", where
                        assert "do not ship" in (order.attention or ""), where
                attention = order.attention or ""
                over = anywhere[script] - sats
                if "Overpaid" in attention:
                    assert over > 0 and f"Overpaid by {over} sats" in attention, where
                elif invoice.status == "settled" and over > 0:
                    assert "after the invoice expired" in attention, where
                if "do not ship" in attention:
                    assert invoice.status != "settled", where
                if "Underpaid" in attention:
                    assert anywhere[script] < enough, where


@pytest.mark.parametrize("zero_conf", [False, True], ids=["confirmed", "zero-conf"])
def test_random_chain_histories(db, node, method, clock, zero_conf):
    policy = dataclasses.replace(
        method.policy,
        confirmations=2,
        zero_conf_max_sats=10**8 if zero_conf else 0,
        zero_conf_settle=timedelta(seconds=30),
    )
    node.mine(8)
    count = max(1, SEQUENCES // 2)
    for i in range(count):
        # Later sequences run on the chain and database the earlier ones left: a replay runs
        # the same seeds from the start.
        seed = BASE_SEED + i
        rng = random.Random(seed)
        history = History(db, node, method, clock, policy, rng)
        try:
            history.run(rng.randint(3, 8))
            history.check()
        except Exception as exc:
            raise AssertionError(
                f"chain history {i} (seed {seed}, zero_conf={zero_conf}) failed; replay with "
                f"SHOP_BITCOIN_PROPERTY_SEED={BASE_SEED} "
                f"SHOP_BITCOIN_PROPERTY_SEQUENCES={2 * (i + 1)}; "
                f"steps: {', '.join(history.steps)}"
            ) from exc
