"""The demo's simulated chain: pretend payments through the real invoice code.

"Simulate payment" builds a real serialized transaction paying the invoice's address and a real
regtest block (proof of work included) on top of the last stored block, and hands that block to
the same `apply_block` the chain watcher uses. Nothing is broadcast; no node is involved; the
receiving key (settings.SIMULATED_DESCRIPTOR) has no known private key. Settings validation
refuses the simulated chain in production.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

from bitcoin.core import (
    COIN,
    CBlock,
    CBlockHeader,
    COutPoint,
    CTransaction,
    CTxIn,
    CTxOut,
    b2lx,
    lx,
)
from bitcoin.core.script import OP_0, OP_TRUE, CScript
from sqlalchemy.orm import Session

from shop.payments.bitcoin.invoice import remaining_sats
from shop.payments.bitcoin.models import BitcoinInvoice
from shop.payments.bitcoin.settings import BitcoinPolicy
from shop.payments.bitcoin.watcher import WatchSet, apply_block, stored_tip

REGTEST_GENESIS_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
REGTEST_BITS = 0x207FFFFF
REGTEST_TARGET = 0x7FFFFF << (8 * (0x20 - 3))


class SimulationError(Exception):
    pass


def payment_tx(script_pubkey: bytes, sats: int) -> CTransaction:
    """A transaction paying `sats` to `script_pubkey` from a made-up coin, with change."""
    change = CScript([OP_0, secrets.token_bytes(20)])
    return CTransaction(
        [CTxIn(COutPoint(secrets.token_bytes(32), 0), CScript(), 0xFFFFFFFF)],
        [CTxOut(sats, CScript(script_pubkey)), CTxOut(50_000, change)],
        0,
        2,
    )


def mine_block(prev_hash: str, height: int, txs: list[CTransaction]) -> CBlock:
    coinbase = CTransaction(
        [CTxIn(COutPoint(), CScript([height, b"shop-demo"]), 0xFFFFFFFF)],
        [CTxOut(50 * COIN, CScript([OP_TRUE]))],
        0,
        2,
    )
    vtx = [coinbase, *txs]
    merkle_root = CBlock.build_merkle_tree_from_txs(vtx)[-1]
    n_time, nonce = int(time.time()), 0
    while True:  # regtest difficulty: about two tries
        header = CBlockHeader(0x20000000, lx(prev_hash), merkle_root, n_time, REGTEST_BITS, nonce)
        if int.from_bytes(header.GetHash(), "little") <= REGTEST_TARGET:
            break
        nonce += 1
    return CBlock(0x20000000, lx(prev_hash), merkle_root, n_time, REGTEST_BITS, nonce, vtx)


def simulate_payment(
    session: Session,
    invoice: BitcoinInvoice,
    policy: BitcoinPolicy,
    now: datetime,
    sats: int | None = None,
) -> str:
    """Pay (the rest of) `invoice` in a new simulated block; returns the txid."""
    if not invoice.simulated:
        raise SimulationError("only invoices of the simulated demo chain can be paid this way")
    sats = sats if sats is not None else remaining_sats(invoice)
    if sats <= 0:
        raise SimulationError("this invoice is already paid in full")
    tip = stored_tip(session)
    prev, height = (tip.hash, tip.height + 1) if tip else (REGTEST_GENESIS_HASH, 1)
    tx = payment_tx(bytes(invoice.script_pubkey), sats)
    block = mine_block(prev, height, [tx])
    watch = WatchSet(scripts={bytes(invoice.script_pubkey): invoice.id})
    apply_block(session, block, b2lx(block.GetHash()), height, watch, policy, now)
    return b2lx(tx.GetTxid())
