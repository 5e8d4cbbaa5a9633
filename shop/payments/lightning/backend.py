"""The small interface both Lightning nodes sit behind, with its own exception types.

The domain never sees a node's JSON or a library's errors: a backend returns `NodeInvoice`s
and `NodeInfo`, and raises `LightningError` (node unreachable, refused, or said something we
cannot use). Amounts are integer millisatoshis.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import bolt11


class LightningError(Exception):
    """The node could not be reached or refused; the message is for the merchant's logs."""


class PermissionTooBroad(LightningError):
    """The credential could spend the node's money: the shop refuses to start with it."""


@dataclass(frozen=True)
class NodeInvoice:
    payment_hash: str  # hex
    bolt11: str
    state: str  # open | settled | canceled | expired
    amount_msat: int
    received_msat: int = 0
    settled_at: datetime | None = None
    # The node's own counter of settled invoices (LND settle_index, CLN pay_index): streams
    # resume after the highest one handled.
    index: int = 0


@dataclass(frozen=True)
class NodeInfo:
    pubkey: str
    synced: bool
    block_height: int
    # What channels can still receive (the peers' side, less reserves) right now.
    inbound_msat: int
    active_channels: int


class InvoiceStream(Protocol):
    def __iter__(self) -> Iterator[NodeInvoice]:
        """Settled invoices with an index above the one the stream was opened at, in order;
        ends (or raises LightningError) when the connection drops."""

    def close(self) -> None: ...


class LightningBackend(Protocol):
    name: str  # "lnd" | "cln" | "simulated": keys the stored stream index

    def create_invoice(
        self, amount_msat: int, description: str, expiry_seconds: int, label: str
    ) -> tuple[str, str]:
        """A new invoice at the node; returns (payment hash hex, bolt11)."""

    def lookup(self, payment_hash: str) -> NodeInvoice | None: ...

    def stream(self, after_index: int) -> InvoiceStream: ...

    def info(self) -> NodeInfo: ...


def ts(seconds: int | str | None) -> datetime | None:
    if not seconds or int(seconds) <= 0:
        return None
    return datetime.fromtimestamp(int(seconds), UTC)


def check_bolt11(text: str, payment_hash: str, amount_msat: int, description: str) -> None:
    """The node's invoice is for what we asked: this hash, this amount, this description.

    A node or proxy answering with another invoice must not make customers pay someone else.
    """
    try:
        decoded = bolt11.decode(text)
    except Exception as exc:  # the library raises several unrelated types
        raise LightningError(f"the node returned an invoice that does not decode ({exc})") from None
    if decoded.payment_hash != payment_hash:
        raise LightningError("the node's invoice carries another payment hash")
    if int(decoded.amount_msat or 0) != amount_msat:
        raise LightningError(
            f"the node's invoice is for {decoded.amount_msat} msat, not {amount_msat}"
        )
    if decoded.description != description:
        raise LightningError("the node's invoice carries another description")


def pinned_context(cert_path: str) -> ssl.SSLContext:
    """TLS to the node trusting only the certificate in `cert_path` (LND's tls.cert, CLNRest's)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The pinned certificate is the only trust anchor; a node's self-signed certificate names
    # localhost and the node's addresses, which need not match how the shop reaches it.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # The file may hold the server's own certificate rather than a self-signed root (CLNRest's
    # server.pem is signed by the node's ca.pem): trust it as the anchor either way.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        ctx.load_verify_locations(cafile=cert_path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS certificate {cert_path}: {exc}") from None
    return ctx


class NodeHttps:
    """HTTPS to a node's REST port with its certificate pinned, one kept-alive connection per
    thread: a TLS handshake per call would cost more than the call (the reconcile looks up every
    open invoice). A connection the node closed meanwhile is retried once on a new one; any
    other failure is raised as the OSError or HTTPException it is, for the client to name."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext):
        self.host, self.port, self.context = host, port, context
        self._local = threading.local()

    def connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout
        )

    def request(
        self, method: str, path: str, body: str | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        for attempt in (1, 2):
            fresh = conn is None
            if conn is None:
                conn = self._local.conn = self.connect(timeout)
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self._local.conn = None
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
