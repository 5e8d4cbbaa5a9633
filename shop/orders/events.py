"""What happened to an order, for the features that act on it (ledger, emails, downloads, ...).

The order service records an event after each change it makes (`record`); every subscriber of
that event runs at once, with the same Session, so its writes share the transition's
transaction: a subscriber that raises rolls the transition back with everything else, and none
of it is committed half. Subscribers run in the order they subscribed. A subscriber may change
the order in turn (the downloads fulfil an order they complete); the event that change records
waits until every subscriber of the current event has run, so what subscribers write follows
the order of the events (the payment's email is queued before anything about the fulfilment).

Subscriptions are made in one place, shop/subscribers.py, which create_app calls: so the web
app, `shop worker` and every CLI command have the same ones, in the same order. A feature that
wants to act on an order adds a row there and leaves the order service alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from shop.orders.models import Order
from shop.orders.states import OrderStatus


@dataclass(frozen=True, kw_only=True)
class OrderChanged:
    """The base of every event: which order, and when (the time of the change it reports)."""

    order_id: int
    at: datetime

    def order(self, session: Session) -> Order:
        # The order the service just changed is in the session's identity map: no query.
        order = session.get(Order, self.order_id)
        if order is None:
            raise LookupError(f"order {self.order_id} is gone")
        return order


@dataclass(frozen=True, kw_only=True)
class StatusChanged(OrderChanged):
    from_status: OrderStatus
    to_status: OrderStatus


@dataclass(frozen=True, kw_only=True)
class OrderPlaced(OrderChanged):
    has_email: bool  # the customer gave an address to hear from the shop at


@dataclass(frozen=True, kw_only=True)
class OrderPaid(StatusChanged):
    pass


@dataclass(frozen=True, kw_only=True)
class OrderFulfilled(StatusChanged):
    """Fulfilled without a parcel: by the merchant's say-so or by downloads alone."""


@dataclass(frozen=True, kw_only=True)
class OrderShipped(StatusChanged):
    # The carrier's reference, sealed under the order's data key (it is personal); None if the
    # merchant gave none or the order's personal data is already erased.
    tracking_sealed: bytes | None


@dataclass(frozen=True, kw_only=True)
class OrderCancelled(StatusChanged):
    reason: str


@dataclass(frozen=True, kw_only=True)
class OrderExpired(StatusChanged):
    pass


@dataclass(frozen=True, kw_only=True)
class OrderClosed(StatusChanged):
    pass


@dataclass(frozen=True, kw_only=True)
class OrderRefunded(StatusChanged):
    """A refund of `amount`; `refunded` of `paid` is returned in all, this one included."""

    amount: int
    refunded: int
    paid: int
    reference: str


@dataclass(frozen=True, kw_only=True)
class MoneyMoved(OrderChanged):
    """Money left or came back after the order was paid; the order keeps its status (it is
    flagged for the merchant)."""

    amount: int


@dataclass(frozen=True, kw_only=True)
class ChargebackReceived(MoneyMoved):
    """The customer's bank took `amount` back."""


@dataclass(frozen=True, kw_only=True)
class ChargebackReversed(MoneyMoved):
    """A chargeback was decided for the merchant: `amount` came back."""


@dataclass(frozen=True, kw_only=True)
class RefundFailed(MoneyMoved):
    """A refund sent earlier did not reach the customer: `amount` came back."""


E = TypeVar("E", bound=OrderChanged)
Subscriber = Callable[[Session, Any], None]

# event type -> {name: subscriber}, in the order of subscription (dicts keep it).
_SUBSCRIBERS: dict[type[OrderChanged], dict[str, Subscriber]] = {}
_PENDING = "shop.order_events.pending"


class NotConnected(RuntimeError):
    """Nothing subscribed at all: an entry point that did not call shop.subscribers.connect()
    would otherwise change orders without booking or telling anyone."""


def subscribe(event_type: type[E], name: str, subscriber: Callable[[Session, E], None]) -> None:
    """Call ``subscriber(session, event)`` for every `event_type` recorded from now on.

    Subscribing again under the same name replaces the subscriber and keeps its place.
    """
    _SUBSCRIBERS.setdefault(event_type, {})[name] = subscriber


def unsubscribe(event_type: type[OrderChanged], name: str) -> None:
    _SUBSCRIBERS.get(event_type, {}).pop(name, None)


def subscribers(event_type: type[OrderChanged]) -> list[str]:
    """The names subscribed to exactly `event_type`, in the order they run."""
    return list(_SUBSCRIBERS.get(event_type, {}))


def record(session: Session, event: OrderChanged) -> None:
    """Run the event's subscribers now, in this transaction (see the module's docstring)."""
    if not any(_SUBSCRIBERS.values()):
        raise NotConnected(f"{type(event).__name__} recorded but nothing subscribed")
    pending: deque[OrderChanged] | None = session.info.get(_PENDING)
    if pending is not None:  # recorded by a subscriber: runs after the current event's
        pending.append(event)
        return
    pending = session.info[_PENDING] = deque([event])
    try:
        while pending:
            current = pending.popleft()
            for subscriber in list(_SUBSCRIBERS.get(type(current), {}).values()):
                subscriber(session, current)
    finally:
        del session.info[_PENDING]
