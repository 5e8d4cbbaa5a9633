"""Checking a cart against the catalog, VAT by destination and shipping. Read-only; no Flask.

Below both the checkout pages and `orders.service` (which prices the order it places with the
same functions), so neither imports the other to agree on a total.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache

import pycountry
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shop.cart.models import ShippingRate, ShippingZone
from shop.cart.pricing import PricedLine, ShippingOption, shipping_price, subtotal
from shop.cart.storage import CartLine
from shop.catalog.models import PHYSICAL, Product, TaxClass, TaxClassRate, Variant, available
from shop.i18n import Text
from shop.i18n import lazy_gettext as _l
from shop.tax import rates as tax


@dataclass
class CartReview:
    lines: list[PricedLine] = field(default_factory=list)
    # Customer-facing explanations of what changed since the items were added.
    problems: list[Text] = field(default_factory=list)
    # The cart as it should be now: vanished lines dropped, quantities capped, prices updated.
    adjusted: list[CartLine] = field(default_factory=list)

    @property
    def requires_shipping(self) -> bool:
        return any(line.kind == PHYSICAL for line in self.lines)

    @property
    def has_digital(self) -> bool:
        return any(line.kind != PHYSICAL for line in self.lines)

    @property
    def subtotal(self) -> int:
        return subtotal(self.lines)


_REVIEW = "shop.cart_review"


def review_cart(session: Session, cart: list[CartLine]) -> CartReview:
    """The cart checked against the catalog, once per transaction for the same cart.

    Checkout reviews the cart in the view and again when placing the order; both see the same
    transaction, so the second answer would be the first. Taking stock forgets it
    (`forget_review`), and the stock UPDATE is what guards against overselling anyway.
    """
    key = tuple((line.variant_id, line.quantity, line.price_seen) for line in cart)
    memo = session.info.get(_REVIEW)
    if memo is not None and memo[0] is session.get_transaction() and memo[1] == key:
        return memo[2]
    review = _review(session, cart)
    session.info[_REVIEW] = (session.get_transaction(), key, review)
    return review


def forget_review(session: Session) -> None:
    session.info.pop(_REVIEW, None)


# Built once: constructing a statement costs about as much as running it on a warm connection.
_CART_ROWS = (
    select(
        Variant.id.label("variant_id"),
        Variant.label,
        Variant.sku,
        Variant.price,
        Variant.on_hand,
        Variant.reserved,
        Variant.committed,
        Variant.active,
        Product.active.label("product_active"),
        Product.slug,
        Product.title,
        Product.kind,
        TaxClass.rate_bp,
        Product.tax_class_id,
    )
    .join(Product, Variant.product_id == Product.id)
    .join(TaxClass, Product.tax_class_id == TaxClass.id)
    .where(Variant.id.in_(bindparam("ids", expanding=True)))
)


def _review(session: Session, cart: list[CartLine]) -> CartReview:
    review = CartReview()
    rows = (
        {
            row.variant_id: row
            for row in session.execute(_CART_ROWS, {"ids": [line.variant_id for line in cart]})
        }
        if cart
        else {}
    )
    for line in cart:
        row = rows.get(line.variant_id)
        if row is None or not row.active or not row.product_active:
            review.problems.append(
                _l("An item in your cart is no longer available and was removed.")
                if row is None
                else _l("“%(product)s” is no longer available and was removed.", product=row.title)
            )
            continue
        name = row.title + (f" ({row.label})" if row.label else "")
        quantity = line.quantity
        left = available(row.on_hand, row.reserved, row.committed)
        if left is not None and quantity > left:
            if left == 0:
                review.problems.append(
                    _l("“%(product)s” has sold out and was removed from your cart.", product=name)
                )
                continue
            review.problems.append(
                _l(
                    "Only %(left)d of “%(product)s” left: your quantity was reduced from "
                    "%(quantity)d to %(left)d.",
                    left=left,
                    product=name,
                    quantity=quantity,
                )
            )
            quantity = left
        if row.price != line.price_seen:
            review.problems.append(
                _l("The price of “%(product)s” has changed since you added it.", product=name)
            )
        review.adjusted.append(CartLine(row.variant_id, quantity, row.price))
        review.lines.append(
            PricedLine(
                variant_id=row.variant_id,
                product_slug=row.slug,
                product_title=row.title,
                variant_label=row.label,
                sku=row.sku,
                kind=row.kind,
                unit_price=row.price,
                quantity=quantity,
                tax_rate_bp=row.rate_bp,
                tax_class_id=row.tax_class_id,
            )
        )
    return review


# ---------------------------------------------------------------- VAT by destination


def tax_policy(session: Session) -> tax.TaxPolicy:
    settings = session.info.get("shop.settings")
    if settings is None:
        return tax.TaxPolicy()
    return tax.TaxPolicy(settings.country, settings.vat_scheme, settings.vat_fixed_price)


_TAX_CLASSES = "shop.tax_classes"


_TAX_ROWS = select(
    TaxClass.id, TaxClass.rate_bp, TaxClass.category, TaxClassRate.country, TaxClassRate.rate_bp
).outerjoin(TaxClassRate, TaxClassRate.tax_class_id == TaxClass.id)


def load_tax_classes(session: Session) -> dict[int, tax.TaxClassInfo]:
    """Every tax class with its per-country rates, as plain values, in one query."""
    rows: dict[int, tuple[int, str, list[tuple[str, int]]]] = {}
    for class_id, home_bp, category, country, rate_bp in session.execute(_TAX_ROWS):
        entry = rows.setdefault(class_id, (home_bp, category, []))
        if country is not None:
            entry[2].append((country, rate_bp))
    return {
        class_id: tax.TaxClassInfo(home_bp, category, tuple(sorted(overrides)))
        for class_id, (home_bp, category, overrides) in rows.items()
    }


def use_tax_classes(session: Session, classes: dict[int, tax.TaxClassInfo]) -> None:
    """Let this unit of work use ``classes`` (e.g. from the catalog's short-lived cache), so the
    VAT shown and the VAT charged come from one snapshot, as with the shipping zones."""
    session.info[_TAX_CLASSES] = classes


def tax_classes(session: Session) -> dict[int, tax.TaxClassInfo]:
    """The tax classes this unit of work uses, read once."""
    classes = session.info.get(_TAX_CLASSES)
    if classes is None:
        classes = session.info[_TAX_CLASSES] = load_tax_classes(session)
    return classes


def forget_tax_classes(session: Session) -> None:
    session.info.pop(_TAX_CLASSES, None)


def _taxed(
    session: Session, class_id: int, home_bp: int, kind: str, country: str
) -> tuple[str, int, tax.TaxClassInfo]:
    policy = tax_policy(session)
    info = tax_classes(session).get(class_id) or tax.TaxClassInfo(home_bp)
    where = tax.taxed_in(policy, kind, country)
    return where, tax.rate_in(info, where, policy), info


def localize_lines(session: Session, lines: list[PricedLine], country: str) -> list[PricedLine]:
    """The cart's lines for a customer in ``country``: whose VAT, which rate, and the price
    (changed only when the store keeps net prices fixed)."""
    fixed = tax_policy(session).fixed
    out = []
    for line in lines:
        where, rate, info = _taxed(
            session, line.tax_class_id, line.tax_rate_bp, line.kind, country.upper()
        )
        out.append(
            replace(
                line,
                tax_rate_bp=rate,
                tax_country=where,
                unit_price=tax.localize(line.unit_price, info.home_bp, rate, fixed),
            )
        )
    return out


@dataclass(frozen=True)
class Rate:
    id: int
    name: str
    price: int
    free_over: int | None
    tax_rate_bp: int
    tax_class_id: int | None = None


@dataclass(frozen=True)
class Zone:
    id: int
    name: str
    country_codes: tuple[str, ...]
    rates: tuple[Rate, ...]


_ZONE_ROWS = (
    select(
        ShippingZone.id,
        ShippingZone.name,
        ShippingZone.countries,
        ShippingRate.id,
        ShippingRate.name,
        ShippingRate.price,
        ShippingRate.free_over,
        TaxClass.rate_bp,
        ShippingRate.tax_class_id,
    )
    .outerjoin(ShippingRate, ShippingRate.zone_id == ShippingZone.id)
    .outerjoin(TaxClass, ShippingRate.tax_class_id == TaxClass.id)
    .order_by(ShippingZone.position, ShippingZone.id, ShippingRate.position, ShippingRate.id)
)


def load_zones(session: Session) -> tuple[Zone, ...]:
    """Zones with their rates and the rates' VAT, as plain immutable values, in one query."""
    grouped: dict[int, tuple[str, str, list[Rate]]] = {}
    for (
        zone_id,
        zone_name,
        countries,
        rate_id,
        name,
        price,
        free_over,
        tax_bp,
        class_id,
    ) in session.execute(_ZONE_ROWS):
        entry = grouped.setdefault(zone_id, (zone_name, countries, []))
        if rate_id is not None:
            entry[2].append(Rate(rate_id, name, price, free_over, tax_bp, class_id))
    return tuple(
        Zone(zone_id, name, tuple(ShippingZone.country_codes_of(countries)), tuple(rates))
        for zone_id, (name, countries, rates) in grouped.items()
    )


_ZONES = "shop.shipping_zones"


def use_zones(session: Session, zones: tuple[Zone, ...]) -> None:
    """Let this unit of work use ``zones`` (e.g. from a short-lived cache) instead of reading.

    What the customer is shown and what placing the order checks then come from the same
    snapshot, so the shipping charged is always the shipping shown.
    """
    session.info[_ZONES] = zones


def _zones(session: Session) -> tuple[Zone, ...]:
    # Checkout asks for the zones several times per request (countries, options, placing the
    # order); read them once per unit of work. Session.info lives exactly as long as that.
    zones = session.info.get(_ZONES)
    if zones is None:
        zones = session.info[_ZONES] = load_zones(session)
    return zones


@cache
def real_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes: the countries a customer can live in. CLDR's territory list,
    which names them, also has groupings (EU, Eurozone, United Nations, World) and pseudo-locales."""
    return frozenset(country.alpha_2 for country in pycountry.countries)


def shipping_countries(session: Session) -> list[str]:
    seen: dict[str, None] = {}
    for zone in _zones(session):
        for code in zone.country_codes:
            seen[code] = None
    return list(seen)


def shipping_options(session: Session, country: str, goods_total: int) -> list[ShippingOption]:
    """What shipping to ``country`` costs, with the VAT it carries there (as its goods: the
    destination's under OSS, at home under the threshold, none for an export)."""
    country = country.upper()
    fixed = tax_policy(session).fixed
    options = []
    for zone in _zones(session):
        if country not in zone.country_codes:
            continue
        for rate in zone.rates:
            where, bp, info = _taxed(
                session, rate.tax_class_id or 0, rate.tax_rate_bp, PHYSICAL, country
            )
            list_price = tax.localize(rate.price, info.home_bp, bp, fixed)
            options.append(
                ShippingOption(
                    rate_id=rate.id,
                    zone_name=zone.name,
                    name=rate.name,
                    list_price=list_price,
                    price=shipping_price(list_price, rate.free_over, goods_total),
                    free_over=rate.free_over,
                    tax_rate_bp=bp,
                    tax_country=where,
                )
            )
    return options
