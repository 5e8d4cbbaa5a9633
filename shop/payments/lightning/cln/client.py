"""Core Lightning's JSON-RPC: over its unix socket (pyln-client), or over HTTPS through CLNRest.

The socket is reached only by processes the node's operator lets read it; no rune is needed
there. CLNRest (`POST /v1/<method>`, JSON parameters) reaches a node on another machine: every
request carries a rune restricted to the invoice methods (checked at start-up, cln/rune.py) in
the `Rune` header, and TLS is pinned to the node's certificate from a file. Both speak the same
methods; `waitanyinvoice` with the last stored `pay_index` is the settlement stream.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from typing import Protocol
from urllib.parse import urlsplit

from pyln.client import LightningRpc, RpcError

from shop import budget
from shop.payments.lightning.backend import (
    LightningError,
    NodeHttps,
    NodeInfo,
    NodeInvoice,
    pinned_context,
    ts,
)
from shop.payments.lightning.cln.rune import check

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


class _RestTransport:
    """CLNRest: one JSON POST per call, answered 201 with the result or an error object (401/403
    for the rune, 404 for an unknown method, 500 for what lightningd refused). Node errors are
    raised as pyln-client's RpcError, so both transports read the same."""

    def __init__(self, url: str, rune: str, context, timeout: float):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be https://host:port (CLNRest's port, often 3010)")
        self.rune, self.timeout = rune, timeout
        self.https = NodeHttps(parts.hostname, parts.port or 443, context)

    def call(self, method: str, params: dict | None = None) -> dict:
        left = budget.remaining()
        timeout = self.timeout if left is None else min(self.timeout, left)
        if timeout <= 0:
            raise TimeoutError("no time left to ask the Lightning node")
        body = json.dumps(params or {})
        headers = {"Rune": self.rune, "Content-Type": "application/json"}
        try:
            status, raw = self.https.request("POST", f"/v1/{method}", body, headers, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise OSError(f"CLNRest: {exc}") from None
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise OSError(f"CLNRest answered {status} without JSON") from None
        if status in (200, 201):
            return data
        error = data if isinstance(data, dict) and "message" in data else {"message": str(data)}
        error.setdefault("code", None)
        error["message"] = f"{error['message']} (HTTP {status})"
        raise RpcError(method, params or {}, error)

    def close(self) -> None:
        self.https.close()


class _Transport(Protocol):
    def call(self, method: str, payload: dict | None = None) -> dict: ...


class ClnRpc:
    name = "cln"
    rpc: _Transport
    stream_rpc: _Transport

    # waitanyinvoice returns after this long without a payment: a blocked socket call cannot be
    # interrupted, so this bounds how long stopping the worker waits for the stream.
    def __init__(self, socket_path: str, wait_seconds: int = 5, timeout: float = 10.0):
        if not os.path.isabs(socket_path):
            raise ValueError("must be the absolute path of lightningd's lightning-rpc socket")
        self.rpc = _BoundedRpc(socket_path, timeout)
        # waitanyinvoice answers after up to wait_seconds on purpose: its own, longer bound.
        self.stream_rpc = _BoundedRpc(socket_path, timeout + wait_seconds)
        self.wait_seconds = wait_seconds

    @classmethod
    def rest(
        cls, url: str, rune_path: str, cert_path: str, wait_seconds: int = 5, timeout: float = 10.0
    ) -> ClnRpc:
        """Through CLNRest: `rune_path` holds a rune restricted to the invoice methods (anything
        broader raises RuneError), `cert_path` the certificate CLNRest serves (pinned)."""
        rune = read_rune(rune_path)
        check(rune)
        context = pinned_context(cert_path)
        client = cls.__new__(cls)
        client.rpc = _RestTransport(url, rune, context, timeout)
        client.stream_rpc = _RestTransport(url, rune, context, timeout + wait_seconds)
        client.wait_seconds = wait_seconds
        return client

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


def read_rune(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the rune file {path}: {exc}") from None


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
