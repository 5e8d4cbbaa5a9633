"""What the shop remembers about card payments: attempts, refunds and the Stripe events applied.

References and amounts only: the customer's name, email, address and card stay with Stripe.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, Money, UTCDateTime, utcnow

ATTEMPT_STATUSES = ("creating", "open", "processing", "paid", "failed", "expired", "mismatch")
REFUND_STATUSES = ("sending", "pending", "succeeded", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CardPayment(Base):
    """One Checkout Session (attempt) for an order.

    The row is written before Stripe is called, with the `expires_at` sent, so a retry after a
    timeout repeats the very same request under the same idempotency key.
    """

    __tablename__ = "card_payments"
    __table_args__ = (
        UniqueConstraint("order_id", "attempt"),
        CheckConstraint(_in("status", ATTEMPT_STATUSES), name="status"),
        CheckConstraint("amount >= 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    # creating: request not (yet) answered; open: customer can pay; processing: completed,
    # money not settled; then paid, failed, expired, or mismatch (never counted as paid).
    status: Mapped[str] = mapped_column(String(16), default="creating")
    session_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    payment_intent: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CardRefund(Base):
    """A refund of a card payment, made by the shop or (seen by webhook) in Stripe's Dashboard."""

    __tablename__ = "card_refunds"
    __table_args__ = (
        CheckConstraint(_in("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    # Stripe's Idempotency-Key for refunds the shop made (order ref + sequence); Stripe's refund
    # id for refunds made elsewhere. Unique, so the same refund is never recorded twice.
    key: Mapped[str] = mapped_column(String(255), unique=True)
    refund_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    payment_intent: Mapped[str] = mapped_column(String(255), index=True)
    # sending: written, Stripe's answer not received (retried with the same key); then Stripe's
    # pending / succeeded / failed (canceled counts as failed).
    status: Mapped[str] = mapped_column(String(16), default="sending")
    amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    # When Stripe answered the shop's create request; NULL while a request is unanswered, even
    # if a webhook has meanwhile reported the refund: repeating it is then still safe.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


EVENT_STATUSES = ("received", "applied", "unmatched")


class StripeEventRecord(Base):
    """Each Stripe event received; its primary key makes a redelivery a no-op.

    The webhook endpoint stores it `received` (with the CardEvent: references and amounts, no
    personal data) and answers; the worker re-reads from Stripe and applies it, setting
    `applied` in the same transaction as the order change it causes, or `unmatched`.
    """

    __tablename__ = "stripe_events"
    __table_args__ = (CheckConstraint(_in("status", EVENT_STATUSES), name="status"),)

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="applied", index=True)
    data: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Re-reads that Stripe did not answer, and when the worker tries again.
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The merchant has looked at an unmatched event (admin task list).
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
