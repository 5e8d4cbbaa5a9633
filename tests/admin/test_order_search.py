"""The orders list filters by date and finds an order by its number (issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from shop.orders.models import Order
from tests.admin.conftest import buy


def _numbers(page) -> list[str]:
    return [r.th.get_text(" ").split()[0] for r in page.soup.select("tbody tr") if r.th]


def test_orders_list_by_date_and_number(admin, client, database):
    for _ in range(3):
        buy(client, pay=False)
    with database.job_session() as s:
        orders = s.scalars(select(Order).order_by(Order.id)).all()
        orders[0].placed_at = datetime(2026, 1, 10, 12, tzinfo=UTC)
        orders[1].placed_at = datetime(2026, 2, 10, 12, tzinfo=UTC)
        numbers = [o.number for o in orders]
    page = admin.get("/admin/orders")
    page = admin.submit(
        admin.form("main form.search"), {"placed_from": "2026-02-01", "placed_to": "2026-02-28"}
    )
    assert _numbers(page) == [numbers[1]]
    page = admin.submit(
        admin.form("main form.search"), {"placed_from": "", "placed_to": "", "q": numbers[2]}
    )
    assert _numbers(page) == [numbers[2]]
    page = admin.get(f"/admin/orders?q={numbers[0][-3:]}")  # the end of a number is enough
    assert numbers[0] in _numbers(page)
    page = admin.get("/admin/orders?placed_from=yesterday&placed_to=2026-13-01")
    assert "not a date" in page.text and len(_numbers(page)) == 3  # ignored, and said so
