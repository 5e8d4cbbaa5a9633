"""An order's parcels: what the order page and the admin show, and what the purge erases.

The tracking reference is personal (the carrier maps it to the address), so it is sealed
under the order's data key and goes with the order's other personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shop.db import rowcount
from shop.mail.models import OutboxMessage
from shop.orders.models import Order, OrderEvent, Shipment
from shop.privacy.store import unseal


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
