"""The demo's simulated Lightning node: real BOLT11 invoices, pretend payments.

Invoices are encoded and signed for regtest ("lnbcrt…") by the `bolt11` library with a
published demo key (below): no node on a real network uses it, and regtest invoices are refused
by every mainnet wallet. "Simulate payment" settles an invoice here and hands it to the same
`service.record_settlement` the worker uses for a real node. Refused in production (settings).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags, encode

from shop.payments.lightning.backend import LightningError, NodeInfo, NodeInvoice

DEMO_NODE_KEY = "5f2b1c0e4d9a8b7c6d5e4f30291a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f41"
MIN_FINAL_CLTV = 18


def sign_invoice(
    node_key_hex: str,
    amount_msat: int,
    description: str,
    payment_hash: str,
    expiry_seconds: int,
    *,
    currency: str = "bcrt",
    created: int | None = None,
    route_hints: list | None = None,
) -> str:
    """A BOLT11 invoice signed with `node_key_hex` (the payee's node key recovers from it)."""
    tags = [
        Tag(TagChar.payment_hash, payment_hash),
        Tag(TagChar.payment_secret, secrets.token_hex(32)),
        Tag(TagChar.description, description),
        Tag(TagChar.expire_time, expiry_seconds),
        Tag(TagChar.min_final_cltv_expiry, MIN_FINAL_CLTV),
    ]
    for hint in route_hints or []:
        tags.append(Tag(TagChar.route_hint, hint))
    invoice = Bolt11(
        currency=currency,
        date=created or int(time.time()),
        amount_msat=MilliSatoshi(amount_msat),
        tags=Tags(tags),
    )
    return encode(invoice, node_key_hex)


class SimulatedNode:
    name = "simulated"
    _invoices: dict[str, NodeInvoice] = {}
    _lock = threading.Lock()
    _settled = 0

    def create_invoice(
        self, amount_msat: int, description: str, expiry_seconds: int, label: str
    ) -> tuple[str, str]:
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        text = sign_invoice(DEMO_NODE_KEY, amount_msat, description, payment_hash, expiry_seconds)
        with self._lock:
            self._invoices[payment_hash] = NodeInvoice(payment_hash, text, "open", amount_msat)
        return payment_hash, text

    def lookup(self, payment_hash: str) -> NodeInvoice | None:
        with self._lock:
            return self._invoices.get(payment_hash)

    def pay(self, payment_hash: str, amount_msat: int, bolt11: str) -> NodeInvoice:
        """Settle an invoice as if a wallet had paid it (the demo's button)."""
        with self._lock:
            # After a restart of the demo the invoice is only in the database: take it from there.
            known = self._invoices.get(payment_hash) or NodeInvoice(
                payment_hash, bolt11, "open", amount_msat
            )
            if known.state == "settled":
                return known
            SimulatedNode._settled += 1
            paid = replace(
                known,
                state="settled",
                received_msat=known.amount_msat,
                settled_at=datetime.now(UTC),
                index=SimulatedNode._settled,
            )
            self._invoices[payment_hash] = paid
            return paid

    def stream(self, after_index: int):
        raise LightningError("the simulated node has no stream: payments are applied at once")

    def info(self) -> NodeInfo:
        return NodeInfo(
            pubkey="", synced=True, block_height=0, inbound_msat=10**15, active_channels=1
        )
