"""Watch-only descriptor parsing and derivation, checked against published BIP vectors."""

from __future__ import annotations

import time

import pytest
from embit import bip39
from embit.bip32 import HDKey
from embit.ec import PrivateKey
from embit.networks import NETWORKS

from shop.payments.bitcoin.descriptor import (
    MAX_INDEX,
    DescriptorError,
    WatchOnlyDescriptor,
    descriptor_with_checksum,
    parse_watch_only,
)

MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
MASTER_FINGERPRINT = "73c5da0a"

# BIP84 (mainnet, m/84'/0'/0')
BIP84_ZPUB = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"
BIP84_RECEIVE = [
    "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
]
BIP84_CHANGE_0 = "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el"

# BIP86 (mainnet, m/86'/0'/0')
BIP86_XPUB = "xpub6BgBgsespWvERF3LHQu6CnqdvfEvtMcQjYrcRzx53QJjSxarj2afYWcLteoGVky7D3UKDP9QyrLprQ3VCECoY49yfdDEHGCtMMj92pReUsQ"
BIP86_RECEIVE = [
    "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr",
    "bc1p4qhjn9zdvkux4e44uhx8tc55attvtyu358kutcqkudyccelu0was9fqzwh",
]
BIP86_CHANGE_0 = "bc1p3qkhfews2uk44qtvauqyr2ttdsw7svhkl9nkm9s9c3x4ax5h60wqwruhk7"

# BIP49 (testnet, m/49'/1'/0'); the first receive address is in the BIP text.
BIP49_UPUB = "upub5EFU65HtV5TeiSHmZZm7FUffBGy8UKeqp7vw43jYbvZPpoVsgU93oac7Wk3u6moKegAEWtGNF8DehrnHtv21XXEMYRUocHqguyjknFHYfgY"
BIP49_RECEIVE_0 = "2Mww8dCYPUpKHofjgcXcBCEGmniw9CoaiD2"

# BIP84 account m/84'/1'/0' of the same mnemonic on test networks.
TESTNET_84_RECEIVE = [
    "tb1q6rz28mcfaxtmd6v789l9rrlrusdprr9pqcpvkl",
    "tb1qd7spv5q28348xl4myc8zmh983w5jx32cjhkn97",
]


def _root() -> HDKey:
    return HDKey.from_seed(bip39.mnemonic_to_seed(MNEMONIC))


def _account(path: str, family: str = "main") -> HDKey:
    """Account xpub/tpub derived from the published mnemonic (test-only use of a private key)."""
    account = _root().derive(path).to_public()
    return HDKey.from_base58(account.to_base58(version=NETWORKS[family]["xpub"]))


def _slip132(path: str, family: str, prefix: str) -> str:
    return _account(path, family).to_base58(version=NETWORKS[family][prefix])


# -- published vectors ------------------------------------------------------------------------


def test_vectors_are_from_the_published_mnemonic() -> None:
    assert _root().my_fingerprint.hex() == MASTER_FINGERPRINT
    assert _slip132("m/84h/0h/0h", "main", "zpub") == BIP84_ZPUB
    assert _account("m/86h/0h/0h").to_base58() == BIP86_XPUB
    assert _slip132("m/49h/1h/0h", "test", "ypub") == BIP49_UPUB


def test_bip84_bare_zpub() -> None:
    desc = parse_watch_only(BIP84_ZPUB, "main")
    assert desc.kind == "wpkh"
    assert desc.network == "main"
    assert [desc.address(0), desc.address(1)] == BIP84_RECEIVE
    assert desc.change_address(0) == BIP84_CHANGE_0
    assert desc.has_change
    # A zpub is shown in its standard form: descriptors only know xpub/tpub.
    assert "zpub" not in desc.canonical
    assert desc.canonical.startswith(f"wpkh({_account('m/84h/0h/0h').to_base58()}/<0;1>/*)#")


def test_bip84_descriptor_with_origin_and_multipath() -> None:
    xpub = _account("m/84h/0h/0h").to_base58()
    text = f"wpkh([{MASTER_FINGERPRINT}/84h/0h/0h]{xpub}/<0;1>/*)"
    desc = parse_watch_only(text, "main")
    assert desc.derive(0) == (
        BIP84_RECEIVE[0],
        bytes.fromhex("0014c0cebcd6c3d3ca8c75dc5ec62ebe55330ef910e2"),
    )
    assert desc.address(1) == BIP84_RECEIVE[1]
    assert desc.change_address(0) == BIP84_CHANGE_0
    assert desc.master_fingerprint == MASTER_FINGERPRINT
    assert desc.canonical == descriptor_with_checksum(text)
    assert desc.receive_descriptor == descriptor_with_checksum(
        f"wpkh([{MASTER_FINGERPRINT}/84h/0h/0h]{xpub}/0/*)"
    )
    assert desc.change_descriptor == descriptor_with_checksum(
        f"wpkh([{MASTER_FINGERPRINT}/84h/0h/0h]{xpub}/1/*)"
    )
    # Same receive addresses as the bare zpub, so the same payment destination.
    assert desc.fingerprint() == parse_watch_only(BIP84_ZPUB, "main").fingerprint()


def test_bip86_taproot() -> None:
    desc = parse_watch_only(f"tr([{MASTER_FINGERPRINT}/86'/0'/0']{BIP86_XPUB}/<0;1>/*)", "main")
    assert desc.kind == "tr"
    assert [desc.address(0), desc.address(1)] == BIP86_RECEIVE
    assert desc.change_address(0) == BIP86_CHANGE_0
    assert desc.script_pubkey(0)[:2] == b"\x51\x20"
    # Origin written with ' is displayed with h, as Bitcoin Core does.
    assert desc.canonical.startswith(f"tr([{MASTER_FINGERPRINT}/86h/0h/0h]{BIP86_XPUB}/<0;1>/*)#")


def test_bip86_single_path_has_no_change() -> None:
    desc = parse_watch_only(f"tr({BIP86_XPUB}/0/*)", "main")
    assert desc.address(0) == BIP86_RECEIVE[0]
    assert not desc.has_change
    assert desc.change_descriptor is None
    with pytest.raises(DescriptorError):
        desc.change_address(0)


def test_bip49_bare_upub_is_nested_segwit() -> None:
    desc = parse_watch_only(BIP49_UPUB, "test")
    assert desc.kind == "sh-wpkh"
    assert desc.address(0) == BIP49_RECEIVE_0
    assert desc.canonical.startswith("sh(wpkh(tpub")
    # The same account written as a descriptor derives the same scripts.
    tpub = _account("m/49h/1h/0h", "test").to_base58()
    same = parse_watch_only(f"sh(wpkh([{MASTER_FINGERPRINT}/49h/1h/0h]{tpub}/<0;1>/*))", "test")
    assert same.address(0) == BIP49_RECEIVE_0
    assert same.fingerprint() == desc.fingerprint()


def test_bare_ypub_on_mainnet() -> None:
    desc = parse_watch_only(_slip132("m/49h/0h/0h", "main", "ypub"), "main")
    assert desc.kind == "sh-wpkh"
    assert desc.address(0).startswith("3")


def test_bare_xpub_is_read_as_native_segwit() -> None:
    xpub = _account("m/84h/0h/0h").to_base58()
    desc = parse_watch_only(xpub, "main")
    assert desc.kind == "wpkh"
    assert desc.address(0) == BIP84_RECEIVE[0]


@pytest.mark.parametrize("network", ["test", "signet"])
def test_vpub_on_test_networks(network: str) -> None:
    vpub = _slip132("m/84h/1h/0h", "test", "zpub")
    assert vpub.startswith("vpub")
    desc = parse_watch_only(vpub, network)
    assert [desc.address(0), desc.address(1)] == TESTNET_84_RECEIVE


def test_vpub_and_tpub_on_regtest_give_bcrt_addresses() -> None:
    testnet = parse_watch_only(_slip132("m/84h/1h/0h", "test", "zpub"), "test")
    regtest = parse_watch_only(_slip132("m/84h/1h/0h", "test", "zpub"), "regtest")
    assert regtest.address(0).startswith("bcrt1q")
    assert regtest.script_pubkey(0) == testnet.script_pubkey(0)
    assert regtest.fingerprint() != testnet.fingerprint()
    tpub = _account("m/84h/1h/0h", "test").to_base58()
    described = parse_watch_only(f"wpkh({tpub}/0/*)", "regtest")
    assert described.address(0) == regtest.address(0)
    taproot = parse_watch_only(
        f"tr({_account('m/86h/1h/0h', 'test').to_base58()}/<0;1>/*)", "regtest"
    )
    assert taproot.address(0).startswith("bcrt1p")


# -- checksums ------------------------------------------------------------------------------


def test_checksum_helper_matches_bip380() -> None:
    # Example from BIP-380 / Bitcoin Core's descriptors.md.
    assert descriptor_with_checksum("raw(deadbeef)") == "raw(deadbeef)#89f8spxm"


def test_valid_checksum_accepted_and_bad_checksum_refused() -> None:
    body = f"tr({BIP86_XPUB}/<0;1>/*)"
    good = descriptor_with_checksum(body)
    assert parse_watch_only(good, "main").address(0) == BIP86_RECEIVE[0]
    checksum = good.rsplit("#", 1)[1]
    flipped = ("q" if checksum[0] != "q" else "p") + checksum[1:]
    with pytest.raises(DescriptorError, match="checksum does not match"):
        parse_watch_only(f"{body}#{flipped}", "main")
    with pytest.raises(DescriptorError, match="malformed"):
        parse_watch_only(f"{body}#abc", "main")


def test_whitespace_from_copy_paste_is_ignored() -> None:
    wrapped = f"  {BIP84_ZPUB[:50]}\n{BIP84_ZPUB[50:]}  "
    assert parse_watch_only(wrapped, "main").address(0) == BIP84_RECEIVE[0]


# -- refusals -------------------------------------------------------------------------------


def _assert_refused_without_echo(text: str, network: str, secret: str, match: str) -> None:
    with pytest.raises(DescriptorError, match=match) as info:
        parse_watch_only(text, network)
    message = str(info.value)
    assert secret not in message
    assert secret[:12] not in message
    assert info.value.__cause__ is None


PRIVATE = "never put a private key on a web server"


def test_xprv_refused() -> None:
    xprv = _root().derive("m/84h/0h/0h").to_base58()
    assert xprv.startswith("xprv")
    _assert_refused_without_echo(xprv, "main", xprv, PRIVATE)


def test_tprv_and_slip132_private_keys_refused() -> None:
    account = _root().derive("m/84h/1h/0h")
    for name in ("xprv", "zprv", "yprv"):
        secret = account.to_base58(version=NETWORKS["test"][name])
        _assert_refused_without_echo(secret, "regtest", secret, PRIVATE)
    zprv = _root().derive("m/84h/0h/0h").to_base58(version=NETWORKS["main"]["zprv"])
    _assert_refused_without_echo(zprv, "main", zprv, PRIVATE)


def test_mistyped_xprv_still_refused_as_private() -> None:
    xprv = _root().to_base58()
    broken = xprv[:-1] + ("A" if xprv[-1] != "A" else "B")
    _assert_refused_without_echo(broken, "main", broken, PRIVATE)


@pytest.mark.parametrize("network", ["main", "test"])
def test_wif_refused(network: str) -> None:
    wif = PrivateKey(bytes(31) + b"\x01").wif(NETWORKS[network])
    _assert_refused_without_echo(wif, network, wif, "WIF")
    _assert_refused_without_echo(f"wpkh({wif})", network, wif, PRIVATE)


def test_descriptor_containing_xprv_refused() -> None:
    xprv = _root().derive("m/84h/0h/0h").to_base58()
    text = f"wpkh([{MASTER_FINGERPRINT}/84h/0h/0h]{xprv}/<0;1>/*)"
    _assert_refused_without_echo(text, "main", xprv, PRIVATE)
    _assert_refused_without_echo(descriptor_with_checksum(text), "main", xprv, PRIVATE)


def test_wrong_network_names_the_key_network() -> None:
    with pytest.raises(DescriptorError, match="Bitcoin mainnet") as info:
        parse_watch_only(BIP84_ZPUB, "regtest")
    assert "regtest" in str(info.value)
    with pytest.raises(DescriptorError, match="test networks"):
        parse_watch_only(BIP49_UPUB, "main")
    tpub = _account("m/84h/1h/0h", "test").to_base58()
    with pytest.raises(DescriptorError, match="test networks"):
        parse_watch_only(f"wpkh({tpub}/<0;1>/*)", "main")
    with pytest.raises(DescriptorError, match="Bitcoin mainnet"):
        parse_watch_only(f"tr({BIP86_XPUB}/<0;1>/*)", "signet")


def test_no_wildcard_refused() -> None:
    with pytest.raises(DescriptorError, match="no /\\* wildcard"):
        parse_watch_only(f"wpkh({BIP86_XPUB}/0/5)", "main")
    pubkey = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    with pytest.raises(DescriptorError, match="no /\\* wildcard"):
        parse_watch_only(f"wpkh({pubkey})", "main")


@pytest.mark.parametrize("suffix", ["/0/*h", "/0/*'", "/<0;1>/*h"])
def test_hardened_wildcard_refused(suffix: str) -> None:
    with pytest.raises(DescriptorError, match="hardened wildcard"):
        parse_watch_only(f"wpkh({BIP86_XPUB}{suffix})", "main")


def test_hardened_step_after_key_refused() -> None:
    with pytest.raises(DescriptorError, match="hardened step"):
        parse_watch_only(f"wpkh({BIP86_XPUB}/0h/*)", "main")


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("pkh({k}/0/*)", "Legacy pkh"),
        ("wsh(multi(1,{k}/0/*,{k}/1/*))", "Multisig"),
        ("sh(multi(1,{k}/0/*,{k}/1/*))", "Multisig"),
        ("wsh(sortedmulti(1,{k}/0/*,{k}/1/*))", "Multisig"),
        ("combo({k}/0/*)", "cannot give a fresh address"),
        ("tr({k}/0/*,pk({k}/1/*))", "script paths"),
        ("garbage", "neither an extended public key"),
    ],
)
def test_unsupported_script_types_refused(template: str, match: str) -> None:
    with pytest.raises(DescriptorError, match=match):
        parse_watch_only(template.format(k=BIP86_XPUB), "main")


def test_slip132_prefix_contradicting_descriptor_refused() -> None:
    with pytest.raises(DescriptorError, match="prefix says"):
        parse_watch_only(f"tr({BIP84_ZPUB}/<0;1>/*)", "main")


def test_slip132_inside_matching_descriptor_is_normalised() -> None:
    desc = parse_watch_only(f"wpkh({BIP84_ZPUB}/<0;1>/*)", "main")
    assert desc.address(0) == BIP84_RECEIVE[0]
    assert "zpub" not in desc.canonical


def test_bare_key_with_path_or_garbage_refused() -> None:
    with pytest.raises(DescriptorError, match="wrapped in a descriptor"):
        parse_watch_only(f"{BIP84_ZPUB}/0/*", "main")
    with pytest.raises(DescriptorError, match="base58 checksum"):
        parse_watch_only(BIP84_ZPUB[:-1] + "z", "main")
    with pytest.raises(DescriptorError):
        parse_watch_only("   ", "main")


def test_unknown_network_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown network"):
        parse_watch_only(BIP84_ZPUB, "testnet3")


# -- derivation API -------------------------------------------------------------------------


def test_index_range() -> None:
    desc = parse_watch_only(BIP84_ZPUB, "main")
    assert desc.address(MAX_INDEX).startswith("bc1q")
    for bad in (-1, MAX_INDEX + 1, 2**32):
        with pytest.raises(ValueError):
            desc.address(bad)
    with pytest.raises(TypeError):
        desc.script_pubkey(True)  # type: ignore[arg-type]


def test_fingerprint_changes_with_the_wallet() -> None:
    first = parse_watch_only(BIP84_ZPUB, "main")
    other = parse_watch_only(f"tr({BIP86_XPUB}/<0;1>/*)", "main")
    nested = parse_watch_only(_slip132("m/84h/0h/0h", "main", "ypub"), "main")
    assert len(first.fingerprint()) == 64
    assert len({first.fingerprint(), other.fingerprint(), nested.fingerprint()}) == 3
    assert first.fingerprint() == parse_watch_only(BIP84_ZPUB, "main").fingerprint()


def test_canonical_round_trips() -> None:
    for text, network in (
        (BIP84_ZPUB, "main"),
        (BIP49_UPUB, "test"),
        (f"tr({BIP86_XPUB}/<0;1>/*)", "main"),
    ):
        desc = parse_watch_only(text, network)
        again = parse_watch_only(desc.canonical, network)
        assert again == desc
        assert again.address(7) == desc.address(7)
        assert isinstance(hash(desc), int)
        assert isinstance(desc, WatchOnlyDescriptor)


def test_iter_script_pubkeys_matches_single_derivation() -> None:
    desc = parse_watch_only(BIP84_ZPUB, "main")
    batch = list(desc.iter_script_pubkeys(0, 3))
    assert batch == [(i, desc.script_pubkey(i)) for i in range(3)]
    with pytest.raises(ValueError):
        list(desc.iter_script_pubkeys(MAX_INDEX, 2))


@pytest.mark.parametrize("text", [BIP84_ZPUB, f"tr({BIP86_XPUB}/<0;1>/*)"])
def test_derivation_is_fast(text: str) -> None:
    # 100,000 scripts must take well under a minute on one core; check the
    # rate on a sample with a wide margin so slow CI machines do not flake.
    desc = parse_watch_only(text, "main")
    started = time.perf_counter()
    count = sum(1 for _ in desc.iter_script_pubkeys(1_000, 2_000))
    rate = count / (time.perf_counter() - started)
    assert rate > 1_000, f"only {rate:.0f} scripts/s"


def test_bitcoin_modules_import_no_web_or_database_code() -> None:
    # They run in workers and CLI tools without an app context; keep them that way.
    import ast
    from pathlib import Path

    import shop.payments.bitcoin.descriptor as descriptor_module
    import shop.payments.bitcoin.node as node_module
    import shop.payments.bitcoin.rawtx as rawtx_module

    # rawtx (hashlib only) is the one shop module node.py may use; it is checked here too.
    for module in (descriptor_module, node_module, rawtx_module):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and not (
                node.module == "shop.payments.bitcoin" and [a.name for a in node.names] == ["rawtx"]
            )
        }
        assert not imported & {"flask", "sqlalchemy", "shop"}, module.__name__
