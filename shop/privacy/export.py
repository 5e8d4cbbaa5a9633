"""Everything the shop holds about one order, for the customer's "Download my data".

Features that keep more per order add a section with ``register_exporter(name, fn)`` where
``fn(session, order) -> JSON-able value or None`` (decrypted, as the customer would read it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.db import utcnow
from shop.orders.models import Order, PaymentRecord
from shop.privacy.store import read_contact

Exporter = Callable[[Session, Order], Any]
_EXPORTERS: dict[str, Exporter] = {}


def register_exporter(name: str, fn: Exporter | None = None):
    def add(f: Exporter) -> Exporter:
        _EXPORTERS[name] = f
        return f

    return add(fn) if fn is not None else add


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_order_data(session: Session, order: Order, store_name: str = "") -> dict[str, Any]:
    contact = read_contact(session, order)
    payments = session.scalars(
        select(PaymentRecord).where(PaymentRecord.order_id == order.id).order_by(PaymentRecord.id)
    ).all()
    data: dict[str, Any] = {
        "shop": store_name,
        "generated_at": utcnow().isoformat(),
        "personal_data": None
        if contact is None
        else {
            "email": contact.email,
            "name": contact.name,
            "street": contact.street,
            "postal_code": contact.postal_code,
            "city": contact.city,
        },
        "personal_data_erased_at": _iso(order.personal_data_erased_at),
        "personal_data_erase_requested_at": _iso(order.personal_data_erase_requested_at),
        "order": {
            "number": order.number,
            "status": order.status,
            "currency": order.currency,
            "amounts_in_minor_units": {
                "subtotal": order.subtotal,
                "shipping": order.shipping,
                "total": order.total,
                "vat_included": order.vat_total,
                "paid": order.amount_paid,
                "refunded": order.amount_refunded,
            },
            "destination_country": order.country,
            "shipping_method": order.shipping_method,
            "payment_method": order.payment_method,
            "paid_via": order.paid_via,
            "placed_at": _iso(order.placed_at),
            "paid_at": _iso(order.paid_at),
            "fulfilled_at": _iso(order.fulfilled_at),
            "closed_at": _iso(order.closed_at),
            "cancelled_at": _iso(order.cancelled_at),
            "expired_at": _iso(order.expired_at),
            "lines": [
                {
                    "product": l.product_title,
                    "variant": l.variant_label,
                    "sku": l.sku,
                    "unit_price": l.unit_price,
                    "quantity": l.quantity,
                    "vat_rate_percent": l.tax_rate_bp / 100,
                    "total": l.line_total,
                }
                for l in order.lines
            ],
        },
        "history": [
            {"at": _iso(e.at), "status": e.to_status, "note": e.note} for e in order.events
        ],
        "payments": [
            {
                "provider": p.provider,
                "kind": p.kind,
                "amount": p.amount,
                "currency": p.currency,
                "reference": p.reference,
                "at": _iso(p.created_at),
            }
            for p in payments
        ],
    }
    for name, exporter in _EXPORTERS.items():
        value = exporter(session, order)
        if value is not None:
            data.setdefault("other", {})[name] = value
    return data
