"""Stock in the admin (issue 14): the variant page shows on hand, reserved, committed and
available; refunds and cancellations offer restocking and log it."""

from __future__ import annotations

from sqlalchemy import select

from shop.catalog.models import StockAdjustment, Variant
from shop.orders.models import Order
from tests.admin.conftest import buy


def _levels(database, sku: str):
    with database.job_session() as s:
        v = s.scalar(select(Variant).where(Variant.sku == sku))
        return v.on_hand, v.reserved, v.committed, v.available


def _last_order(database) -> Order:
    with database.job_session() as s:
        order = s.scalar(select(Order).order_by(Order.id.desc()))
        s.expunge(order)
        return order


def _variant_page(admin, database, sku: str):
    with database.job_session() as s:
        v = s.scalar(select(Variant).where(Variant.sku == sku))
        return admin.get(f"/admin/products/{v.product_id}/variants/{v.id}")


def test_variant_page_shows_on_hand_reserved_committed_and_available(admin, client, database):
    buy(client, pay=False, quantity="2")  # reserved
    buy(client, quantity="3")  # committed
    page = _variant_page(admin, database, "TOTE-NAT")
    levels = {
        row.th.get_text(strip=True): row.td.get_text(strip=True)
        for row in page.soup.select("table.stock-levels tr")
    }
    assert levels == {
        "On hand": "20",
        "Reserved (unpaid orders)": "2",
        "Committed (paid, not shipped)": "3",
        "Available to sell": "15",
    }
    # The merchant's count is what is on the shelf; what orders hold stays apart.
    page = admin.submit(
        admin.form("form[action$='/stock']"), {"adjust-stock": "18", "adjust-reason": "Stocktake"}
    )
    assert _levels(database, "TOTE-NAT") == (18, 2, 3, 13)


def test_refund_offers_restocking_and_logs_it(admin, client, database):
    buy(client, quantity="2")
    order = _last_order(database)
    page = admin.get(f"/admin/orders/{order.number}")
    form = admin.form("form[action$='/refund']")
    assert form.select_one("input[name=stock][value=restock]").has_attr("checked")  # the default
    admin.submit(form, {"reference": "txid-1"})
    assert _levels(database, "TOTE-NAT") == (20, 0, 0, 20)
    page = admin.get(f"/admin/orders/{order.number}")
    assert "2 unit(s) back in stock" in page.text
    with database.job_session() as s:
        move = s.scalar(select(StockAdjustment).where(StockAdjustment.order_id == order.id))
        assert (move.kind, move.quantity) == ("restocked", 2)


def test_partial_refund_can_keep_the_items_for_shipping(admin, client, database):
    buy(client, quantity="2")
    order = _last_order(database)
    admin.get(f"/admin/orders/{order.number}")
    admin.submit(
        admin.form("form[action$='/refund']"),
        {"amount": "2.00", "reference": "goodwill", "stock": "keep"},
    )
    assert _levels(database, "TOTE-NAT") == (20, 0, 2, 18)


def test_cancel_can_take_broken_items_off_the_shelf(admin, client, database):
    buy(client, pay=False, quantity="2")
    order = _last_order(database)
    admin.get(f"/admin/orders/{order.number}")
    form = admin.form("form[action$='/cancel']")
    assert form.select_one("input[name=restock]").has_attr("checked")
    page = admin.client.post(
        f"/admin/orders/{order.number}/cancel",
        data={
            "csrf_token": form.select_one("input[name=csrf_token]")["value"],
            "reason": "Both bags were stained",
        },
        follow_redirects=True,
    )
    assert "taken off the shelf" in page.get_data(as_text=True)
    assert _levels(database, "TOTE-NAT") == (18, 0, 0, 18)
