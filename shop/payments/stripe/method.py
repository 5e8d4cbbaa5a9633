"""The "card" payment method: Stripe Checkout's hosted page, confirmed only by webhooks."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from flask import has_request_context
from sqlalchemy import func, select

from shop.config import Settings
from shop.i18n import N_
from shop.i18n import lazy_gettext as _l
from shop.orders.states import REFUNDABLE
from shop.payments.base import (
    Availability,
    HealthCheck,
    OrderView,
    Panel,
    PaymentActionError,
    PaymentStart,
    Refundable,
    ago,
)
from shop.payments.stripe.client import StripeGateway
from shop.payments.stripe.models import StripeEventRecord
from shop.payments.stripe.service import (
    cancel_order,
    latest_attempt,
    refund,
    refundable_amount,
    unmatched_events,
)
from shop.payments.stripe.urls import return_urls

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shop.db import Database
    from shop.orders.models import Order


@dataclass
class CardPayment:
    settings: Settings = field(repr=False)  # holds the secret key: never in a log line
    code: str = "card"
    label: str = N_("Card")
    description: str = N_(
        "Pay by credit or debit card on Stripe's secure payment page; your "
        "card details never reach this shop."
    )
    panel_template: str = "payments/card.html"
    _gateway: StripeGateway | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.settings.stripe_secret_key and self.settings.stripe_webhook_secret)

    def availability(self) -> Availability:
        if not self.configured:
            return Availability(
                False,
                "Card payments need SHOP_STRIPE_SECRET_KEY and "
                "SHOP_STRIPE_WEBHOOK_SECRET (from the Stripe Dashboard).",
            )
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
    def livemode(self) -> bool:
        """Live or test mode, as the secret key says: events of the other mode are refused."""
        return "_live_" in self.settings.stripe_secret_key[:8]

    @property
    def webhook_secret(self) -> str:
        return self.settings.stripe_webhook_secret

    # -- lifecycle (shop.payments.base.PaymentMethod) ----------------------------------------

    def panel(self, session: Session, order: Order) -> Panel:
        attempt = latest_attempt(session, order.id)
        status = attempt.status if attempt is not None else None
        if order.status == "pending_payment" and status == "processing":
            return Panel(
                self.panel_template,
                holding=True,
                headline=_l(
                    "Your card payment is being processed (some payment methods take a few days). "
                    "Your order is held for it until %(date)s at the latest; "
                    "there is nothing more to do.",
                    date=f"{order.expires_at:%Y-%m-%d}",
                ),
            )
        if order.status == "expired" and status == "failed" and not order.amount_paid:
            return Panel(
                None,
                headline=_l(
                    "Your card payment failed, so the order and its "
                    "items were released. Nothing was charged."
                ),
            )
        return Panel(self.panel_template)

    def cancel(self, database: Database, order_id: int, reason: str) -> None:
        if not self.configured:
            raise PaymentActionError(
                "Card payments are not configured, so the customer's Stripe "
                "page cannot be closed. Close it in the Stripe Dashboard."
            )
        urls = ("", "")
        if has_request_context():
            urls = return_urls()
        cancel_order(database, self.gateway, order_id, reason, urls=urls)

    def refundable(self, session: Session, order: Order) -> Refundable:
        amount = refundable_amount(session, order) if order.state in REFUNDABLE else 0
        if not self.configured:
            return Refundable(
                0,
                automatic=True,
                how="Card refunds need the Stripe settings; refund in the Stripe Dashboard.",
            )
        return Refundable(amount, automatic=True, how="Refunds the card through Stripe.")

    def refund(self, database: Database, order_id: int, amount: int, reference: str = "") -> str:
        """See service.refund for the errors it raises (each with a message to show)."""
        if not self.configured:
            raise PaymentActionError(
                "Card refunds need the Stripe settings; refund in the Stripe Dashboard."
            )
        row = refund(database, self.gateway, order_id, amount)
        return "Card refund made." if row.status == "succeeded" else f"Card refund {row.status}."

    def health(self, session: Session, now: datetime) -> list[HealthCheck]:
        if not self.configured:
            return [
                HealthCheck(
                    "Stripe", "off", "Card payments are not set up (SHOP_STRIPE_SECRET_KEY)."
                )
            ]
        last = session.scalar(select(func.max(StripeEventRecord.received_at)))
        waiting = (
            session.scalar(
                select(func.count())
                .select_from(StripeEventRecord)
                .where(StripeEventRecord.status == "received")
            )
            or 0
        )
        details = (
            []
            if last
            else [
                "If card orders stay unpaid, check the webhook endpoint "
                "/webhooks/stripe in the Stripe Dashboard."
            ]
        )
        if waiting:
            details.append(f"{waiting} event(s) waiting for the worker (`shop worker`).")
        unmatched = unmatched_events(session, limit=10)
        details += [
            f"Event {e.event_id} ({e.type}) matched no payment of this shop: "
            f"{e.last_error or 'unknown to the shop'}. Look it up in the Stripe "
            "Dashboard."
            for e in unmatched
        ]
        return [
            HealthCheck(
                "Stripe",
                "ok" if last and waiting < 50 and not unmatched else "warning",
                f"Last webhook received {ago(last, now)}.",
                details,
            )
        ]

    def close(self) -> None:
        with self._lock:
            if self._gateway is not None:
                self._gateway.close()
                self._gateway = None
