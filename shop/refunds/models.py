"""Bitcoin refunds: the merchant asks for an address, the customer gives it on their order page."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, UTCDateTime, personal, utcnow


class RefundAddress(Base):
    """Where to send a Bitcoin refund: asked for by the merchant, given by the customer."""

    __tablename__ = "refund_addresses"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Sealed under the order's data key (shop.privacy.store.seal); read it with service.get.
    address: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, info=personal())
    given_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
