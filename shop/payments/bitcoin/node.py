"""A small, read-only client for the merchant's own Bitcoin Core node.

Only non-wallet RPCs are used, so the node may run with ``disablewallet=1``
and with pruning; the shop never asks the node to hold keys or to index
addresses. Payment detection works from blocks and the mempool alone.

Every failure surfaces as a ``NodeError`` subclass: callers never need to
know about sockets, ``http.client`` or python-bitcoinlib exceptions.

About ``bitcoin.SelectParams``: python-bitcoinlib keeps the chain parameters
in a process-wide global that only matters for address encoding, default RPC
ports and reading ``bitcoin.conf``. This module never touches it: the RPC URL
is always explicit, addresses come from embit (see ``descriptor.py``), and
``CBlock``/``CTransaction`` deserialisation does not consult the global. So
one process can talk to a regtest node in tests and a mainnet node in
production without the two stepping on each other.
"""

from __future__ import annotations

import base64
import http.client
import re
import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import unquote, urlsplit

import zmq
from bitcoin.core import CBlock, CBlockHeader, CTransaction, b2lx
from bitcoin.rpc import JSONRPCError, Proxy

from shop.payments.bitcoin import rawtx

__all__ = [
    "CHAIN_TO_NETWORK",
    "NodeAuthError",
    "NodeClient",
    "NodeError",
    "NodeRPCError",
    "NodeUnavailable",
    "NodeWrongChain",
    "NodeWrongNetwork",
    "ZmqSubscriber",
    "btc_to_sats",
]

# Bitcoin Core's getblockchaininfo "chain" -> the shop's network names.
# testnet4 shares testnet's key and address formats.
CHAIN_TO_NETWORK: Final[dict[str, str]] = {
    "main": "main",
    "test": "test",
    "testnet4": "test",
    "signet": "signet",
    "regtest": "regtest",
}

RPC_IN_WARMUP: Final[int] = -28
RPC_INVALID_ADDRESS_OR_KEY: Final[int] = -5  # also "not found" for blocks and transactions
# python-bitcoinlib reports bodies it cannot parse as JSON with these codes.
_BITCOINLIB_TRANSPORT_CODES: Final[frozenset[int]] = frozenset({-342, -343, -344})

_HEX64: Final[re.Pattern[str]] = re.compile(r"[0-9a-fA-F]{64}")


class BlockTransactions(NamedTuple):
    hashPrevBlock: bytes  # noqa: N815 - the name CBlock uses, so either can be scanned
    vtx: list[rawtx.Tx]


class NodeError(Exception):
    """Anything that went wrong talking to the node."""


class NodeUnavailable(NodeError):
    """The node cannot answer right now (down, unreachable, timing out, starting up).

    Retrying later is the right reaction.
    """


class NodeAuthError(NodeUnavailable):
    """The node rejected our credentials (wrong rpcauth, or a stale cookie)."""


class NodeRPCError(NodeError):
    """The node answered with a JSON-RPC error other than "warming up"."""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        super().__init__(f"{method or 'RPC'} failed: {message} (code {code})")
        self.code = code
        self.message = message
        self.method = method


class NodeWrongNetwork(NodeError):
    """The node is on a different chain than the shop is configured for."""

    def __init__(self, expected: str, actual_chain: str) -> None:
        super().__init__(
            f"the node runs chain {actual_chain!r} but the shop is configured for {expected!r}"
        )
        self.expected = expected
        self.actual_chain = actual_chain


class NodeWrongChain(NodeError):
    """None of the blocks the shop processed is on the node's chain: another chain, not a reorg."""

    def __init__(self, remembered: int) -> None:
        super().__init__(
            f"none of the {remembered} blocks the shop processed is on the node's chain: the "
            "node is on another chain or network. Payments are left as they were; point the "
            "shop at the right node (or restore its data) to go on."
        )


def btc_to_sats(amount: Decimal | int | str) -> int:
    """Convert a BTC amount as the node prints it (parsed as Decimal) to integer satoshis."""
    value = Decimal(amount) * 100_000_000
    if value != value.to_integral_value():
        raise ValueError("amount has more than 8 decimal places")
    return int(value)


def _check_hash(value: str, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{what} must be 64 hexadecimal characters")
    return value.lower()


class _Connection(http.client.HTTPConnection):
    """HTTPConnection that supplies our credentials and remembers the last HTTP status.

    python-bitcoinlib fixes the Authorization header at construction time and
    takes the credentials from the URL without percent-decoding them. We need
    to swap credentials when bitcoind rewrites its cookie, and to tell a 401
    from a 503 when the body is not JSON; passing our own connection object is
    the hook python-bitcoinlib offers for that.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.auth_header: str = ""
        self.last_status: int | None = None

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, Any] | None = None,
        *,
        encode_chunked: bool = False,
    ) -> None:
        merged = dict(headers or {})
        merged["Authorization"] = self.auth_header
        self.last_status = None
        super().request(method, url, body, merged, encode_chunked=encode_chunked)

    def getresponse(self) -> http.client.HTTPResponse:
        response = super().getresponse()
        self.last_status = response.status
        return response


class NodeClient:
    """Read-only JSON-RPC client for Bitcoin Core.

    ``rpc_url`` is ``http://user:pass@host:port`` (percent-encode special
    characters in the password) or ``http://host:port`` together with
    ``cookie_file``, the path of bitcoind's ``.cookie``. The cookie is re-read
    when the node answers 401, because bitcoind writes a new one each start.

    Safe to share between threads: calls are serialised over one keep-alive
    connection.
    """

    def __init__(
        self,
        rpc_url: str,
        cookie_file: str | Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(rpc_url)
        if parts.scheme != "http":
            # Bitcoin Core only speaks plain HTTP; TLS belongs in a tunnel or proxy.
            raise ValueError("the node RPC URL must start with http://")
        if not parts.hostname:
            raise ValueError("the node RPC URL has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the node RPC URL has an invalid port") from None
        if port is None:
            raise ValueError("the node RPC URL must include the port, e.g. :8332")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._host = parts.hostname
        self._port = port
        self._path = parts.path or "/"
        self._timeout = float(timeout)
        self._cookie_file = Path(cookie_file) if cookie_file is not None else None
        self._static_credentials: tuple[str, str] | None = None
        if parts.username is not None:
            self._static_credentials = (unquote(parts.username), unquote(parts.password or ""))
        elif self._cookie_file is None:
            raise ValueError("give credentials in the RPC URL or a cookie_file")
        self._auth_header: str | None = None
        self._lock = threading.Lock()
        self._proxy: Proxy | None = None
        self._connection: _Connection | None = None

    def __repr__(self) -> str:
        # Never show credentials.
        return f"NodeClient(http://{self._host}:{self._port}{self._path})"

    # -- plumbing ---------------------------------------------------------------

    def _load_auth_header(self) -> str:
        if self._static_credentials is not None:
            user, password = self._static_credentials
        else:
            assert self._cookie_file is not None
            try:
                content = self._cookie_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise NodeUnavailable(
                    f"cannot read the node's cookie file ({exc.strerror or exc}); is bitcoind "
                    "running, and may the shop's user read its data directory?"
                ) from None
            user, sep, password = content.partition(":")
            if not sep:
                raise NodeAuthError("the node's cookie file is not in user:password form")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return f"Basic {token}"

    def _ensure_proxy(self) -> tuple[Proxy, _Connection]:
        if self._auth_header is None:
            self._auth_header = self._load_auth_header()
        if self._proxy is None or self._connection is None:
            connection = _Connection(self._host, self._port, self._timeout)
            self._proxy = Proxy(
                service_url=f"http://{self._host}:{self._port}{self._path}",
                btc_conf_file=None,
                timeout=self._timeout,
                connection=connection,
            )
            self._connection = connection
        self._connection.auth_header = self._auth_header
        return self._proxy, self._connection

    def _reset(self) -> None:
        """Drop the connection; after a timeout or reset its state is unknown."""
        if self._proxy is not None:
            try:
                self._proxy.close()
            except Exception:
                pass
        self._proxy = None
        self._connection = None

    def call(self, method: str, *params: Any) -> Any:
        """Call any RPC by name. Raises only NodeError subclasses.

        Numbers with a fraction (BTC amounts) come back as Decimal, never float.
        """
        return self._guarded(method, lambda proxy: proxy.call(method, *params))

    def call_batch(self, method: str, params: Sequence[Sequence[Any]]) -> list[Any]:
        """One HTTP request for many calls of `method` (JSON-RPC 2.0 batch, which Core serves).

        Each item of the answer is the result, or a NodeRPCError for a call that failed alone.
        """
        if not params:
            return []
        request = [
            {"version": "1.1", "method": method, "params": list(p), "id": n}
            for n, p in enumerate(params)
        ]
        replies = self._guarded(method, lambda proxy: proxy._batch(request))
        if not isinstance(replies, list) or len(replies) != len(request):
            raise NodeError(f"malformed batch answer from the node to {method}")
        by_id: dict[Any, Any] = {}
        for reply in replies:
            if not isinstance(reply, dict) or "id" not in reply:
                raise NodeError(f"malformed batch answer from the node to {method}")
            error = reply.get("error")
            if error:
                code = int(error.get("code", -1)) if isinstance(error, dict) else -1
                message = str(error.get("message", "")) if isinstance(error, dict) else ""
                if code == RPC_IN_WARMUP:
                    raise NodeUnavailable(f"the node is starting up: {message}")
                by_id[reply["id"]] = NodeRPCError(code, message, method)
            else:
                by_id[reply["id"]] = reply.get("result")
        if set(by_id) != set(range(len(request))):
            raise NodeError(f"malformed batch answer from the node to {method}")
        return [by_id[n] for n in range(len(request))]

    def _guarded(self, method: str, send: Any) -> Any:
        with self._lock:
            reloaded_credentials = False
            retried_stale = False
            while True:
                proxy, connection = self._ensure_proxy()
                try:
                    return send(proxy)
                except JSONRPCError as exc:
                    error = exc.error if isinstance(getattr(exc, "error", None), dict) else {}
                    code = int(error.get("code", -1))
                    message = str(error.get("message", ""))
                    status = connection.last_status
                    if code in _BITCOINLIB_TRANSPORT_CODES:
                        if status in (401, 403):
                            if self._cookie_file is not None and not reloaded_credentials:
                                # bitcoind restarted and wrote a new cookie.
                                reloaded_credentials = True
                                self._auth_header = None
                                continue
                            raise NodeAuthError(
                                "the node rejected the RPC credentials (HTTP "
                                f"{status}); check rpcauth or the cookie file"
                            ) from None
                        if status is not None and status >= 500:
                            raise NodeUnavailable(f"the node answered HTTP {status}") from None
                        self._reset()
                        raise NodeError(
                            f"unexpected answer from the node (HTTP {status}) to {method}"
                        ) from None
                    if code == RPC_IN_WARMUP:
                        raise NodeUnavailable(f"the node is starting up: {message}") from None
                    raise NodeRPCError(code, message, method) from None
                except (
                    http.client.RemoteDisconnected,
                    BrokenPipeError,
                    ConnectionResetError,
                ) as exc:
                    # A keep-alive connection the node closed while idle fails
                    # on first use; every call here is read-only, so one retry
                    # on a fresh connection is safe.
                    self._reset()
                    if retried_stale:
                        raise NodeUnavailable(f"the node closed the connection ({exc})") from None
                    retried_stale = True
                    continue
                except TimeoutError:
                    self._reset()
                    raise NodeUnavailable(
                        f"the node did not answer {method} within {self._timeout:g}s"
                    ) from None
                except (OSError, http.client.HTTPException) as exc:
                    self._reset()
                    raise NodeUnavailable(f"cannot reach the node: {exc}") from None
                except ValueError as exc:
                    # Unparseable JSON from something that is not bitcoind.
                    self._reset()
                    raise NodeError(f"malformed answer from the node: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._reset()

    # -- chain ------------------------------------------------------------------

    def get_blockchain_info(self) -> dict[str, Any]:
        """getblockchaininfo: chain, blocks, bestblockhash, pruned, initialblockdownload, ..."""
        result = self.call("getblockchaininfo")
        if not isinstance(result, dict):
            raise NodeError("getblockchaininfo did not return an object")
        return result

    def chain_name(self) -> str:
        """Bitcoin Core's chain name: "main", "test", "testnet4", "signet" or "regtest"."""
        return str(self.get_blockchain_info()["chain"])

    def network(self) -> str:
        """The shop network name for the node's chain ("main", "test", "signet", "regtest")."""
        chain = self.chain_name()
        try:
            return CHAIN_TO_NETWORK[chain]
        except KeyError:
            raise NodeError(f"the node runs an unknown chain {chain!r}") from None

    def check_network(self, expected: str) -> None:
        """Raise NodeWrongNetwork unless the node is on ``expected`` (a shop network name)."""
        chain = self.chain_name()
        if CHAIN_TO_NETWORK.get(chain) != expected:
            raise NodeWrongNetwork(expected, chain)

    def get_block_count(self) -> int:
        return int(self.call("getblockcount"))

    def get_block_hash(self, height: int) -> str:
        """Hash of the active-chain block at ``height``, hex in display (RPC) byte order."""
        if isinstance(height, bool) or not isinstance(height, int) or height < 0:
            raise ValueError("height must be a non-negative int")
        return _check_hash(self.call("getblockhash", height), "block hash")

    def get_best_block_hash(self) -> str:
        return _check_hash(self.call("getbestblockhash"), "block hash")

    def get_block(self, block_hash: str) -> CBlock:
        """The full block, from raw bytes (``getblock <hash> 0``).

        On a pruned node, old blocks raise NodeRPCError (code -1, "pruned data").
        """
        wanted = _check_hash(block_hash, "block hash")
        raw = self.call("getblock", wanted, 0)
        try:
            block = CBlock.deserialize(bytes.fromhex(raw))
        except Exception as exc:
            raise NodeError(f"the node returned an unparseable block: {exc}") from None
        if b2lx(block.GetHash()) != wanted:
            raise NodeError("the node returned a block with a different hash than requested")
        return block

    def get_block_transactions(self, block_hash: str) -> BlockTransactions:
        """The block's header and transactions (``getblock <hash> 0``), parsed for scanning.

        Unlike ``get_block`` this builds no merkle trees, scripts or witnesses (`rawtx` reads
        only what the watcher uses): for a full block python-bitcoinlib's parse was most of the
        time. The header hash is still checked against the request.
        """
        wanted = _check_hash(block_hash, "block hash")
        raw = self.call("getblock", wanted, 0)
        try:
            header_bytes, vtx = rawtx.parse_block_txs(bytes.fromhex(raw))
            header = CBlockHeader.deserialize(header_bytes)
        except Exception as exc:
            raise NodeError(f"the node returned an unparseable block: {exc}") from None
        if b2lx(header.GetHash()) != wanted:
            raise NodeError("the node returned a block with a different hash than requested")
        return BlockTransactions(header.hashPrevBlock, vtx)

    def get_block_header(self, block_hash: str) -> dict[str, Any]:
        """Verbose getblockheader: height, confirmations (-1 once reorged out), ..."""
        result = self.call("getblockheader", _check_hash(block_hash, "block hash"), True)
        if not isinstance(result, dict):
            raise NodeError("getblockheader did not return an object")
        return result

    # -- mempool ----------------------------------------------------------------

    def get_raw_mempool(self) -> list[str]:
        result = self.call("getrawmempool")
        if not isinstance(result, list):
            raise NodeError("getrawmempool did not return a list")
        return [str(txid) for txid in result]

    def get_raw_transaction(self, txid: str, block_hash: str | None = None) -> CTransaction | None:
        """A mempool transaction, or one from ``block_hash`` if given; None if not found.

        Without ``-txindex`` Core only finds mempool transactions unless told
        which block to look in, so "not found" is an ordinary answer here.
        """
        wanted = _check_hash(txid, "txid")
        params: list[Any] = [wanted, 0]
        if block_hash is not None:
            params.append(_check_hash(block_hash, "block hash"))
        try:
            raw = self.call("getrawtransaction", *params)
        except NodeRPCError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        return _checked_tx(raw, wanted, CTransaction.deserialize)

    def get_raw_transactions(self, txids: Sequence[str]) -> dict[str, rawtx.Tx | None]:
        """Many mempool transactions in one request, parsed for scanning (`rawtx`); None for
        those no longer there."""
        wanted = [_check_hash(t, "txid") for t in txids]
        answers = self.call_batch("getrawtransaction", [[t, 0] for t in wanted])
        found: dict[str, rawtx.Tx | None] = {}
        for txid, raw in zip(wanted, answers, strict=True):
            if isinstance(raw, NodeRPCError):
                if raw.code != RPC_INVALID_ADDRESS_OR_KEY:
                    raise raw
                found[txid] = None
                continue
            found[txid] = _checked_tx(raw, txid, rawtx.parse_tx)
        return found

    def get_mempool_entry(self, txid: str) -> dict[str, Any] | None:
        """getmempoolentry, or None when the transaction is not in the mempool.

        ``entry["bip125-replaceable"]`` tells whether the payer can still
        replace it (RBF); fee fields are Decimal BTC (see ``btc_to_sats``).
        """
        try:
            result = self.call("getmempoolentry", _check_hash(txid, "txid"))
        except NodeRPCError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        if not isinstance(result, dict):
            raise NodeError("getmempoolentry did not return an object")
        return result


def _checked_tx(raw: Any, txid: str, parse: Any) -> Any:
    """Parse the hex the node returned and make sure it is the transaction asked for."""
    try:
        tx = parse(bytes.fromhex(raw))
    except Exception as exc:
        raise NodeError(f"the node returned an unparseable transaction: {exc}") from None
    if b2lx(tx.GetTxid()) != txid:
        raise NodeError("the node returned a transaction with a different txid")
    return tx


class ZmqSubscriber:
    """Wakes the payment watcher when bitcoind publishes a block or a transaction.

    Subscribes to Core's ``hashblock`` and ``rawtx`` notifications
    (``-zmqpubhashblock``/``-zmqpubrawtx``, which may share one endpoint).
    ZMQ drops messages when a subscriber is slow or reconnecting, so it is
    only a hint to poll sooner: correctness always comes from RPC polling.
    Use one instance from one thread (ZMQ sockets are not thread-safe).
    """

    def __init__(
        self,
        hashblock_endpoint: str | None = None,
        rawtx_endpoint: str | None = None,
        *,
        sequence_endpoint: str | None = None,
        max_batch: int = 1000,
    ) -> None:
        wanted: list[tuple[str, str]] = []
        if hashblock_endpoint:
            wanted.append(("hashblock", hashblock_endpoint))
        if rawtx_endpoint:
            wanted.append(("rawtx", rawtx_endpoint))
        if sequence_endpoint:
            # -zmqpubsequence: "R" says a transaction left the mempool other than by a block.
            wanted.append(("sequence", sequence_endpoint))
        if not wanted:
            raise ValueError("give at least one ZMQ endpoint")
        self._max_batch = max_batch
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        # Bounded queue: if the watcher stalls, dropping hints is harmless.
        self._socket.setsockopt(zmq.RCVHWM, 10_000)
        # Core's docs recommend TCP keepalive: idle subscriptions through NAT or
        # firewalls otherwise die silently.
        self._socket.setsockopt(zmq.TCP_KEEPALIVE, 1)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self.last_sequence: dict[str, int] = {}
        try:
            for topic, _ in wanted:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
            for endpoint in dict.fromkeys(endpoint for _, endpoint in wanted):
                self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise NodeUnavailable(f"cannot subscribe to ZMQ: {exc}") from None
        self._topics = frozenset(topic for topic, _ in wanted)

    def receive(self, timeout_ms: int) -> list[tuple[str, bytes]]:
        """Wait up to ``timeout_ms`` for notifications; return all that are queued.

        Each item is (topic, body): for "hashblock" the 32-byte block hash in
        RPC (display) byte order, for "rawtx" the serialized transaction.
        """
        messages: list[tuple[str, bytes]] = []
        try:
            if not self._poller.poll(max(0, int(timeout_ms))):
                return messages
            while len(messages) < self._max_batch:
                try:
                    parts = self._socket.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                item = self._parse(parts)
                if item is not None:
                    messages.append(item)
        except zmq.ZMQError as exc:
            raise NodeUnavailable(f"ZMQ receive failed: {exc}") from None
        return messages

    def _parse(self, parts: Sequence[bytes]) -> tuple[str, bytes] | None:
        if len(parts) < 2:
            return None
        try:
            topic = bytes(parts[0]).decode("ascii")
        except UnicodeDecodeError:
            return None
        if topic not in self._topics:
            return None
        if len(parts) >= 3 and len(parts[2]) == 4:
            self.last_sequence[topic] = int.from_bytes(parts[2], "little")
        if topic == "sequence" and len(parts[1]) not in (33, 41):
            return None  # 32-byte hash, a label, and for A/R an 8-byte mempool sequence
        return topic, bytes(parts[1])

    def close(self) -> None:
        try:
            self._socket.close(linger=0)
        finally:
            self._context.term()

    def __enter__(self) -> ZmqSubscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
