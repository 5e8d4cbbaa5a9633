"""Invoice creation rate: fresh address + locked amount, one transaction per invoice.

    python bench/bitcoin_invoices.py [--invoices 1000] [--threads 1 8] [--postgres URL]

Orders are placed beforehand; each measured unit is what "Pay with Bitcoin" does: take the next
derivation index (counter row, UPDATE ... RETURNING), derive the address locally with embit,
insert the invoice and commit. With several threads (PostgreSQL) they contend for the counter
row exactly as several app servers would.
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime

from bitcoin_common import scratch_database, shop_app
from sqlalchemy import func, select

from shop.orders.models import Order
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.models import BitcoinInvoice
from tests.bitcoin.conftest import RATE, place


def measure(url, tmp, invoices: int, threads: int) -> float:
    app = shop_app(url, tmp, None)
    database = app.extensions["shop.db"]
    method = app.extensions["shop.payment_methods"]["bitcoin"]
    now = datetime.now(UTC)
    with database.job_session() as s:
        done = set(s.scalars(select(BitcoinInvoice.order_id)))
        ids = [i for i in s.scalars(select(Order.id)) if i not in done]
        for _ in range(invoices - len(ids)):
            ids.append(place(s, now=now).id)
            if len(ids) % 200 == 0:
                s.flush()
                s.expunge_all()
    ids = ids[:invoices]
    chunks = [ids[i::threads] for i in range(threads)]

    def work(chunk):
        for order_id in chunk:
            with database.job_session() as s:
                inv.create_invoice(
                    s,
                    s.get(Order, order_id),
                    method.descriptor,
                    method.policy,
                    inv.LockedRate(RATE),
                    now=now,
                )

    workers = [threading.Thread(target=work, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    with database.job_session() as s:
        count, distinct = s.execute(
            select(func.count(), func.count(func.distinct(BitcoinInvoice.derivation_index)))
        ).one()
    assert count == distinct, "an index was handed out twice"
    database.dispose()
    return invoices / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    for threads in args.threads:
        with scratch_database(args.postgres) as (url, tmp):
            rate = measure(url, tmp, args.invoices, threads)
        print(f"{backend}, {threads} thread(s): {rate:.0f} invoices/s", flush=True)


if __name__ == "__main__":
    main()
