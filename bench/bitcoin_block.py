"""Time to process a full block (~3,000 transactions) with 1k, 10k and 100k watched addresses.

    python bench/bitcoin_block.py [--watched 1000 10000 100000] [--txs 3000] [--blocks 3]
                                  [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

For each size: a scratch database with that many open invoices (synthetic scriptPubKeys inserted
in bulk), a FakeNode serving real regtest blocks over JSON-RPC, and the real ChainWatcher. Each
measured block holds `--txs` transactions of which 10 pay watched invoices; the time is one
`sync()`: fetch (`getblock <hash> 0`), parse, match, record, judge, commit. "fetch+parse" is the
part spent in NodeClient.get_block_transactions.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bitcoin_common import bulk_watched, scratch_database, shop_app

from shop.payments.bitcoin.node import NodeClient
from shop.payments.bitcoin.watcher import ChainWatcher
from tests.bitcoin.fake_node import FakeNode


def run(watched: int, txs: int, blocks: int, postgres: str | None) -> dict[str, float]:
    with scratch_database(postgres) as (url, tmp), FakeNode() as node:
        app = shop_app(url, tmp, node)
        database = app.extensions["shop.db"]
        method = app.extensions["shop.payment_methods"]["bitcoin"]
        scripts = bulk_watched(database, watched)
        client = NodeClient(node.url, timeout=30)
        fetch: list[float] = []
        original = client.get_block_transactions

        def timed_get_block(block_hash):
            t = time.perf_counter()
            try:
                return original(block_hash)
            finally:
                fetch.append(time.perf_counter() - t)

        client.get_block_transactions = timed_get_block
        watcher = ChainWatcher(database, client, method.policy)
        watcher.sync()
        times, cold = [], None
        for b in range(blocks + 1):
            payers = [
                node.make_payment(scripts[(b * 10 + i) * 7 % watched], 15980) for i in range(10)
            ]
            node.fill_block(txs - len(payers), include=payers)
            fetch.clear()
            if b == 0:
                watcher.watch.loaded_at = None  # first block after a start: loads the watch set
            t = time.perf_counter()
            result = watcher.sync()
            elapsed = time.perf_counter() - t
            assert result.blocks == 1, result
            if b == 0:
                cold = elapsed
            else:
                times.append(elapsed)
        app.extensions["shop.db"].dispose()
        return {
            "watched": watched,
            "cold": cold,
            "median": statistics.median(times),
            "max": max(times),
            "fetch_parse": fetch[0] if fetch else float("nan"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watched", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--txs", type=int, default=3000)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{backend}, {args.txs} transactions per block, 10 paying watched invoices")
    print(f"{'watched':>8} {'first block':>12} {'median':>8} {'max':>8} {'fetch+parse':>12}")
    for n in args.watched:
        r = run(n, args.txs, args.blocks, args.postgres)
        print(
            f"{r['watched']:>8} {r['cold']:>11.3f}s {r['median']:>7.3f}s {r['max']:>7.3f}s "
            f"{r['fetch_parse']:>11.3f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
