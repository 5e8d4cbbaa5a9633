"""An LND stand-in speaking its REST API (grpc-gateway) over real HTTPS on 127.0.0.1.

* TLS with a self-signed certificate made by `cryptography` (like lnd's tls.cert): clients must
  pin it.
* Every call needs a macaroon in the `Grpc-Metadata-macaroon` header (hex), verified against the
  node's root key, with lnd's permission per call (invoices:write for AddInvoice, ...).
* `POST /v1/invoices`, `GET /v1/invoice/{r_hash hex}`, `GET /v1/invoices`,
  `GET /v1/invoices/subscribe?settle_index=N` (chunked, newline-delimited `{"result": Invoice}`;
  replays invoices settled after N first, as lnd does), `GET /v1/getinfo`, `GET /v1/channels`.
  int64 fields are JSON strings and bytes are base64, as grpc-gateway renders them.
* Invoices are real BOLT11, signed with a test node key (keys.NODE_KEY), for regtest.

Test API: `settle`, `drop_stream_mid_message`, `repeat_next_settle`, `set_down`, `restart`,
`bake`, `invoices`, `channels`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pymacaroons import Macaroon, Verifier
from pymacaroons.serializers import BinarySerializer

from shop.payments.lightning.simulated import sign_invoice
from tests.lightning.keys import NODE_KEY, NODE_PUBKEY, bake, tls_cert

PERMISSIONS = {
    ("POST", "/v1/invoices"): ("invoices", "write"),
    ("GET", "/v1/invoice/"): ("invoices", "read"),
    ("GET", "/v1/invoices"): ("invoices", "read"),
    ("GET", "/v1/invoices/subscribe"): ("invoices", "read"),
    ("GET", "/v1/getinfo"): ("info", "read"),
    ("GET", "/v1/channels"): ("offchain", "read"),
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeLnd:
    def __init__(self, directory: Path):
        self.directory = directory
        self.cert_path, self.key_path = tls_cert(directory)
        self.root_key = secrets.token_bytes(32)
        self._ops: dict[bytes, dict[str, list[str]]] = {}
        self.lock = threading.Condition()
        self.invoices: dict[str, dict] = {}  # hash hex -> lnd Invoice JSON
        self.add_index = self.settle_index = 0
        self.channels = [
            {
                "active": True,
                "remote_pubkey": "02" + "11" * 32,
                "private": True,
                "capacity": "2000000",
                "local_balance": "500000",
                "remote_balance": "1500000",
                "remote_constraints": {"chan_reserve_sat": "20000"},
            }
        ]
        self.synced = True
        self.down = False
        self._drop_next = False
        self._repeat_next = False
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self._streams: set = set()
        self._conns: set = set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeLnd:
        fake = self

        class Handler(_Handler):
            node = fake

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="fake-lnd").start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            # Every connection goes with the node, kept-alive ones and open streams alike.
            for conn in list(self._streams | self._conns):
                try:
                    conn.shutdown(2)
                except OSError:
                    pass
            self._streams.clear()
            self._conns.clear()
            self.lock.notify_all()

    def restart(self, downtime: float = 0.0) -> None:
        """The node goes away (every connection and stream with it) and comes back on the same
        port with the same invoices, as after `systemctl restart lnd`."""
        self.stop()
        time.sleep(downtime)
        self.start()

    def __enter__(self) -> FakeLnd:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def bake(self, ops: dict[str, list[str]], name: str = "shop") -> Path:
        raw = bake(self.root_key, ops)
        self._ops[
            Macaroon.deserialize(
                base64.urlsafe_b64encode(raw).decode().rstrip("="), serializer=BinarySerializer()
            ).identifier_bytes
        ] = ops
        path = self.directory / f"{name}.macaroon"
        path.write_bytes(raw)
        return path

    # ------------------------------------------------------------ test API

    def set_down(self, down: bool) -> None:
        """Down: every call fails with 503, as when lnd is up but its wallet is locked."""
        self.down = down

    def drop_stream_mid_message(self) -> None:
        """The next message on each open stream is cut in the middle and the connection closed."""
        self._drop_next = True

    def repeat_next_settle(self) -> None:
        """The next settlement is sent twice on the stream (as after lnd's own reconnects)."""
        self._repeat_next = True

    def settle(self, payment_hash: str, at: int | None = None) -> dict:
        with self.lock:
            inv = self.invoices[payment_hash]
            if inv["state"] == "SETTLED":
                return inv
            self.settle_index += 1
            inv.update(
                state="SETTLED",
                settled=True,
                settle_date=str(at or int(time.time())),
                settle_index=str(self.settle_index),
                amt_paid_msat=inv["value_msat"],
                amt_paid_sat=inv["value"],
                amt_paid=inv["value_msat"],
            )
            self.lock.notify_all()
            return inv

    def create(self, value_msat: int, memo: str, expiry: int, private: bool) -> dict:
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        hints = None
        if private:
            hints = [_route_hint()]
        request = sign_invoice(
            NODE_KEY, value_msat, memo, payment_hash.hex(), expiry, route_hints=hints
        )
        with self.lock:
            self.add_index += 1
            inv = {
                "memo": memo,
                "r_preimage": _b64(preimage),
                "r_hash": _b64(payment_hash),
                "value": str(value_msat // 1000),
                "value_msat": str(value_msat),
                "settled": False,
                "creation_date": str(int(time.time())),
                "settle_date": "0",
                "payment_request": request,
                "expiry": str(expiry),
                "private": private,
                "add_index": str(self.add_index),
                "settle_index": "0",
                "amt_paid": "0",
                "amt_paid_sat": "0",
                "amt_paid_msat": "0",
                "state": "OPEN",
                "payment_addr": _b64(secrets.token_bytes(32)),
            }
            self.invoices[payment_hash.hex()] = inv
            self.lock.notify_all()
        return inv

    # ------------------------------------------------------------ server side helpers

    def authorise(self, header: str | None, entity: str, action: str) -> str | None:
        if not header:
            return "expected 1 macaroon, got 0"
        try:
            raw = bytes.fromhex(header)
            m = Macaroon.deserialize(
                base64.urlsafe_b64encode(raw).decode().rstrip("="), serializer=BinarySerializer()
            )
            verifier = Verifier()
            verifier.satisfy_general(lambda caveat: True)
            verifier.verify(m, self.root_key)
        except Exception:
            return "verification failed: signature mismatch after caveat verification"
        ops = self._ops.get(m.identifier_bytes, {})
        if action not in ops.get(entity, []):
            return "permission denied"
        return None


def _route_hint():
    from bolt11 import RouteHint
    from bolt11.models.routehint import Route

    return RouteHint(
        [
            Route(
                public_key="02" + "22" * 32,
                short_channel_id="1x2x3",
                base_fee=1000,
                ppm_fee=1,
                cltv_expiry_delta=40,
            )
        ]
    )


class _Handler(BaseHTTPRequestHandler):
    node: FakeLnd
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.node.lock:
            self.node._conns.add(self.connection)

    def finish(self) -> None:
        with self.node.lock:
            self.node._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        node = self.node
        parts = urlsplit(self.path)
        node.requests.append((method, parts.path))
        key = (
            (method, "/v1/invoice/")
            if parts.path.startswith("/v1/invoice/")
            else (method, parts.path)
        )
        if key not in PERMISSIONS:
            self._send(404, {"code": 5, "message": "Not Found"})
            return
        denied = node.authorise(self.headers.get("Grpc-Metadata-macaroon"), *PERMISSIONS[key])
        if denied:
            self._send(500, {"code": 2, "message": denied, "details": []})
            return
        if node.down:
            self._send(
                503, {"code": 14, "message": "wallet locked, unlock it to enable full RPC access"}
            )
            return
        query = parse_qs(parts.query)
        if key == ("POST", "/v1/invoices"):
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            inv = node.create(
                int(body.get("value_msat", 0)),
                body.get("memo", ""),
                int(body.get("expiry", 86400)),
                bool(body.get("private")),
            )
            self._send(
                200,
                {
                    "r_hash": inv["r_hash"],
                    "payment_request": inv["payment_request"],
                    "add_index": inv["add_index"],
                    "payment_addr": inv["payment_addr"],
                },
            )
        elif key == ("GET", "/v1/invoice/"):
            inv = node.invoices.get(parts.path.rsplit("/", 1)[1])
            if inv is None:
                self._send(404, {"code": 5, "message": "unable to locate invoice"})
            else:
                self._send(200, inv)
        elif key == ("GET", "/v1/invoices"):
            offset = int(query.get("index_offset", ["0"])[0])
            found = [i for i in node.invoices.values() if int(i["add_index"]) > offset]
            self._send(
                200,
                {
                    "invoices": found,
                    "first_index_offset": str(offset + 1),
                    "last_index_offset": str(node.add_index),
                },
            )
        elif key == ("GET", "/v1/getinfo"):
            self._send(
                200,
                {
                    "identity_pubkey": NODE_PUBKEY,
                    "alias": "fake-lnd",
                    "synced_to_chain": node.synced,
                    "synced_to_graph": True,
                    "block_height": 150,
                    "num_active_channels": len(node.channels),
                    "chains": [{"chain": "bitcoin", "network": "regtest"}],
                },
            )
        elif key == ("GET", "/v1/channels"):
            self._send(200, {"channels": [c for c in node.channels if c["active"]]})
        else:
            self._subscribe(int(query.get("settle_index", ["0"])[0]))

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _subscribe(self, settle_index: int) -> None:
        node = self.node
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        conn = self.connection
        with node.lock:
            node._streams.add(conn)
            # lnd replays what was settled after the client's settle_index (0: nothing).
            backlog = sorted(
                (
                    i
                    for i in node.invoices.values()
                    if settle_index and int(i["settle_index"]) > settle_index
                ),
                key=lambda i: int(i["settle_index"]),
            )
            seen_add, seen_settle = node.add_index, node.settle_index
        try:
            for inv in backlog:
                self._chunk(json.dumps({"result": inv}).encode() + b"\n")
            while True:
                with node.lock:
                    while (node.add_index, node.settle_index) == (seen_add, seen_settle):
                        if conn not in node._streams:
                            return
                        node.lock.wait(0.5)
                    news = [
                        i
                        for i in node.invoices.values()
                        if int(i["add_index"]) > seen_add or int(i["settle_index"]) > seen_settle
                    ]
                    seen_add, seen_settle = node.add_index, node.settle_index
                    drop, node._drop_next = node._drop_next, False
                    repeat = node._repeat_next and any(i["state"] == "SETTLED" for i in news)
                    if repeat:
                        node._repeat_next = False
                for inv in news:
                    line = json.dumps({"result": inv}).encode() + b"\n"
                    if drop:
                        self._chunk(line[: len(line) // 2])
                        conn.shutdown(2)
                        return
                    self._chunk(line)
                    if repeat and inv["state"] == "SETTLED":
                        self._chunk(line)
        except OSError:
            return
        finally:
            with node.lock:
                node._streams.discard(conn)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")
