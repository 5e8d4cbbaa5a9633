"""What an LND macaroon allows, read from the macaroon itself before the shop starts.

LND writes the permissions into the macaroon's identifier: a version byte (3) followed by the
protobuf `MacaroonId {bytes nonce = 1; bytes storageId = 2; repeated Op ops = 3;}` with
`Op {string entity = 1; repeated string actions = 2;}` (lnd/macaroons/macaroonpb). pymacaroons
parses the macaroon; the identifier's three fields are read here.
"""

from __future__ import annotations

import base64

from pymacaroons import Macaroon
from pymacaroons.serializers import BinarySerializer

# What the shop needs: create and read invoices, follow settlements, and see the node's state
# and channels (inbound liquidity). Nothing here can move money or mint other macaroons.
ALLOWED: dict[str, set[str]] = {
    "invoices": {"read", "write"},
    "info": {"read"},
    "offchain": {"read"},
    "onchain": {"read"},
    "peers": {"read"},
}
ALLOWED_URIS = {
    "/lnrpc.Lightning/AddInvoice",
    "/lnrpc.Lightning/LookupInvoice",
    "/lnrpc.Lightning/SubscribeInvoices",
    "/lnrpc.Lightning/ListInvoices",
    "/lnrpc.Lightning/GetInfo",
    "/lnrpc.Lightning/ListChannels",
    "/lnrpc.Lightning/ChannelBalance",
}
BAKE_HINT = (
    "bake one with `lncli bakemacaroon invoices:read invoices:write info:read "
    "offchain:read --save_to shop.macaroon`"
)


class MacaroonError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise MacaroonError("truncated identifier")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """(field number, bytes) of a protobuf message holding only length-delimited fields."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        if key & 7 != 2:
            raise MacaroonError("unexpected field type in identifier")
        size, pos = _varint(data, pos)
        out.append((key >> 3, data[pos : pos + size]))
        pos += size
    return out


def permissions(raw: bytes) -> dict[str, set[str]]:
    """entity -> actions granted by a macaroon file's bytes (binary v2, as lnd writes it)."""
    if not _binary(raw):  # `lncli printmacaroon`-style hex pasted into a file
        try:
            raw = bytes.fromhex(raw.decode().strip())
        except ValueError:
            raise MacaroonError("not a macaroon") from None
    try:
        macaroon = Macaroon.deserialize(
            base64.urlsafe_b64encode(raw).decode().rstrip("="), serializer=BinarySerializer()
        )
    except Exception:  # pymacaroons raises several types for bad input
        raise MacaroonError("not a macaroon") from None
    ident = macaroon.identifier_bytes
    if not ident or ident[0] != 3:
        raise MacaroonError("not an LND macaroon (unknown identifier version)")
    granted: dict[str, set[str]] = {}
    for number, value in _fields(ident[1:]):
        if number != 3:
            continue
        entity, actions = "", set()
        for sub, text in _fields(value):
            if sub == 1:
                entity = text.decode()
            elif sub == 2:
                actions.add(text.decode())
        granted.setdefault(entity, set()).update(actions)
    return granted


def _binary(raw: bytes) -> bool:
    return raw[:1] == b"\x02"  # the v2 binary format's version byte; hex text starts with "02"


def too_broad(granted: dict[str, set[str]]) -> list[str]:
    """The permissions beyond what the shop needs, as "entity:action"."""
    extra = []
    for entity, actions in sorted(granted.items()):
        allowed = ALLOWED_URIS if entity == "uri" else ALLOWED.get(entity, set())
        extra += [f"{entity}:{a}" for a in sorted(actions - allowed)]
    return extra


def check_file(path: str) -> bytes:
    """The macaroon's bytes, or MacaroonError saying why the shop must not use it."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise MacaroonError(f"cannot read {path}: {exc.strerror}") from None
    granted = permissions(raw)
    if "invoices" not in granted and "uri" not in granted:
        raise MacaroonError(f"it grants no invoice permissions; {BAKE_HINT}")
    extra = too_broad(granted)
    if extra:
        raise MacaroonError(
            f"it also grants {', '.join(extra)}: anyone who "
            f"reads it could spend the node's money (admin macaroon?); {BAKE_HINT}"
        )
    return raw
