"""The small interface between payment backends and the orders service.

Backends (demo, Bitcoin, Stripe) translate what their provider says into `PaymentEvent`s and hand
them to `orders.service.apply_payment_event`; they never change orders themselves. Each event
carries a natural idempotency key (Stripe event id, bitcoin outpoint) so a repeat is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class PaymentEventKind(StrEnum):
    # Money arrived and is final enough to sell against (confirmed, or card captured).
    PAID = "paid"
    # Something is on its way (unconfirmed transaction, asynchronous card payment).
    PENDING = "pending"
    FAILED = "failed"
    REFUNDED = "refunded"
    # Money that was counted is gone again (reorg, chargeback): the merchant must look.
    REVERTED = "reverted"
    # Not a money movement but something the merchant must look at (dispute, mismatch).
    ATTENTION = "attention"
    # What an earlier ATTENTION said no longer holds (the note repeats it word for word): the
    # money it warned about was replaced, reorged away or confirmed after all.
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class PaymentEvent:
    provider: str
    key: str
    order_ref: str
    kind: PaymentEventKind
    amount: int
    currency: str
    reference: str = ""
    note: str = ""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class PaymentStart:
    """What the customer's browser does next after choosing this method for an order."""

    redirect_url: str | None = None
    message: str = ""


@dataclass
class OrderView:
    """What a backend may know about an order: no personal data, no ORM object."""

    id: int
    ref: str
    number: str
    token: str
    total: int
    currency: str
    lines: list[tuple[str, int, int]] = field(default_factory=list)  # (title, unit price, qty)


class PaymentMethod(Protocol):
    code: str
    label: str
    description: str
    # Template (under templates/payments/) rendered in the order page's payment panel.
    panel_template: str

    def availability(self) -> Availability: ...

    def start(self, order: OrderView) -> PaymentStart: ...
