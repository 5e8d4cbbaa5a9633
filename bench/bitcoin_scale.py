"""The chain watcher at 1,000,000 watched addresses: watch list, memory, blocks, restart.

    python bench/bitcoin_scale.py [--watched 1000000] [--txs 4000] [--mempool 5000] [--payers 10]
                                  [--repeat 5] [--profile full block restart]
                                  [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Goals (issue 11): a 4,000-transaction block in <= 0.3 s, restart to caught up with a
5,000-transaction mempool in <= 5 s, worker memory <= 300 MB, all with 1M watched.

The invoices are inserted with one INSERT ... SELECT per table (generate_series on PostgreSQL,
a recursive CTE on SQLite): the ORM would take far longer than everything measured here. Each
has a distinct P2WPKH script, 0x0014 + the first 20 bytes of sha256(str(index)), so the
benchmark can pay invoice i without reading the table back.

The FakeNode runs in a child process and is driven over a pipe, so building its blocks and
answering RPCs (bitcoind's work, in C++ on its own cores in production) does not share this
process's interpreter lock; what is timed here is the shop's side only: RPC round trips,
parsing, matching, the database. Each time is printed as wall clock and as the CPU time this
process used meanwhile: on a shared machine the first depends on the neighbours, the second
much less (the database server's and the node's CPU are not in it).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import multiprocessing
import os
import pstats
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from bitcoin_common import scratch_database, shop_app
from sqlalchemy import Integer, String, bindparam, cast, event, func, insert, literal, select, text

from shop.db import UTCDateTime
from shop.orders.models import Order
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.payments.bitcoin.node import NodeClient
from shop.payments.bitcoin.watcher import ChainWatcher, WatchSet

SATS = 15980


def script_for(i: int) -> bytes:
    return b"\x00\x14" + hashlib.sha256(str(i).encode()).digest()[:20]


# ------------------------------------------------------------------ the node, in its own process


def _node_process(conn) -> None:
    from tests.bitcoin.fake_node import FakeNode, random_p2wpkh

    with FakeNode() as node:
        conn.send(node.url)
        while True:
            command, args = conn.recv()
            if command == "stop":
                break
            if command == "mempool":  # fillers + payments to `scripts`, accepted one by one
                fillers, scripts = args
                for script in scripts:
                    node.add_to_mempool(node.make_payment(script, SATS))
                for i in range(fillers):
                    node.add_to_mempool(node.make_payment(random_p2wpkh(), 10_000 + i))
                conn.send(len(node.mempool))
            elif command == "block":  # the mempool, payments to `scripts` and fillers
                fillers, scripts = args
                payers = [node.make_payment(script, SATS) for script in scripts]
                conn.send(node.fill_block(fillers, include=payers))
        conn.send(None)


class RemoteNode:
    def __init__(self) -> None:
        self._conn, child = multiprocessing.get_context("fork").Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_node_process, args=(child,), daemon=True
        )
        self._process.start()
        self.url = self._conn.recv()

    def mempool(self, fillers: int, scripts: list[bytes]) -> int:
        self._conn.send(("mempool", (fillers, scripts)))
        return self._conn.recv()

    def block(self, fillers: int, scripts: list[bytes] = ()) -> str:
        self._conn.send(("block", (fillers, list(scripts))))
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send(("stop", None))
        self._conn.recv()
        self._process.join(10)


# ------------------------------------------------------------------ seeding in bulk


def seed(database, count: int) -> float:
    """`count` open Bitcoin orders and invoices, one INSERT ... SELECT each; returns seconds."""
    now = datetime.now(UTC)
    postgres = database.is_postgres
    if postgres:
        series = text("SELECT generate_series(0, :last) AS i")
    else:
        series = text(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
            "WHERE i < :last) SELECT i FROM s"
        )
    s = series.bindparams(last=count - 1).columns(i=Integer).subquery("s")
    i_text = cast(s.c.i, String)
    at = bindparam("now", now, type_=UTCDateTime())
    expires = bindparam("expires", now + timedelta(hours=1), type_=UTCDateTime())
    monitor = bindparam("monitor", now + timedelta(days=7), type_=UTCDateTime())
    orders = select(
        literal("B-") + i_text,
        literal("bench-token-") + i_text,
        literal("bench-ref-") + i_text,
        literal("pending_payment"),
        literal("EUR"),
        literal(799),
        literal(0),
        literal(0),
        literal(799),
        literal(52),
        literal(0),
        literal(0),
        literal(False),
        literal(""),
        literal("DE"),
        literal("bitcoin"),
        at,
        expires,
    ).select_from(s)
    order_cols = [
        "number",
        "token",
        "ref",
        "status",
        "currency",
        "subtotal",
        "shipping",
        "shipping_tax_rate_bp",
        "total",
        "vat_total",
        "amount_paid",
        "amount_refunded",
        "requires_shipping",
        "shipping_method",
        "country",
        "payment_method",
        "placed_at",
        "expires_at",
    ]
    index = cast(func.substr(Order.number, 3), Integer)
    if postgres:
        script = func.decode("0014", "hex").op("||")(
            func.substr(func.sha256(func.convert_to(cast(index, String), "UTF8")), 1, 20)
        )
    else:
        script = func.bench_script(index)
    invoices = select(
        Order.id,
        literal("bench"),
        index,
        literal("synthetic-") + Order.number,
        script,
        literal(SATS),
        literal(799),
        literal("EUR"),
        literal("50000"),
        literal("new"),
        literal(""),
        literal(""),
        literal(""),
        at,
        expires,
        monitor,
        literal(False),
        literal(0),
        literal(0),
        literal(0),
        literal(0),
        literal(""),
        literal(False),
    ).where(Order.number.like("B-%"))
    invoice_cols = [
        "order_id",
        "descriptor_fingerprint",
        "derivation_index",
        "address",
        "script_pubkey",
        "amount_sats",
        "order_total",
        "currency",
        "rate",
        "status",
        "exception",
        "marked",
        "mark_reason",
        "created_at",
        "expires_at",
        "monitor_until",
        "paid_reported",
        "received_sats",
        "confirmed_sats",
        "credited_sats",
        "revision",
        "flags",
        "simulated",
    ]
    t = time.perf_counter()
    with database.engine.begin() as conn:
        if not postgres:
            conn.connection.driver_connection.create_function(
                "bench_script", 1, script_for, deterministic=True
            )
        conn.execute(insert(Order).from_select(order_cols, orders))
        conn.execute(insert(BitcoinInvoice).from_select(invoice_cols, invoices))
    if postgres:  # autovacuum would; the shop never runs ANALYZE on SQLite, so no stats there
        with database.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - t


# ------------------------------------------------------------------ measuring


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


PROFILE: set[str] = set()


class Timing(float):
    """Wall-clock seconds, with the CPU seconds this process spent meanwhile in `.cpu`."""

    cpu: float


def timed(fn, what: str = "") -> Timing:
    profiler = cProfile.Profile(time.process_time) if what in PROFILE else None
    cpu = time.process_time()
    t = time.perf_counter()
    if profiler:
        profiler.enable()
    fn()
    if profiler:
        profiler.disable()
    elapsed = Timing(time.perf_counter() - t)
    elapsed.cpu = time.process_time() - cpu
    if profiler:
        print(f"--- profile of {what} ({elapsed:.3f} s)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    return elapsed


def summary(values: list[Timing]) -> str:
    cpu = [v.cpu for v in values]
    return (
        f"median {statistics.median(values):.3f} s  min {min(values):.3f}  "
        f"max {max(values):.3f}  (n={len(values)}); CPU of this process: median "
        f"{statistics.median(cpu):.3f} s  min {min(cpu):.3f}  max {max(cpu):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watched", type=int, default=1_000_000)
    parser.add_argument("--txs", type=int, default=4000)
    parser.add_argument("--mempool", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--payers",
        type=int,
        default=10,
        help="transactions per block and per mempool that pay watched invoices",
    )
    parser.add_argument("--postgres", default=None)
    parser.add_argument(
        "--profile",
        nargs="*",
        default=[],
        choices=["full", "block", "restart"],
        help="print cProfile's view of the last of these measurements",
    )
    args = parser.parse_args()
    PROFILE.update(args.profile)
    node = RemoteNode()  # forked before any database connection or thread exists here
    try:
        with scratch_database(args.postgres) as (url, tmp):
            run(args, url, tmp, node)
    finally:
        node.close()


def run(args, url, tmp, node: RemoteNode) -> None:
    app = shop_app(url, tmp, node)
    database = app.extensions["shop.db"]
    policy = app.extensions["shop.payment_methods"]["bitcoin"].policy
    backend = "PostgreSQL" if database.is_postgres else "SQLite"
    print(
        f"{backend}, {args.watched:,} watched, load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    print(f"seeded in {seed(database, args.watched):.1f} s", flush=True)
    # Invoices to pay, each once, spread over the whole range.
    rounds = iter(random.Random(11).sample(range(args.watched), args.payers * 2 * args.repeat))

    def payees() -> list[bytes]:
        return [script_for(next(rounds)) for _ in range(args.payers)]

    def new_watcher(client: NodeClient) -> ChainWatcher:
        # As `shop worker` makes it: the network check and the gap warning's query included.
        return ChainWatcher(database, client, policy, network="regtest", fingerprint="bench")

    # (c) memory, (d) the watch list: a full reload as after a start (and hourly), then the
    # incremental refresh every round does.
    gc.collect()
    reset_peak()
    before, _ = rss_mb()
    watch = WatchSet()
    full = []
    with database.job_session() as session:
        full.append(
            timed(lambda watch=watch: watch.refresh(session, datetime.now(UTC), timedelta(hours=1)))
        )
    assert len(watch.scripts) == args.watched, len(watch.scripts)
    after, peak = rss_mb()
    print(
        f"(c) RSS before loading {before:.0f} MB, with {len(watch.scripts):,} watched "
        f"{after:.0f} MB (+{after - before:.0f} MB), peak while loading {peak:.0f} MB",
        flush=True,
    )
    for r in range(args.repeat - 1):
        with database.job_session() as session:
            full.append(
                timed(
                    lambda watch=watch: watch.refresh(session, datetime.now(UTC), timedelta(0)),
                    "full" if r == args.repeat - 2 else "",
                )
            )
    incremental = []
    for _ in range(args.repeat * 4):
        with database.job_session() as session:
            incremental.append(
                timed(
                    lambda watch=watch: watch.refresh(
                        session, datetime.now(UTC), timedelta(hours=1)
                    )
                )
            )
    print(f"(d) full reload        {summary(full)}", flush=True)
    print(f"(d) incremental refresh {summary(incremental)}", flush=True)
    del watch
    gc.collect()

    # (a) steady state: the payments were seen in the mempool, then a block with `--txs`
    # transactions confirms them. Timed: one sync() (block and mempool poll).
    client = NodeClient(node.url, timeout=60)
    watcher = new_watcher(client)
    watcher.sync()
    block_times, fetch_times = [], []
    original = client.get_block_transactions

    def timed_get_block(block_hash):
        t = time.perf_counter()
        try:
            return original(block_hash)
        finally:
            fetch_times.append(time.perf_counter() - t)

    client.get_block_transactions = timed_get_block
    statements = [0]

    @event.listens_for(database.engine, "before_cursor_execute")
    def count(_conn, _cursor, statement, *_args) -> None:
        statements[0] += 1
        if os.environ.get("BENCH_SQL"):
            print("SQL", " ".join(statement.split())[:150])

    block_statements = []
    for r in range(args.repeat):
        node.mempool(0, payees())
        result = watcher.sync()
        assert result.payments == args.payers, result
        node.block(args.txs - 1 - args.payers)
        fetch_times.clear()
        results = []
        statements[0] = 0
        block_times.append(
            timed(
                lambda results=results: results.append(watcher.sync()),
                "block" if r == args.repeat - 1 else "",
            )
        )
        assert results[0].blocks == 1, results
        block_statements.append(statements[0])
    event.remove(database.engine, "before_cursor_execute", count)
    client.get_block_transactions = original
    print(
        f"(a) {args.txs}-tx block, sync()  {summary(block_times)}; fetch+parse of the last "
        f"{fetch_times[0]:.3f} s; SQL statements per block {statistics.median(block_statements):.0f}",
        flush=True,
    )

    # (b) restart: a new watcher (empty watch set, nothing seen) and fresh database
    # connections; `--mempool` transactions wait, 10 of them paying us. Timed: until the
    # first sync() returns, which is caught up.
    restart_times = []
    for r in range(args.repeat):
        node.block(0)  # mine what the last round left in the mempool
        watcher.sync()
        watcher.release()
        database.engine.dispose()
        assert node.mempool(args.mempool - args.payers, payees()) == args.mempool
        client = NodeClient(node.url, timeout=60)
        watcher = watchers = None  # a restart is a new process: the old watch set is gone
        gc.collect()
        watchers, results = [], []

        def restart(watchers=watchers, results=results, client=client) -> None:
            watchers.append(new_watcher(client))
            results.append(watchers[0].sync())

        restart_times.append(timed(restart, "restart" if r == args.repeat - 1 else ""))
        watcher, result = watchers[0], results[0]
        assert result.payments == args.payers and result.blocks == 0, result
    print(f"(b) restart, {args.mempool}-tx mempool  {summary(restart_times)}", flush=True)
    rss, peak = rss_mb()
    print(
        f"RSS at the end {rss:.0f} MB, peak {peak:.0f} MB; load average "
        f"{os.getloadavg()[0]:.1f} at the end",
        flush=True,
    )
    database.dispose()


if __name__ == "__main__":
    main()
