"""Stock on hand kept apart from what orders hold (issue 14): reserved by unpaid orders,
committed to paid unshipped ones, available derived; counts set on hand; refunds restock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shop.admin import catalog
from shop.catalog.models import StockAdjustment, Variant
from shop.orders import service
from tests.test_orders import _paid, _place


def _levels(session, sku: str) -> tuple[int | None, int, int, int | None]:
    session.expire_all()
    v = session.scalar(select(Variant).where(Variant.sku == sku))
    return v.on_hand, v.reserved, v.committed, v.available


def _count(session, sku: str, on_shelf: int, reason: str = "Counted") -> None:
    v = session.scalar(select(Variant).where(Variant.sku == sku))
    catalog.set_stock(session, v, on_shelf, reason, None)


def test_a_count_sets_what_is_on_the_shelf_and_expiry_does_not_inflate_it(demo_catalog, database):
    past = datetime.now(UTC) - timedelta(hours=1)
    with database.job_session() as s:
        _place(s, "PRINT-HARB-A3", 2, now=past)  # 5 on the shelf
        assert _levels(s, "PRINT-HARB-A3") == (5, 2, 0, 3)
        _count(s, "PRINT-HARB-A3", 5)  # the merchant counts 5 on the shelf
        assert _levels(s, "PRINT-HARB-A3") == (5, 2, 0, 3)
        service.expire_due_orders(s)
        # Before: the count overwrote "available" and expiry added 2 more: 7 for 5 prints.
        assert _levels(s, "PRINT-HARB-A3") == (5, 0, 0, 5)


def test_paid_orders_commit_and_shipping_takes_from_on_hand(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "PRINT-HARB-A3", 2)
        service.apply_payment_event(s, _paid(order))
        assert _levels(s, "PRINT-HARB-A3") == (5, 0, 2, 3)
        _count(s, "PRINT-HARB-A3", 5)
        assert _levels(s, "PRINT-HARB-A3") == (5, 0, 2, 3)
        service.ship(s, order, "")
        assert _levels(s, "PRINT-HARB-A3") == (3, 0, 0, 3)
        moves = s.scalars(select(StockAdjustment).order_by(StockAdjustment.id)).all()
        assert (
            moves[-1].kind,
            moves[-1].stock_before,
            moves[-1].stock_after,
            moves[-1].order_id,
        ) == ("shipped", 5, 3, order.id)


def test_a_count_below_what_orders_hold_shows_the_shortfall(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "PRINT-HARB-A3", 3)
        service.apply_payment_event(s, _paid(order))
        _count(s, "PRINT-HARB-A3", 1, "Two prints were damaged")
        v = s.scalar(select(Variant).where(Variant.sku == "PRINT-HARB-A3"))
        assert (v.available, v.shortfall) == (0, 2)
        with pytest.raises(service.CartChanged, match="sold out"):
            _place(s, "PRINT-HARB-A3", 1)


def test_full_refund_of_an_unshipped_order_restocks_by_default(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "TOTE-BLK", 4)
        service.apply_payment_event(s, _paid(order))
        assert _levels(s, "TOTE-BLK") == (4, 0, 4, 0)
        service.record_refund(s, order, order.total)
        # Before: the refunded order kept its four bags out of stock for ever.
        assert _levels(s, "TOTE-BLK") == (4, 0, 0, 4)
        move = s.scalars(select(StockAdjustment).order_by(StockAdjustment.id.desc())).first()
        assert (move.kind, move.quantity, move.order_id) == ("restocked", 4, order.id)
        assert order.number in move.reason


def test_refund_without_restock_writes_the_units_off(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "TOTE-BLK", 2)
        service.apply_payment_event(s, _paid(order))
        service.settle_stock(s, order, service.StockChoice.WRITE_OFF, "Damaged in the shop")
        service.record_refund(s, order, order.total)
        assert _levels(s, "TOTE-BLK") == (2, 0, 0, 2)
        move = s.scalars(select(StockAdjustment).order_by(StockAdjustment.id.desc())).first()
        assert (move.kind, move.stock_before, move.stock_after) == ("written_off", 4, 2)
        assert "Damaged in the shop" in move.reason


def test_returned_goods_of_a_shipped_order_go_back_on_the_shelf(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "TOTE-BLK", 2)
        service.apply_payment_event(s, _paid(order))
        service.ship(s, order)
        assert _levels(s, "TOTE-BLK") == (2, 0, 0, 2)
        service.settle_stock(s, order, service.StockChoice.RESTOCK, "Returned", returned=True)
        service.record_refund(s, order, order.total)
        assert _levels(s, "TOTE-BLK") == (4, 0, 0, 4)
        # Nothing twice: a second choice finds nothing left to move.
        service.settle_stock(s, order, service.StockChoice.RESTOCK, "again", returned=True)
        assert _levels(s, "TOTE-BLK") == (4, 0, 0, 4)


def test_partial_refund_keeps_the_order_shippable_unless_asked(demo_catalog, database):
    with database.job_session() as s:
        order = _place(s, "TOTE-BLK", 2)
        service.apply_payment_event(s, _paid(order))
        service.record_refund(s, order, 100)  # goodwill: the order still ships
        assert _levels(s, "TOTE-BLK") == (4, 0, 2, 2)
        service.ship(s, order)
        assert _levels(s, "TOTE-BLK") == (2, 0, 0, 2)


def test_cancel_can_write_off_instead_of_restocking(demo_catalog, database):
    with database.job_session() as s:
        kept = _place(s, "TOTE-BLK", 1)
        gone = _place(s, "TOTE-BLK", 1)
        service.cancel(s, kept, "Customer asked")
        assert _levels(s, "TOTE-BLK") == (4, 1, 0, 3)
        service.cancel(s, gone, "Last bag was torn", restock=False)
        assert _levels(s, "TOTE-BLK") == (3, 0, 0, 3)
        kinds = [
            m.kind
            for m in s.scalars(
                select(StockAdjustment)
                .where(StockAdjustment.order_id.is_not(None))
                .order_by(StockAdjustment.id)
            )
        ]
        assert kinds == ["restocked", "written_off"]
