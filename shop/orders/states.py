"""The order's business state and its allowed transitions. Pure: no Flask, no database.

What a payment provider or the chain shows is kept apart (payments/); this is what the merchant
acts on. Every change goes through orders.service, which consults `check_transition`.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FULFILLED = "fulfilled"
    CLOSED = "closed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


S = OrderStatus

ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.EXPIRED, S.CANCELLED}),
    # A late payment for an expired order is accepted only if its stock can be reserved again;
    # one that could not be (or one for a cancelled order) can still be given back.
    S.EXPIRED: frozenset({S.PAID, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PAID: frozenset({S.FULFILLED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.FULFILLED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.CLOSED}),
    S.FULFILLED: frozenset({S.CLOSED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
}

# States in which the order still holds reserved stock.
HOLDS_STOCK = frozenset({S.PENDING_PAYMENT, S.PAID, S.PARTIALLY_REFUNDED, S.FULFILLED, S.CLOSED})
TERMINAL = frozenset(s for s, targets in ALLOWED.items() if not targets)
# Where money that reached the order can be given back (orders paid late or after they ended
# included: refunds check what was paid, not only the state).
REFUNDABLE = frozenset({S.PAID, S.PARTIALLY_REFUNDED, S.FULFILLED, S.EXPIRED, S.CANCELLED})

LABELS: dict[OrderStatus, str] = {
    S.PENDING_PAYMENT: "Awaiting payment",
    S.PAID: "Paid",
    S.FULFILLED: "Fulfilled",
    S.CLOSED: "Closed",
    S.EXPIRED: "Expired",
    S.CANCELLED: "Cancelled",
    S.PARTIALLY_REFUNDED: "Partially refunded",
    S.REFUNDED: "Refunded",
}


class OrderError(Exception):
    """Base of every named order error."""


class IllegalTransition(OrderError):
    def __init__(self, current: OrderStatus, target: OrderStatus):
        self.current, self.target = current, target
        super().__init__(f"an order that is {current.value} cannot become {target.value}")


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    if target not in ALLOWED[current]:
        raise IllegalTransition(current, target)
