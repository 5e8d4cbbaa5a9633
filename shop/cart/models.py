from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, Money


class ShippingZone(Base):
    """Countries that share shipping rates; `countries` is a comma-separated list of ISO codes."""

    __tablename__ = "shipping_zones"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    countries: Mapped[str] = mapped_column(String(2000))
    position: Mapped[int] = mapped_column(Integer, default=0)

    rates: Mapped[list[ShippingRate]] = relationship(
        back_populates="zone", order_by="ShippingRate.position, ShippingRate.id"
    )

    @staticmethod
    def country_codes_of(countries: str) -> list[str]:
        return [c.strip().upper() for c in countries.split(",") if c.strip()]


class ShippingRate(Base):
    """A flat rate (tax-inclusive) with an optional threshold above which shipping is free."""

    __tablename__ = "shipping_rates"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("free_over IS NULL OR free_over >= 0", name="free_over_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    zone_id: Mapped[int] = mapped_column(
        ForeignKey("shipping_zones.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    price: Mapped[int] = mapped_column(Money)
    free_over: Mapped[int | None] = mapped_column(Money, nullable=True)
    tax_class_id: Mapped[int] = mapped_column(ForeignKey("tax_classes.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)

    zone: Mapped[ShippingZone] = relationship(back_populates="rates")
