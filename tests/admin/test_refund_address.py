"""Bitcoin refunds: the merchant asks for an address, the customer gives one valid for the
shop's network on their order page, the merchant records the refund transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.orders import service
from shop.orders.models import Order
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.privacy.crypto import generate_master_key_text
from shop.privacy.purge import erasers
from shop.refunds import service as refunds
from shop.refunds.models import RefundAddress
from shop.refunds.service import RefundAddressError, validate_address
from tests.browser import Browser
from tests.conftest import make_test_app

MAIN = [
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
]
TEST = ["tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"]


def test_addresses_are_checked_for_the_network():
    for address in MAIN:
        assert validate_address(f"  {address} ", "main") == address
    for address in TEST:
        assert validate_address(address, "test") == address
        with pytest.raises(RefundAddressError, match="not for Bitcoin mainnet"):
            validate_address(address, "main")
    with pytest.raises(RefundAddressError, match="not for testnet"):
        validate_address(MAIN[0], "test")
    for bad in [
        "",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdx",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",
        "hello",
        "x" * 200,
        "<script>",
    ]:
        with pytest.raises(RefundAddressError):
            validate_address(bad, "main")


def _paid_bitcoin_order(database) -> Order:
    with database.job_session() as session:
        variant = session.scalar(select(Variant).where(Variant.sku == "EBOOK-FIELD"))
        order = service.place_order(
            session,
            service.PlaceOrder(
                digital_consent=True,
                cart=[CartLine(variant.id, 1, variant.price)],
                country="DE",
                payment_method="bitcoin",
                currency="EUR",
                expiry_minutes=30,
            ),
        )
        service.apply_payment_event(
            session,
            PaymentEvent(
                provider="bitcoin",
                key="txid1:0",
                order_ref=order.ref,
                kind=PaymentEventKind.PAID,
                amount=order.total,
                currency="EUR",
                reference="txid1",
            ),
        )
        session.expunge(order)
        return order


def test_refund_address_flow(admin, client, database):
    order = _paid_bitcoin_order(database)
    customer = Browser(client)
    assert "Refund" not in customer.get(f"/orders/{order.token}").soup.select_one("main").get_text()

    admin.get(f"/admin/orders/{order.number}")
    page = admin.submit(admin.form("form[action$='/refund-address']"))
    assert "now asks for a refund address" in " ".join(page.messages())
    assert "Waiting for the customer" in page.text

    page = customer.get(f"/orders/{order.token}")
    assert "Please give a Bitcoin address" in page.text
    page = customer.submit(customer.form("form[action$='/refund-address']"), {"address": TEST[0]})
    assert any("not for Bitcoin mainnet" in m for m in page.messages())
    page = customer.submit(customer.form("form[action$='/refund-address']"), {"address": MAIN[0]})
    assert "Thank you: we will send your refund to this address." in page.messages()
    assert MAIN[0] in page.text and not page.soup.select("form[action$='/refund-address']")

    with database.job_session() as session:
        stored = session.execute(
            text("SELECT address FROM refund_addresses WHERE order_id = :id"), {"id": order.id}
        ).scalar_one()
    # Sealed, not plain: neither the text nor its hex form (how dumps show bytea) is in the column.
    assert isinstance(stored, (bytes, memoryview)) and len(bytes(stored)) > len(MAIN[0])
    assert (
        MAIN[0].encode() not in bytes(stored) and MAIN[0].encode().hex() not in bytes(stored).hex()
    )
    csrf = page.soup.find("input", attrs={"name": "csrf_token"})["value"]
    again = client.post(
        f"/orders/{order.token}/refund-address",
        data={"csrf_token": csrf, "address": MAIN[1]},
        follow_redirects=True,
    )
    assert "already given" in again.get_data(as_text=True)

    page = admin.get(f"/admin/orders/{order.number}")
    assert page.soup.select_one(".refund-address").get_text() == MAIN[0]
    page = admin.submit(
        admin.form("form[action$='/refund']"), {"amount": "12.00", "reference": "f00dtx"}
    )
    assert "Refund recorded." in page.messages()
    with database.job_session() as session:
        refunded = session.get(Order, order.id)
        assert (refunded.status, refunded.amount_refunded) == ("refunded", 1200)
        # The purge erases the address with the order's other personal data.
        assert erasers()["refund-addresses"](session, [order.id]) == 1
        assert session.get(RefundAddress, order.id).address is None


def test_only_paid_bitcoin_orders_ask(admin, client, database):
    from tests.admin.conftest import buy

    buy(client)  # a demo-paid order
    number = database.sessionmaker().scalar(select(Order.number))
    page = admin.get(f"/admin/orders/{number}")
    assert not page.soup.select("form[action$='/refund-address']")
    csrf = page.soup.find("input", attrs={"name": "csrf_token"})["value"]
    response = admin.client.post(
        f"/admin/orders/{number}/refund-address", data={"csrf_token": csrf}, follow_redirects=True
    )
    assert "does not refund to an address" in response.get_data(as_text=True)
    token = database.sessionmaker().scalar(select(Order.token))
    response = client.post(
        f"/orders/{token}/refund-address",
        data={"csrf_token": csrf, "address": MAIN[0]},
        follow_redirects=True,
    )
    assert "No refund address was asked for" in response.get_data(as_text=True)
    assert client.post("/orders/nope/refund-address", data={"csrf_token": csrf}).status_code == 404


def test_refund_address_survives_key_rotation(db_url, tmp_path):
    """Sealed under the order's data key: rotating the master key re-wraps that key, so the
    address stays readable with the new key alone, and a stranger's key reads nothing."""
    old_key, new_key = generate_master_key_text(), generate_master_key_text()
    ring = str(tmp_path / "keyring")  # the key ring folder all of them share
    app = make_test_app(db_url, tmp_path / "i1", data_key=old_key, keyring_path=ring)
    from shop.demo import seed_demo

    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    order = _paid_bitcoin_order(app.extensions["shop.db"])
    with app.extensions["shop.db"].job_session() as session:
        paid = session.get(Order, order.id)
        refunds.request_address(session, paid)
        refunds.give_address(session, paid, MAIN[2], "main")
    app.extensions["shop.db"].dispose()

    rotating = make_test_app(
        db_url, tmp_path / "i2", data_key=new_key, data_key_old=old_key, keyring_path=ring
    )
    from shop.privacy.cli import privacy

    result = rotating.test_cli_runner().invoke(privacy, ["rotate-key"])
    assert result.exit_code == 0 and "re-wrapped 1 epoch key(s)" in result.output, result.output
    rotating.extensions["shop.db"].dispose()

    after = make_test_app(db_url, tmp_path / "i3", data_key=new_key, keyring_path=ring)
    with after.extensions["shop.db"].job_session() as session:
        request = refunds.get(session, session.get(Order, order.id))
        assert (request.given, request.address, request.unreadable) == (True, MAIN[2], False)
    page = Browser(after.test_client()).get(f"/orders/{order.token}")
    assert MAIN[2] in page.text
    after.extensions["shop.db"].dispose()

    stranger = make_test_app(db_url, tmp_path / "i4", data_key=generate_master_key_text())
    with stranger.extensions["shop.db"].job_session() as session:
        request = refunds.get(session, session.get(Order, order.id))
        assert (request.given, request.address, request.unreadable) == (True, None, True)
    page = Browser(stranger.test_client()).get(f"/orders/{order.token}")
    assert "We have your refund address." in page.text and MAIN[2] not in page.text
    assert not page.soup.select("form[action$='/refund-address']")
    stranger.extensions["shop.db"].dispose()
