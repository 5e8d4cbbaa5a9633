"""Local stand-ins for exchanges' public BTC tickers, for tests.

Each `FakeExchange` is a real HTTP server on 127.0.0.1 (port 0: the OS picks a free one) that
answers the exchange's real public ticker path with the exchange's real response shape:

* kraken    GET /0/public/Ticker?pair=XBTEUR  {"error": [], "result": {"XXBTZEUR": {"a":..,"c":..}}}
* bitstamp  GET /api/v2/ticker/btceur/        {"timestamp": "<unix s>", "last": "..", ...}
* coinbase  GET /v2/prices/BTC-EUR/spot       {"data": {"amount": "..", "base": "BTC", ...}}
* gemini    GET /v1/pubticker/btceur          {"last": "..", "volume": {"timestamp": <ms>}, ...}

Knobs for failure tests: `mode` ("ok", "http500", "malformed", "api_error", "html"), `delay`
(seconds before answering), `timestamp` (the exchange clock for formats that carry one), and
`set_cookie` (to check no cookie is ever sent back). Every request is recorded in `requests`
with its path and headers, so tests can check what left the shop.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Kraken answers under its own pair names; these are the ones it really uses.
KRAKEN_PAIRS = {
    "USD": "XXBTZUSD",
    "EUR": "XXBTZEUR",
    "GBP": "XXBTZGBP",
    "JPY": "XXBTZJPY",
    "CAD": "XXBTZCAD",
    "CHF": "XBTCHF",
    "AUD": "XBTAUD",
}

KINDS = ("kraken", "bitstamp", "coinbase", "gemini")


class FakeExchange:
    def __init__(self, kind: str, prices: dict[str, str] | None = None):
        assert kind in KINDS, kind
        self.kind = kind
        self.prices: dict[str, str] = dict(prices or {})
        self.mode = "ok"
        self.delay = 0.0
        self.timestamp: datetime | None = None  # None: "now" on the exchange's clock
        self.set_cookie = False
        self.requests: list[dict] = []
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeExchange:
        exchange = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                exchange.requests.append({"path": self.path, "headers": dict(self.headers)})
                if exchange.delay:
                    time.sleep(exchange.delay)
                status, body, ctype = exchange.answer(self.path)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    if exchange.set_cookie:
                        self.send_header("Set-Cookie", "__cf_bm=tracking; Path=/")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name=f"fake-{self.kind}"
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- answers -----------------------------------------------------------------------------
    def _now(self) -> datetime:
        return self.timestamp or datetime.now(UTC)

    def answer(self, raw_path: str) -> tuple[int, bytes, str]:
        if self.mode == "http500":
            return 500, b'{"message": "Internal Server Error"}', "application/json"
        if self.mode == "html":  # what a CDN in front of an exchange says when it is down
            return 502, b"<html><body>502 Bad Gateway</body></html>", "text/html"
        if self.mode == "malformed":
            return 200, b'{"result": {"XXBTZEUR": {"c": ["87', "application/json"
        status, doc = getattr(self, f"_{self.kind}")(urlsplit(raw_path))
        return status, json.dumps(doc).encode(), "application/json"

    def _kraken(self, url):
        pair = parse_qs(url.query).get("pair", [""])[0]
        currency = pair[3:] if pair.startswith("XBT") else ""
        if (
            url.path != "/0/public/Ticker"
            or self.mode == "api_error"
            or currency not in self.prices
        ):
            # Kraken reports errors with HTTP 200 and a list of "<severity><category>:<msg>".
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        p = self.prices[currency]
        return 200, {
            "error": [],
            "result": {
                KRAKEN_PAIRS[currency]: {
                    "a": [p, "1", "1.000"],
                    "b": [p, "2", "2.000"],
                    "c": [p, "0.00120000"],
                    "v": ["512.1", "2021.7"],
                    "p": [p, p],
                    "t": [21000, 75000],
                    "l": [p, p],
                    "h": [p, p],
                    "o": p,
                }
            },
        }

    def _bitstamp(self, url):
        parts = url.path.strip("/").split("/")
        currency = parts[-1][3:].upper() if len(parts) == 4 and parts[-1].startswith("btc") else ""
        if parts[:3] != ["api", "v2", "ticker"] or currency not in self.prices:
            return 404, {"status": "error", "reason": "Page not found", "code": "404"}
        if self.mode == "api_error":
            return 400, {"status": "error", "reason": "Service unavailable", "code": "API0000"}
        p = self.prices[currency]
        return 200, {
            "timestamp": str(int(self._now().timestamp())),
            "open": p,
            "high": p,
            "low": p,
            "last": p,
            "volume": "1234.5",
            "vwap": p,
            "bid": p,
            "ask": p,
            "side": "0",
            "open_24": p,
            "percent_change_24": "0.15",
        }

    def _coinbase(self, url):
        parts = url.path.strip("/").split("/")
        ok = len(parts) == 4 and parts[:2] == ["v2", "prices"] and parts[3] == "spot"
        currency = parts[2].split("-")[1] if ok and parts[2].startswith("BTC-") else ""
        if not ok or currency not in self.prices or self.mode == "api_error":
            return 404, {"errors": [{"id": "not_found", "message": "Invalid currency"}]}
        return 200, {"data": {"amount": self.prices[currency], "base": "BTC", "currency": currency}}

    def _gemini(self, url):
        parts = url.path.strip("/").split("/")
        ok = len(parts) == 3 and parts[:2] == ["v1", "pubticker"] and parts[2].startswith("btc")
        currency = parts[2][3:].upper() if ok else ""
        if not ok or currency not in self.prices or self.mode == "api_error":
            symbol = parts[-1] if parts else ""
            return 400, {
                "result": "error",
                "reason": "InvalidSymbol",
                "message": f"Supplied value '{symbol}' is not a valid symbol",
            }
        p = self.prices[currency]
        return 200, {
            "bid": p,
            "ask": p,
            "last": p,
            "volume": {
                "BTC": "1234.5",
                currency: "98765432.1",
                "timestamp": int(self._now().timestamp() * 1000),
            },
        }


class FakeExchanges:
    """All four at once, each on its own port; `base_urls` feeds `rates.build_providers`."""

    def __init__(self, prices: dict[str, dict[str, str]]):
        self.by_name = {kind: FakeExchange(kind, prices.get(kind, {})) for kind in KINDS}

    def __enter__(self) -> FakeExchanges:
        for exchange in self.by_name.values():
            exchange.start()
        return self

    def __exit__(self, *exc) -> None:
        for exchange in self.by_name.values():
            exchange.stop()

    def __getitem__(self, kind: str) -> FakeExchange:
        return self.by_name[kind]

    @property
    def base_urls(self) -> dict[str, str]:
        return {kind: e.base_url for kind, e in self.by_name.items()}

    def request_count(self) -> int:
        return sum(len(e.requests) for e in self.by_name.values())


class FakeSocks5Proxy:
    """A minimal SOCKS5 server (RFC 1928: no auth, CONNECT) relaying to loopback only.

    It resolves host names itself from `hosts` (as Tor does for socks5h://), so a test can use
    names that do not resolve locally and prove the lookup went through the proxy.
    """

    def __init__(self, hosts: dict[str, str] | None = None):
        self.hosts = dict(hosts or {})
        self.connects: list[tuple[str, int]] = []
        self._server = None

    def start(self) -> FakeSocks5Proxy:
        import socketserver

        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                import socket

                conn = self.request
                try:
                    ver, nmethods = _recv(conn, 2)
                    _recv(conn, nmethods)
                    conn.sendall(b"\x05\x00")  # version 5, no authentication
                    ver, cmd, _rsv, atyp = _recv(conn, 4)
                    if atyp == 3:
                        host = _recv(conn, _recv(conn, 1)[0]).decode()
                    elif atyp == 1:
                        host = socket.inet_ntoa(_recv(conn, 4))
                    else:
                        conn.sendall(b"\x05\x08\x00\x01" + bytes(6))
                        return
                    port = int.from_bytes(_recv(conn, 2), "big")
                    proxy.connects.append((host, port))
                    target = proxy.hosts.get(host, host)
                    if cmd != 1 or not target.startswith("127."):
                        conn.sendall(b"\x05\x02\x00\x01" + bytes(6))  # not allowed
                        return
                    upstream = socket.create_connection((target, port), timeout=5)
                except (OSError, ValueError):
                    return
                conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
                _relay(conn, upstream)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name="fake-socks5"
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"socks5h://127.0.0.1:{self._server.server_address[1]}"


def _recv(conn, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


def _relay(a, b) -> None:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            events = sel.select(timeout=10)
            if not events:
                return
            for key, _ in events:
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()
        b.close()
