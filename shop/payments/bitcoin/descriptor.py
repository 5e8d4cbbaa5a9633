"""Watch-only output descriptors: what the merchant pastes, and the addresses we derive.

The shop derives one fresh receive address per order from a public key the
merchant exports from their own wallet. All BIP32, base58, bech32 and
descriptor-checksum work is done by embit; this module only decides what we
accept and turns the merchant's text into a small, fast, read-only object.

Accepted input (``parse_watch_only``):

* ``wpkh(KEY)``, ``sh(wpkh(KEY))`` and key-path-only ``tr(KEY)`` descriptors, where
  KEY is ``[fingerprint/path]xpub.../0/*`` or the multipath ``.../<0;1>/*`` form,
  with an optional ``#checksum`` (verified when present);
* a bare extended public key, translated following SLIP-132:
  ``zpub``/``vpub`` -> ``wpkh``, ``ypub``/``upub`` -> ``sh(wpkh)``, and
  ``xpub``/``tpub`` -> ``wpkh`` (see ``_BARE_KEY_KINDS`` for why not ``pkh``),
  using ``<key>/0/*`` for receive and ``<key>/1/*`` for change.

Error messages never repeat the merchant's input: if it held a secret by
mistake, it must not end up in a log, a flash message or an e-mail.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Final, Literal

from embit import base58
from embit import script as embit_script
from embit.bip32 import HDKey
from embit.descriptor import Descriptor
from embit.descriptor.checksum import checksum as descriptor_checksum
from embit.networks import NETWORKS

__all__ = [
    "DescriptorError",
    "Kind",
    "MAX_INDEX",
    "Network",
    "SUPPORTED_NETWORKS",
    "WatchOnlyDescriptor",
    "parse_watch_only",
]

Network = Literal["main", "test", "signet", "regtest"]
Kind = Literal["wpkh", "sh-wpkh", "tr"]

SUPPORTED_NETWORKS: Final[tuple[str, ...]] = ("main", "test", "signet", "regtest")

#: Highest non-hardened BIP32 child index; anything above needs a private key.
MAX_INDEX: Final[int] = 2**31 - 1

# Big enough for the gap window and the watcher's working set, small enough
# that a long-running worker does not grow without bound.
_CACHE_SIZE: Final[int] = 20_000

PRIVATE_KEY_MESSAGE: Final[str] = (
    "This looks like {what}. The shop only needs a watch-only public key; never put a "
    "private key on a web server. Export the account's extended public key "
    "(xpub/ypub/zpub, or tpub/upub/vpub for test networks) or its public output "
    "descriptor from your wallet instead."
)

_FAMILY_LABEL: Final[dict[str, str]] = {
    "main": "Bitcoin mainnet (xpub/ypub/zpub)",
    "test": "the test networks: testnet, signet or regtest (tpub/upub/vpub)",
}

# Which version-byte "family" each supported network uses. testnet, signet and
# regtest share BIP32 version bytes, so a tpub cannot tell them apart.
_NETWORK_FAMILY: Final[dict[str, str]] = {
    "main": "main",
    "test": "test",
    "signet": "test",
    "regtest": "test",
}

# SLIP-132 prefix letter -> script kind for a bare key. SLIP-132 maps xpub/tpub
# to legacy P2PKH, but the shop does not offer legacy addresses (larger, more
# expensive for customers, and most wallets export zpub or a descriptor
# anyway), so a bare xpub/tpub is read as native segwit P2WPKH, which is what
# current wallets mean when they export an "xpub" for a BIP84 account.
_BARE_KEY_KINDS: Final[dict[str, Kind]] = {"x": "wpkh", "y": "sh-wpkh", "z": "wpkh"}

_KIND_PREFIXES: Final[tuple[tuple[str, Kind], ...]] = (
    ("wpkh(", "wpkh"),
    ("sh(wpkh(", "sh-wpkh"),
    ("tr(", "tr"),
)


class DescriptorError(ValueError):
    """The merchant's key or descriptor cannot be used; the message says why and what to do."""


def _version_table() -> dict[bytes, tuple[str, str, bool]]:
    """Map BIP32/SLIP-132 version bytes to (family, prefix letter, is_private)."""
    table: dict[bytes, tuple[str, str, bool]] = {}
    for family in ("main", "test"):
        params = NETWORKS[family]
        for name in (
            "xpub",
            "ypub",
            "zpub",
            "Ypub",
            "Zpub",
            "xprv",
            "yprv",
            "zprv",
            "Yprv",
            "Zprv",
        ):
            table[params[name]] = (family, name[0], name.endswith("prv"))
    return table


_VERSIONS: Final[dict[bytes, tuple[str, str, bool]]] = _version_table()
_WIF_PREFIXES: Final[frozenset[int]] = frozenset(
    NETWORKS[name]["wif"][0] for name in SUPPORTED_NETWORKS
)
# Long runs of base58 characters: candidates for extended keys and WIF secrets.
_BASE58_RUN: Final[re.Pattern[str]] = re.compile(r"[1-9A-HJ-NP-Za-km-z]{40,}")
_ORIGIN: Final[re.Pattern[str]] = re.compile(r"\[[^\]]*\]")
_HARDENED_WILDCARD: Final[re.Pattern[str]] = re.compile(r"/\*['hH]")
_HARDENED_STEP: Final[re.Pattern[str]] = re.compile(r"[/<;]\d+['hH]")
_CHECKSUM_FORM: Final[re.Pattern[str]] = re.compile(r"[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{8}")


def _private_material(text: str) -> str | None:
    """Describe the private key hidden in ``text``, if any, without revealing it."""
    for run in _BASE58_RUN.findall(text):
        # Judge by the visible prefix first: a mistyped xprv is still a secret
        # even though its base58 checksum no longer verifies.
        if run[1:4] == "prv":
            return "an extended private key"
        try:
            raw = base58.decode_check(run)
        except Exception:
            continue
        if len(raw) == 78 and _VERSIONS.get(raw[:4], ("", "", False))[2]:
            return "an extended private key"
        if len(raw) in (33, 34) and raw[0] in _WIF_PREFIXES:
            return "a private key in WIF format"
    return None


def _check_family(key_family: str, network: str) -> None:
    if _NETWORK_FAMILY[network] != key_family:
        raise DescriptorError(
            f"This key belongs to {_FAMILY_LABEL[key_family]}, but the shop is configured for "
            f"'{network}'. Export the key for the right network, or change the shop's "
            "Bitcoin network setting."
        )


def _standard_key(hd: HDKey, network: str, kind: Kind | None) -> HDKey:
    """Check an extended key against the network and script kind, and return it as xpub/tpub.

    ``kind`` is None for a bare key, whose script kind is taken from its prefix.
    """
    info = _VERSIONS.get(hd.version)
    if info is None:
        raise DescriptorError("The extended public key has an unknown version prefix.")
    family, letter, is_private = info
    if is_private or hd.is_private:
        raise DescriptorError(PRIVATE_KEY_MESSAGE.format(what="an extended private key"))
    if letter in ("Y", "Z"):
        raise DescriptorError(
            "This is a multisig key (Ypub/Zpub/Upub/Vpub). Multisig wallets are not "
            "supported; use a single-signature account's public key."
        )
    _check_family(family, network)
    if kind is not None and letter in ("y", "z") and _BARE_KEY_KINDS[letter] != kind:
        expected = "sh(wpkh(...))" if letter == "y" else "wpkh(...)"
        raise DescriptorError(
            f"The key's {hd.to_base58()[:4]} prefix says it is for {expected} addresses, but "
            "the descriptor uses a different script type. Use the descriptor your wallet "
            "exports, or paste the key on its own."
        )
    standard_version = NETWORKS[family]["xpub"]
    if hd.version == standard_version:
        return hd
    # Descriptors (and Bitcoin Core) only know xpub/tpub; SLIP-132 prefixes are
    # converted by re-encoding the same key material with the standard version.
    return HDKey.from_base58(hd.to_base58(version=standard_version))


def _split_checksum(text: str) -> str:
    """Verify an optional ``#checksum`` suffix and return the descriptor body."""
    if "#" not in text:
        return text
    body, _, given = text.partition("#")
    if "#" in given or not _CHECKSUM_FORM.fullmatch(given):
        raise DescriptorError(
            "The descriptor checksum after '#' is malformed; it must be 8 characters."
        )
    try:
        expected = descriptor_checksum(body)
    except Exception:
        raise DescriptorError("The descriptor contains characters that are not allowed.") from None
    if given != expected:
        raise DescriptorError(
            "The descriptor checksum does not match, so the descriptor was probably "
            "mistyped or cut off while copying. Copy it again from your wallet."
        )
    return body


def _unsupported_message(body: str) -> str:
    lowered = body.lower()
    if lowered.startswith("pkh(") or lowered.startswith("sh(pkh("):
        return (
            "Legacy pkh() (P2PKH, addresses starting with 1) descriptors are not supported. "
            "Use a wpkh(), sh(wpkh()) or tr() descriptor, or paste a zpub/ypub."
        )
    if any(word in lowered for word in ("multi(", "sortedmulti", "wsh(", "multi_a(")):
        return (
            "Multisig and script descriptors (multi, sortedmulti, wsh, sh(multi)) are not "
            "supported. Use a single-signature wpkh(), sh(wpkh()) or tr() descriptor."
        )
    if lowered.startswith(("combo(", "addr(", "raw(", "rawtr(", "sh(")):
        return (
            "This kind of descriptor cannot give a fresh address per order. Use a "
            "wpkh(), sh(wpkh()) or tr() descriptor with an extended public key."
        )
    return (
        "This is neither an extended public key nor a supported output descriptor. "
        "Paste a zpub/ypub/xpub (tpub/vpub/upub on test networks) or a wpkh(), "
        "sh(wpkh()) or tr() descriptor."
    )


def _bare_key_descriptor(text: str, network: str) -> str:
    """Translate a bare extended public key into the descriptor it stands for."""
    if "/" in text or "[" in text:
        raise DescriptorError(
            "A key with a derivation path must be wrapped in a descriptor, for example "
            "wpkh([fingerprint/84h/0h/0h]xpub.../<0;1>/*)."
        )
    if text[1:4] != "pub":
        raise DescriptorError(_unsupported_message(text))
    try:
        hd = HDKey.from_base58(text)
    except Exception:
        raise DescriptorError(
            "This is not a valid extended public key (the base58 checksum failed). "
            "Check for a typo or copy it again from your wallet."
        ) from None
    info = _VERSIONS.get(hd.version)
    if info is None:
        raise DescriptorError("The extended public key has an unknown version prefix.")
    kind = _BARE_KEY_KINDS.get(info[1])
    standard = _standard_key(hd, network, None).to_base58()
    if kind == "sh-wpkh":
        return f"sh(wpkh({standard}/<0;1>/*))"
    return f"wpkh({standard}/<0;1>/*)"


def _wrap(kind: Kind, key_text: str) -> str:
    if kind == "wpkh":
        return f"wpkh({key_text})"
    if kind == "sh-wpkh":
        return f"sh(wpkh({key_text}))"
    return f"tr({key_text})"


def _derivation_text(path: list[int]) -> str:
    return "".join(f"/{step}" for step in path)


def _descriptor_body(text: str, network: str) -> str:
    """The descriptor (without checksum) that what the merchant pasted stands for: a bare
    extended key becomes its descriptor; anything carrying a private key is refused."""
    if not isinstance(text, str):
        raise DescriptorError("Paste an extended public key or an output descriptor.")
    # Copying from wallets and PDFs often wraps long keys across lines;
    # descriptors never contain whitespace, so removing it is lossless.
    cleaned = "".join(text.split())
    if not cleaned:
        raise DescriptorError("Paste an extended public key or an output descriptor.")
    secret = _private_material(cleaned)
    if secret is not None:
        raise DescriptorError(PRIVATE_KEY_MESSAGE.format(what=secret))

    if "(" in cleaned:
        return _split_checksum(cleaned)
    if "#" in cleaned:
        raise DescriptorError("A checksum '#...' only belongs after a full descriptor.")
    return _bare_key_descriptor(cleaned, network)


def _checked_kind(body: str) -> Kind:
    """The descriptor's kind, if it is one the shop can watch: a single key, derivable
    without the private key."""
    kind: Kind | None = None
    for prefix, candidate in _KIND_PREFIXES:
        if body.startswith(prefix):
            kind = candidate
            break
    if kind is None:
        raise DescriptorError(_unsupported_message(body))
    if kind == "tr" and "," in body:
        raise DescriptorError(
            "Taproot descriptors with script paths (tr(KEY,{...})) are not supported; "
            "use a key-path-only tr(KEY) descriptor."
        )
    without_origins = _ORIGIN.sub("", body)
    if _HARDENED_WILDCARD.search(without_origins):
        raise DescriptorError(
            "The descriptor ends in a hardened wildcard (/*h or /*'). Hardened addresses "
            "can only be derived with the private key, which the shop must never have. "
            "Use a descriptor ending in /*, as wallets export for watch-only use."
        )
    if _HARDENED_STEP.search(without_origins):
        raise DescriptorError(
            "The descriptor has a hardened step after the public key (like /0h), which "
            "only the private key can derive. Hardened steps belong in the [origin] part; "
            "after the key use only plain steps such as /0/* or /<0;1>/*."
        )
    return kind


def _wildcard_key(body: str):
    """The descriptor's public key (embit's DescriptorKey), which must end in a /* wildcard
    so that every order gets an address of its own."""
    try:
        parsed = Descriptor.from_string(body)
    except Exception:
        # embit's own messages may quote the input; keep them out of user-facing text.
        raise DescriptorError(
            "The descriptor could not be parsed. Check that it was copied completely, "
            "for example wpkh([fingerprint/84h/0h/0h]xpub.../<0;1>/*)."
        ) from None
    if parsed.miniscript is not None or parsed.key is None or parsed.taptree:
        raise DescriptorError(_unsupported_message(body))
    key = parsed.key
    if key.is_private:
        raise DescriptorError(PRIVATE_KEY_MESSAGE.format(what="a private key"))
    if not key.is_extended or key.allowed_derivation is None or not key.is_wildcard:
        raise DescriptorError(
            "The descriptor has no /* wildcard, so it describes a single address. The shop "
            "needs a new address for every order (reusing one address lets anyone link all "
            "your customers' payments). Use a descriptor ending in /* or /<0;1>/*."
        )
    if list(key.allowed_derivation.indexes)[-1] is not None:
        raise DescriptorError("The /* wildcard must be the last step of the derivation path.")
    return key


def parse_watch_only(text: str, network: str) -> WatchOnlyDescriptor:
    """Parse what the merchant pasted into a watch-only descriptor for ``network``.

    ``network`` is one of "main", "test", "signet", "regtest". Raises
    DescriptorError (a ValueError) with a merchant-facing message.
    """
    if network not in SUPPORTED_NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected one of {SUPPORTED_NETWORKS}")
    body = _descriptor_body(text, network)
    kind = _checked_kind(body)
    key = _wildcard_key(body)
    indexes = list(key.allowed_derivation.indexes)

    hd = _standard_key(key.key, network, kind)
    branches = key.allowed_derivation.branches
    receive_path = [step[0] if isinstance(step, list) else step for step in indexes[:-1]]
    change_path: list[int] | None = None
    if branches is not None and len(branches) >= 2:
        change_path = [step[1] if isinstance(step, list) else step for step in indexes[:-1]]

    origin = key.prefix  # "[fingerprint/path]" or ""
    standard = hd.to_base58()
    canonical = descriptor_with_checksum(_wrap(kind, origin + standard + key.suffix))
    receive = descriptor_with_checksum(
        _wrap(kind, origin + standard + _derivation_text(receive_path) + "/*")
    )
    change = (
        descriptor_with_checksum(
            _wrap(kind, origin + standard + _derivation_text(change_path) + "/*")
        )
        if change_path is not None
        else None
    )
    # The identity ignores origin info and the change branch: two inputs that
    # produce the same receive addresses are the same payment destination.
    identity_text = f"{network}:{_wrap(kind, standard + _derivation_text(receive_path) + '/*')}"
    identifier = hashlib.sha256(identity_text.encode()).hexdigest()
    master_fingerprint = key.fingerprint.hex() if key.origin is not None else None

    return WatchOnlyDescriptor(
        kind=kind,
        network=network,
        canonical=canonical,
        receive_descriptor=receive,
        change_descriptor=change,
        identifier=identifier,
        master_fingerprint=master_fingerprint,
        receive_branch=hd.derive(receive_path),
        change_branch=hd.derive(change_path) if change_path is not None else None,
    )


def descriptor_with_checksum(body: str) -> str:
    """Append the BIP-380 checksum to a descriptor body."""
    return f"{body}#{descriptor_checksum(body)}"


def _check_index(index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError("derivation index must be an int")
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"derivation index must be between 0 and {MAX_INDEX}")
    return index


class WatchOnlyDescriptor:
    """A parsed, public-only descriptor that derives receive (and change) scripts.

    Instances are immutable and safe to share between threads. Derivation
    starts from the branch key (account key + ``/0`` or ``/1``) derived once
    at parse time, so each index costs one BIP32 child step; results are
    cached.
    """

    __slots__ = (
        "_canonical",
        "_change",
        "_change_branch",
        "_derive_script",
        "_identifier",
        "_kind",
        "_master_fingerprint",
        "_network",
        "_params",
        "_receive",
        "_receive_branch",
    )

    def __init__(
        self,
        *,
        kind: Kind,
        network: str,
        canonical: str,
        receive_descriptor: str,
        change_descriptor: str | None,
        identifier: str,
        master_fingerprint: str | None,
        receive_branch: HDKey,
        change_branch: HDKey | None,
    ) -> None:
        self._kind: Kind = kind
        self._network = network
        self._params = NETWORKS[network]
        self._canonical = canonical
        self._receive = receive_descriptor
        self._change = change_descriptor
        self._identifier = identifier
        self._master_fingerprint = master_fingerprint
        self._receive_branch = receive_branch
        self._change_branch = change_branch
        self._derive_script = lru_cache(maxsize=_CACHE_SIZE)(self._script_uncached)

    # -- identity and display -------------------------------------------------

    @property
    def kind(self) -> Kind:
        """ "wpkh", "sh-wpkh" or "tr"."""
        return self._kind

    @property
    def network(self) -> str:
        return self._network

    @property
    def canonical(self) -> str:
        """Public descriptor with checksum, SLIP-132 keys normalised to xpub/tpub."""
        return self._canonical

    @property
    def receive_descriptor(self) -> str:
        """Single-path receive descriptor with checksum (importable into any Core version)."""
        return self._receive

    @property
    def change_descriptor(self) -> str | None:
        return self._change

    @property
    def has_change(self) -> bool:
        return self._change_branch is not None

    @property
    def master_fingerprint(self) -> str | None:
        """Hex fingerprint from the key origin ``[xxxxxxxx/...]``, when the merchant gave one."""
        return self._master_fingerprint

    def fingerprint(self) -> str:
        """Stable hex identifier of the receive-address sequence (sha256).

        Equal for inputs that yield the same receive addresses on the same
        network (zpub vs. its wpkh() descriptor, with or without origin), and
        different otherwise, so the shop can detect a switched wallet.
        """
        return self._identifier

    # -- derivation -------------------------------------------------------------

    def script_pubkey(self, index: int) -> bytes:
        """scriptPubKey of receive address ``index``."""
        return self._derive_script(False, _check_index(index))

    def address(self, index: int) -> str:
        """Receive address ``index`` encoded for this descriptor's network."""
        return self._encode(self.script_pubkey(index))

    def derive(self, index: int) -> tuple[str, bytes]:
        """(address, scriptPubKey) of receive address ``index``."""
        spk = self.script_pubkey(index)
        return self._encode(spk), spk

    def change_script_pubkey(self, index: int) -> bytes:
        if self._change_branch is None:
            raise DescriptorError("This descriptor has no change branch.")
        return self._derive_script(True, _check_index(index))

    def change_address(self, index: int) -> str:
        return self._encode(self.change_script_pubkey(index))

    def iter_script_pubkeys(self, start: int, count: int) -> Iterator[tuple[int, bytes]]:
        """Yield (index, scriptPubKey) for ``count`` receive indexes from ``start``, uncached.

        Meant for scanning large ranges without evicting the hot cache.
        """
        _check_index(start)
        if count < 0 or (count and start + count - 1 > MAX_INDEX):
            raise ValueError(f"range must stay within 0..{MAX_INDEX}")
        for index in range(start, start + count):
            yield index, self._script_uncached(False, index)

    def _script_uncached(self, change: bool, index: int) -> bytes:
        branch = self._change_branch if change else self._receive_branch
        assert branch is not None
        # Work on the child's bare public key rather than the HDKey: embit's
        # HDKey constructor re-encodes base58 to validate itself, which would
        # double the cost of every taproot tweak.
        public_key = branch.child(index).key
        if self._kind == "wpkh":
            return embit_script.p2wpkh(public_key).data
        if self._kind == "sh-wpkh":
            return embit_script.p2sh(embit_script.p2wpkh(public_key)).data
        return embit_script.p2tr(public_key).data

    def _encode(self, spk: bytes) -> str:
        return embit_script.Script(spk).address(self._params)

    # -- value semantics ---------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WatchOnlyDescriptor):
            return NotImplemented
        return self._canonical == other._canonical and self._network == other._network

    def __hash__(self) -> int:
        return hash((self._canonical, self._network))

    def __repr__(self) -> str:
        return f"WatchOnlyDescriptor({self._canonical!r}, network={self._network!r})"
