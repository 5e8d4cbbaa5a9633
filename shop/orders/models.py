from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, Money, UTCDateTime, personal, utcnow
from shop.orders.states import OrderStatus

STATUS_VALUES = ", ".join(f"'{s.value}'" for s in OrderStatus)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUS_VALUES})", name="status"),
        CheckConstraint("total >= 0 AND subtotal >= 0 AND shipping >= 0", name="amounts"),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        # Tasks: the few orders that need the merchant, newest first.
        Index(
            "ix_orders_attention",
            "id",
            postgresql_where=text("attention IS NOT NULL"),
            sqlite_where=text("attention IS NOT NULL"),
        ),
        Index("ix_orders_placed_at", "placed_at"),
        # The admin list filtered by status, newest first (SQLite sorted every match without).
        Index("ix_orders_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Human-friendly and sequential per year, e.g. 2026-000042 (EU invoices need no gaps).
    number: Mapped[str] = mapped_column(String(20), unique=True)
    # The secret in the customer's order link (256 bits); never logged, never sent to providers.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    # Opaque reference given to payment providers instead of the token or the number.
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(24), default=OrderStatus.PENDING_PAYMENT.value)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(Money)
    shipping: Mapped[int] = mapped_column(Money, default=0)
    shipping_tax_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    # Whose VAT the shipping carries (as its goods'); "" an export, NULL before VAT by destination.
    shipping_tax_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    total: Mapped[int] = mapped_column(Money)
    vat_total: Mapped[int] = mapped_column(Money, default=0)
    amount_paid: Mapped[int] = mapped_column(Money, default=0)
    amount_refunded: Mapped[int] = mapped_column(Money, default=0)
    requires_shipping: Mapped[bool] = mapped_column(Boolean, default=False)
    shipping_method: Mapped[str] = mapped_column(String(100), default="")
    # Destination country: needed for VAT bookkeeping, identifies nobody on its own.
    country: Mapped[str] = mapped_column(String(2))
    payment_method: Mapped[str] = mapped_column(String(32))
    # The method whose money made the order paid, when the backend named it: one payment
    # request can offer several (a unified Bitcoin request paid over Lightning). NULL: unpaid,
    # or paid before this was recorded (then it was payment_method).
    paid_via: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The language the customer shopped in (de_DE, nl, en): their emails are written in it.
    # NULL for orders from before languages: the store's SHOP_LOCALE.
    locale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Digital content delivered at once (§ 356 (5) BGB, Art. 16 (m) Directive 2011/83/EU): when
    # the customer agreed to immediate delivery and acknowledged losing the right of withdrawal,
    # and which wording they saw (shop/orders/consent.py). Not personal: no person in it.
    digital_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    digital_consent_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # Without that consent (and a merchant who delays rather than refuses), downloads wait until
    # the withdrawal period has ended.
    downloads_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The one-time token of the checkout form that placed this order: posting that form again
    # (double click, retry, back button) finds this order instead of placing another.
    checkout_token: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when something needs the merchant's eyes (mismatched amount, late payment, dispute).
    attention: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Privacy (shop/privacy/purge.py): when the customer asked for erasure, and when every
    # personal field of this order was erased ("purged on <date>").
    personal_data_erase_requested_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )
    personal_data_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )
    contact: Mapped[OrderContact | None] = relationship(
        back_populates="order", cascade="all, delete-orphan", uselist=False
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )

    @property
    def state(self) -> OrderStatus:
        return OrderStatus(self.status)


class OrderLine(Base):
    """A snapshot of what was bought, so later catalog edits never rewrite past orders."""

    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("variants.id", ondelete="SET NULL"), nullable=True, index=True
    )
    product_title: Mapped[str] = mapped_column(String(200))
    variant_label: Mapped[str] = mapped_column(String(200), default="")
    sku: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    unit_price: Mapped[int] = mapped_column(Money)
    quantity: Mapped[int] = mapped_column(Integer)
    tax_rate_bp: Mapped[int] = mapped_column(Integer)
    # The country whose VAT applies (shop/tax/rates.py): "" an export, NULL before this existed.
    tax_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    line_total: Mapped[int] = mapped_column(Money)
    # Where this line's units are in the variant's stock (see StockState).
    stock_state: Mapped[str] = mapped_column(String(12), default="none")

    order: Mapped[Order] = relationship(back_populates="lines")


class OrderContact(Base):
    """Everything personal about an order, kept apart so erasing it leaves the order intact.

    Fields are AES-GCM blobs under the order's own data key, stored only wrapped by an epoch
    key kept outside the database; read and write them through shop.privacy.store (set_contact / read_contact).
    """

    __tablename__ = "order_contacts"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The epoch key (shop/privacy/epochs.py) that wraps it; NULL for keys wrapped directly by
    # the master key before epochs existed (the purge and `shop privacy rotate-key` move them).
    key_epoch: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    email: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, info=personal())
    name: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, info=personal())
    street: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, info=personal())
    postal_code: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, info=personal())
    city: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, info=personal())

    order: Mapped[Order] = relationship(back_populates="contact")


class OrderEvent(Base):
    """Every advance of an order, for the merchant and for the customer's order page."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    to_status: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(String(500), default="")

    order: Mapped[Order] = relationship(back_populates="events")


class PaymentRecord(Base):
    """Each external payment event applied, keyed by its natural id so a repeat is a no-op."""

    __tablename__ = "payment_records"
    __table_args__ = (UniqueConstraint("provider", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderNumberCounter(Base):
    """Last order number used per year; its row lock serialises numbering without gaps."""

    __tablename__ = "order_number_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Shipment(Base):
    """The parcel of an order: carrier tracking reference and when it left."""

    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    # The carrier can map it to the recipient's address: sealed under the order's data key
    # (shop.privacy.store.seal), so it goes with the order's other personal data.
    tracking_sealed: Mapped[bytes | None] = mapped_column(
        LargeBinary, nullable=True, info=personal()
    )
    # Only rows from before the sealed column: the purge seals and blanks them.
    tracking: Mapped[str] = mapped_column(String(200), default="", info=personal())
    shipped_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
