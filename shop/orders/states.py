"""The order's business state and its allowed transitions. Pure: no Flask, no database.

What a payment provider or the chain shows is kept apart (payments/); this is what the merchant
acts on. Every change goes through orders.service, which consults `check_transition`.
"""

from __future__ import annotations

from enum import StrEnum

from shop.i18n import N_


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

# Paid and not given back: a payment page shows "paid" (perhaps paid another way, e.g. the
# other half of a unified Bitcoin/Lightning request).
PAID_STATES = frozenset({S.PAID, S.FULFILLED, S.CLOSED})


class StockState(StrEnum):
    """Where an order line's units are. Only RESERVED and COMMITTED hold a variant's stock."""

    NONE = "none"
    RESERVED = "reserved"  # counted in Variant.reserved: the order is not paid yet
    COMMITTED = "committed"  # counted in Variant.committed: paid, still on the shelf
    SHIPPED = "shipped"  # taken from on hand
    RELEASED = "released"  # an unpaid order expired or was cancelled
    RESTOCKED = "restocked"  # refunded or cancelled before shipping: free to sell again
    RETURNED = "returned"  # shipped, came back and went on the shelf again
    WRITTEN_OFF = "written_off"  # refunded or cancelled and gone (damaged, lost)


class StockChoice(StrEnum):
    """What a refund or cancellation does with units that have not been shipped."""

    RESTOCK = "restock"
    WRITE_OFF = "write_off"
    KEEP = "keep"  # a partial refund: the order still ships them


# Where money that reached the order can be given back (orders paid late or after they ended
# included: refunds check what was paid, not only the state).
REFUNDABLE = frozenset({S.PAID, S.PARTIALLY_REFUNDED, S.FULFILLED, S.EXPIRED, S.CANCELLED})

# Message ids: the customer's page shows them translated, the admin as they are.
LABELS: dict[OrderStatus, str] = {
    S.PENDING_PAYMENT: N_("Awaiting payment"),
    S.PAID: N_("Paid"),
    S.FULFILLED: N_("Fulfilled"),
    S.CLOSED: N_("Closed"),
    S.EXPIRED: N_("Expired"),
    S.CANCELLED: N_("Cancelled"),
    S.PARTIALLY_REFUNDED: N_("Partially refunded"),
    S.REFUNDED: N_("Refunded"),
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
