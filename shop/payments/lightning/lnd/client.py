"""LND's REST API: invoices, their settlement stream, the node's state and channels.

TLS is pinned: only the node's own certificate (from a file) is trusted, whatever the host name
says, so nobody between the shop and the node can hand out their own invoices. Every request
carries the restricted macaroon in the `Grpc-Metadata-macaroon` header.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from shop import budget
from shop.payments.lightning.backend import (
    LightningError,
    NodeHttps,
    NodeInfo,
    NodeInvoice,
    pinned_context,
    ts,
)
from shop.payments.lightning.lnd.macaroon import check_file

STATES = {"OPEN": "open", "SETTLED": "settled", "CANCELED": "canceled", "ACCEPTED": "open"}


class LndRest:
    name = "lnd"

    def __init__(self, url: str, macaroon_path: str, cert_path: str, timeout: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be https://host:port (LND's REST port, usually 8080)")
        self.timeout = timeout
        self.macaroon_hex = check_file(macaroon_path).hex()
        self.https = NodeHttps(parts.hostname, parts.port or 443, pinned_context(cert_path))

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        left = budget.remaining()
        timeout = self.timeout if left is None else min(self.timeout, left)
        if timeout <= 0:
            raise LightningError("no time left to ask the Lightning node")
        payload = json.dumps(body) if body is not None else None
        try:
            status, raw = self.https.request(method, path, payload, self._headers(), timeout)
        except (OSError, http.client.HTTPException) as exc:
            # (If an invoice was made before the connection broke, it stays unused and expires.)
            raise LightningError(f"LND unreachable: {exc}") from None
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise LightningError(f"LND answered {status} without JSON") from None
        if status == 404 and path.startswith("/v1/invoice/"):
            return {}
        if status != 200:
            message = data.get("message") if isinstance(data, dict) else None
            raise LightningError(
                f"LND refused {path.split('?')[0]}: {status} {message or ''}".strip()
            )
        return data

    def _headers(self) -> dict[str, str]:
        return {"Grpc-Metadata-macaroon": self.macaroon_hex, "Content-Type": "application/json"}

    # -- LightningBackend ------------------------------------------------------------------

    def create_invoice(
        self, amount_msat: int, description: str, expiry_seconds: int, label: str
    ) -> tuple[str, str]:
        # `private` asks LND to add route hints for private channels, so a node reachable only
        # through them can still be paid.
        data = self._call(
            "POST",
            "/v1/invoices",
            {
                "value_msat": str(amount_msat),
                "memo": description,
                "expiry": str(expiry_seconds),
                "private": True,
            },
        )
        try:
            payment_hash = base64.b64decode(data["r_hash"]).hex()
            return payment_hash, data["payment_request"]
        except (KeyError, ValueError, TypeError):
            raise LightningError("LND's invoice answer lacks r_hash or payment_request") from None

    def lookup(self, payment_hash: str) -> NodeInvoice | None:
        data = self._call("GET", f"/v1/invoice/{payment_hash}")
        return invoice_from(data) if data else None

    def stream(self, after_index: int) -> LndStream:
        return LndStream(self, after_index)

    def info(self) -> NodeInfo:
        info = self._call("GET", "/v1/getinfo")
        channels = self._call("GET", "/v1/channels?active_only=true").get("channels", [])
        inbound = 0
        for ch in channels:
            # What the peer could still push to us: their balance less the reserve they keep.
            spare = int(ch.get("remote_balance", 0)) - int(
                ch.get("remote_constraints", {}).get("chan_reserve_sat", 0)
            )
            inbound += max(spare, 0) * 1000
        return NodeInfo(
            pubkey=info.get("identity_pubkey", ""),
            synced=bool(info.get("synced_to_chain")),
            block_height=int(info.get("block_height", 0)),
            inbound_msat=inbound,
            active_channels=len(channels),
        )


def invoice_from(data: dict) -> NodeInvoice:
    try:
        state = STATES.get(data.get("state", "OPEN"), "open")
        return NodeInvoice(
            payment_hash=base64.b64decode(data["r_hash"]).hex(),
            bolt11=data.get("payment_request", ""),
            state=state,
            amount_msat=int(data.get("value_msat", 0)),
            received_msat=int(data.get("amt_paid_msat", 0)),
            settled_at=ts(data.get("settle_date")) if state == "settled" else None,
            index=int(data.get("settle_index", 0)),
        )
    except (KeyError, ValueError, TypeError):
        raise LightningError("LND sent an invoice we cannot read") from None


class LndStream:
    """`GET /v1/invoices/subscribe?settle_index=N`: newline-delimited JSON objects, each
    `{"result": Invoice}` or `{"error": ...}`. LND first replays the invoices settled after N,
    then sends every change as it happens; only settlements are passed on."""

    def __init__(self, client: LndRest, after_index: int):
        self.client, self.after_index = client, after_index
        self._conn: http.client.HTTPSConnection | None = None

    def __iter__(self) -> Iterator[NodeInvoice]:
        conn = self._conn = self.client.https.connect(None)
        try:
            conn.request(
                "GET",
                f"/v1/invoices/subscribe?settle_index={self.after_index}",
                headers=self.client._headers(),
            )
            response = conn.getresponse()
            if response.status != 200:
                raise LightningError(f"LND refused the invoice subscription: {response.status}")
            while True:
                line = response.readline()
                if not line:
                    return  # the node closed the stream: reconnect from the stored index
                if not line.endswith(b"\n"):
                    # The connection dropped mid-message: that message is not trusted, and the
                    # reconnect replays it (its settle index was never stored).
                    return
                try:
                    message = json.loads(line)
                except ValueError:
                    raise LightningError("LND's invoice stream sent something unreadable") from None
                if "error" in message:
                    raise LightningError(f"LND's invoice stream failed: {message['error']}")
                invoice = invoice_from(message.get("result", {}))
                if invoice.state == "settled":
                    yield invoice
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
            # (http.client raises ValueError/AttributeError when the socket is closed under it.)
            if self._conn is None:
                return  # closed on purpose
            raise LightningError(f"LND's invoice stream broke: {exc!r}") from None
        finally:
            self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
