"""Checking a cart against the catalog and offering shipping. Read-only; no Flask."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from shop.cart.pricing import PricedLine, ShippingOption, shipping_price, subtotal
from shop.cart.storage import CartLine
from shop.catalog.models import PHYSICAL, TaxClass
from shop.catalog.service import get_variants
from shop.checkout.models import ShippingRate, ShippingZone


@dataclass
class CartReview:
    lines: list[PricedLine] = field(default_factory=list)
    # Customer-facing explanations of what changed since the items were added.
    problems: list[str] = field(default_factory=list)
    # The cart as it should be now: vanished lines dropped, quantities capped, prices updated.
    adjusted: list[CartLine] = field(default_factory=list)

    @property
    def requires_shipping(self) -> bool:
        return any(line.kind == PHYSICAL for line in self.lines)

    @property
    def subtotal(self) -> int:
        return subtotal(self.lines)


def review_cart(session: Session, cart: list[CartLine]) -> CartReview:
    review = CartReview()
    variants = get_variants(session, [line.variant_id for line in cart])
    for line in cart:
        variant = variants.get(line.variant_id)
        if variant is None or not variant.active or not variant.product.active:
            review.problems.append(
                "An item in your cart is no longer available and was removed."
                if variant is None
                else f"“{variant.product.title}” is no longer available and was removed."
            )
            continue
        name = variant.product.title + (f" ({variant.label})" if variant.label else "")
        quantity = line.quantity
        if variant.stock is not None and quantity > variant.stock:
            if variant.stock == 0:
                review.problems.append(f"“{name}” has sold out and was removed from your cart.")
                continue
            review.problems.append(
                f"Only {variant.stock} of “{name}” left: your quantity was reduced from "
                f"{quantity} to {variant.stock}."
            )
            quantity = variant.stock
        if variant.price != line.price_seen:
            review.problems.append(f"The price of “{name}” has changed since you added it.")
        review.adjusted.append(CartLine(variant.id, quantity, variant.price))
        review.lines.append(
            PricedLine(
                variant_id=variant.id,
                product_slug=variant.product.slug,
                product_title=variant.product.title,
                variant_label=variant.label,
                sku=variant.sku,
                kind=variant.product.kind,
                unit_price=variant.price,
                quantity=quantity,
                tax_rate_bp=variant.product.tax_class.rate_bp,
            )
        )
    return review


def _zones(session: Session) -> list[ShippingZone]:
    # Checkout asks for the zones several times per request (countries, options, placing the
    # order); read them once per unit of work. Session.info lives exactly as long as that.
    zones = session.info.get("shop.shipping_zones")
    if zones is None:
        zones = session.info["shop.shipping_zones"] = list(
            session.scalars(
                select(ShippingZone)
                .options(selectinload(ShippingZone.rates))
                .order_by(ShippingZone.position, ShippingZone.id)
            ).all()
        )
    return zones


def shipping_countries(session: Session) -> list[str]:
    seen: dict[str, None] = {}
    for zone in _zones(session):
        for code in zone.country_codes:
            seen[code] = None
    return list(seen)


def shipping_options(session: Session, country: str, goods_total: int) -> list[ShippingOption]:
    rates_by_class = {t.id: t.rate_bp for t in session.scalars(select(TaxClass)).all()}
    options = []
    for zone in _zones(session):
        if country.upper() not in zone.country_codes:
            continue
        for rate in zone.rates:
            options.append(_option(zone, rate, goods_total, rates_by_class[rate.tax_class_id]))
    return options


def _option(zone: ShippingZone, rate: ShippingRate, goods_total: int, tax_bp: int) -> ShippingOption:
    return ShippingOption(
        rate_id=rate.id,
        zone_name=zone.name,
        name=rate.name,
        list_price=rate.price,
        price=shipping_price(rate.price, rate.free_over, goods_total),
        free_over=rate.free_over,
        tax_rate_bp=tax_bp,
    )
