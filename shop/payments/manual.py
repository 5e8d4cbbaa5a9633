"""Lifecycle steps shared by methods whose money the merchant moves by hand (Bitcoin, demo):
cancelling needs nothing closed at a provider, and a refund is sent by the merchant and
recorded here. No Flask."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.db import Database
from shop.orders import service as orders
from shop.orders.models import Order
from shop.orders.states import REFUNDABLE
from shop.payments.base import PaymentActionError, PaymentEvent, PaymentEventKind, Refundable


def _lock(session: Session, order_id: int) -> Order:
    return session.scalars(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def cancel(database: Database, order_id: int, reason: str) -> None:
    with database.write_session() as session:
        orders.cancel(session, _lock(session, order_id), reason)


def refundable_amount(order: Order) -> int:
    if order.state not in REFUNDABLE:
        return 0
    return max(0, order.amount_paid - order.amount_refunded)


def refundable_on_chain(order: Order) -> Refundable:
    """Bitcoin, on-chain or Lightning: the merchant sends the refund from their own wallet to an
    address the customer gives (the shop holds no spending rights), then records it."""
    return Refundable(
        refundable_amount(order),
        automatic=False,
        how="Send the bitcoin from your wallet (ask the customer for an "
        "address below), then record the transaction id here.",
        to_address=True,
    )


def record_refund(database: Database, order_id: int, amount: int, reference: str) -> str:
    """Record money the merchant sent back outside the shop (e.g. a Bitcoin transaction).

    Goes through the payment-event entry point, keyed by the reference, so recording the same
    transaction twice changes nothing."""
    with database.write_session() as session:
        order = _lock(session, order_id)
        if order.state not in REFUNDABLE or order.amount_paid <= 0:
            raise PaymentActionError(f"An order that is {order.status} cannot be refunded.")
        if not 0 < amount <= refundable_amount(order):
            raise PaymentActionError(
                "The refund must be more than zero and at most what is left of the payment."
            )
        reference = " ".join(reference.split())[:200]
        key = f"admin-refund:{reference}" if reference else f"admin-refund:{secrets.token_hex(8)}"
        outcome = orders.apply_payment_event(
            session,
            PaymentEvent(
                provider=order.payment_method,
                key=key,
                order_ref=order.ref,
                kind=PaymentEventKind.REFUNDED,
                amount=amount,
                currency=order.currency,
                reference=reference,
                note=f"Refund recorded by the merchant{f' ({reference})' if reference else ''}",
            ),
        )
    return "Refund recorded." if outcome.applied else "This refund was already recorded."
