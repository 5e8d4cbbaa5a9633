"""A pretend payment method so a newcomer can finish a purchase in the demo.

It is refused in production by the settings validation: anyone could mark an order paid with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from shop.db import Database
from shop.i18n import N_
from shop.orders.models import Order
from shop.payments import manual
from shop.payments.base import (
    Availability,
    HealthCheck,
    OrderView,
    Panel,
    PaymentEvent,
    PaymentEventKind,
    PaymentStart,
    Refundable,
)

PROVIDER = "demo"


@dataclass
class DemoPayment:
    enabled: bool
    code: str = PROVIDER
    label: str = N_("Demo payment (no real money)")
    description: str = N_(
        "For trying the shop out: a button marks the order paid. Never real money."
    )
    panel_template: str = "payments/demo.html"

    def availability(self) -> Availability:
        if not self.enabled:
            return Availability(False, "Demo payments are switched off (SHOP_DEMO_PAYMENTS).")
        return Availability(True)

    def start(self, order: OrderView) -> PaymentStart:
        return PaymentStart()

    def payment_event(self, order: OrderView) -> PaymentEvent:
        # One key per order: pressing the button twice pays once.
        return PaymentEvent(
            provider=PROVIDER,
            key=f"demo:{order.ref}",
            order_ref=order.ref,
            kind=PaymentEventKind.PAID,
            amount=order.total,
            currency=order.currency,
            reference=f"demo-{order.number}",
            note=N_("Demo payment (no real money)"),
        )

    def panel(self, session: Session, order: Order) -> Panel:
        return Panel(template=self.panel_template)

    def cancel(self, database: Database, order_id: int, reason: str) -> None:
        manual.cancel(database, order_id, reason)

    def refundable(self, session: Session, order: Order) -> Refundable:
        return Refundable(
            manual.refundable_amount(order),
            automatic=False,
            how="No money moved: record the refund to complete the demo.",
        )

    def refund(self, database: Database, order_id: int, amount: int, reference: str = "") -> str:
        return manual.record_refund(database, order_id, amount, reference)

    def health(self, session: Session, now: datetime) -> list[HealthCheck]:
        return []
