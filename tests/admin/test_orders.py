"""Orders in the admin: filters, detail with personal data (until purged), ship, close,
cancel, refunds recorded by hand, and the tasks list."""

from __future__ import annotations

from sqlalchemy import select

from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.db import utcnow
from shop.mail.models import OutboxMessage
from shop.orders import service
from shop.orders.models import Order, Shipment
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.privacy.purge import erase_orders
from tests.admin.conftest import buy
from tests.browser import Browser


def _order(database, **where) -> Order:
    with database.job_session() as session:
        order = session.scalar(select(Order).filter_by(**where).order_by(Order.id.desc()))
        session.expunge(order)
        return order


def _stock(database, sku: str) -> int | None:
    with database.job_session() as session:
        return session.scalar(select(Variant).where(Variant.sku == sku)).available


def _bitcoin_order(database) -> str:
    with database.job_session() as session:
        variant = session.scalar(select(Variant).where(Variant.sku == "EBOOK-SMALL"))
        order = service.place_order(
            session,
            service.PlaceOrder(
                digital_consent=True,
                cart=[CartLine(variant.id, 1, variant.price)],
                country="FR",
                payment_method="bitcoin",
                currency="EUR",
                expiry_minutes=30,
            ),
        )
        return order.number


def test_list_filters_and_detail(admin, client, database):
    paid_url = buy(client, email="ada@example.org")
    buy(client, slug="house-espresso", email=None, pay=False)
    btc_number = _bitcoin_order(database)
    paid = _order(database, status="paid")

    b = admin
    page = b.get("/admin/orders")
    assert len(page.soup.select("tbody tr")) == 3
    page = b.submit(b.form("main form.search"), {"status": "paid"})
    rows = page.soup.select("tbody tr")
    assert len(rows) == 1 and paid.number in rows[0].get_text()
    page = b.get("/admin/orders?method=bitcoin")
    assert [r.th.get_text(" ").split()[0] for r in page.soup.select("tbody tr")] == [btc_number]
    page = b.get("/admin/orders?status=nonsense&method=nope&page=-3")  # ignored, not an error
    assert len(page.soup.select("tbody tr")) == 3

    page = b.get(f"/admin/orders/{paid.number}")
    contact = page.soup.select_one(".contact").get_text(" ")
    assert "ada@example.org" in contact and "Ada Lovelace" in contact and "10115 Berlin" in contact
    assert "Canvas tote bag" in page.text and "order received: pending" in page.text
    # The customer's own page (whoever holds its private link) echoes what the order ships to
    # (issue 16), and only in its details section.
    customer = Browser(client).get(paid_url)
    assert "Ada Lovelace" in customer.soup.select_one(".order-details").get_text(" ")
    assert customer.text.count("Lovelace") == 1
    assert b.client.get("/admin/orders/2026-999999").status_code == 404


def test_purged_orders_say_so(admin, client, database):
    buy(client, email="ada@example.org")
    order = _order(database)
    now = utcnow()
    with database.job_session() as session:
        erase_orders(session, [session.get(Order, order.id)], now, "test purge")
    page = admin.get(f"/admin/orders/{order.number}")
    assert f"Personal data purged on {now:%Y-%m-%d}" in page.text
    assert "Lovelace" not in page.text and "ada@example.org" not in page.text


def test_ship_with_tracking_then_close(admin, client, database):
    order_url = buy(client, email="ada@example.org")
    order = _order(database)
    b = admin
    b.get(f"/admin/orders/{order.number}")
    page = b.submit(b.form("form[action$='/ship']"), {"tracking": "DHL 1234-5678"})
    assert "Marked as shipped." in page.messages()
    assert "DHL 1234-5678" in page.soup.select_one(".tracking").get_text()
    with database.job_session() as session:
        shipped = session.get(Order, order.id)
        assert shipped.status == "fulfilled" and shipped.fulfilled_at is not None
        shipment = session.scalar(select(Shipment).where(Shipment.order_id == order.id))
        assert b"DHL" not in shipment.tracking_sealed and shipment.tracking == ""  # sealed
        kinds = session.scalars(
            select(OutboxMessage.kind)
            .where(OutboxMessage.order_id == order.id)
            .order_by(OutboxMessage.id)
        ).all()
        assert kinds == ["order_received", "payment_received", "shipped"]
    customer = Browser(client).get(order_url)
    assert "Tracking reference: DHL 1234-5678" in customer.text

    assert page.soup.select("form[action$='/ship']") == []  # not twice
    page = b.submit(b.form("form[action$='/close']"))
    assert "Order closed (delivered)." in page.messages()
    assert _order(database, id=order.id).status == "closed"

    # The tracking reference is personal data: the purge's eraser takes it everywhere.
    from shop.privacy.purge import erasers

    with database.job_session() as session:
        assert erasers()["shipment-tracking"](session, [order.id]) == 1
    with database.job_session() as session:
        assert (
            session.scalar(select(Shipment.tracking_sealed).where(Shipment.order_id == order.id))
            is None
        )
        payload = session.scalar(
            select(OutboxMessage.payload).where(OutboxMessage.kind == "shipped")
        )
        assert "DHL" not in payload
    assert "DHL" not in Browser(client).get(order_url).text
    assert "DHL" not in b.get(f"/admin/orders/{order.number}").text


def test_cannot_ship_an_unpaid_order(admin, client, database):
    buy(client, pay=False)
    order = _order(database)
    token = admin.get(f"/admin/orders/{order.number}").soup.select_one("input[name=csrf_token]")[
        "value"
    ]
    response = admin.client.post(
        f"/admin/orders/{order.number}/ship",
        data={"csrf_token": token, "tracking": "X"},
        follow_redirects=True,
    )
    assert response.status_code == 200 and "Cannot mark as shipped" in response.get_data(
        as_text=True
    )
    assert _order(database, id=order.id).status == "pending_payment"


def test_cancel_releases_stock(admin, client, database):
    assert _stock(database, "TOTE-NAT") == 20
    buy(client, pay=False, quantity="3")
    assert _stock(database, "TOTE-NAT") == 17
    order = _order(database)
    admin.get(f"/admin/orders/{order.number}")
    page = admin.submit(
        admin.form("form[action$='/cancel']"), {"reason": "Customer asked by phone"}
    )
    assert "Order cancelled; its items are back in stock." in page.messages()
    assert _stock(database, "TOTE-NAT") == 20
    assert _order(database, id=order.id).status == "cancelled"
    assert "Customer asked by phone" in page.text


def test_cancelling_a_paid_order_is_refused(admin, client, database):
    buy(client)
    order = _order(database)
    token = admin.get(f"/admin/orders/{order.number}").soup.select_one("input[name=csrf_token]")[
        "value"
    ]
    response = admin.client.post(
        f"/admin/orders/{order.number}/cancel", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Cannot cancel" in response.get_data(as_text=True)
    assert _order(database, id=order.id).status == "paid" and _stock(database, "TOTE-NAT") == 19


def test_manual_refund_is_recorded_once(admin, client, database):
    buy(client, email="ada@example.org")
    order = _order(database)
    b = admin
    b.get(f"/admin/orders/{order.number}")
    form = b.form("form[action$='/refund']")
    assert form.find(attrs={"name": "amount"})["value"] == "20.90"  # what is left to refund
    page = b.submit(form, {"amount": "5.00", "reference": "txid-abc"})
    assert "Refund recorded." in page.messages()
    again = b.submit(b.form("form[action$='/refund']"), {"amount": "5.00", "reference": "txid-abc"})
    assert "This refund was already recorded." in again.messages()
    refunded = _order(database, id=order.id)
    assert (refunded.status, refunded.amount_refunded) == ("partially_refunded", 500)
    too_much = b.submit(b.form("form[action$='/refund']"), {"amount": "16.00", "reference": "t2"})
    assert any("at most what is left" in m for m in too_much.messages())
    bad = b.submit(b.form("form[action$='/refund']"), {"amount": "abc", "reference": "t3"})
    assert any("not a price" in m for m in bad.messages())
    assert _order(database, id=order.id).amount_refunded == 500
    with database.job_session() as session:
        assert session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "refund_issued"))


def test_tasks_list_orders_needing_attention(admin, client, database):
    buy(client)
    order = _order(database)
    assert "Nothing needs your attention." in admin.get("/admin/tasks").text
    with database.job_session() as session:
        service.apply_payment_event(
            session,
            PaymentEvent(
                provider="demo",
                key="dispute-1",
                order_ref=order.ref,
                kind=PaymentEventKind.ATTENTION,
                amount=0,
                currency="EUR",
                note="Payment disputed by the card holder",
            ),
        )
    page = admin.get("/admin/tasks")
    assert order.number in page.text and "Payment disputed by the card holder" in page.text
    assert "1 task needing attention" in admin.get("/admin").text
    assert "needs attention" in admin.get("/admin/orders").text

    admin.get(f"/admin/orders/{order.number}")
    page = admin.submit(
        admin.form("form[action$='/resolve']"), {"note": "Customer withdrew the dispute"}
    )
    assert "Marked as resolved." in page.messages()
    assert "Resolved by the merchant: Customer withdrew the dispute" in page.text
    assert _order(database, id=order.id).attention is None
    assert "Nothing needs your attention." in admin.get("/admin/tasks").text


def test_contact_under_an_unknown_master_key_is_explained_not_a_500(
    app, client, database, tmp_path
):
    from shop.privacy.crypto import generate_master_key_text
    from tests.admin.conftest import PASSWORD, sign_in
    from tests.conftest import make_test_app

    buy(client, email="ada@example.org")
    number = _order(database).number
    other = make_test_app(
        app.extensions["shop.settings"].database_url,
        tmp_path / "other",
        data_key=generate_master_key_text(),
    )
    try:
        with other.extensions["shop.db"].job_session() as session:
            from shop.admin import auth

            auth.create_user(session, "second", PASSWORD)
        b = sign_in(other.test_client(), "second")
        page = b.get(f"/admin/orders/{number}")
        assert "cannot be decrypted" in page.text and "ada@example.org" not in page.text
    finally:
        other.extensions["shop.db"].dispose()
