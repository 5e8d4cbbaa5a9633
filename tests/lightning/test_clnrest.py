"""Core Lightning through CLNRest (HTTPS, a rune in the `Rune` header, `POST /v1/<method>`), as
the alternative to the unix socket for a node on another machine: the rune must be restricted
to the invoice methods (refused at start-up otherwise), and TLS is pinned to the node's
certificate. The stand-in serves CLNRest over HTTPS with a self-signed certificate and checks
runes as the node does."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest
from pyln.proto.invoice import Invoice

from shop.config import ConfigError, load_settings
from shop.orders.views import order_view
from shop.payments.lightning.backend import LightningError
from shop.payments.lightning.cln.client import ClnRpc
from shop.payments.lightning.cln.rune import INVOICE_METHODS, RuneError, check
from tests.bitcoin.conftest import place
from tests.lightning.conftest import listen, ln_app, wait_for
from tests.lightning.fake_cln import FakeCln
from tests.lightning.keys import NODE_PUBKEY, tls_cert
from tests.lightning.test_lightning import SATS

pytestmark = pytest.mark.timeout(60)

INVOICE_ONLY = [f"method={m}" for m in sorted(INVOICE_METHODS)]


@pytest.fixture
def cln():
    fake = FakeCln(Path(tempfile.mkdtemp(prefix="ln-")), rest=True).start()
    yield fake
    fake.stop()


def _rune_file(directory: Path, rune: str) -> str:
    path = directory / "shop.rune"
    path.write_text(rune + "\n")
    return str(path)


def _rest_settings(cln: FakeCln, rune_path: str) -> dict:
    return {
        "lightning_cln_rest_url": cln.rest_url,
        "lightning_cln_rune": rune_path,
        "lightning_cln_cert": str(cln.cert_path),
    }


def _load(**values):
    return load_settings(environ={}, overrides={"secret_key": "x" * 40, **values})


def test_a_rune_not_restricted_to_invoice_methods_is_refused_at_start_up(cln, tmp_path):
    refused = {
        # createrune without restrictions: only its unique id; it can do anything.
        "unrestricted": cln.rune(["=0"]),
        # "starts with invoice" also lets `invoicerequest` through, which pays out.
        "prefix": cln.rune(["=1"], ["method^invoice", "method=listinvoices"]),
        "one money method": cln.rune(["=2"], [*INVOICE_ONLY, "method=pay"]),
        "a comment passes anything": cln.rune(["=3"], [*INVOICE_ONLY, "#shop"]),
        "another field widens it": cln.rune(["=4"], [*INVOICE_ONLY, "id=02" + "aa" * 32]),
        "missing a method the shop needs": cln.rune(["=5"], INVOICE_ONLY[:-1]),
        "not a rune": "not-a-rune!",
    }
    for why, rune in refused.items():
        with pytest.raises(ConfigError, match="SHOP_LIGHTNING_CLN_RUNE cannot be used") as err:
            _load(**_rest_settings(cln, _rune_file(tmp_path, rune)))
        assert "createrune" in str(err.value) or why == "not a rune", why
    # Restricted to the invoice methods (and narrowed further by other restrictions): accepted.
    ok = cln.rune(["=6"], INVOICE_ONLY, ["method/pay"])
    settings = _load(**_rest_settings(cln, _rune_file(tmp_path, ok)))
    assert settings.lightning_cln_rest_url == cln.rest_url
    assert check(ok) == INVOICE_METHODS
    with pytest.raises(RuneError):
        check(cln.rune(["=7"], ["method^list"]))
    # The socket and CLNRest exclude each other; the three CLNRest settings go together.
    with pytest.raises(ConfigError, match="exclude each other"):
        _load(lightning_cln_rpc=cln.socket_path, **_rest_settings(cln, _rune_file(tmp_path, ok)))
    with pytest.raises(ConfigError, match="go together"):
        _load(lightning_cln_rest_url=cln.rest_url)
    with pytest.raises(ConfigError, match="https://host:port"):
        _load(
            **{
                **_rest_settings(cln, _rune_file(tmp_path, ok)),
                "lightning_cln_rest_url": "http://127.0.0.1:3010",
            }
        )


def test_invoices_and_settlements_through_clnrest(db_url, tmp_path, cln):
    rune = cln.rune(["=0"], INVOICE_ONLY)
    app = ln_app(db_url, tmp_path, None, **_rest_settings(cln, _rune_file(tmp_path, rune)))
    db = app.extensions["shop.db"]
    method = app.extensions["shop.payment_methods"]["lightning"]
    try:
        with db.job_session(write_lock=True) as session:
            view = order_view(place(session, method="lightning"))
        invoice = method.new_invoice(view)
        decoded = Invoice.decode(invoice.bolt11)
        assert decoded.pubkey.format().hex() == NODE_PUBKEY
        assert int(decoded.amount * 10**11) == SATS * 1000
        # Over CLNRest, with the rune on every request; the unix socket is never used directly.
        assert ("/v1/invoice", rune) in cln.rest_requests
        assert all(r == rune for _path, r in cln.rest_requests)
        with listen(db, method):
            wait_for(lambda: cln.waiting > 0)  # waitanyinvoice over HTTPS
            cln.pay(invoice.payment_hash)
            wait_for(lambda: _status(db, view.id) in ("paid", "fulfilled"))
        assert ("/v1/waitanyinvoice", rune) in cln.rest_requests
        assert method.node_info().active_channels == 1  # getinfo, listpeerchannels
    finally:
        db.dispose()


def _status(db, order_id: int) -> str:
    from shop.orders.models import Order

    with db.job_session() as session:
        return session.get(Order, order_id).status


def test_the_node_refuses_what_the_rune_does_not_allow_and_tls_is_pinned(cln, tmp_path):
    from shop.payments.lightning.cln.client import read_rune

    rune = cln.rune(["=0"], INVOICE_ONLY)
    rune_path = _rune_file(tmp_path, rune)
    assert read_rune(rune_path) == rune
    client = ClnRpc.rest(cln.rest_url, rune_path, str(cln.cert_path), timeout=5)
    assert client.info().pubkey == NODE_PUBKEY
    # A method outside the rune: the node says no (HTTP 401), the shop reads a LightningError.
    with pytest.raises(LightningError, match="Not authorized"):
        client._call("listfunds")
    # A rune whose restrictions were widened after the node issued it (its authentication code
    # no longer fits: the node refuses it).
    raw = base64.urlsafe_b64decode(rune)
    client.rpc.rune = base64.urlsafe_b64encode(
        raw[:32] + raw[32:].replace(b"method=getinfo", b"method=listfunds")
    ).decode()
    with pytest.raises(LightningError, match="Not authorized"):
        client._call("listfunds")
    # Another certificate than the node's: no connection, whatever the host name says.
    other = tmp_path / "other"
    other.mkdir()
    wrong_cert, _key = tls_cert(other, "wrong")
    pinned_elsewhere = ClnRpc.rest(cln.rest_url, rune_path, str(wrong_cert), timeout=5)
    with pytest.raises(LightningError, match="unreachable"):
        pinned_elsewhere.info()
