"""A reader of the transaction wire format that keeps only what the chain watcher uses.

The watcher looks at each output's script and value, each input's previous outpoint and
sequence number, and the txid of the few transactions that concern us. python-bitcoinlib builds
every script, input and witness of every transaction (most of a 4,000-transaction block's time,
witnesses alone about 40 % of it, and we never read them). This reader skips witnesses and
computes the txid only when asked: double SHA-256 of the serialisation without marker, flag and
witnesses (BIP 141), so segwit and legacy transactions get the txid every other tool shows.

The objects carry python-bitcoinlib's attribute names (``vin[i].prevout.hash``/``.n``,
``nSequence``, ``vout[n].nValue``/``.scriptPubKey``, ``GetTxid()``), so the watcher reads either.
tests/bitcoin/test_rawtx.py compares both parsers on segwit and legacy transactions.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple


class OutPoint(NamedTuple):
    hash: bytes  # little-endian, as in CTransaction (b2lx shows it)
    n: int


class TxIn(NamedTuple):
    prevout: OutPoint
    nSequence: int  # noqa: N815 - python-bitcoinlib's name


class TxOut(NamedTuple):
    nValue: int  # noqa: N815
    scriptPubKey: bytes  # noqa: N815


class Tx:
    __slots__ = ("vin", "vout", "_parts", "_txid")

    def __init__(self, vin: list[TxIn], vout: list[TxOut], parts: tuple[memoryview, ...]) -> None:
        self.vin = vin
        self.vout = vout
        # Slices of the serialisation whose hash is the txid, joined only if it is asked for
        # (the watcher needs the txid of the few transactions that concern it).
        self._parts = parts
        self._txid: bytes | None = None

    def GetTxid(self) -> bytes:  # noqa: N802 - python-bitcoinlib's name
        if self._txid is None:
            legacy = b"".join(self._parts)
            self._txid = hashlib.sha256(hashlib.sha256(legacy).digest()).digest()
            self._parts = ()
        return self._txid


class ParseError(ValueError):
    """The bytes are not a well-formed transaction or block."""


_SIZES = {0xFD: 2, 0xFE: 4, 0xFF: 8}


def _varint(b: memoryview, i: int) -> tuple[int, int]:
    v = b[i]
    if v < 0xFD:
        return v, i + 1
    end = i + 1 + _SIZES[v]
    return int.from_bytes(b[i + 1 : end], "little"), end


def _read_tx(b: memoryview, i: int) -> tuple[Tx, int]:
    start = i
    i += 4  # version
    segwit = b[i] == 0
    if segwit:
        if b[i + 1] != 1:
            raise ParseError("unknown segwit flag")
        i += 2
    body = i
    n_in, i = _varint(b, i)
    vin = []
    for _ in range(n_in):
        prevout = OutPoint(bytes(b[i : i + 32]), int.from_bytes(b[i + 32 : i + 36], "little"))
        size, i = _varint(b, i + 36)
        i += size
        vin.append(TxIn(prevout, int.from_bytes(b[i : i + 4], "little")))
        i += 4
    n_out, i = _varint(b, i)
    vout = []
    for _ in range(n_out):
        value = int.from_bytes(b[i : i + 8], "little", signed=True)  # CAmount is int64
        size, i = _varint(b, i + 8)
        vout.append(TxOut(value, bytes(b[i : i + size])))
        i += size
    body_end = i
    if segwit:
        for _ in range(n_in):
            items, i = _varint(b, i)
            for _ in range(items):
                size, i = _varint(b, i)
                i += size
    i += 4  # lock time
    if i > len(b):
        raise ParseError("truncated transaction")
    parts: tuple[memoryview, ...]
    if segwit:  # BIP 141: the txid leaves out marker, flag and witnesses
        parts = (b[start : start + 4], b[body:body_end], b[i - 4 : i])
    else:
        parts = (b[start:i],)
    return Tx(vin, vout, parts), i


def _whole(parse, raw: bytes):
    b = memoryview(raw)
    try:
        result, end = parse(b)
    except (IndexError, KeyError) as exc:
        raise ParseError(f"truncated or malformed: {exc}") from None
    if end != len(b):
        raise ParseError("trailing bytes after the data")
    return result


def parse_tx(raw: bytes) -> Tx:
    return _whole(lambda b: _read_tx(b, 0), raw)


def parse_block_txs(raw: bytes) -> tuple[bytes, list[Tx]]:
    """The 80-byte header (for the caller to hash) and the block's transactions."""

    def parse(b: memoryview):
        if len(b) < 81:
            raise ParseError("shorter than a block header")
        count, i = _varint(b, 80)
        vtx = []
        for _ in range(count):
            tx, i = _read_tx(b, i)
            vtx.append(tx)
        return (bytes(b[:80]), vtx), i

    return _whole(parse, raw)
