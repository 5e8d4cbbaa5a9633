"""Envelope encryption for personal fields (names, emails, postal and refund addresses).

Layout
------
* One **master key** per installation, from ``SHOP_DATA_KEY`` (32 random bytes, urlsafe
  base64). It never encrypts personal data directly; it only wraps data keys, so rotating
  it means re-wrapping one short blob per order instead of re-encrypting every field.
* One random **data key** per order. It is stored only in wrapped form (``wrap_data_key``)
  next to the order, and encrypts that order's fields (``encrypt_field``).
* Every ciphertext is AES-256-GCM with a random 96-bit nonce and a ``context`` bound in
  as associated data (``b"order:123"`` for the wrapped key, ``b"order:123:email"`` for a
  field). A blob copied to another row or column therefore fails to decrypt instead of
  silently showing one customer's data on another customer's order.
* Blobs are self-describing (leading version byte; wrapped keys also record the id of the
  master key that wrapped them) so the format and the master key can change over time.

Rotation
--------
Set the new key in ``SHOP_DATA_KEY`` and the previous one(s) in ``SHOP_DATA_KEY_OLD``
(comma separated); ``Keyring.from_env`` reads both, so every order stays readable. Run the
rotation command (``rewrap`` on each wrapped key whose ``wrapped_key_id`` is not the
current key's id), then drop the old key from ``SHOP_DATA_KEY_OLD``.

Erasure
-------
Personal data is erased by destroying the order's data key: the caller sets the wrapped
data key *and* the encrypted fields to NULL in the same transaction. Nulling the fields
alone is not enough in general (a stale copy of a field blob remains readable while its
data key exists); nulling the wrapped key makes any stray copy of the fields undecryptable.

Limits worth knowing: database backups taken before the erasure still hold the wrapped key
and the fields, which the master key can open. Those copies become unreadable only when
the backups expire or when the master key that wrapped them is retired (rotate, then
remove the old key everywhere) -- the latter shreds all backup copies at once. Python
cannot reliably wipe key bytes from memory; keys live as long as the process keeps them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "CryptoError",
    "DataKeyError",
    "DecryptionError",
    "Keyring",
    "MasterKey",
    "decrypt_field",
    "encrypt_field",
    "generate_master_key_text",
    "load_master_key",
    "new_data_key",
    "rewrap",
    "unwrap_data_key",
    "wrap_data_key",
    "wrapped_key_id",
]

ENV_MASTER_KEY = "SHOP_DATA_KEY"
ENV_OLD_MASTER_KEYS = "SHOP_DATA_KEY_OLD"

KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID_BYTES = 4  # 8 hex characters

_WRAP_VERSION = 1
_FIELD_VERSION = 1
# Separate labels in the associated data keep a wrapped-key blob and a field blob from
# ever being accepted in each other's place, even if someone reuses a context string.
_WRAP_LABEL = b"shop/wrapped-data-key\x00"
_FIELD_LABEL = b"shop/field\x00"

_WRAPPED_LEN = 1 + _KEY_ID_BYTES + _NONCE_BYTES + KEY_BYTES + _TAG_BYTES
_FIELD_MIN_LEN = 1 + _NONCE_BYTES + _TAG_BYTES

_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")

Bytesish = bytes | bytearray | memoryview


class CryptoError(Exception):
    """Base class; messages never contain key material or plaintext."""


class DataKeyError(CryptoError, ValueError):
    """A master or data key is malformed, missing or unknown."""


class DecryptionError(CryptoError):
    """A blob failed authentication: tampered, wrong key, or wrong context."""


class MasterKey:
    """A 256-bit key-encryption key with a short public fingerprint (``key_id``)."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise DataKeyError(f"a master key must be exactly {KEY_BYTES} bytes")
        self._key = key
        # Stored in every wrapped key so unwrap can pick the right key during rotation.
        self.key_id: str = hashlib.sha256(key).hexdigest()[: _KEY_ID_BYTES * 2]

    @property
    def _key_id_bytes(self) -> bytes:
        return bytes.fromhex(self.key_id)

    def _aead(self) -> AESGCM:
        return AESGCM(self._key)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self.key_id)


def generate_master_key_text() -> str:
    """A fresh value for ``SHOP_DATA_KEY``."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


def load_master_key(text: str, *, name: str = ENV_MASTER_KEY) -> MasterKey:
    """Parse urlsafe-base64 key text (padding optional); ``name`` only labels errors."""
    hint = (
        f"{name} must be {KEY_BYTES} random bytes encoded as urlsafe base64 "
        "(generate one with shop.privacy.crypto.generate_master_key_text())"
    )
    if not isinstance(text, str):
        raise DataKeyError(f"{name} must be text; {hint}")
    stripped = text.strip()
    if not stripped:
        raise DataKeyError(f"{name} is empty; {hint}")
    if not _URLSAFE_B64.fullmatch(stripped):
        # Messages describe the problem, never the value: the text *is* the secret.
        raise DataKeyError(
            f"{name} contains characters outside the urlsafe base64 alphabet; {hint}"
        )
    unpadded = stripped.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise DataKeyError(f"{name} is not valid base64; {hint}") from None
    if len(raw) != KEY_BYTES:
        raise DataKeyError(f"{name} decodes to {len(raw)} bytes, expected {KEY_BYTES}; {hint}")
    return MasterKey(raw)


class Keyring:
    """The current master key (wraps) plus retired ones (still unwrap during rotation)."""

    __slots__ = ("_by_id", "current")

    def __init__(self, current: MasterKey, old: Iterable[MasterKey] = ()) -> None:
        self.current = current
        self._by_id: dict[str, MasterKey] = {current.key_id: current}
        for key in old:
            known = self._by_id.get(key.key_id)
            if known is None:
                self._by_id[key.key_id] = key
            elif known != key:
                # Astronomically unlikely, but unwrap would then try the wrong key and
                # report tampering; refuse the configuration instead.
                raise DataKeyError(f"two different master keys share key_id {key.key_id!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring:
        env = os.environ if environ is None else environ
        current_text = env.get(ENV_MASTER_KEY)
        if not current_text or not current_text.strip():
            raise DataKeyError(
                f"{ENV_MASTER_KEY} is not set; generate one with "
                "shop.privacy.crypto.generate_master_key_text()"
            )
        current = load_master_key(current_text, name=ENV_MASTER_KEY)
        old = [
            load_master_key(part, name=f"{ENV_OLD_MASTER_KEYS}[{index}]")
            for index, part in enumerate(env.get(ENV_OLD_MASTER_KEYS, "").split(","))
            if part.strip()
        ]
        return cls(current, old)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def get(self, key_id: str) -> MasterKey:
        try:
            return self._by_id[key_id]
        except KeyError:
            raise DataKeyError(
                f"data key was wrapped by master key {key_id!r}, which is not in the keyring "
                f"(add it to {ENV_OLD_MASTER_KEYS})"
            ) from None

    def __repr__(self) -> str:
        return f"Keyring(current={self.current.key_id!r}, key_ids={self.key_ids!r})"


def _check_context(context: bytes) -> bytes:
    if not isinstance(context, bytes):
        raise TypeError("context must be bytes, e.g. b'order:123'")
    if not context:
        # An empty context would let blobs move freely between rows; refuse it.
        raise ValueError("context must not be empty")
    return context


def _check_data_key(data_key: bytes) -> bytes:
    if not isinstance(data_key, bytes) or len(data_key) != KEY_BYTES:
        raise DataKeyError(f"a data key must be exactly {KEY_BYTES} bytes")
    return data_key


def new_data_key() -> bytes:
    """A fresh per-order data key (store only its wrapped form)."""
    return AESGCM.generate_key(bit_length=256)


def wrap_data_key(master: MasterKey, data_key: bytes, *, context: bytes) -> bytes:
    """Encrypt ``data_key`` under ``master``: version | key_id | nonce | ciphertext+tag."""
    _check_data_key(data_key)
    _check_context(context)
    header = bytes([_WRAP_VERSION]) + master._key_id_bytes
    nonce = os.urandom(_NONCE_BYTES)
    sealed = master._aead().encrypt(nonce, data_key, _WRAP_LABEL + header + context)
    return header + nonce + sealed


def _split_wrapped(wrapped: Bytesish) -> tuple[bytes, str, bytes, bytes]:
    blob = bytes(wrapped)
    if len(blob) != _WRAPPED_LEN:
        raise DecryptionError("wrapped data key has the wrong length")
    if blob[0] != _WRAP_VERSION:
        raise DecryptionError(f"unsupported wrapped data key version {blob[0]}")
    header = blob[: 1 + _KEY_ID_BYTES]
    key_id = header[1:].hex()
    nonce = blob[len(header) : len(header) + _NONCE_BYTES]
    sealed = blob[len(header) + _NONCE_BYTES :]
    return header, key_id, nonce, sealed


def wrapped_key_id(wrapped: Bytesish) -> str:
    """The ``key_id`` of the master key that wrapped this blob (for rotation progress)."""
    return _split_wrapped(wrapped)[1]


def unwrap_data_key(keyring: Keyring | MasterKey, wrapped: Bytesish, *, context: bytes) -> bytes:
    """Recover a data key; ``DecryptionError`` if tampered, moved, or wrapped by another key."""
    _check_context(context)
    ring = Keyring(keyring) if isinstance(keyring, MasterKey) else keyring
    header, key_id, nonce, sealed = _split_wrapped(wrapped)
    master = ring.get(key_id)
    try:
        return master._aead().decrypt(nonce, sealed, _WRAP_LABEL + header + context)
    except InvalidTag:
        raise DecryptionError(
            "wrapped data key failed authentication (tampered, wrong context or wrong master key)"
        ) from None


# ---------------------------------------------------------------- epoch-wrapped data keys
#
# Version 2 of a wrapped data key names an *epoch key* (shop/privacy/epochs.py) instead of a
# master key: version | epoch id (8 bytes) | nonce | ciphertext+tag. Epoch keys live outside
# the database and are destroyed on schedule, so every copy of the wrapped key -- old row
# versions, the WAL, backups -- becomes undecryptable at once.

_EPOCH_VERSION = 2
EPOCH_ID_BYTES = 8
_EPOCH_WRAPPED_LEN = 1 + EPOCH_ID_BYTES + _NONCE_BYTES + KEY_BYTES + _TAG_BYTES


def wrapped_version(wrapped: Bytesish) -> int:
    blob = bytes(wrapped)
    if not blob:
        raise DecryptionError("wrapped data key is empty")
    return blob[0]


def wrap_with_epoch(epoch_id: str, epoch_key: bytes, data_key: bytes, *, context: bytes) -> bytes:
    _check_data_key(data_key)
    _check_data_key(epoch_key)
    _check_context(context)
    header = bytes([_EPOCH_VERSION]) + bytes.fromhex(epoch_id)
    if len(header) != 1 + EPOCH_ID_BYTES:
        raise DataKeyError("an epoch id is 16 hex characters")
    nonce = os.urandom(_NONCE_BYTES)
    return (
        header + nonce + AESGCM(epoch_key).encrypt(nonce, data_key, _WRAP_LABEL + header + context)
    )


def wrapped_epoch_id(wrapped: Bytesish) -> str:
    blob = bytes(wrapped)
    if len(blob) != _EPOCH_WRAPPED_LEN or blob[0] != _EPOCH_VERSION:
        raise DecryptionError("not an epoch-wrapped data key")
    return blob[1 : 1 + EPOCH_ID_BYTES].hex()


def unwrap_with_epoch(epoch_key: bytes, wrapped: Bytesish, *, context: bytes) -> bytes:
    _check_context(context)
    blob = bytes(wrapped)
    wrapped_epoch_id(blob)
    header = blob[: 1 + EPOCH_ID_BYTES]
    nonce = blob[len(header) : len(header) + _NONCE_BYTES]
    try:
        return AESGCM(epoch_key).decrypt(
            nonce, blob[len(header) + _NONCE_BYTES :], _WRAP_LABEL + header + context
        )
    except InvalidTag:
        raise DecryptionError(
            "wrapped data key failed authentication (tampered, wrong context or wrong epoch key)"
        ) from None


def rewrap(keyring: Keyring, wrapped: Bytesish, context: bytes) -> bytes:
    """Re-wrap under ``keyring.current``; the data key, and so every field, is unchanged."""
    data_key = unwrap_data_key(keyring, wrapped, context=context)
    return wrap_data_key(keyring.current, data_key, context=context)


def encrypt_field(data_key: bytes, plaintext: str | None, *, context: bytes) -> bytes | None:
    """Encrypt one text value: version | nonce | ciphertext+tag. ``None`` stays ``None``."""
    _check_data_key(data_key)
    _check_context(context)
    if plaintext is None:
        return None
    if not isinstance(plaintext, str):
        raise TypeError("encrypt_field takes str or None")
    header = bytes([_FIELD_VERSION])
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(data_key).encrypt(
        nonce, plaintext.encode("utf-8"), _FIELD_LABEL + header + context
    )
    return header + nonce + sealed


def decrypt_field(data_key: bytes, blob: Bytesish | None, *, context: bytes) -> str | None:
    """Inverse of ``encrypt_field``; accepts memoryview (what some DB drivers return)."""
    _check_data_key(data_key)
    _check_context(context)
    if blob is None:
        return None
    raw = bytes(blob)
    if len(raw) < _FIELD_MIN_LEN:
        raise DecryptionError("encrypted field is too short")
    if raw[0] != _FIELD_VERSION:
        raise DecryptionError(f"unsupported encrypted field version {raw[0]}")
    header = raw[:1]
    nonce = raw[1 : 1 + _NONCE_BYTES]
    sealed = raw[1 + _NONCE_BYTES :]
    try:
        plain = AESGCM(data_key).decrypt(nonce, sealed, _FIELD_LABEL + header + context)
    except InvalidTag:
        raise DecryptionError(
            "encrypted field failed authentication (tampered, wrong context or wrong data key)"
        ) from None
    return plain.decode("utf-8")
