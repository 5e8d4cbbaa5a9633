"""Core Lightning's JSON-RPC over its unix socket, through pyln-client.

The socket is reached only by processes the node's operator lets read it; no rune is needed
there. `waitanyinvoice` with the last stored `pay_index` is the settlement stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pyln.client import LightningRpc, RpcError

from shop import budget
from shop.payments.lightning.backend import LightningError, NodeInfo, NodeInvoice, ts

STATES = {"unpaid": "open", "paid": "settled", "expired": "expired"}
WAIT_TIMED_OUT = 904
DUPLICATE_LABEL = 900  # waitanyinvoice's error code when its timeout passes without a payment


def _msat(value) -> int:
    # Older releases wrote "1000msat"; current ones plain integers.
    if isinstance(value, str) and value.endswith("msat"):
        value = value[:-4]
    return int(value or 0)


class _BoundedRpc(LightningRpc):
    """pyln-client opens a socket per call and waits on it without end: a node that accepts and
    never answers would hold a web request (and its thread) for good. Every read and write here
    gives up after `timeout` seconds, or what is left of the request's time budget."""

    def __init__(self, socket_path: str, timeout: float):
        super().__init__(socket_path)
        self.timeout = timeout

    def _writeobj(self, sock, obj):
        left = budget.remaining()
        timeout = self.timeout if left is None else min(self.timeout, left)
        if timeout <= 0:
            raise TimeoutError("no time left to ask the Lightning node")
        if sock.sock is not None:
            sock.sock.settimeout(timeout)
        return super()._writeobj(sock, obj)


class ClnRpc:
    name = "cln"

    # waitanyinvoice returns after this long without a payment: a blocked socket call cannot be
    # interrupted, so this bounds how long stopping the worker waits for the stream.
    def __init__(self, socket_path: str, wait_seconds: int = 5, timeout: float = 10.0):
        if not os.path.isabs(socket_path):
            raise ValueError("must be the absolute path of lightningd's lightning-rpc socket")
        self.rpc = _BoundedRpc(socket_path, timeout)
        # waitanyinvoice answers after up to wait_seconds on purpose: its own, longer bound.
        self.stream_rpc = _BoundedRpc(socket_path, timeout + wait_seconds)
        self.wait_seconds = wait_seconds

    def _call(self, method: str, **params):
        try:
            return self.rpc.call(method, params)
        except RpcError as exc:
            raise LightningError(
                f"Core Lightning refused {method}: {exc.error.get('message', exc.error)}"
            ) from None
        except (OSError, ValueError, TypeError) as exc:
            raise LightningError(f"Core Lightning unreachable: {exc}") from None

    def create_invoice(
        self, amount_msat: int, description: str, expiry_seconds: int, label: str
    ) -> tuple[str, str]:
        # Core Lightning adds route hints for private channels by itself when it needs them.
        try:
            data = self.rpc.call(
                "invoice",
                {
                    "amount_msat": amount_msat,
                    "label": label,
                    "description": description,
                    "expiry": expiry_seconds,
                },
            )
        except RpcError as exc:
            if not (isinstance(exc.error, dict) and exc.error.get("code") == DUPLICATE_LABEL):
                raise LightningError(
                    f"Core Lightning refused invoice: {getattr(exc, 'error', exc)}"
                ) from None
            # An earlier attempt made it and its answer was lost: the label makes that one ours.
            found = self._call("listinvoices", label=label).get("invoices", [])
            if (
                not found
                or _msat(found[0].get("amount_msat")) != amount_msat
                or found[0].get("status") != "unpaid"
            ):
                raise LightningError(
                    f"Core Lightning has another invoice labelled {label}"
                ) from None
            data = found[0]
        except (OSError, ValueError, TypeError) as exc:
            raise LightningError(f"Core Lightning unreachable: {exc}") from None
        try:
            return data["payment_hash"], data["bolt11"]
        except (KeyError, TypeError):
            raise LightningError("Core Lightning's invoice answer lacks bolt11") from None

    def lookup(self, payment_hash: str) -> NodeInvoice | None:
        found = self._call("listinvoices", payment_hash=payment_hash).get("invoices", [])
        return invoice_from(found[0]) if found else None

    def stream(self, after_index: int) -> ClnStream:
        return ClnStream(self, after_index)

    def info(self) -> NodeInfo:
        info = self._call("getinfo")
        channels = self._call("listpeerchannels").get("channels", [])
        normal = [
            c
            for c in channels
            if c.get("state") == "CHANNELD_NORMAL" and c.get("peer_connected", True)
        ]
        return NodeInfo(
            pubkey=info.get("id", ""),
            synced=not info.get("warning_bitcoind_sync")
            and not info.get("warning_lightningd_sync"),
            block_height=int(info.get("blockheight", 0)),
            inbound_msat=sum(_msat(c.get("receivable_msat", 0)) for c in normal),
            active_channels=len(normal),
        )


def invoice_from(data: dict) -> NodeInvoice:
    try:
        state = STATES.get(data.get("status", "unpaid"), "open")
        return NodeInvoice(
            payment_hash=data["payment_hash"],
            bolt11=data.get("bolt11", ""),
            state=state,
            amount_msat=_msat(data.get("amount_msat", 0)),
            received_msat=_msat(data.get("amount_received_msat", 0)),
            settled_at=ts(data.get("paid_at")) if state == "settled" else None,
            index=int(data.get("pay_index", 0)),
        )
    except (KeyError, ValueError, TypeError):
        raise LightningError("Core Lightning sent an invoice we cannot read") from None


class ClnStream:
    """Each `waitanyinvoice lastpay_index` call returns the next invoice paid after it."""

    def __init__(self, client: ClnRpc, after_index: int):
        self.client, self.index = client, after_index
        self.closed = False

    def __iter__(self) -> Iterator[NodeInvoice]:
        while not self.closed:
            try:
                data = self.client.stream_rpc.call(
                    "waitanyinvoice",
                    {"lastpay_index": self.index, "timeout": self.client.wait_seconds},
                )
            except RpcError as exc:
                if isinstance(exc.error, dict) and exc.error.get("code") == WAIT_TIMED_OUT:
                    return  # nothing paid meanwhile: the listener reconciles, then waits again
                raise LightningError(
                    f"Core Lightning's waitanyinvoice failed: {exc.error}"
                ) from None
            except (OSError, ValueError, TypeError) as exc:
                if self.closed:
                    return
                raise LightningError(f"Core Lightning unreachable: {exc}") from None
            invoice = invoice_from(data)
            self.index = max(self.index, invoice.index)
            if invoice.state == "settled":
                yield invoice

    def close(self) -> None:
        self.closed = True
