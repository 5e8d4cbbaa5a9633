"""NodeClient against FakeNode over real HTTP (and ZMQ), plus checks of the fake itself."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bitcoin.core import CBlock, CTransaction, b2lx

from shop.payments.bitcoin.descriptor import parse_watch_only
from shop.payments.bitcoin.node import (
    NodeAuthError,
    NodeClient,
    NodeError,
    NodeRPCError,
    NodeUnavailable,
    NodeWrongNetwork,
    ZmqSubscriber,
    btc_to_sats,
)
from tests.bitcoin.fake_node import (
    REGTEST_GENESIS_HASH,
    REGTEST_TARGET,
    FakeNode,
    FakeNodeError,
    random_p2wpkh,
)

pytestmark = pytest.mark.timeout(30)

SHOP_SCRIPT = bytes.fromhex("0014") + bytes(range(20))


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with FakeNode() as fake:
        yield fake


@pytest.fixture
def client(node: FakeNode) -> Iterator[NodeClient]:
    rpc = NodeClient(node.url, timeout=5)
    yield rpc
    rpc.close()


def _raw_post(
    node: FakeNode, payload: dict[str, object], auth: str | None = None
) -> tuple[int, dict[str, object] | None]:
    """POST straight to the fake, to check its HTTP behaviour without the client in between."""
    user_pass = auth if auth is not None else node.url.split("//")[1].split("@")[0]
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    try:
        connection.request(
            "POST",
            "/",
            json.dumps(payload),
            {"Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()},
        )
        response = connection.getresponse()
        body = response.read()
        return response.status, (json.loads(body) if body else None)
    finally:
        connection.close()


# -- blocks ------------------------------------------------------------------------------------


def test_chain_info_and_genesis(client: NodeClient) -> None:
    info = client.get_blockchain_info()
    assert info["chain"] == "regtest"
    assert info["blocks"] == 0
    assert info["pruned"] is False
    assert info["initialblockdownload"] is False
    assert client.chain_name() == "regtest"
    assert client.network() == "regtest"
    assert client.get_block_hash(0) == REGTEST_GENESIS_HASH
    assert client.get_best_block_hash() == REGTEST_GENESIS_HASH
    genesis = client.get_block(REGTEST_GENESIS_HASH)
    assert (
        b2lx(genesis.hashMerkleRoot)
        == "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    )


def test_check_network(client: NodeClient) -> None:
    client.check_network("regtest")
    with pytest.raises(NodeWrongNetwork, match="regtest"):
        client.check_network("main")


def test_block_round_trip(node: FakeNode, client: NodeClient) -> None:
    payment = node.make_payment(SHOP_SCRIPT, 25_000)
    node.add_to_mempool(payment)
    hashes = node.mine(3)
    assert client.get_block_count() == 3
    previous = REGTEST_GENESIS_HASH
    for height, expected in enumerate(hashes, start=1):
        block_hash = client.get_block_hash(height)
        assert block_hash == expected
        block = client.get_block(block_hash)
        assert isinstance(block, CBlock)
        assert b2lx(block.GetHash()) == block_hash
        assert b2lx(block.hashPrevBlock) == previous
        assert block.calc_merkle_root() == block.hashMerkleRoot
        assert int.from_bytes(block.GetHash(), "little") <= REGTEST_TARGET
        assert block.vtx[0].is_coinbase()
        previous = block_hash
    first = client.get_block(hashes[0])
    assert [b2lx(tx.GetTxid()) for tx in first.vtx[1:]] == [b2lx(payment.GetTxid())]
    assert first.vtx[1].vout[0].scriptPubKey == SHOP_SCRIPT
    assert first.vtx[1].vout[0].nValue == 25_000
    # The witness commitment is there and correct (BIP141).
    commitment = first.vtx[0].vout[first.get_witness_commitment_index()].scriptPubKey
    assert commitment[6:38] == _witness_commitment(first)
    header = client.get_block_header(hashes[0])
    assert header["height"] == 1
    assert header["confirmations"] == 3
    assert header["previousblockhash"] == REGTEST_GENESIS_HASH


def _witness_commitment(block: CBlock) -> bytes:
    from bitcoin.core import Hash

    return Hash(block.calc_witness_merkle_root() + bytes(32))


def test_payment_to_descriptor_address_is_found_in_block(
    node: FakeNode, client: NodeClient
) -> None:
    from embit import bip39
    from embit.bip32 import HDKey
    from embit.networks import NETWORKS

    root = HDKey.from_seed(bip39.mnemonic_to_seed(" ".join(["abandon"] * 11 + ["about"])))
    vpub = root.derive("m/84h/1h/0h").to_public().to_base58(version=NETWORKS["test"]["zpub"])
    descriptor = parse_watch_only(vpub, "regtest")
    address, script = descriptor.derive(3)
    assert address.startswith("bcrt1q")
    node.add_to_mempool(node.make_payment(script, 7_777))
    block = client.get_block(node.mine()[0])
    paid = [out.nValue for tx in block.vtx for out in tx.vout if out.scriptPubKey == script]
    assert paid == [7_777]


def test_unknown_block_is_rpc_error_minus_5(client: NodeClient) -> None:
    with pytest.raises(NodeRPCError) as info:
        client.get_block("11" * 32)
    assert info.value.code == -5
    assert info.value.method == "getblock"
    with pytest.raises(NodeRPCError) as header_info:
        client.get_block_header("11" * 32)
    assert header_info.value.code == -5
    with pytest.raises(NodeRPCError) as height_info:
        client.get_block_hash(99)
    assert height_info.value.code == -8


def test_bad_arguments_never_reach_the_node(client: NodeClient) -> None:
    with pytest.raises(ValueError):
        client.get_block("not-a-hash")
    with pytest.raises(ValueError):
        client.get_block_hash(-1)


def test_unknown_method_is_rpc_error(client: NodeClient) -> None:
    with pytest.raises(NodeRPCError) as info:
        client.call("listunspent")
    assert info.value.code == -32601


def test_large_block(node: FakeNode, client: NodeClient) -> None:
    block_hash = node.fill_block(3_000)
    block = client.get_block(block_hash)
    assert len(block.vtx) == 3_001
    assert b2lx(block.GetHash()) == block_hash


def test_pruned_node(node: FakeNode, client: NodeClient) -> None:
    hashes = node.mine(5)
    node.prune(3)
    info = client.get_blockchain_info()
    assert info["pruned"] is True
    assert info["pruneheight"] == 3
    with pytest.raises(NodeRPCError) as pruned:
        client.get_block(hashes[0])
    assert pruned.value.code == -1
    assert client.get_block_header(hashes[0])["height"] == 1
    assert client.get_block(hashes[3]).GetHash() is not None


# -- mempool -----------------------------------------------------------------------------------


def test_raw_mempool_transaction(node: FakeNode, client: NodeClient) -> None:
    payment = node.make_payment(SHOP_SCRIPT, 50_000, extra_outputs=[(random_p2wpkh(), 1_234)])
    txid = node.add_to_mempool(payment)
    assert client.get_raw_mempool() == [txid]
    tx = client.get_raw_transaction(txid)
    assert isinstance(tx, CTransaction)
    assert b2lx(tx.GetTxid()) == txid
    assert tx.has_witness()
    assert (tx.vout[0].scriptPubKey, tx.vout[0].nValue) == (SHOP_SCRIPT, 50_000)
    assert tx.vout[1].nValue == 1_234
    entry = client.get_mempool_entry(txid)
    assert entry is not None
    assert entry["bip125-replaceable"] is False
    assert btc_to_sats(entry["fees"]["base"]) == 1_000
    assert client.get_raw_transaction("22" * 32) is None
    assert client.get_mempool_entry("22" * 32) is None


def test_confirmed_transaction_needs_block_hash_without_txindex(
    node: FakeNode, client: NodeClient
) -> None:
    txid = node.add_to_mempool(node.make_payment(SHOP_SCRIPT, 10_000))
    block_hash = node.mine()[0]
    assert client.get_raw_mempool() == []
    assert client.get_raw_transaction(txid) is None
    found = client.get_raw_transaction(txid, block_hash=block_hash)
    assert found is not None and b2lx(found.GetTxid()) == txid


def test_rbf_signalling_and_replacement(node: FakeNode, client: NodeClient) -> None:
    original = node.make_payment(SHOP_SCRIPT, 30_000, rbf=True)
    old_txid = node.add_to_mempool(original)
    entry = client.get_mempool_entry(old_txid)
    assert entry is not None and entry["bip125-replaceable"] is True
    bumped = node.make_payment(SHOP_SCRIPT, 30_000, rbf=True, fee=5_000, conflicts_with=original)
    with pytest.raises(FakeNodeError, match="txn-mempool-conflict"):
        node.add_to_mempool(bumped)
    new_txid = node.replace(original, bumped)
    assert client.get_raw_mempool() == [new_txid]
    assert client.get_raw_transaction(old_txid) is None
    new_entry = client.get_mempool_entry(new_txid)
    assert new_entry is not None and btc_to_sats(new_entry["fees"]["base"]) == 5_000


def test_double_spend_mined_evicts_mempool_payment(node: FakeNode, client: NodeClient) -> None:
    payment = node.make_payment(SHOP_SCRIPT, 40_000)
    txid = node.add_to_mempool(payment)
    theft = node.make_payment(random_p2wpkh(), 40_000, conflicts_with=payment)
    block = client.get_block(node.mine(txs=[theft])[0])
    assert client.get_raw_mempool() == []
    assert txid not in [b2lx(tx.GetTxid()) for tx in block.vtx]
    with pytest.raises(FakeNodeError, match="missingorspent"):
        node.add_to_mempool(payment)


def test_reorg_marks_old_blocks_and_returns_txs_to_mempool(
    node: FakeNode, client: NodeClient
) -> None:
    node.mine(2)
    txid = node.add_to_mempool(node.make_payment(SHOP_SCRIPT, 60_000))
    stale = node.mine(2)
    new = node.reorg(2)
    assert len(new) == 3
    assert client.get_block_count() == 5
    assert client.get_best_block_hash() == new[-1]
    assert client.get_block_header(stale[0])["confirmations"] == -1
    assert client.get_block(stale[0]).vtx[1].GetTxid() == bytes.fromhex(txid)[::-1]
    assert client.call("getblock", stale[0], 1)["confirmations"] == -1
    assert client.get_raw_mempool() == [txid]


def test_reorg_with_double_spend_drops_payment(node: FakeNode, client: NodeClient) -> None:
    payment = node.make_payment(SHOP_SCRIPT, 60_000)
    node.add_to_mempool(payment)
    node.mine()
    theft = node.make_payment(random_p2wpkh(), 60_000, conflicts_with=payment)
    new = node.reorg(1, [[theft]])
    assert client.get_raw_mempool() == []
    block = client.get_block(new[0])
    assert [tx.GetTxid() for tx in block.vtx[1:]] == [theft.GetTxid()]


def test_reorg_can_remine_orphaned_txs(node: FakeNode, client: NodeClient) -> None:
    payment = node.make_payment(SHOP_SCRIPT, 60_000)
    node.add_to_mempool(payment)
    node.mine()
    new = node.reorg(1, include_orphaned=True)
    assert client.get_raw_mempool() == []
    assert client.get_block(new[0]).vtx[1].GetTxid() == payment.GetTxid()


# -- authentication ------------------------------------------------------------------------


def test_cookie_auth_survives_node_restart(tmp_path: Path) -> None:
    with FakeNode(cookie_dir=tmp_path / "regtest") as fake:
        assert fake.cookie_path.read_text().startswith("__cookie__:")
        rpc = NodeClient(fake.base_url, cookie_file=fake.cookie_path, timeout=5)
        assert rpc.get_block_count() == 0
        old_cookie = fake.cookie_path.read_text()
        fake.restart()
        assert fake.cookie_path.read_text() != old_cookie
        fake.mine()
        assert rpc.get_block_count() == 1
        assert fake.auth_failures == 1
        rpc.close()
    assert not (tmp_path / "regtest" / ".cookie").exists()


def test_missing_cookie_file_is_unavailable(tmp_path: Path) -> None:
    rpc = NodeClient("http://127.0.0.1:1/", cookie_file=tmp_path / "nope" / ".cookie", timeout=1)
    with pytest.raises(NodeUnavailable, match="cookie"):
        rpc.get_block_count()


def test_wrong_password_is_auth_error(node: FakeNode) -> None:
    rpc = NodeClient(f"http://shop:wrong@127.0.0.1:{node.port}/", timeout=5)
    with pytest.raises(NodeAuthError):
        rpc.get_block_count()


def test_percent_encoded_password(tmp_path: Path) -> None:
    with FakeNode(user="shop", password="p@ss:w/rd") as fake:
        rpc = NodeClient(f"http://shop:p%40ss%3Aw%2Frd@127.0.0.1:{fake.port}/", timeout=5)
        assert rpc.get_block_count() == 0
        assert "p@ss" not in repr(rpc)


def test_client_needs_credentials_and_port() -> None:
    with pytest.raises(ValueError):
        NodeClient("http://127.0.0.1:8332/")
    with pytest.raises(ValueError):
        NodeClient("http://u:p@127.0.0.1/")
    with pytest.raises(ValueError):
        NodeClient("https://u:p@127.0.0.1:8332/")


# -- outages ---------------------------------------------------------------------------------


def test_node_down_then_back(node: FakeNode, client: NodeClient) -> None:
    assert client.get_block_count() == 0
    node.set_down(True)
    with pytest.raises(NodeUnavailable):
        client.get_block_count()
    node.set_down(False)
    assert client.get_block_count() == 0


def test_http_503_is_unavailable(node: FakeNode, client: NodeClient) -> None:
    assert client.get_block_count() == 0
    node.set_down(True, mode="503")
    with pytest.raises(NodeUnavailable, match="503"):
        client.get_block_count()
    node.set_down(False, mode="503")
    assert client.get_block_count() == 0


def test_warming_up_is_unavailable(node: FakeNode, client: NodeClient) -> None:
    node.set_warmup(True)
    with pytest.raises(NodeUnavailable, match="starting up"):
        client.get_blockchain_info()
    node.set_warmup(False)
    assert client.get_blockchain_info()["chain"] == "regtest"


def test_timeout_is_unavailable_and_client_recovers(node: FakeNode) -> None:
    rpc = NodeClient(node.url, timeout=0.3)
    assert rpc.get_block_count() == 0
    node.set_delay(1.0)
    started = time.monotonic()
    with pytest.raises(NodeUnavailable, match="did not answer"):
        rpc.get_block_count()
    assert time.monotonic() - started < 0.9
    node.set_delay(0)
    node.mine()
    assert rpc.get_block_count() == 1
    rpc.close()


def test_stale_keepalive_connection_is_retried(node: FakeNode, client: NodeClient) -> None:
    assert client.get_block_count() == 0
    node.restart()  # drops open connections, as bitcoind's idle timeout does
    assert client.get_block_count() == 0


def test_nothing_listening_is_unavailable() -> None:
    with FakeNode() as fake:
        url = fake.url
    rpc = NodeClient(url, timeout=1)
    with pytest.raises(NodeUnavailable):
        rpc.get_block_count()
    assert issubclass(NodeUnavailable, NodeError)


# -- the fake speaks Core's HTTP dialect ---------------------------------------------------


def test_fake_http_statuses_match_core(node: FakeNode) -> None:
    status, body = _raw_post(node, {"method": "getblockcount", "params": [], "id": 1})
    assert (status, body) == (200, {"result": 0, "error": None, "id": 1})
    status, body = _raw_post(node, {"method": "getblock", "params": ["33" * 32], "id": 2})
    assert status == 500
    assert body == {"result": None, "error": {"code": -5, "message": "Block not found"}, "id": 2}
    status, body = _raw_post(node, {"method": "nosuchmethod", "params": [], "id": 3})
    assert status == 404 and body is not None and body["error"]["code"] == -32601
    status, body = _raw_post(node, {"jsonrpc": "2.0", "method": "nosuchmethod", "id": 4})
    assert status == 200 and body == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": 4,
    }
    status, body = _raw_post(node, {"method": "getblockcount", "id": 5}, auth="shop:nope")
    assert (status, body) == (401, None)
    status, body = _raw_post(node, {"method": "getblockhash", "params": {"height": 0}, "id": 6})
    assert body is not None and body["result"] == REGTEST_GENESIS_HASH


def test_fake_amounts_are_exact_json_numbers(node: FakeNode) -> None:
    txid = node.add_to_mempool(node.make_payment(SHOP_SCRIPT, 123_456_789))
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    user_pass = node.url.split("//")[1].split("@")[0]
    connection.request(
        "POST",
        "/",
        json.dumps({"method": "getrawtransaction", "params": [txid, True], "id": 1}),
        {"Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()},
    )
    raw = connection.getresponse().read().decode()
    connection.close()
    assert '"value": 1.23456789' in raw


# -- ZMQ ----------------------------------------------------------------------------------------


def _receive_until(
    subscriber: ZmqSubscriber, topic: str, trigger: object, deadline_s: float = 5.0
) -> list[bytes]:
    """ZMQ subscriptions take a moment to start ("slow joiner"): retrigger until one arrives."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        trigger()  # type: ignore[operator]
        bodies = [body for t, body in subscriber.receive(100) if t == topic]
        if bodies:
            return bodies
    raise AssertionError(f"no {topic} notification")


def test_zmq_wakes_on_block_and_tx() -> None:
    with FakeNode(zmq_publisher=True) as fake:
        with ZmqSubscriber(fake.zmq_endpoint, fake.zmq_endpoint) as subscriber:
            mined: list[str] = []
            bodies = _receive_until(subscriber, "hashblock", lambda: mined.extend(fake.mine()))
            # Core publishes the hash in RPC (display) byte order.
            assert bodies[0].hex() in mined
            assert "hashblock" in subscriber.last_sequence

            sent: list[CTransaction] = []

            def send() -> None:
                tx = fake.make_payment(SHOP_SCRIPT, 1_000)
                fake.add_to_mempool(tx)
                sent.append(tx)

            # Mining above also published its coinbases as rawtx; skip those leftovers.
            end = time.monotonic() + 5
            found = False
            while not found and time.monotonic() < end:
                raw = _receive_until(subscriber, "rawtx", send)
                found = any(
                    CTransaction.deserialize(body).GetTxid() in {s.GetTxid() for s in sent}
                    for body in raw
                )
            assert found


def test_zmq_three_part_messages_with_sequence() -> None:
    with FakeNode(zmq_publisher=True) as fake:
        with ZmqSubscriber(hashblock_endpoint=fake.zmq_endpoint) as subscriber:
            _receive_until(subscriber, "hashblock", fake.mine)
            first = subscriber.last_sequence["hashblock"]
            fake.mine()
            messages = subscriber.receive(2_000)
            assert [topic for topic, _ in messages] == ["hashblock"]
            assert subscriber.last_sequence["hashblock"] == first + 1


def test_zmq_needs_an_endpoint() -> None:
    with pytest.raises(ValueError):
        ZmqSubscriber()
