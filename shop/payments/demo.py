"""A pretend payment method so a newcomer can finish a purchase in the demo.

It is refused in production by the settings validation: anyone could mark an order paid with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from shop.payments.base import Availability, OrderView, PaymentEvent, PaymentEventKind, PaymentStart

PROVIDER = "demo"


@dataclass
class DemoPayment:
    enabled: bool
    code: str = PROVIDER
    label: str = "Demo payment (no real money)"
    description: str = "For trying the shop out: a button marks the order paid. Never real money."
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
            provider=PROVIDER, key=f"demo:{order.ref}", order_ref=order.ref,
            kind=PaymentEventKind.PAID, amount=order.total, currency=order.currency,
            reference=f"demo-{order.number}", note="Demo payment (no real money)",
        )
