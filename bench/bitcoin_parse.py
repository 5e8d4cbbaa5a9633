"""Parsing a 4,000-transaction block: python-bitcoinlib against a scan of only what matters.

    python bench/bitcoin_parse.py [--txs 4000] [--repeat 7]

Most of the watcher's time per block goes into python-bitcoinlib building every input, script,
output and witness of every transaction. Matching needs only each output's script and value,
each input's prevout (for conflicts) and, for the few transactions that pay us, the txid. This
measures a prototype of such a scan (here only, not in the shop) against what the shop does
now (`NodeClient.get_block_transactions` without the RPC), and checks both find the same
paying transactions.
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

from tests.bitcoin.fake_node import FakeNode


def varint(b: memoryview, i: int) -> tuple[int, int]:
    v = b[i]
    if v < 0xFD:
        return v, i + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[v]
    return int.from_bytes(b[i + 1:i + 1 + size], "little"), i + 1 + size


def scan(raw: bytes, scripts: dict[bytes, int]) -> tuple[list[tuple[str, int, int]], int]:
    """(txid, vout, sats) of outputs to `scripts`, and how many prevouts were read."""
    b = memoryview(raw)
    count, i = varint(b, 80)
    found, prevouts = [], 0
    for _ in range(count):
        start, i = i, i + 4
        segwit = b[i] == 0 and b[i + 1] == 1
        if segwit:
            i += 2
        body = i
        n_in, i = varint(b, i)
        for _ in range(n_in):
            prevouts += 1  # b[i:i + 36] is the prevout a conflict check would look up
            size, i = varint(b, i + 36)
            i += size + 4
        n_out, i = varint(b, i)
        hits = []
        for n in range(n_out):
            value = int.from_bytes(b[i:i + 8], "little")
            size, i = varint(b, i + 8)
            if bytes(b[i:i + size]) in scripts:
                hits.append((n, value))
            i += size
        body_end = i
        if segwit:
            for _ in range(n_in):
                items, i = varint(b, i)
                for _ in range(items):
                    size, i = varint(b, i)
                    i += size
        i += 4
        if hits:
            legacy = bytes(b[start:start + 4]) + bytes(b[body:body_end]) + bytes(b[i - 4:i])
            txid = hashlib.sha256(hashlib.sha256(legacy).digest()).digest()[::-1].hex()
            found += [(txid, n, value) for n, value in hits]
    return found, prevouts


def bitcoinlib(raw: bytes, scripts: dict[bytes, int]) -> list[tuple[str, int, int]]:
    stream = io.BytesIO(raw)
    CBlockHeader.stream_deserialize(stream)
    vtx = VectorSerializer.stream_deserialize(CTransaction, stream)
    return [(b2lx(tx.GetTxid()), n, out.nValue) for tx in vtx
            for n, out in enumerate(tx.vout) if out.scriptPubKey in scripts]


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
    assert sorted(bitcoinlib(raw, scripts)) == sorted(scan(raw, scripts)[0])
    print(f"{args.txs} transactions, {len(raw):,} bytes")
    for name, fn in (("python-bitcoinlib", bitcoinlib), ("scan", scan)):
        wall, cpu = [], []
        for _ in range(args.repeat):
            c, t = time.process_time(), time.perf_counter()
            fn(raw, scripts)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(f"{name:>18}: median {statistics.median(wall):.3f} s (min {min(wall):.3f}), "
              f"CPU median {statistics.median(cpu):.3f} s (min {min(cpu):.3f})")


if __name__ == "__main__":
    main()
