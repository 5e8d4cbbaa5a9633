"""Parsing a 4,000-transaction block: python-bitcoinlib against a scan of only what matters.

    python bench/bitcoin_parse.py [--txs 4000] [--repeat 7]

Most of the watcher's time per block went into python-bitcoinlib building every input, script,
output and witness of every transaction. Matching needs only each output's script and value,
each input's prevout (for conflicts) and, for the few transactions that pay us, the txid. This
measures the shop's reader of just that (`shop.payments.bitcoin.rawtx`, what
`NodeClient.get_block_transactions` uses) against python-bitcoinlib's full parse, and checks
both find the same paying transactions.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import time

import bitcoin_common  # noqa: F401  (puts the project on the path)
from bitcoin.core import CBlockHeader, CTransaction, b2lx
from bitcoin.core.serialize import VectorSerializer

from shop.payments.bitcoin import rawtx
from tests.bitcoin.fake_node import FakeNode


def light(raw: bytes, scripts: dict[bytes, int]) -> list[tuple[str, int, int]]:
    """What the watcher does now: shop.payments.bitcoin.rawtx, txids only for payments."""
    _, vtx = rawtx.parse_block_txs(raw)
    return [
        (b2lx(tx.GetTxid()), n, out.nValue)
        for tx in vtx
        for n, out in enumerate(tx.vout)
        if out.scriptPubKey in scripts
    ]


def bitcoinlib(raw: bytes, scripts: dict[bytes, int]) -> list[tuple[str, int, int]]:
    stream = io.BytesIO(raw)
    CBlockHeader.stream_deserialize(stream)
    vtx = VectorSerializer.stream_deserialize(CTransaction, stream)
    return [
        (b2lx(tx.GetTxid()), n, out.nValue)
        for tx in vtx
        for n, out in enumerate(tx.vout)
        if out.scriptPubKey in scripts
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    node = FakeNode()
    paid = [b"\x00\x14" + hashlib.sha256(str(i).encode()).digest()[:20] for i in range(10)]
    node.fill_block(args.txs - 1 - len(paid), include=[node.make_payment(s, 15980) for s in paid])
    raw = node.blocks[-1].serialize()
    scripts = {s: n for n, s in enumerate(paid)}
    assert sorted(bitcoinlib(raw, scripts)) == sorted(light(raw, scripts))
    print(f"{args.txs} transactions, {len(raw):,} bytes")
    for name, fn in (("python-bitcoinlib", bitcoinlib), ("rawtx (the shop)", light)):
        wall, cpu = [], []
        for _ in range(args.repeat):
            c, t = time.process_time(), time.perf_counter()
            fn(raw, scripts)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(
            f"{name:>18}: median {statistics.median(wall):.3f} s (min {min(wall):.3f}), "
            f"CPU median {statistics.median(cpu):.3f} s (min {min(cpu):.3f})"
        )


if __name__ == "__main__":
    main()
