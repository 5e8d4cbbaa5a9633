"""Lightning invoices as the node reported them, apart from the order's business state.

No personal data: an invoice holds the payment hash, the BOLT11 text (the shop's node key, the
amount, "<shop> order <number>") and amounts. The payer's node is never known to the receiver.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, Money, UTCDateTime

# creating: the row reserves the order's one invoice while the node is asked (no second invoice
# even if two tabs ask at once); failed: the node could not make it (asked again later).
STATUSES = ("creating", "failed", "open", "settled", "canceled")


class LightningInvoice(Base):
    __tablename__ = "lightning_invoices"
    __table_args__ = (
        CheckConstraint(
            "status IN ('creating', 'failed', 'open', 'settled', 'canceled')", name="status"
        ),
        CheckConstraint("amount_msat > 0", name="amount"),
        Index("ix_lightning_invoices_status_expires_at", "status", "expires_at"),
        # One invoice per order at a time: a replacement takes the next number, so two requests
        # replacing the same expired invoice cannot both succeed.
        UniqueConstraint("order_id", "seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Whether Lightning was chosen or rides along with on-chain; the order's current invoice is
    # the one with the highest `seq` (1, then one more for each replacement the customer asked
    # for after an expiry). Replaced invoices are still watched: a late payment is credited.
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    seq: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    backend: Mapped[str] = mapped_column(String(16))  # lnd | cln | simulated
    # Known once the node made the invoice; settlements are matched (and idempotent) by it.
    payment_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    bolt11: Mapped[str] = mapped_column(Text, default="")
    amount_msat: Mapped[int] = mapped_column(BigInteger)
    # What the invoice covers in the order's currency and the rate it was converted at.
    order_total: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="creating")
    received_msat: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # True once the order was told it is paid: a repeated settlement says nothing new.
    paid_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why the node could not make the invoice (for the merchant; no personal data).
    error: Mapped[str] = mapped_column(String(300), default="")


class LightningStreamState(Base):
    """Where the settlement stream resumes, and when the node was last reached (per backend)."""

    __tablename__ = "lightning_stream_state"

    backend: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Highest settle_index (LND) / pay_index (CLN) handled and committed.
    last_index: Mapped[int] = mapped_column(BigInteger, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
