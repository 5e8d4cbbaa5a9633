"""Detection latency: from a transaction reaching the node to the order showing it.

    python bench/bitcoin_detection.py [--payments 100] [--poll 30] [--postgres URL]

A FakeNode publishes ZMQ `rawtx`/`hashblock` like bitcoind (-zmqpubrawtx, -zmqpubhashblock); the
real chain watcher runs its own loop (`run_forever`, as in `shop worker`) with a 30 s
reconciliation poll, so only ZMQ can make it fast. For each payment: create an invoice, start
the clock, accept the transaction into the node's mempool (which publishes it), and stop the
clock when a separate database session sees the order's "payment seen" entry committed.
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime

from bitcoin_common import percentile, scratch_database, shop_app
from sqlalchemy import func, select

from shop.orders.models import OrderEvent
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.models import BitcoinWatcherStatus
from shop.payments.bitcoin.node import NodeClient
from shop.payments.bitcoin.watcher import ChainWatcher
from tests.bitcoin.conftest import RATE, place
from tests.bitcoin.fake_node import FakeNode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100)
    parser.add_argument("--poll", type=float, default=30.0)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    with scratch_database(args.postgres) as (url, tmp), FakeNode(zmq_publisher=True) as node:
        app = shop_app(url, tmp, node)
        database = app.extensions["shop.db"]
        method = app.extensions["shop.payment_methods"]["bitcoin"]
        watcher = ChainWatcher(database, NodeClient(node.url), method.policy)
        stop = threading.Event()
        thread = threading.Thread(
            target=watcher.run_forever,
            daemon=True,
            args=(stop, args.poll, node.zmq_endpoint, node.zmq_endpoint),
        )
        thread.start()
        while True:
            with database.job_session() as s:
                row = s.get(BitcoinWatcherStatus, 1)
                if row is not None and row.last_success_at is not None:
                    break
            time.sleep(0.05)
        time.sleep(0.5)  # let the ZMQ subscription settle
        latencies = []
        for i in range(args.payments):
            now = datetime.now(UTC)
            with database.job_session() as s:
                order = place(s, now=now)
                invoice = inv.create_invoice(
                    s, order, method.descriptor, method.policy, inv.LockedRate(RATE), now=now
                )
                order_id, script, sats = order.id, bytes(invoice.script_pubkey), invoice.amount_sats
            tx = node.make_payment(script, sats)
            start = time.perf_counter()
            node.add_to_mempool(tx)
            while True:
                with database.job_session() as s:
                    seen = s.scalar(
                        select(func.count())
                        .select_from(OrderEvent)
                        .where(OrderEvent.order_id == order_id, OrderEvent.note.like("%sats seen%"))
                    )
                if seen:
                    break
                if time.perf_counter() - start > 30:
                    raise SystemExit("payment not detected within 30 s")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - start)
            if i % 20 == 19:
                node.mine(1)  # keep the mempool realistic
        stop.set()
        thread.join(10)
        database.dispose()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{backend}, {len(latencies)} payments, ZMQ rawtx, poll every {args.poll:g} s")
    print(
        f"p50 {percentile(latencies, 50) * 1000:.1f} ms  p95 {percentile(latencies, 95) * 1000:.1f} ms"
        f"  max {max(latencies) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
