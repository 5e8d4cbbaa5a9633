"""The small interface between payment backends and the orders service.

Backends (demo, Bitcoin, Stripe) translate what their provider says into `PaymentEvent`s and hand
them to `orders.service.apply_payment_event`; they never change orders themselves. Each event
carries a natural idempotency key (Stripe event id, bitcoin outpoint) so a repeat is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shop.db import Database
    from shop.i18n import Text
    from shop.orders.models import Order


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
    # The card network took the money back for a dispute (amount), or gave it back again.
    CHARGEBACK = "chargeback"
    CHARGEBACK_REVERSED = "chargeback_reversed"
    # A refund that had been recorded did not reach the customer: the money is the shop's again.
    REFUND_FAILED = "refund_failed"


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
    # The payment method (its registry code) the money came through, when it may not be the
    # order's own: a companion that settled another method's request says so. Empty: the
    # order's method.
    method: str = ""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: Text = ""


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


@dataclass(frozen=True)
class Panel:
    """What the customer's order page says about the payment."""

    # Template (under templates/payments/) for the payment section of an unpaid order.
    template: str | None = None
    # A sentence that replaces the page's generic one about the order's state, e.g. why an
    # order was released, or that a payment is under way.
    headline: Text = ""
    # A payment is under way: the order is held for it, not released at the usual deadline.
    holding: bool = False


@dataclass(frozen=True)
class Refundable:
    """What the merchant can give back with this method, and how."""

    amount: int
    # True: the method sends the money (card); False: the merchant sends it and records it here.
    automatic: bool
    how: str = ""
    # The money goes to an address the customer gives on their order page (shop/refunds).
    to_address: bool = False


@dataclass(frozen=True)
class HealthCheck:
    name: str
    status: str  # ok | warning | off
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Bip21Part:
    """What another method adds to an on-chain payment request, so one QR code (a BIP21 URI)
    offers both: e.g. `lightning=<bolt11>`. Left out (`value` empty) with a note for the
    customer when it cannot be offered right now."""

    param: str  # the BIP21 query parameter
    value: str
    label: str  # what the customer reads next to the copyable text
    note: str = ""
    # Demo only: a POST endpoint that pretends this part was paid ("Simulate payment").
    demo_action: str = ""


class Bip21Companion(Protocol):
    """Optional, beside PaymentMethod: a method that can ride along with an on-chain request
    (bip21_parts below asks every method that has it)."""

    def bip21_part(
        self, order: OrderView, sats: int, covers: int, rate: str, expires_at: datetime
    ) -> Bip21Part | None:
        """Its part for an on-chain request of `sats` covering `covers` (order currency, minor
        units) at `rate`, valid until `expires_at`; None when it has nothing to add."""


class Listener(Protocol):
    """What a method follows in `shop worker` beside the chain watcher (a node's settlement
    stream): registry.start_listeners returns threads carrying one as `.listener`, and the
    worker's heartbeat records which of them this process runs right now."""

    # For the merchant, after "following": e.g. "the Lightning node".
    follows: str
    # True while it holds its lock (one worker of several) and listens.
    watching: bool


class PaymentActionError(Exception):
    """A payment action was refused or could not be done; the message says why, for a person."""


class PaymentMethod(Protocol):
    """One way to pay, owning its whole lifecycle. Nothing outside shop/payments/ branches on
    a method's code: the order page, the admin, refunds and health go through this.

    Methods that call out (Stripe, ...) take a Database and run their own short units of work
    around each call, so no transaction is open while a provider is waited for; the caller's
    request session must hold no uncommitted writes when it calls them.
    """

    code: str
    label: str
    description: str
    # Template (under templates/payments/) rendered in the order page's payment panel.
    panel_template: str

    def availability(self) -> Availability: ...

    def start(self, order: OrderView) -> PaymentStart: ...

    def panel(self, session: Session, order: Order) -> Panel: ...

    def cancel(self, database: Database, order_id: int, reason: str) -> None:
        """Cancel an unpaid order, closing what the customer could still pay with first.
        Raises PaymentActionError (or an OrderError) with the reason when it cannot."""

    def refundable(self, session: Session, order: Order) -> Refundable: ...

    def refund(self, database: Database, order_id: int, amount: int, reference: str = "") -> str:
        """Give back `amount` (minor units), all or part of what is refundable; returns the
        message for the merchant, raises PaymentActionError."""

    def health(self, session: Session, now: datetime) -> list[HealthCheck]: ...


def ago(at: datetime | None, now: datetime) -> str:
    """ "3 min ago" for health summaries."""
    if at is None:
        return "never"
    seconds = int((now - at).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def bip21_parts(
    methods: dict[str, PaymentMethod],
    order: OrderView,
    sats: int,
    covers: int,
    rate: str,
    expires_at: datetime,
) -> list[Bip21Part]:
    """What other methods add to an on-chain payment request (one QR code for all)."""
    parts = []
    for method in methods.values():
        companion = getattr(method, "bip21_part", None)
        if companion is not None:
            part = companion(order, sats, covers, rate, expires_at)
            if part is not None:
                parts.append(part)
    return parts
