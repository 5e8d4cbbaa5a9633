"""A Core Lightning stand-in speaking its JSON-RPC over a real unix socket.

Framing as lightningd: JSON-RPC 2.0 request objects in, each response a JSON object followed by
a blank line ("\\n\\n"), errors as `{"code", "message"}` with lightningd's codes (900 duplicate
label, 904 waitanyinvoice timed out). Commands: `invoice`, `listinvoices`, `waitanyinvoice`,
`getinfo`, `listpeerchannels`, `listfunds`. Invoices are real BOLT11 signed with a test node key.

With `rest=True` it also serves CLNRest as the node's REST plugin does: HTTPS with a
self-signed certificate, `POST /v1/<method>` with the JSON parameters as body, the rune in the
`Rune` header (missing: 403, code 1501; not one this node issued or its restrictions not met: 401,
code 1502), the result with status 201, lightningd's errors with 500 (unknown method: 404).
Runes are issued by `rune(...)`: 32 bytes of authentication code (an HMAC of the restrictions
under the node's secret) and the restriction text, base64url.

Test API: `pay`, `drop_next_wait_mid_message`, `restart`, `set_down`, `calls`, `rune`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import socketserver
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shop.payments.lightning.simulated import sign_invoice
from tests.lightning.keys import NODE_KEY, NODE_PUBKEY, tls_cert


class FakeCln:
    def __init__(self, directory: Path, rest: bool = False):
        self.socket_path = str(directory / "lightning-rpc")
        self.rest = rest
        self.rest_port = 0
        self.rest_server: ThreadingHTTPServer | None = None
        self.rest_requests: list[tuple[str, str | None]] = []  # (path, Rune header)
        self._master = secrets.token_bytes(32)
        if rest:
            self.cert_path, self.key_path = tls_cert(directory, "clnrest")
        self.lock = threading.Condition()
        self.invoices: dict[str, dict] = {}  # label -> invoice
        self.pay_index = 0
        self.receivable_msat = 1_500_000_000
        self.calls: list[str] = []
        self.down = False
        self._drop_next_wait = False
        self.waiting = 0  # waitanyinvoice calls blocked right now
        self.server: socketserver.ThreadingUnixStreamServer | None = None
        self._conns: set[socket.socket] = set()

    def start(self) -> FakeCln:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        server.daemon_threads = True
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="fake-cln").start()
        if self.rest:
            self._start_rest()
        return self

    def _start_rest(self) -> None:
        fake = self

        class Handler(_RestHandler):
            node = fake

        rest = ThreadingHTTPServer(("127.0.0.1", self.rest_port), Handler)
        rest.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        rest.socket = ctx.wrap_socket(rest.socket, server_side=True)
        self.rest_port = rest.server_address[1]
        self.rest_server = rest
        threading.Thread(target=rest.serve_forever, daemon=True, name="fake-clnrest").start()

    @property
    def rest_url(self) -> str:
        return f"https://127.0.0.1:{self.rest_port}"

    def stop(self) -> None:
        if self.rest_server is not None:
            self.rest_server.shutdown()
            self.rest_server.server_close()
            self.rest_server = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._conns.clear()
            self.lock.notify_all()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def restart(self, downtime: float = 0.0) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()

    def __enter__(self) -> FakeCln:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ test API

    def set_down(self, down: bool) -> None:
        """Down: the socket is gone, as when lightningd is not running."""
        if down:
            self.stop()
        else:
            self.start()

    def rune(self, *restrictions: list[str]) -> str:
        """A rune of this node: each argument one restriction (its alternatives), as
        `lightning-cli createrune restrictions='[["method=invoice", ...], ...]'` makes it."""
        text = "&".join(
            "|".join(a.replace("\\", "\\\\").replace("|", "\\|").replace("&", "\\&") for a in alts)
            for alts in restrictions
        )
        code = hmac.new(self._master, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(code + text.encode()).decode()

    def check_rune(self, rune: str | None, method: str) -> tuple[int, dict] | None:
        """None when `rune` lets `method` through, else the (status, error) CLNRest answers."""
        if not rune:
            return 403, {"code": 1501, "message": "Not authorized: Missing rune"}
        from shop.payments.lightning.cln.rune import RuneError, restrictions

        try:
            raw = base64.urlsafe_b64decode(rune + "=" * (-len(rune) % 4))
            rules = restrictions(rune)
        except (RuneError, ValueError):
            return 401, {"code": 1502, "message": "Not authorized: Not a valid rune"}
        expected = hmac.new(self._master, raw[32:], hashlib.sha256).digest()
        if not hmac.compare_digest(raw[:32], expected):
            return 401, {"code": 1502, "message": "Not authorized: Not derived from master"}
        for alternatives in rules:
            if not any(_passes(alt, method) for alt in alternatives):
                return 401, {
                    "code": 1502,
                    "message": f"Not authorized: method is not allowed ({method})",
                }
        return None

    def drop_next_wait_mid_message(self) -> None:
        self._drop_next_wait = True

    def pay(self, payment_hash: str, at: int | None = None) -> dict:
        with self.lock:
            inv = next(i for i in self.invoices.values() if i["payment_hash"] == payment_hash)
            if inv["status"] != "paid":
                self.pay_index += 1
                inv.update(
                    status="paid",
                    pay_index=self.pay_index,
                    amount_received_msat=inv["amount_msat"],
                    paid_at=at or int(time.time()),
                    payment_preimage=inv.pop("_preimage"),
                )
                self.lock.notify_all()
            return inv

    # ------------------------------------------------------------ server side

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            self._conns.add(conn)
        buf = b""
        decoder = json.JSONDecoder()
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while buf.strip():
                    try:
                        request, end = decoder.raw_decode(buf.decode())
                    except ValueError:
                        break  # wait for the rest of the object
                    buf = buf.decode()[end:].lstrip().encode()
                    self._answer(conn, request)
        except OSError:
            return
        finally:
            with self.lock:
                self._conns.discard(conn)

    def dispatch(self, method: str, params) -> dict:
        """{"result": ...} or {"error": {"code", "message"}}, as lightningd answers."""
        self.calls.append(method)
        handler = getattr(self, f"_rpc_{method}", None)
        if handler is None:
            return {"error": {"code": -32601, "message": f"Unknown command '{method}'"}}
        try:
            return {"result": handler(**params) if isinstance(params, dict) else handler(*params)}
        except RpcFault as fault:
            return {"error": {"code": fault.code, "message": fault.message}}

    def _answer(self, conn: socket.socket, request: dict) -> None:
        method, params = request.get("method"), request.get("params") or {}
        body = self.dispatch(method, params)
        data = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), **body}).encode()
        if method == "waitanyinvoice" and "result" in body and self._drop_next_wait:
            self._drop_next_wait = False
            conn.sendall(data[: len(data) // 2])
            conn.shutdown(socket.SHUT_RDWR)
            raise OSError("dropped on purpose")
        conn.sendall(data + b"\n\n")

    def _public(self, inv: dict) -> dict:
        return {k: v for k, v in inv.items() if not k.startswith("_")}

    def _rpc_invoice(self, amount_msat, label, description, expiry=604800, **_):
        with self.lock:
            if label in self.invoices:
                raise RpcFault(900, f"Duplicate label '{label}'")
            preimage = secrets.token_bytes(32)
            payment_hash = hashlib.sha256(preimage).hexdigest()
            now = int(time.time())
            bolt11 = sign_invoice(
                NODE_KEY, int(amount_msat), description, payment_hash, int(expiry), created=now
            )
            inv = {
                "label": label,
                "bolt11": bolt11,
                "payment_hash": payment_hash,
                "amount_msat": int(amount_msat),
                "status": "unpaid",
                "description": description,
                "expires_at": now + int(expiry),
                "created_index": len(self.invoices) + 1,
                "_preimage": preimage.hex(),
            }
            self.invoices[label] = inv
        return {
            "payment_hash": payment_hash,
            "expires_at": inv["expires_at"],
            "bolt11": bolt11,
            "payment_secret": secrets.token_hex(32),
            "created_index": inv["created_index"],
        }

    def _rpc_listinvoices(self, label=None, payment_hash=None, **_):
        with self.lock:
            found = [
                self._public(i)
                for i in self.invoices.values()
                if (label is None or i["label"] == label)
                and (payment_hash is None or i["payment_hash"] == payment_hash)
            ]
        return {"invoices": found}

    def _rpc_waitanyinvoice(self, lastpay_index=0, timeout=None, **_):
        deadline = time.monotonic() + timeout if timeout is not None else None
        with self.lock:
            self.waiting += 1
            try:
                return self._wait(lastpay_index, deadline)
            finally:
                self.waiting -= 1

    def _wait(self, lastpay_index, deadline):
        while True:  # called with self.lock held
            paid = sorted(
                (i for i in self.invoices.values() if i.get("pay_index", 0) > (lastpay_index or 0)),
                key=lambda i: i["pay_index"],
            )
            if paid:
                return self._public(paid[0])
            if self.server is None:
                raise OSError("shutting down")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise RpcFault(904, "Timed out")
            self.lock.wait(min(left, 0.5) if left is not None else 0.5)

    def _rpc_getinfo(self, **_):
        return {
            "id": NODE_PUBKEY,
            "alias": "fake-cln",
            "blockheight": 150,
            "network": "regtest",
            "num_active_channels": 1,
        }

    def _rpc_listpeerchannels(self, **_):
        return {
            "channels": [
                {
                    "peer_id": "02" + "33" * 32,
                    "peer_connected": True,
                    "state": "CHANNELD_NORMAL",
                    "private": True,
                    "total_msat": 2_000_000_000,
                    "to_us_msat": 500_000_000,
                    "receivable_msat": self.receivable_msat,
                    "spendable_msat": 480_000_000,
                }
            ]
        }

    def _rpc_listfunds(self, **_):
        return {
            "outputs": [],
            "channels": [
                {
                    "peer_id": "02" + "33" * 32,
                    "connected": True,
                    "state": "CHANNELD_NORMAL",
                    "our_amount_msat": 500_000_000,
                    "amount_msat": 2_000_000_000,
                }
            ],
        }


class RpcFault(Exception):
    def __init__(self, code: int, message: str):
        self.code, self.message = code, message


def _passes(alternative: tuple[str, str, str], method: str) -> bool:
    """One alternative of a restriction, for the fields CLNRest calls carry (the method)."""
    field, op, value = alternative
    if op == "#" or field == "":  # a comment; the rune's unique id (none is blacklisted here)
        return True
    if field != "method":
        return op == "!"  # other fields (id, time, parameters) are not given here
    return {
        "=": method == value,
        "/": method != value,
        "^": method.startswith(value),
        "$": method.endswith(value),
        "~": value in method,
    }.get(op, False)


class _RestHandler(BaseHTTPRequestHandler):
    node: FakeCln
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        node = self.node
        rune = self.headers.get("Rune")
        node.rest_requests.append((self.path, rune))
        length = int(self.headers.get("Content-Length", 0))
        params = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.startswith("/v1/"):
            self._send(404, {"code": -32601, "message": "Not Found"})
            return
        method = self.path[len("/v1/") :]
        refused = node.check_rune(rune, method)
        if refused:
            self._send(*refused)
            return
        try:
            body = node.dispatch(method, params)
        except OSError:  # the node is stopping
            self.close_connection = True
            return
        if "result" in body:
            self._send(201, body["result"])
        elif body["error"]["code"] == -32601:
            self._send(404, body["error"])
        else:
            self._send(500, body["error"])
