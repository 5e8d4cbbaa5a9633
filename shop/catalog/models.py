from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from shop.catalog.search import sync
from shop.db import Base, Money, UTCDateTime, utcnow

PHYSICAL = "physical"
DIGITAL = "digital"


class TaxClass(Base):
    """A VAT rate applied to tax-inclusive prices, in basis points (19 % = 1900)."""

    __tablename__ = "tax_classes"
    __table_args__ = (CheckConstraint("rate_bp >= 0 AND rate_bp <= 10000", name="rate_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    rate_bp: Mapped[int] = mapped_column(Integer)
    # Which column of the EU rate table (shop/tax/eu_rates.json) applies abroad: standard,
    # reduced, super_reduced or zero. ``rate_bp`` stays the store's own (home) rate.
    category: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")

    country_rates: Mapped[list[TaxClassRate]] = relationship(
        order_by="TaxClassRate.country", cascade="all, delete-orphan", lazy="selectin"
    )


class TaxClassRate(Base):
    """The merchant's rate for a tax class in one country, where the EU table's does not fit
    (e.g. books at a rate other than the country's lowest reduced one)."""

    __tablename__ = "tax_class_rates"
    __table_args__ = (CheckConstraint("rate_bp >= 0 AND rate_bp <= 10000", name="rate_range"),)

    tax_class_id: Mapped[int] = mapped_column(
        ForeignKey("tax_classes.id", ondelete="CASCADE"), primary_key=True
    )
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    rate_bp: Mapped[int] = mapped_column(Integer)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("kind IN ('physical', 'digital')", name="kind"),
        # The listing's sort, read by keyset (shop.catalog.service.list_products).
        Index("ix_products_listing", "active", "position", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default=PHYSICAL)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    tax_class_id: Mapped[int] = mapped_column(ForeignKey("tax_classes.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tax_class: Mapped[TaxClass] = relationship(lazy="joined")
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", order_by="Variant.position, Variant.id"
    )
    images: Mapped[list[ProductImage]] = relationship(
        back_populates="product", order_by="ProductImage.position, ProductImage.id"
    )

    @property
    def is_physical(self) -> bool:
        return self.kind == PHYSICAL


class ProductImage(Base):
    __tablename__ = "product_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    # A file name inside the instance's uploads folder; never a remote URL (no third-party requests).
    filename: Mapped[str] = mapped_column(String(200))
    alt: Mapped[str] = mapped_column(String(300), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    product: Mapped[Product] = relationship(back_populates="images")


class Variant(Base):
    """A purchasable option of a product.

    Stock is kept as saleor keeps it: ``on_hand`` is what is on the shelf (the merchant's count;
    None means unlimited, e.g. e-books), ``reserved`` is held by unpaid orders and ``committed``
    by paid orders not shipped yet. What can still be sold is derived (`available`). Only
    orders.service moves ``reserved``/``committed``; shipping takes from ``on_hand``.
    """

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("on_hand IS NULL OR on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0 AND committed >= 0", name="held_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    price: Mapped[int] = mapped_column(Money)
    on_hand: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    committed: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    product: Mapped[Product] = relationship(back_populates="variants")

    @property
    def unlimited(self) -> bool:
        return self.on_hand is None

    @property
    def available(self) -> int | None:
        """Units that can still be sold; None: unlimited."""
        return available(self.on_hand, self.reserved, self.committed)

    @property
    def shortfall(self) -> int:
        """Units orders hold beyond what the last count found on the shelf."""
        if self.on_hand is None:
            return 0
        return max(0, self.reserved + self.committed - self.on_hand)

    @property
    def purchasable(self) -> bool:
        return self.active and self.product.active and self.available != 0


def available(on_hand: int | None, reserved: int, committed: int) -> int | None:
    # A count below what orders hold (damaged goods) leaves nothing to sell, not a negative.
    return None if on_hand is None else max(0, on_hand - reserved - committed)


@event.listens_for(Session, "after_flush")
def _sync_search_index(session: Session, _context) -> None:
    """Keep the product search index in the same transaction as the products it copies."""
    changed = {
        obj.id
        for obj in (*session.new, *session.dirty, *session.deleted)
        if isinstance(obj, Product) and obj.id is not None
    }
    if changed:
        sync(session.connection(), changed, session.info.get("search_config", "simple"))


class StockAdjustment(Base):
    """Every stock movement with its reason: the merchant's counts (``count``) and what orders
    did to the shelf (``shipped``, ``restocked``, ``returned``, ``written_off``).

    ``stock_before``/``stock_after`` are on hand; ``quantity`` the units an order moved.
    """

    __tablename__ = "stock_adjustments"

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variants.id", ondelete="CASCADE"), index=True
    )
    # None on either side means "unlimited".
    stock_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stock_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="count")
    quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    reason: Mapped[str] = mapped_column(String(300), default="")
    admin_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_users.id", ondelete="SET NULL"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
