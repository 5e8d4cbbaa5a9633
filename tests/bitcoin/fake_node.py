"""A Bitcoin Core stand-in speaking the real regtest RPC protocol, for tests.

It serves JSON-RPC over real HTTP on 127.0.0.1 (basic auth, optionally a
Core-style ``.cookie`` file) and hands out really serialized data built with
python-bitcoinlib: blocks start from the real regtest genesis block, carry a
BIP34 coinbase (with a BIP141 witness commitment when needed), link to their
parent, have a computed merkle root and a nonce ground to meet the regtest
target. Transactions spend fake "funding" coins the node tracks, so
double-spends, RBF replacements and reorgs behave like on a real node.

Nothing here validates scripts or signatures: witnesses are dummy bytes of a
plausible shape. Tests that need consensus validation need a real bitcoind.

Python API for tests (not RPC): ``start``/``stop``, ``url``, ``base_url``,
``cookie_path``, ``make_payment``, ``add_to_mempool``, ``replace``, ``mine``,
``reorg``, ``fill_block``, ``set_down``, ``set_delay``, ``set_warmup``,
``restart``, ``prune``, ``blocks``, ``mempool``, ``zmq_endpoint``.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import zmq
from bitcoin.core import (
    COIN,
    CBlock,
    CBlockHeader,
    CMutableTransaction,
    COutPoint,
    CTransaction,
    CTxIn,
    CTxInWitness,
    CTxOut,
    CTxWitness,
    Hash,
    b2lx,
    lx,
    x,
)
from bitcoin.core.script import OP_RETURN, OP_TRUE, CScript, CScriptWitness

REGTEST_BITS = 0x207FFFFF
REGTEST_TARGET = 0x7FFFFF << (8 * (0x20 - 3))
REGTEST_GENESIS_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
REGTEST_HALVING_INTERVAL = 150
SEQUENCE_FINAL = 0xFFFFFFFF
SEQUENCE_RBF = 0xFFFFFFFD
WITNESS_COMMITMENT_HEADER = b"\xaa\x21\xa9\xed"
DEFAULT_FEE = 1_000
DEFAULT_CHANGE = 50_000

# Bitcoin Core RPC error codes used here.
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_ERROR = -25
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_IN_WARMUP = -28
RPC_INVALID_REQUEST = -32600
RPC_METHOD_NOT_FOUND = -32601
RPC_PARSE_ERROR = -32700

_GENESIS_COINBASE = CTransaction(
    [
        CTxIn(
            COutPoint(),
            CScript(
                x(
                    "04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c"
                    "6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73"
                )
            ),
            SEQUENCE_FINAL,
        )
    ],
    [
        CTxOut(
            50 * COIN,
            CScript(
                x(
                    "4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f"
                    "4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac"
                )
            ),
        )
    ],
    nLockTime=0,
    nVersion=1,
)
GENESIS_BLOCK = CBlock(
    nVersion=1,
    hashPrevBlock=b"\x00" * 32,
    nTime=1296688602,
    nBits=REGTEST_BITS,
    nNonce=2,
    vtx=[_GENESIS_COINBASE],
)
assert b2lx(GENESIS_BLOCK.GetHash()) == REGTEST_GENESIS_HASH

_DEC_MARK = re.compile(r'"@@DEC@@([-+0-9.eE]+)@@"')


class FakeNodeError(Exception):
    """Raised by the Python API when a real node would refuse the same request."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


class _RPCError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def btc(sats: int) -> Decimal:
    """Satoshis as Core prints amounts: a BTC Decimal with exactly 8 places."""
    return Decimal(sats).scaleb(-8).quantize(Decimal("0.00000001"))


def _dumps(obj: Any) -> bytes:
    # Core prints amounts as exact JSON numbers; json cannot emit a Decimal as
    # a number, so mark them and unquote afterwards.
    text = json.dumps(obj, default=lambda o: f"@@DEC@@{o}@@" if isinstance(o, Decimal) else str(o))
    return _DEC_MARK.sub(r"\1", text).encode()


def random_p2wpkh() -> bytes:
    return b"\x00\x14" + secrets.token_bytes(20)


def _dummy_witness() -> CTxInWitness:
    # Shapes of a DER signature plus sighash byte and a compressed public key.
    signature = b"\x30\x44" + secrets.token_bytes(68) + b"\x01"
    pubkey = b"\x02" + secrets.token_bytes(32)
    return CTxInWitness(CScriptWitness([signature, pubkey]))


Outpoint = tuple[bytes, int]  # (txid in internal byte order, output index)


@dataclass
class _BlockInfo:
    block: CBlock
    height: int


@dataclass
class _MempoolEntry:
    tx: CTransaction
    time: int
    height: int
    fee: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], node: FakeNode) -> None:
        self.node = node
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or drop the connection are expected here;
        # only report real bugs.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm and the client's delayed
    # ACK every answer would wait ~40 ms, which bitcoind (one buffered write) never does.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(405, b"JSONRPC server handles only POST requests")

    def do_POST(self) -> None:
        node = self.server.node
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if node._down_mode == "503":
            self._send(503)
            return
        if not node._authorized(self.headers.get("Authorization")):
            node.auth_failures += 1
            self._send(401, extra={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
            return
        if node._delay:
            time.sleep(node._delay)
        try:
            request = json.loads(raw)
        except ValueError:
            body = {
                "result": None,
                "error": {"code": RPC_PARSE_ERROR, "message": "Parse error"},
                "id": None,
            }
            self._send(500, _dumps(body))
            return
        if isinstance(request, list):
            replies = [node._handle(item)[1] for item in request]
            self._send(200, _dumps(replies))
            return
        status, reply = node._handle(request)
        self._send(status, _dumps(reply))


class FakeNode:
    """An in-process regtest node. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        user: str = "shop",
        password: str | None = None,
        cookie_dir: str | Path | None = None,
        zmq_publisher: bool = False,
        pruned: bool = False,
    ) -> None:
        self._lock = threading.RLock()
        self._user = user
        self._password = password if password is not None else secrets.token_hex(16)
        self._cookie_dir = Path(cookie_dir) if cookie_dir is not None else None
        self._cookie_password: str | None = None
        self._pruned = pruned
        self._prune_height = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._down_mode: str | None = None
        self._delay = 0.0
        self._warmup = False
        self._started_at = time.time()
        self._want_zmq = zmq_publisher
        self._zmq_context: zmq.Context[Any] | None = None
        self._zmq_socket: zmq.Socket[Any] | None = None
        self._zmq_endpoint: str | None = None
        self._zmq_sequence: dict[str, int] = {}
        self._mempool_sequence = 0
        self._tag = 0
        self.auth_failures = 0
        self.calls: list[str] = []

        self._blocks: dict[bytes, _BlockInfo] = {}
        self._chain: list[CBlock] = []
        self._chain_txs: dict[bytes, tuple[CTransaction, int]] = {}
        self._chain_spent: dict[Outpoint, bytes] = {}
        self._mempool: dict[bytes, _MempoolEntry] = {}
        self._funding: dict[Outpoint, int] = {}
        self._connect(GENESIS_BLOCK, publish=False)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> FakeNode:
        if self._cookie_dir is not None and self._cookie_password is None:
            self._write_cookie()
        if self._want_zmq and self._zmq_socket is None:
            self._zmq_context = zmq.Context()
            self._zmq_socket = self._zmq_context.socket(zmq.PUB)
            self._zmq_socket.setsockopt(zmq.LINGER, 0)
            self._zmq_socket.bind("tcp://127.0.0.1:*")
            self._zmq_endpoint = self._zmq_socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._serve()
        return self

    def _serve(self) -> None:
        server = _Server(("127.0.0.1", self._port), self)
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def _unserve(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()
        if thread is not None:
            thread.join(timeout=5)

    def stop(self) -> None:
        self._unserve()
        if self._zmq_socket is not None:
            self._zmq_socket.close(linger=0)
            self._zmq_socket = None
        if self._zmq_context is not None:
            self._zmq_context.term()
            self._zmq_context = None
        if self._cookie_path_or_none() is not None:
            # bitcoind deletes its cookie on shutdown.
            self.cookie_path.unlink(missing_ok=True)
            self._cookie_password = None

    def __enter__(self) -> FakeNode:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses and auth ------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """RPC URL without credentials (use with ``cookie_path``)."""
        return f"http://127.0.0.1:{self._port}/"

    @property
    def url(self) -> str:
        """RPC URL with the current credentials (cookie credentials in cookie mode)."""
        user, password = self._credentials()
        return f"http://{user}:{password}@127.0.0.1:{self._port}/"

    def _cookie_path_or_none(self) -> Path | None:
        return self._cookie_dir / ".cookie" if self._cookie_dir is not None else None

    @property
    def cookie_path(self) -> Path:
        path = self._cookie_path_or_none()
        if path is None:
            raise RuntimeError("this FakeNode was not started in cookie mode (pass cookie_dir)")
        return path

    @property
    def zmq_endpoint(self) -> str:
        if self._zmq_endpoint is None:
            raise RuntimeError("start the FakeNode with zmq_publisher=True")
        return self._zmq_endpoint

    def _credentials(self) -> tuple[str, str]:
        if self._cookie_dir is not None:
            if self._cookie_password is None:
                raise RuntimeError("no cookie yet: start the node first")
            return "__cookie__", self._cookie_password
        return self._user, self._password

    def _write_cookie(self) -> None:
        assert self._cookie_dir is not None
        self._cookie_dir.mkdir(parents=True, exist_ok=True)
        self._cookie_password = secrets.token_hex(32)
        path = self.cookie_path
        tmp = path.with_name(".cookie.tmp")
        tmp.write_text(f"__cookie__:{self._cookie_password}", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        try:
            expected_user, expected_password = self._credentials()
        except RuntimeError:
            return False
        return hmac.compare_digest(user, expected_user) and hmac.compare_digest(
            password, expected_password
        )

    # -- failure modes -----------------------------------------------------------------

    def restart(self) -> None:
        """Simulate a bitcoind restart: new cookie, open connections dropped, same chain."""
        with self._lock:
            if self._cookie_dir is not None:
                self._write_cookie()
        if self._server is not None:
            self._server.drop_connections()

    def set_down(self, down: bool, mode: str = "refuse") -> None:
        """Make the node unreachable: mode "refuse" closes the port, "503" answers HTTP 503."""
        if mode not in ("refuse", "503"):
            raise ValueError("mode is 'refuse' or '503'")
        if down:
            self._down_mode = mode
            if mode == "refuse":
                self._unserve()
            elif self._server is not None:
                self._server.drop_connections()
        else:
            self._down_mode = None
            if self._server is None:
                self._serve()

    def set_delay(self, seconds: float) -> None:
        """Sleep this long before answering each request (to exercise client timeouts)."""
        self._delay = max(0.0, float(seconds))

    def set_warmup(self, warming_up: bool) -> None:
        """Answer every RPC with error -28, as bitcoind does while loading."""
        self._warmup = warming_up

    def prune(self, below_height: int) -> None:
        """Drop block data below ``below_height`` (headers stay), as a pruned node does."""
        with self._lock:
            self._pruned = True
            self._prune_height = max(self._prune_height, below_height)

    # -- chain state --------------------------------------------------------------------

    @property
    def height(self) -> int:
        return len(self._chain) - 1

    @property
    def blocks(self) -> list[CBlock]:
        """Active chain, genesis first."""
        with self._lock:
            return list(self._chain)

    @property
    def mempool(self) -> dict[str, CTransaction]:
        with self._lock:
            return {b2lx(txid): entry.tx for txid, entry in self._mempool.items()}

    @property
    def tip_hash(self) -> str:
        return b2lx(self._chain[-1].GetHash())

    def _connect(self, block: CBlock, *, publish: bool = True) -> None:
        height = len(self._chain)
        self._chain.append(block)
        self._blocks[block.GetHash()] = _BlockInfo(block, height)
        for tx in block.vtx:
            txid = tx.GetTxid()
            self._chain_txs[txid] = (tx, height)
            if not tx.is_coinbase():
                for txin in tx.vin:
                    self._chain_spent[(txin.prevout.hash, txin.prevout.n)] = txid
        for tx in block.vtx:
            txid = tx.GetTxid()
            if txid in self._mempool:
                del self._mempool[txid]
        # Whatever in the mempool now conflicts with the chain is gone.
        for txid in self._conflicting_mempool_txids(block.vtx[1:]):
            self._remove_with_descendants(txid)
        if publish:
            self._publish("hashblock", block.GetHash()[::-1])
            for tx in block.vtx:
                self._publish("rawtx", tx.serialize())

    def _reindex_chain(self) -> None:
        self._chain_txs.clear()
        self._chain_spent.clear()
        for height, block in enumerate(self._chain):
            for tx in block.vtx:
                txid = tx.GetTxid()
                self._chain_txs[txid] = (tx, height)
                if not tx.is_coinbase():
                    for txin in tx.vin:
                        self._chain_spent[(txin.prevout.hash, txin.prevout.n)] = txid

    def _is_active(self, block_hash: bytes) -> bool:
        info = self._blocks.get(block_hash)
        return (
            info is not None
            and info.height < len(self._chain)
            and self._chain[info.height].GetHash() == block_hash
        )

    def _coin_value(self, outpoint: Outpoint) -> int | None:
        if outpoint in self._funding:
            return self._funding[outpoint]
        txid, n = outpoint
        source: CTransaction | None = None
        if txid in self._mempool:
            source = self._mempool[txid].tx
        elif txid in self._chain_txs:
            source = self._chain_txs[txid][0]
        if source is None or n >= len(source.vout):
            return None
        return int(source.vout[n].nValue)

    def _fee(self, tx: CTransaction) -> int:
        if tx.is_coinbase():
            return 0
        total_in = 0
        for txin in tx.vin:
            value = self._coin_value((txin.prevout.hash, txin.prevout.n))
            if value is None:
                return 0
            total_in += value
        return total_in - sum(int(out.nValue) for out in tx.vout)

    def _mempool_spender(self, outpoint: Outpoint) -> bytes | None:
        for txid, entry in self._mempool.items():
            for txin in entry.tx.vin:
                if (txin.prevout.hash, txin.prevout.n) == outpoint:
                    return txid
        return None

    def _conflicting_mempool_txids(self, txs: Iterable[CTransaction]) -> list[bytes]:
        spends = {
            (txin.prevout.hash, txin.prevout.n): tx.GetTxid()
            for tx in txs
            if not tx.is_coinbase()
            for txin in tx.vin
        }
        found: list[bytes] = []
        for txid, entry in self._mempool.items():
            for txin in entry.tx.vin:
                spender = spends.get((txin.prevout.hash, txin.prevout.n))
                if spender is not None and spender != txid:
                    found.append(txid)
                    break
        return found

    def _children(self, txid: bytes) -> list[bytes]:
        return [
            child
            for child, entry in self._mempool.items()
            if any(txin.prevout.hash == txid for txin in entry.tx.vin)
        ]

    def _parents(self, tx: CTransaction) -> list[bytes]:
        return list(
            dict.fromkeys(
                txin.prevout.hash for txin in tx.vin if txin.prevout.hash in self._mempool
            )
        )

    def _relatives(self, txid: bytes, step: Callable[[bytes], list[bytes]]) -> set[bytes]:
        seen: set[bytes] = set()
        todo = step(txid)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(step(current))
        return seen

    def _remove_with_descendants(self, txid: bytes) -> None:
        for child in self._relatives(txid, self._children):
            self._mempool.pop(child, None)
        self._mempool.pop(txid, None)

    def _signals_rbf(self, txid: bytes) -> bool:
        """BIP125: replaceable if it or any unconfirmed ancestor signals."""
        entry = self._mempool[txid]
        if any(txin.nSequence < 0xFFFFFFFE for txin in entry.tx.vin):
            return True
        return any(
            any(txin.nSequence < 0xFFFFFFFE for txin in self._mempool[a].tx.vin)
            for a in self._relatives(txid, lambda t: self._parents(self._mempool[t].tx))
        )

    # -- building transactions ----------------------------------------------------------

    def make_payment(
        self,
        script_pubkey: bytes,
        sats: int,
        *,
        rbf: bool = False,
        extra_outputs: Sequence[tuple[bytes, int]] = (),
        fee: int = DEFAULT_FEE,
        conflicts_with: CTransaction | None = None,
        change: int = DEFAULT_CHANGE,
    ) -> CTransaction:
        """Build (not broadcast) a segwit payment of ``sats`` to ``script_pubkey``.

        It spends a fresh fake coin the node remembers (worth the outputs plus
        ``fee`` plus ``change``, which goes back to a random payer script), or,
        with ``conflicts_with``, the same coins as that transaction, to model a
        double spend or an RBF replacement (the change absorbs the difference).
        """
        for value in (sats, fee, change, *(v for _, v in extra_outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError("amounts are non-negative integer satoshis")
        if sats <= 0:
            raise ValueError("a payment must be positive")
        outputs = [CTxOut(sats, CScript(script_pubkey))]
        outputs += [CTxOut(v, CScript(spk)) for spk, v in extra_outputs]
        paid = sum(int(out.nValue) for out in outputs)
        with self._lock:
            if conflicts_with is None:
                prevouts = [COutPoint(secrets.token_bytes(32), 0)]
                self._funding[(prevouts[0].hash, 0)] = paid + fee + change
                change_value = change
            else:
                prevouts = [txin.prevout for txin in conflicts_with.vin]
                available = 0
                for prevout in prevouts:
                    value = self._coin_value((prevout.hash, prevout.n))
                    if value is None:
                        raise ValueError("the conflicting transaction spends unknown coins")
                    available += value
                change_value = available - paid - fee
                if change_value < 0:
                    raise ValueError("not enough funds in the conflicting transaction's inputs")
        if change_value >= 330:  # P2WPKH dust limit; below that it simply adds to the fee
            outputs.append(CTxOut(change_value, CScript(random_p2wpkh())))
        sequence = SEQUENCE_RBF if rbf else SEQUENCE_FINAL
        tx = CMutableTransaction(
            vin=[CTxIn(prevout, CScript(), sequence) for prevout in prevouts],
            vout=outputs,
            nLockTime=0,
            nVersion=2,
            witness=CTxWitness([_dummy_witness() for _ in prevouts]),
        )
        return CTransaction.from_tx(tx)

    # -- mempool ------------------------------------------------------------------------

    def add_to_mempool(self, tx: CTransaction) -> str:
        """Accept ``tx`` like sendrawtransaction would; returns its txid (display hex)."""
        return self._accept(tx, publish=True)

    def _accept(self, tx: CTransaction, *, publish: bool) -> str:
        with self._lock:
            txid = tx.GetTxid()
            if txid in self._mempool:
                raise FakeNodeError(RPC_VERIFY_ALREADY_IN_CHAIN, "txn-already-in-mempool")
            if txid in self._chain_txs:
                raise FakeNodeError(
                    RPC_VERIFY_ALREADY_IN_CHAIN, "Transaction already in block chain"
                )
            if tx.is_coinbase():
                raise FakeNodeError(RPC_VERIFY_REJECTED, "coinbase")
            for txin in tx.vin:
                outpoint = (txin.prevout.hash, txin.prevout.n)
                if outpoint in self._chain_spent or self._coin_value(outpoint) is None:
                    raise FakeNodeError(RPC_VERIFY_ERROR, "bad-txns-inputs-missingorspent")
                if self._mempool_spender(outpoint) is not None:
                    raise FakeNodeError(RPC_VERIFY_REJECTED, "txn-mempool-conflict")
            fee = self._fee(tx)
            if fee < 0:
                raise FakeNodeError(RPC_VERIFY_REJECTED, "bad-txns-in-belowout")
            self._mempool[txid] = _MempoolEntry(tx, int(time.time()), self.height, fee)
            if publish:
                self._publish("rawtx", tx.serialize())
                self._publish_sequence(txid, b"A")
            return b2lx(txid)

    def replace(self, tx_old: CTransaction, tx_new: CTransaction) -> str:
        """RBF: evict ``tx_old`` (and its descendants) for ``tx_new``, which spends a same input.

        Like Core >= 28 (full RBF) the old one need not signal, but the
        replacement must pay a higher absolute fee.
        """
        with self._lock:
            old_txid = tx_old.GetTxid()
            if old_txid not in self._mempool:
                raise FakeNodeError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
            old_inputs = {(i.prevout.hash, i.prevout.n) for i in tx_old.vin}
            if not old_inputs & {(i.prevout.hash, i.prevout.n) for i in tx_new.vin}:
                raise ValueError("the replacement must spend at least one input of the original")
            if self._fee(tx_new) <= self._mempool[old_txid].fee:
                raise FakeNodeError(RPC_VERIFY_REJECTED, "insufficient fee")
            for txid in [old_txid, *self._conflicting_mempool_txids([tx_new])]:
                for gone in [*self._relatives(txid, self._children), txid]:
                    if gone in self._mempool:
                        self._publish_sequence(gone, b"R")
                self._remove_with_descendants(txid)
            return self.add_to_mempool(tx_new)

    # -- mining ---------------------------------------------------------------------------

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"fake" + self._tag.to_bytes(4, "little")

    def _build_block(self, prev: CBlock, height: int, txs: Sequence[CTransaction]) -> CBlock:
        subsidy = (50 * COIN) >> (height // REGTEST_HALVING_INTERVAL)
        fees = sum(self._fee(tx) for tx in txs)
        coinbase_out = [CTxOut(subsidy + fees, CScript([OP_TRUE]))]
        coinbase_in = [CTxIn(COutPoint(), CScript([height, self._next_tag()]), SEQUENCE_FINAL)]
        vtx: list[CTransaction] = [CTransaction(coinbase_in, coinbase_out, 0, 2), *txs]
        if any(tx.has_witness() for tx in txs):
            # BIP141: commit to the witness merkle root (coinbase wtxid counts as zero).
            witness_root = CBlock.build_witness_merkle_tree_from_txs(vtx)[-1]
            reserved = b"\x00" * 32
            commitment = Hash(witness_root + reserved)
            coinbase_out.append(
                CTxOut(0, CScript([OP_RETURN, WITNESS_COMMITMENT_HEADER + commitment]))
            )
            vtx[0] = CTransaction(
                coinbase_in,
                coinbase_out,
                0,
                2,
                CTxWitness([CTxInWitness(CScriptWitness([reserved]))]),
            )
        merkle_root = CBlock.build_merkle_tree_from_txs(vtx)[-1]
        n_time = max(prev.nTime + 1, int(time.time()))
        nonce = 0
        while True:
            header = CBlockHeader(
                0x20000000, prev.GetHash(), merkle_root, n_time, REGTEST_BITS, nonce
            )
            if int.from_bytes(header.GetHash(), "little") <= REGTEST_TARGET:
                break
            nonce += 1
        return CBlock(0x20000000, prev.GetHash(), merkle_root, n_time, REGTEST_BITS, nonce, vtx)

    def _check_block_txs(self, txs: Sequence[CTransaction]) -> None:
        seen: set[Outpoint] = set()
        for tx in txs:
            if tx.GetTxid() in self._chain_txs:
                raise FakeNodeError(
                    RPC_VERIFY_ALREADY_IN_CHAIN, "Transaction already in block chain"
                )
            for txin in tx.vin:
                outpoint = (txin.prevout.hash, txin.prevout.n)
                if outpoint in self._chain_spent or outpoint in seen:
                    raise FakeNodeError(RPC_VERIFY_ERROR, "bad-txns-inputs-missingorspent")
                seen.add(outpoint)

    def mine(self, n: int = 1, txs: Sequence[CTransaction] | None = None) -> list[str]:
        """Mine ``n`` blocks; the first holds ``txs`` or, by default, the whole mempool.

        Given transactions need not be in the mempool (a miner may have seen a
        double spend first); mempool transactions they conflict with are evicted.
        """
        hashes: list[str] = []
        with self._lock:
            for i in range(n):
                if i == 0:
                    chosen = (
                        list(txs) if txs is not None else [e.tx for e in self._mempool.values()]
                    )
                else:
                    chosen = []
                self._check_block_txs(chosen)
                block = self._build_block(self._chain[-1], len(self._chain), chosen)
                self._connect(block)
                hashes.append(b2lx(block.GetHash()))
        return hashes

    def fill_block(self, n_txs: int, *, include: Sequence[CTransaction] = ()) -> str:
        """Mine one block with the mempool, ``include`` and ``n_txs`` filler payments."""
        fillers = [self.make_payment(random_p2wpkh(), 10_000 + i) for i in range(n_txs)]
        with self._lock:
            txs = [e.tx for e in self._mempool.values()] + list(include) + fillers
            return self.mine(1, txs)[0]

    def reorg(
        self,
        depth: int,
        new_blocks_txs: Sequence[Sequence[CTransaction]] = (),
        *,
        include_orphaned: bool = False,
        extra_blocks: int = 1,
    ) -> list[str]:
        """Replace the last ``depth`` blocks with ``depth + extra_blocks`` new ones.

        Transactions of the dropped blocks go back to the mempool (as in
        Core) unless ``include_orphaned`` re-mines them in the first new block;
        any that conflict with ``new_blocks_txs`` (double spends) disappear.
        Returns the new blocks' hashes. Dropped blocks stay queryable with
        confirmations -1.
        """
        if not 1 <= depth < len(self._chain):
            raise ValueError("depth must be between 1 and the chain height")
        with self._lock:
            dropped = self._chain[-depth:]
            del self._chain[-depth:]
            self._reindex_chain()
            orphaned = [tx for block in dropped for tx in block.vtx[1:]]
            plan: list[list[CTransaction]] = [list(t) for t in new_blocks_txs]
            plan += [[] for _ in range(depth + extra_blocks - len(plan))]
            if include_orphaned:
                planned = {tx.GetTxid() for block_txs in plan for tx in block_txs}
                spends = {
                    (i.prevout.hash, i.prevout.n)
                    for block_txs in plan
                    for tx in block_txs
                    for i in tx.vin
                }
                plan[0] = [
                    tx
                    for tx in orphaned
                    if tx.GetTxid() not in planned
                    and not any((i.prevout.hash, i.prevout.n) in spends for i in tx.vin)
                ] + plan[0]
            # Disconnected transactions return to the mempool first, where the
            # new blocks then confirm or conflict them out.
            for tx in orphaned:
                try:
                    self._accept(tx, publish=False)
                except FakeNodeError:
                    pass
            hashes: list[str] = []
            for block_txs in plan:
                self._check_block_txs(block_txs)
                block = self._build_block(self._chain[-1], len(self._chain), block_txs)
                self._connect(block)
                hashes.append(b2lx(block.GetHash()))
            return hashes

    # -- ZMQ --------------------------------------------------------------------------------

    def _publish(self, topic: str, body: bytes) -> None:
        if self._zmq_socket is None:
            return
        sequence = self._zmq_sequence.get(topic, 0)
        self._zmq_sequence[topic] = (sequence + 1) & 0xFFFFFFFF
        self._zmq_socket.send_multipart([topic.encode(), body, sequence.to_bytes(4, "little")])

    def _publish_sequence(self, txid: bytes, label: bytes) -> None:
        """Core's -zmqpubsequence: hash in display order, a label, and for A/R the mempool
        sequence number (little-endian uint64)."""
        self._mempool_sequence += 1
        self._publish("sequence", txid[::-1] + label + self._mempool_sequence.to_bytes(8, "little"))

    # -- JSON-RPC ----------------------------------------------------------------------------

    def _handle(self, request: Any) -> tuple[int, dict[str, Any]]:
        """Answer one JSON-RPC request: (HTTP status, reply object), as Core does."""
        if not isinstance(request, dict):
            return 400, {
                "result": None,
                "error": {"code": RPC_INVALID_REQUEST, "message": "Invalid Request object"},
                "id": None,
            }
        request_id = request.get("id")
        v2 = request.get("jsonrpc") == "2.0"
        method = request.get("method")
        params = request.get("params") or []
        try:
            if not isinstance(method, str):
                raise _RPCError(RPC_INVALID_REQUEST, "Method must be a string")
            self.calls.append(method)
            if self._warmup:
                raise _RPCError(RPC_IN_WARMUP, "Loading block index…")
            handler = self._methods().get(method)
            if handler is None:
                raise _RPCError(RPC_METHOD_NOT_FOUND, "Method not found")
            function, names = handler
            if isinstance(params, dict):
                unknown = set(params) - set(names)
                if unknown:
                    raise _RPCError(
                        RPC_INVALID_PARAMETER, f"Unknown named parameter {sorted(unknown)[0]}"
                    )
                args = [params.get(name) for name in names]
                while args and args[-1] is None:
                    args.pop()
            elif isinstance(params, list):
                if len(params) > len(names):
                    raise _RPCError(
                        RPC_MISC_ERROR, f"{method} takes at most {len(names)} arguments"
                    )
                args = list(params)
            else:
                raise _RPCError(RPC_INVALID_REQUEST, "Params must be an array or object")
            with self._lock:
                result = function(*args)
        except _RPCError as exc:
            return self._error_reply(exc.code, exc.message, request_id, v2)
        except Exception as exc:  # a bug in the fake must still look like a node error
            return self._error_reply(RPC_MISC_ERROR, f"internal error: {exc!r}", request_id, v2)
        if v2:
            return 200, {"jsonrpc": "2.0", "result": result, "id": request_id}
        return 200, {"result": result, "error": None, "id": request_id}

    @staticmethod
    def _error_reply(
        code: int, message: str, request_id: Any, v2: bool
    ) -> tuple[int, dict[str, Any]]:
        error = {"code": code, "message": message}
        if v2:
            return 200, {"jsonrpc": "2.0", "error": error, "id": request_id}
        # Legacy JSON-RPC 1.0: Core maps errors onto HTTP statuses.
        status = {RPC_INVALID_REQUEST: 400, RPC_METHOD_NOT_FOUND: 404}.get(code, 500)
        return status, {"result": None, "error": error, "id": request_id}

    def _methods(self) -> dict[str, tuple[Callable[..., Any], tuple[str, ...]]]:
        return {
            "getblockchaininfo": (self._rpc_getblockchaininfo, ()),
            "getblockcount": (lambda: self.height, ()),
            "getbestblockhash": (lambda: self.tip_hash, ()),
            "getblockhash": (self._rpc_getblockhash, ("height",)),
            "getblock": (self._rpc_getblock, ("blockhash", "verbosity")),
            "getblockheader": (self._rpc_getblockheader, ("blockhash", "verbose")),
            "getrawmempool": (self._rpc_getrawmempool, ("verbose", "mempool_sequence")),
            "getrawtransaction": (self._rpc_getrawtransaction, ("txid", "verbose", "blockhash")),
            "getmempoolentry": (self._rpc_getmempoolentry, ("txid",)),
            "getmempoolinfo": (self._rpc_getmempoolinfo, ()),
            "sendrawtransaction": (
                self._rpc_sendrawtransaction,
                ("hexstring", "maxfeerate", "maxburnamount"),
            ),
            "getnetworkinfo": (self._rpc_getnetworkinfo, ()),
            "uptime": (lambda: int(time.time() - self._started_at), ()),
        }

    @staticmethod
    def _hash_param(value: Any, name: str) -> bytes:
        if not isinstance(value, str):
            raise _RPCError(
                RPC_TYPE_ERROR,
                f"JSON value of type {type(value).__name__} is not of expected type string",
            )
        if len(value) != 64:
            raise _RPCError(
                RPC_INVALID_PARAMETER,
                f"{name} must be of length 64 (not {len(value)}, for '{value}')",
            )
        try:
            return lx(value)
        except ValueError:
            raise _RPCError(
                RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{value}')"
            ) from None

    def _median_time(self, block_hash: bytes) -> int:
        times: list[int] = []
        current: bytes | None = block_hash
        while current is not None and current in self._blocks and len(times) < 11:
            block = self._blocks[current].block
            times.append(block.nTime)
            current = block.hashPrevBlock if self._blocks[current].height > 0 else None
        return int(statistics.median_low(sorted(times)))

    def _header_json(self, info: _BlockInfo) -> dict[str, Any]:
        block = info.block
        block_hash = block.GetHash()
        active = self._is_active(block_hash)
        result: dict[str, Any] = {
            "hash": b2lx(block_hash),
            "confirmations": self.height - info.height + 1 if active else -1,
            "height": info.height,
            "version": block.nVersion,
            "versionHex": f"{block.nVersion & 0xFFFFFFFF:08x}",
            "merkleroot": b2lx(block.hashMerkleRoot),
            "time": block.nTime,
            "mediantime": self._median_time(block_hash),
            "nonce": block.nNonce,
            "bits": f"{block.nBits:08x}",
            "difficulty": Decimal("4.656542373906925E-10"),
            "chainwork": f"{2 * (info.height + 1):064x}",
            "nTx": len(block.vtx),
        }
        if info.height > 0:
            result["previousblockhash"] = b2lx(block.hashPrevBlock)
        if active and info.height < self.height:
            result["nextblockhash"] = b2lx(self._chain[info.height + 1].GetHash())
        return result

    def _tx_json(self, tx: CTransaction, block_info: _BlockInfo | None = None) -> dict[str, Any]:
        vin: list[dict[str, Any]] = []
        for index, txin in enumerate(tx.vin):
            if tx.is_coinbase():
                item: dict[str, Any] = {"coinbase": txin.scriptSig.hex()}
            else:
                item = {
                    "txid": b2lx(txin.prevout.hash),
                    "vout": txin.prevout.n,
                    "scriptSig": {"asm": "", "hex": txin.scriptSig.hex()},
                }
            if tx.has_witness() and index < len(tx.wit.vtxinwit):
                stack = list(tx.wit.vtxinwit[index].scriptWitness.stack)
                if stack:
                    item["txinwitness"] = [bytes(e).hex() for e in stack]
            item["sequence"] = txin.nSequence
            vin.append(item)
        weight = tx.calc_weight()
        result: dict[str, Any] = {
            "txid": b2lx(tx.GetTxid()),
            "hash": b2lx(tx.GetHash()),
            "version": tx.nVersion,
            "size": len(tx.serialize()),
            "vsize": (weight + 3) // 4,
            "weight": weight,
            "locktime": tx.nLockTime,
            "vin": vin,
            "vout": [
                {
                    "value": btc(int(out.nValue)),
                    "n": n,
                    "scriptPubKey": {"hex": bytes(out.scriptPubKey).hex()},
                }
                for n, out in enumerate(tx.vout)
            ],
            "hex": tx.serialize().hex(),
        }
        if block_info is not None:
            active = self._is_active(block_info.block.GetHash())
            result["blockhash"] = b2lx(block_info.block.GetHash())
            result["confirmations"] = self.height - block_info.height + 1 if active else 0
            result["time"] = result["blocktime"] = block_info.block.nTime
        return result

    def _block_info(self, blockhash: Any) -> _BlockInfo:
        info = self._blocks.get(self._hash_param(blockhash, "blockhash"))
        if info is None:
            raise _RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        return info

    def _rpc_getblockchaininfo(self) -> dict[str, Any]:
        tip = self._chain[-1]
        result: dict[str, Any] = {
            "chain": "regtest",
            "blocks": self.height,
            "headers": self.height,
            "bestblockhash": self.tip_hash,
            "difficulty": Decimal("4.656542373906925E-10"),
            "time": tip.nTime,
            "mediantime": self._median_time(tip.GetHash()),
            "verificationprogress": 1,
            "initialblockdownload": False,
            "chainwork": f"{2 * (self.height + 1):064x}",
            "size_on_disk": sum(len(b.serialize()) for b in self._chain),
            "pruned": self._pruned,
            "warnings": "",
        }
        if self._pruned:
            result.update(pruneheight=self._prune_height, automatic_pruning=False)
        return result

    def _rpc_getblockhash(self, height: Any = None) -> str:
        if isinstance(height, bool) or not isinstance(height, int):
            raise _RPCError(RPC_TYPE_ERROR, "JSON value is not an integer as expected")
        if not 0 <= height <= self.height:
            raise _RPCError(RPC_INVALID_PARAMETER, "Block height out of range")
        return b2lx(self._chain[height].GetHash())

    def _rpc_getblock(self, blockhash: Any = None, verbosity: Any = 1) -> Any:
        info = self._block_info(blockhash)
        if verbosity is None:
            verbosity = 1
        if isinstance(verbosity, bool):
            verbosity = int(verbosity)
        if self._pruned and info.height < self._prune_height:
            raise _RPCError(RPC_MISC_ERROR, "Block not available (pruned data)")
        if verbosity == 0:
            return info.block.serialize().hex()
        result = self._header_json(info)
        block = info.block
        result["strippedsize"] = len(block.serialize({"include_witness": False}))
        result["size"] = len(block.serialize())
        result["weight"] = block.GetWeight()
        if verbosity == 1:
            result["tx"] = [b2lx(tx.GetTxid()) for tx in block.vtx]
        else:
            result["tx"] = [self._tx_json(tx) for tx in block.vtx]
        return result

    def _rpc_getblockheader(self, blockhash: Any = None, verbose: Any = True) -> Any:
        info = self._block_info(blockhash)
        if verbose is False or verbose == 0:
            return info.block.get_header().serialize().hex()
        return self._header_json(info)

    def _entry_json(self, txid: bytes) -> dict[str, Any]:
        entry = self._mempool[txid]
        ancestors = self._relatives(txid, lambda t: self._parents(self._mempool[t].tx))
        descendants = self._relatives(txid, self._children)

        def vsize(t: bytes) -> int:
            return (self._mempool[t].tx.calc_weight() + 3) // 4

        return {
            "vsize": vsize(txid),
            "weight": entry.tx.calc_weight(),
            "time": entry.time,
            "height": entry.height,
            "descendantcount": 1 + len(descendants),
            "descendantsize": vsize(txid) + sum(vsize(t) for t in descendants),
            "ancestorcount": 1 + len(ancestors),
            "ancestorsize": vsize(txid) + sum(vsize(t) for t in ancestors),
            "wtxid": b2lx(entry.tx.GetHash()),
            "fees": {
                "base": btc(entry.fee),
                "modified": btc(entry.fee),
                "ancestor": btc(entry.fee + sum(self._mempool[t].fee for t in ancestors)),
                "descendant": btc(entry.fee + sum(self._mempool[t].fee for t in descendants)),
            },
            "depends": [b2lx(t) for t in self._parents(entry.tx)],
            "spentby": [b2lx(t) for t in self._children(txid)],
            "bip125-replaceable": self._signals_rbf(txid),
            "unbroadcast": False,
        }

    def _rpc_getrawmempool(self, verbose: Any = False, mempool_sequence: Any = False) -> Any:
        if verbose:
            return {b2lx(txid): self._entry_json(txid) for txid in self._mempool}
        return [b2lx(txid) for txid in self._mempool]

    def _rpc_getmempoolentry(self, txid: Any = None) -> dict[str, Any]:
        key = self._hash_param(txid, "txid")
        if key not in self._mempool:
            raise _RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
        return self._entry_json(key)

    def _rpc_getmempoolinfo(self) -> dict[str, Any]:
        return {
            "loaded": True,
            "size": len(self._mempool),
            "bytes": sum((e.tx.calc_weight() + 3) // 4 for e in self._mempool.values()),
            "fullrbf": True,
        }

    def _rpc_getrawtransaction(
        self, txid: Any = None, verbose: Any = 0, blockhash: Any = None
    ) -> Any:
        key = self._hash_param(txid, "parameter 1")
        verbosity = int(verbose) if isinstance(verbose, (bool, int)) else 0
        if blockhash is not None:
            info = self._block_info(blockhash)
            found = next((tx for tx in info.block.vtx if tx.GetTxid() == key), None)
            if found is None:
                raise _RPCError(
                    RPC_INVALID_ADDRESS_OR_KEY,
                    "No such transaction found in the provided block. "
                    "Use gettransaction for wallet transactions.",
                )
            return found.serialize().hex() if verbosity == 0 else self._tx_json(found, info)
        entry = self._mempool.get(key)
        if entry is None:
            # Like a node without -txindex: confirmed transactions are not found.
            raise _RPCError(
                RPC_INVALID_ADDRESS_OR_KEY,
                "No such mempool transaction. Use -txindex or provide a block hash to enable "
                "blockchain transaction queries. Use gettransaction for wallet transactions.",
            )
        return entry.tx.serialize().hex() if verbosity == 0 else self._tx_json(entry.tx)

    def _rpc_sendrawtransaction(
        self, hexstring: Any = None, maxfeerate: Any = None, maxburnamount: Any = None
    ) -> str:
        try:
            tx = CTransaction.deserialize(bytes.fromhex(hexstring))
        except Exception:
            raise _RPCError(
                RPC_DESERIALIZATION_ERROR,
                "TX decode failed. Make sure the tx has at least one input.",
            ) from None
        try:
            return self.add_to_mempool(tx)
        except FakeNodeError as exc:
            if exc.code == RPC_VERIFY_ALREADY_IN_CHAIN and tx.GetTxid() in self._mempool:
                return b2lx(tx.GetTxid())
            raise _RPCError(exc.code, exc.message) from None

    def _rpc_getnetworkinfo(self) -> dict[str, Any]:
        return {
            "version": 270100,
            "subversion": "/Satoshi:27.1.0/",
            "protocolversion": 70016,
            "localservices": "0000000000000c09",
            "localrelay": True,
            "timeoffset": 0,
            "networkactive": True,
            "connections": 0,
            "connections_in": 0,
            "connections_out": 0,
            "networks": [],
            "relayfee": btc(1000),
            "incrementalfee": btc(1000),
            "localaddresses": [],
            "warnings": "",
        }
