"""The "card" payment method: Stripe Checkout's hosted page, confirmed only by webhooks."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shop.config import Settings
from shop.payments.base import Availability, OrderView, PaymentStart
from shop.payments.stripe.client import StripeGateway

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shop.orders.models import Order
    from shop.payments.stripe.models import CardRefund

PROVIDER = "stripe"


@dataclass
class CardPayment:
    settings: Settings = field(repr=False)  # holds the secret key: never in a log line
    code: str = "card"
    label: str = "Card"
    description: str = ("Pay by credit or debit card on Stripe's secure payment page; your card "
                        "details never reach this shop.")
    panel_template: str = "payments/card.html"
    _gateway: StripeGateway | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.settings.stripe_secret_key and self.settings.stripe_webhook_secret)

    def availability(self) -> Availability:
        if not self.configured:
            return Availability(False, "Card payments need SHOP_STRIPE_SECRET_KEY and "
                                       "SHOP_STRIPE_WEBHOOK_SECRET (from the Stripe Dashboard).")
        return Availability(True)

    def start(self, order: OrderView) -> PaymentStart:
        # Starting needs the database (attempts) and Stripe: the card view calls
        # service.start_checkout; the order page shows the "Pay by card" form.
        return PaymentStart()

    @property
    def gateway(self) -> StripeGateway:
        """One SDK client per app (it keeps a connection pool); built on first use."""
        with self._lock:
            if self._gateway is None:
                if not self.configured:
                    raise RuntimeError("card payments are not configured")
                self._gateway = StripeGateway(
                    self.settings.stripe_secret_key,
                    api_base=self.settings.stripe_api_base or None,
                    timeout=self.settings.stripe_timeout_seconds,
                )
            return self._gateway

    @property
    def webhook_secret(self) -> str:
        return self.settings.stripe_webhook_secret

    def refund(self, session: Session, order: Order, amount: int) -> CardRefund:
        """For the admin: `payment_methods()["card"].refund(db_session(), order, amount)`.
        See service.refund for the errors it raises (each with a message to show)."""
        from shop.payments.stripe.service import refund

        return refund(session, self.gateway, order, amount)

    def close(self) -> None:
        with self._lock:
            if self._gateway is not None:
                self._gateway.close()
                self._gateway = None
