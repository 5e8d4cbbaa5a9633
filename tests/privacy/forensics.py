"""The recovery script of the forensic tests: what someone holding old copies of the database
and every key the running shop still holds can decrypt.

It does not trust the shop's own bookkeeping. It searches raw bytes (database files, WAL,
backups, dumps; hex-encoded bytea too) for anything shaped like a wrapped data key, takes every
key it can find (the master keys the app was configured with, every epoch key file in the key
ring folder, and the epoch keys the app holds in memory) and tries each of them on each
candidate for each order id. A recovered data key is a decrypted record: it opens every field of
that order.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shop.privacy.crypto import Keyring

_WRAP_LABEL = b"shop/wrapped-data-key\x00"
_SEALED = 12 + 32 + 16
_HEX_RUN = re.compile(rb"\\\\?x((?:[0-9a-f]{2}){40,})")


def shop_keys(app) -> tuple[Keyring, dict[bytes, bytes]]:
    """Every key the running shop holds: master keys, and epoch keys on disk and in memory."""
    masters: Keyring = app.extensions["shop.keyring"]
    epoch_keys: dict[bytes, bytes] = {}
    ring = app.extensions.get("shop.epochs")
    if ring is not None:
        for epoch_id, key in ring.held_keys().items():
            epoch_keys[bytes.fromhex(epoch_id)] = key
    return masters, epoch_keys


def _expand(raw: bytes) -> bytes:
    """The raw bytes plus every long hex run decoded (pg_dump writes bytea as \\x…)."""
    parts = [raw]
    parts += [bytes.fromhex(m.group(1).decode()) for m in _HEX_RUN.finditer(raw)]
    return b"\x00".join(parts)


def _candidates(data: bytes, prefix: bytes) -> set[bytes]:
    found, start = set(), 0
    while (i := data.find(prefix, start)) != -1:
        blob = data[i : i + len(prefix) + _SEALED]
        if len(blob) == len(prefix) + _SEALED:
            found.add(blob)
        start = i + 1
    return found


def recover(
    raw: bytes, masters: Keyring, epoch_keys: dict[bytes, bytes], order_ids: range
) -> set[int]:
    """Order ids whose data key can be unwrapped from anything in ``raw``."""
    data = _expand(raw)
    keys: list[tuple[bytes, bytes]] = []  # (header, key)
    for key_id in masters.key_ids:
        keys.append((b"\x01" + bytes.fromhex(key_id), masters.get(key_id)._key))
    for epoch_id, key in epoch_keys.items():
        keys.append((b"\x02" + epoch_id, key))
    recovered: set[int] = set()
    for header, key in keys:
        aead = AESGCM(key)
        for blob in _candidates(data, header):
            nonce, sealed = blob[len(header) : len(header) + 12], blob[len(header) + 12 :]
            for order_id in order_ids:
                if order_id in recovered:
                    continue
                try:
                    aead.decrypt(nonce, sealed, _WRAP_LABEL + header + f"order:{order_id}".encode())
                except InvalidTag:
                    continue
                recovered.add(order_id)
    return recovered


def read_tree(*roots: Path) -> bytes:
    """Every regular file under ``roots`` (that this process may read), concatenated."""
    chunks = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            try:
                chunks.append(path.read_bytes())
            except OSError:
                continue
    return b"\x00".join(chunks)
