"""Who acts on what happens to an order: every subscription to the order's events, in one table.

create_app calls `connect`, so the web app, `shop worker` and every CLI command (all built by
create_app) have the same subscribers; an entry point that skipped it could not change an order
at all (events.NotConnected) rather than change it without booking it. The table's order is
the order in which the subscribers of one event run: the ledger books, then the customer's
email is queued, then the downloads are granted (which may fulfil the order: its own event).

A feature that acts on orders writes a function ``(session, event) -> None`` in its own module
and adds a row here; the order service does not change. The same goes for the privacy purge:
a feature that keeps personal data per order adds its eraser to ERASERS, so the purge erases it
whichever modules an entry point happened to import.
"""

from __future__ import annotations

from shop.downloads import service as downloads
from shop.mail import outbox
from shop.orders import events, shipments
from shop.privacy import ledger, purge
from shop.refunds import service as refunds

SUBSCRIPTIONS: tuple[tuple[type[events.OrderChanged], events.Subscriber], ...] = (
    (events.OrderPlaced, outbox.on_order_placed),
    (events.OrderPaid, ledger.book_sale),
    (events.OrderPaid, outbox.on_order_paid),
    (events.OrderPaid, downloads.deliver_on_payment),
    (events.OrderShipped, outbox.on_order_shipped),
    (events.OrderCancelled, outbox.on_order_cancelled),
    (events.OrderRefunded, ledger.book_refund),
    (events.OrderRefunded, outbox.on_order_refunded),
    (events.ChargebackReceived, ledger.book_chargeback),
    (events.ChargebackReversed, ledger.book_money_back),
    (events.RefundFailed, ledger.book_money_back),
)

# The order's own contact fields are erased by privacy.purge itself.
ERASERS: tuple[tuple[str, purge.Eraser], ...] = (
    ("shipment-tracking", shipments.erase_tracking),
    ("refund-addresses", refunds.erase),
)


def connect() -> None:
    """Subscribe everything above; calling it again (every create_app does) changes nothing."""
    for event_type, subscriber in SUBSCRIPTIONS:
        events.subscribe(
            event_type, f"{subscriber.__module__}.{subscriber.__qualname__}", subscriber
        )
    for name, eraser in ERASERS:
        purge.register_eraser(name, eraser)
