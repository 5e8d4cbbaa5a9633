"""Lightning settings are checked at start-up: the node's credential and certificate."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from shop.config import ConfigError, load_settings
from shop.payments.lightning.backend import LightningError
from shop.payments.lightning.lnd.client import LndRest
from tests.lightning.fake_lnd import FakeLnd
from tests.lightning.keys import ADMIN_OPS, INVOICE_OPS, tls_cert

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def lnd():
    with FakeLnd(Path(tempfile.mkdtemp(prefix="ln-"))) as fake:
        yield fake


def _settings(**values):
    return load_settings(environ={}, overrides={"secret_key": "x" * 40, **values})


def test_an_admin_macaroon_is_refused_at_start_up(lnd):
    admin = lnd.bake(ADMIN_OPS, "admin")
    with pytest.raises(ConfigError) as err:
        _settings(
            lightning_lnd_url=lnd.url,
            lightning_lnd_macaroon=str(admin),
            lightning_lnd_cert=str(lnd.cert_path),
        )
    message = str(err.value)
    assert "SHOP_LIGHTNING_LND_MACAROON" in message
    assert "offchain:write" in message and "onchain:write" in message
    assert "lncli bakemacaroon invoices:read invoices:write" in message
    # One extra spending permission is enough to refuse it.
    spender = lnd.bake({**INVOICE_OPS, "offchain": ["read", "write"]}, "spender")
    with pytest.raises(ConfigError, match="offchain:write"):
        _settings(
            lightning_lnd_url=lnd.url,
            lightning_lnd_macaroon=str(spender),
            lightning_lnd_cert=str(lnd.cert_path),
        )
    # The invoice-only macaroon starts, and the node accepts it.
    ok = lnd.bake(INVOICE_OPS)
    settings = _settings(
        lightning_lnd_url=lnd.url,
        lightning_lnd_macaroon=str(ok),
        lightning_lnd_cert=str(lnd.cert_path),
    )
    client = LndRest(settings.lightning_lnd_url, str(ok), str(lnd.cert_path))
    assert client.info().synced


def test_a_macaroon_without_invoice_permission_or_not_a_macaroon_is_refused(lnd, tmp_path):
    readonly = lnd.bake({"info": ["read"]}, "readonly")
    with pytest.raises(ConfigError, match="no invoice permissions"):
        _settings(
            lightning_lnd_url=lnd.url,
            lightning_lnd_macaroon=str(readonly),
            lightning_lnd_cert=str(lnd.cert_path),
        )
    junk = tmp_path / "junk.macaroon"
    junk.write_bytes(b"\x02not a macaroon")
    with pytest.raises(ConfigError, match="not a macaroon"):
        _settings(
            lightning_lnd_url=lnd.url,
            lightning_lnd_macaroon=str(junk),
            lightning_lnd_cert=str(lnd.cert_path),
        )


def test_the_node_is_reached_only_through_the_pinned_certificate(lnd, tmp_path):
    ok = lnd.bake(INVOICE_OPS)
    other_cert, _ = tls_cert(tmp_path, "other")  # e.g. someone in between with their own
    client = LndRest(lnd.url, str(ok), str(other_cert))
    with pytest.raises(LightningError, match="unreachable"):
        client.create_invoice(1000, "Demo Shop order 1", 60, "x")
    assert not lnd.invoices


def test_settings_go_together_and_exclude_each_other(lnd):
    with pytest.raises(ConfigError, match="go together"):
        _settings(lightning_lnd_url=lnd.url)
    with pytest.raises(ConfigError, match="must be https"):
        _settings(
            lightning_lnd_url="http://127.0.0.1:8080",
            lightning_lnd_macaroon=str(lnd.bake(INVOICE_OPS)),
            lightning_lnd_cert=str(lnd.cert_path),
        )
    with pytest.raises(ConfigError, match="exclude each other"):
        _settings(
            lightning_lnd_url=lnd.url,
            lightning_lnd_macaroon=str(lnd.bake(INVOICE_OPS)),
            lightning_lnd_cert=str(lnd.cert_path),
            lightning_cln_rpc="/run/cln/rpc",
        )
    with pytest.raises(ConfigError, match="absolute path"):
        _settings(lightning_cln_rpc="lightning-rpc")


def test_a_core_lightning_node_that_never_answers_does_not_hold_the_caller(tmp_path):
    """lightningd accepts the connection and then hangs (a stuck node): each call gives up
    after the configured timeout, or sooner when the request's time budget runs out."""
    import socket
    import threading
    import time

    from shop import budget
    from shop.payments.lightning.backend import LightningError
    from shop.payments.lightning.cln.client import ClnRpc

    path = str(tmp_path / "lightning-rpc")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept_and_hang() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_hang, daemon=True)
    thread.start()
    try:
        client = ClnRpc(path, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(LightningError, match="unreachable"):
            client.info()
        assert time.monotonic() - started < 3

        token = budget.start(0.3)  # a web request with little time left
        try:
            started = time.monotonic()
            with pytest.raises(LightningError):
                ClnRpc(path, timeout=10).info()
            assert time.monotonic() - started < 2
        finally:
            budget.end(token)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
