"""The watcher's light transaction reader against python-bitcoinlib's full parse."""

from __future__ import annotations

import io

import pytest
from bitcoin.core import (
    CBlock,
    CBlockHeader,
    CMutableTransaction,
    CTransaction,
    CTxIn,
    CTxOut,
    b2lx,
)
from bitcoin.core.script import CScript
from bitcoin.core.serialize import VectorSerializer

from shop.payments.bitcoin import rawtx
from shop.payments.bitcoin.node import NodeClient, NodeError
from tests.bitcoin.fake_node import GENESIS_BLOCK, random_p2wpkh


def facts(tx) -> tuple:
    return (
        b2lx(tx.GetTxid()),
        [(bytes(i.prevout.hash), i.prevout.n, i.nSequence) for i in tx.vin],
        [(int(o.nValue), bytes(o.scriptPubKey)) for o in tx.vout],
    )


def legacy_copy(node, *, scriptsig: bytes, outputs) -> CTransaction:
    """A transaction without witnesses, spending a coin the fake node knows."""
    funded = node.make_payment(random_p2wpkh(), 20_000)
    return CTransaction.from_tx(
        CMutableTransaction(
            vin=[CTxIn(i.prevout, CScript(scriptsig), 0xFFFFFFFD) for i in funded.vin],
            vout=[CTxOut(v, CScript(s)) for s, v in outputs],
            nLockTime=7,
            nVersion=1,
        )
    )


def full_parse(raw: bytes) -> tuple[CBlockHeader, list[CTransaction]]:
    stream = io.BytesIO(raw)
    return CBlockHeader.stream_deserialize(stream), VectorSerializer.stream_deserialize(
        CTransaction, stream
    )


def test_blocks_parse_the_same_as_python_bitcoinlib(node):
    big_script = bytes([0x6A, 0x4D, 0x2C, 0x01]) + bytes(300)  # a varint of 0xFD form
    legacy = legacy_copy(
        node,
        scriptsig=bytes(range(120)),
        outputs=[(random_p2wpkh(), 5_000), (big_script, 0), (random_p2wpkh(), 2**40)],
    )
    segwit = [
        node.make_payment(
            random_p2wpkh(), 15_000, rbf=True, extra_outputs=[(random_p2wpkh(), 1_000)] * 3
        )
    ]
    block_hash = node.fill_block(20, include=[legacy, *segwit])
    client = NodeClient(node.url, timeout=5)
    blocks = [
        GENESIS_BLOCK,
        CBlock.deserialize(bytes.fromhex(client.call("getblock", block_hash, 0))),
    ]
    for block in blocks:
        raw = block.serialize()
        header, light = rawtx.parse_block_txs(raw)
        full_header, full = full_parse(raw)
        assert header == full_header.serialize()
        assert [facts(t) for t in light] == [facts(t) for t in full]
        assert any(t.has_witness() for t in full) == (block is not GENESIS_BLOCK)
        assert any(not t.has_witness() for t in full)
    fetched = client.get_block_transactions(block_hash)
    assert [facts(t) for t in fetched.vtx] == [facts(t) for t in blocks[1].vtx]
    assert b2lx(GENESIS_BLOCK.vtx[0].GetTxid()) == (
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    )
    assert facts(rawtx.parse_tx(legacy.serialize())) == facts(legacy)
    assert facts(rawtx.parse_tx(segwit[0].serialize())) == facts(segwit[0])


@pytest.mark.parametrize("cut", [1, 10, 41, 60])
def test_malformed_transactions_are_refused(node, cut):
    raw = node.make_payment(random_p2wpkh(), 15_000).serialize()
    with pytest.raises(rawtx.ParseError):
        rawtx.parse_tx(raw[:-cut])
    with pytest.raises(rawtx.ParseError):
        rawtx.parse_tx(raw + b"\x00")


def test_an_unparseable_block_is_a_node_error(node, monkeypatch):
    block_hash = node.fill_block(2)
    client = NodeClient(node.url, timeout=5)
    real = client.call
    monkeypatch.setattr(client, "call", lambda *a: real(*a)[:-10])
    with pytest.raises(NodeError):
        client.get_block_transactions(block_hash)
