"""Lightning detection: a settlement at the node until the order page shows it paid, and 1,000
settlements credited exactly once.

    python bench/lightning.py [--node lnd|cln] [--payments 100] [--bulk 1000] [--postgres URL]

The node is the protocol stand-in from tests/lightning/ (LND: HTTPS + macaroon + the chunked
invoice subscription; CLN: JSON-RPC over a unix socket with `waitanyinvoice`), issuing real
BOLT11 invoices. The shop's listener runs its own loop as in `shop worker`, with a 30 s
reconciliation poll, so only the stream can make it fast.

1. Latency: for each payment, make the order's invoice, start the clock, settle it at the node,
   and stop the clock when the customer's order page (GET /orders/<token>, through the app)
   says the payment was received.
2. Throughput: make `--bulk` invoices, settle all of them at the node as fast as it goes, and
   time until every order is paid; then check each order has exactly one Lightning PAID record
   and was credited its total once.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from bitcoin_common import percentile, scratch_database
from sqlalchemy import func, select

from shop.orders.models import Order, PaymentRecord
from shop.orders.views import order_view
from shop.payments.lightning.listener import LightningListener
from shop.payments.lightning.models import LightningStreamState
from tests.bitcoin.conftest import place
from tests.lightning.conftest import cln_node, ln_app, lnd_node


def _new(database, method) -> tuple[int, str, str]:
    with database.job_session(write_lock=True) as s:
        order = place(s, method="lightning")
        view = order_view(order)
    invoice = method.new_invoice(view)
    return view.id, view.token, invoice.payment_hash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", choices=("lnd", "cln"), default="lnd")
    parser.add_argument("--payments", type=int, default=100)
    parser.add_argument("--bulk", type=int, default=1000)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    node = (lnd_node if args.node == "lnd" else cln_node)(Path(tempfile.mkdtemp(prefix="ln-")))
    with scratch_database(args.postgres) as (url, tmp):
        app = ln_app(url, tmp, node, lightning_poll_seconds=30)
        database = app.extensions["shop.db"]
        method = app.extensions["shop.payment_methods"]["lightning"]
        listener = LightningListener(database, method.backend, poll_seconds=30)
        stop = threading.Event()
        thread = threading.Thread(target=listener.run_forever, args=(stop,), daemon=True)
        thread.start()
        while True:  # first reconcile done and the stream open
            with database.job_session() as s:
                st = s.get(LightningStreamState, args.node)
                if st is not None and st.last_success_at is not None and node.streaming():
                    break
            time.sleep(0.05)
        client = app.test_client()

        latencies = []
        for _ in range(args.payments):
            _order_id, token, payment_hash = _new(database, method)
            start = time.perf_counter()
            node.settle(payment_hash)
            while True:
                page = client.get(f"/orders/{token}")
                if b"was received" in page.data:
                    break
                if time.perf_counter() - start > 30:
                    raise SystemExit("payment not shown within 30 s")
                time.sleep(0.01)
            latencies.append(time.perf_counter() - start)

        made = time.perf_counter()
        bulk = [_new(database, method) for _ in range(args.bulk)]
        made = time.perf_counter() - made
        start = time.perf_counter()
        for _order_id, _token, payment_hash in bulk:
            node.settle(payment_hash)
        settled_at_node = time.perf_counter() - start
        ids = [order_id for order_id, _t, _h in bulk]
        while True:
            with database.job_session() as s:
                left = s.scalar(
                    select(func.count())
                    .select_from(Order)
                    .where(Order.id.in_(ids), Order.amount_paid == 0)
                )
            if not left:
                break
            if time.perf_counter() - start > 300:
                raise SystemExit(f"{left} orders still unpaid after 300 s")
            time.sleep(0.05)
        all_paid = time.perf_counter() - start
        time.sleep(2)  # let any duplicate arrive before counting
        with database.job_session() as s:
            records = dict(
                s.execute(
                    select(PaymentRecord.order_id, func.count())
                    .where(
                        PaymentRecord.order_id.in_(ids),
                        PaymentRecord.provider == "lightning",
                        PaymentRecord.kind == "paid",
                    )
                    .group_by(PaymentRecord.order_id)
                ).all()
            )
            wrong = s.scalar(
                select(func.count())
                .select_from(Order)
                .where(Order.id.in_(ids), Order.amount_paid != Order.total)
            )
        once = sum(1 for i in ids if records.get(i) == 1)
        stop.set()
        thread.join(10)
        database.dispose()
    node.stop()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{backend}, {args.node}, {len(latencies)} payments, stream + 30 s poll")
    print(
        f"settle -> order page shows paid: p50 {percentile(latencies, 50) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    print(
        f"{args.bulk} invoices made in {made:.1f} s; settled at the node in "
        f"{settled_at_node:.1f} s; all orders paid {all_paid:.1f} s after the first settle; "
        f"credited exactly once: {once}/{args.bulk}; amount_paid != total: {wrong}"
    )


if __name__ == "__main__":
    main()
