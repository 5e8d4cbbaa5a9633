"""What the merchant sees of orders, and the refunds recorded by hand. No Flask.

State changes go through shop.orders.service; this module only reads, or hands over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from shop.admin.models import Shipment
from shop.db import rowcount
from shop.mail.models import OutboxMessage
from shop.orders.models import Order, OrderEvent, OrderNumberCounter, PaymentRecord
from shop.privacy.crypto import CryptoError
from shop.privacy.store import ContactDetails, read_contact, unseal

PER_PAGE = 50


@dataclass(frozen=True)
class OrderPage:
    """Newest first, read by keyset on the id: ``older``/``newer`` are the ids to continue
    from (None: nothing there). No count of all matching orders: it cost a full scan."""

    items: list[Order]
    older: int | None
    newer: int | None


def list_orders(
    session: Session,
    *,
    status: str = "",
    method: str = "",
    before_id: int | None = None,
    after_id: int | None = None,
    placed_from: date | None = None,
    placed_to: date | None = None,
    number: str = "",
) -> OrderPage:
    """``before_id``: the page of orders older than that id; ``after_id``: newer than it."""
    conditions = []
    if status:
        conditions.append(Order.status == status)
    if method:
        conditions.append(Order.payment_method == method)
    if placed_from is not None:
        conditions.append(
            Order.placed_at
            >= datetime(placed_from.year, placed_from.month, placed_from.day, tzinfo=UTC)
        )
    if placed_to is not None:  # inclusive: up to the start of the next day
        conditions.append(
            Order.placed_at
            < datetime(placed_to.year, placed_to.month, placed_to.day, tzinfo=UTC)
            + timedelta(days=1)
        )
    number = "".join(number.split())[:20]
    if number:
        conditions.append(_number_matches(session, number))
    return _keyset(session, select(Order).where(*conditions), before_id, after_id)


def _number_matches(session: Session, number: str):
    """The merchant rarely types the zeros: "42" finds 2026-000042 (and 2025-000042), as does
    "2026-42". Both are lookups in the unique index on the number; anything else is searched as
    a part of a number, which reads orders until a page is full."""
    full = re.fullmatch(r"(\d{4})-(\d{1,9})", number)
    if full:
        return Order.number == f"{full.group(1)}-{int(full.group(2)):06d}"
    if number.isdigit() and len(number) <= 9:
        years = session.scalars(select(OrderNumberCounter.year)).all()
        return Order.number.in_([f"{year}-{int(number):06d}" for year in years])
    return Order.number.contains(number, autoescape=True)


def _keyset(session: Session, stmt, before_id: int | None, after_id: int | None) -> OrderPage:
    if after_id is not None:  # newer: walk up from the cursor, then show newest first
        rows = list(
            session.scalars(stmt.where(Order.id > after_id).order_by(Order.id).limit(PER_PAGE + 1))
        )
        more = len(rows) > PER_PAGE
        rows = rows[:PER_PAGE][::-1]
        return OrderPage(rows, rows[-1].id if rows else None, rows[0].id if rows and more else None)
    if before_id is not None:
        stmt = stmt.where(Order.id < before_id)
    rows = list(session.scalars(stmt.order_by(Order.id.desc()).limit(PER_PAGE + 1)))
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    return OrderPage(
        rows,
        rows[-1].id if rows and more else None,
        rows[0].id if rows and before_id is not None else None,
    )


def tasks(
    session: Session, *, before_id: int | None = None, after_id: int | None = None
) -> OrderPage:
    """Orders that need the merchant: late, under- or overpaid, reverted or disputed payments."""
    return _keyset(session, select(Order).where(Order.attention.is_not(None)), before_id, after_id)


def get_order(session: Session, number: str) -> Order | None:
    if not number or len(number) > 20:
        return None
    return session.scalar(
        select(Order)
        .where(Order.number == number)
        .options(selectinload(Order.lines), selectinload(Order.events))
    )


class ContactUnreadable(Exception):
    """The contact exists but cannot be decrypted (its master key is not configured)."""


def contact(session: Session, order: Order) -> ContactDetails | None:
    """Decrypted contact details; None once purged (see order.personal_data_erased_at)."""
    try:
        return read_contact(session, order)
    except CryptoError as exc:
        raise ContactUnreadable(str(exc)) from None


@dataclass(frozen=True)
class ShipmentView:
    shipped_at: datetime
    tracking: str


def shipments(session: Session, order: Order) -> list[ShipmentView]:
    """The order's parcels, tracking references unsealed (empty once the data was erased)."""
    rows = session.scalars(
        select(Shipment).where(Shipment.order_id == order.id).order_by(Shipment.id)
    )
    return [
        ShipmentView(
            row.shipped_at,
            row.tracking or unseal(session, order, "tracking", row.tracking_sealed) or "",
        )
        for row in rows
    ]


def payments(session: Session, order: Order) -> list[PaymentRecord]:
    return list(
        session.scalars(
            select(PaymentRecord)
            .where(PaymentRecord.order_id == order.id)
            .order_by(PaymentRecord.id)
        )
    )


def emails(session: Session, order: Order) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.order_id == order.id)
            .order_by(OutboxMessage.id)
        )
    )


TRACKING_NOTE = "Shipped (tracking reference "


def erase_tracking(session: Session, order_ids) -> int:
    """For the privacy purge: tracking references go with the order's other personal data
    (from the shipment, the order's history and any queued email's details)."""
    ids = list(order_ids)
    if not ids:
        return 0
    erased = rowcount(
        session.execute(
            update(Shipment)
            .where(
                Shipment.order_id.in_(ids),
                (Shipment.tracking != "") | Shipment.tracking_sealed.is_not(None),
            )
            .values(tracking="", tracking_sealed=None)
            .execution_options(synchronize_session=False)
        )
    )
    session.execute(
        update(OrderEvent)
        .where(
            OrderEvent.order_id.in_(ids), OrderEvent.note.startswith(TRACKING_NOTE, autoescape=True)
        )
        .values(note="Shipped")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.order_id.in_(ids), OutboxMessage.kind == "shipped")
        .values(payload="{}")
        .execution_options(synchronize_session=False)
    )
    return erased


def _register() -> None:
    from shop.privacy.purge import register_eraser

    register_eraser("shipment-tracking", erase_tracking)


_register()
