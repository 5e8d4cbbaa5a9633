"""Tax classes, shipping zones and shipping rates, edited by the merchant. No Flask.

Orders keep their own copy of rates and prices, so an edit changes only future orders.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from babel import Locale
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from shop.admin.catalog import CatalogError, parse_price
from shop.cart.models import ShippingRate, ShippingZone
from shop.cart.service import forget_tax_classes, real_countries
from shop.catalog.models import Product, TaxClass, TaxClassRate
from shop.tax import rates as eu


class SettingsError(ValueError):
    pass


def parse_rate(text: str) -> int:
    """A VAT rate in percent ("19", "7.7") to basis points."""
    try:
        value = Decimal((text or "").strip().rstrip("%").strip().replace(",", "."))
    except InvalidOperation:
        raise SettingsError(f"“{text}” is not a percentage such as 19 or 7.7.") from None
    bp = value * 100
    if bp != bp.to_integral_value() or not 0 <= bp <= 10000:
        raise SettingsError("A VAT rate is between 0 and 100 %, with at most two decimals.")
    return int(bp)


def parse_countries(text: str) -> str:
    codes = [c for c in re.split(r"[\s,;]+", (text or "").upper()) if c]
    known = real_countries()  # not EU, UN or another grouping: customers live in countries
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise SettingsError(f"Not a two-letter country code: {', '.join(unknown[:5])}.")
    if not codes:
        raise SettingsError("List at least one country code, e.g. DE, AT.")
    return ",".join(dict.fromkeys(codes))


def tax_classes(session: Session) -> list[TaxClass]:
    return list(session.scalars(select(TaxClass).order_by(TaxClass.rate_bp.desc(), TaxClass.id)))


def save_tax_class(
    session: Session,
    tax: TaxClass | None,
    code: str,
    name: str,
    rate: str,
    category: str | None = None,
    country_rates: str | None = None,
) -> TaxClass:
    """Save a tax class: its home rate, which EU table column applies abroad (``category``)
    and the merchant's own per-country rates ("NL=9, FR=5.5"; None leaves them as they are)."""
    if category is not None and category not in eu.CATEGORIES:
        raise SettingsError(
            "Choose which EU rate applies abroad: standard, reduced, super-reduced or zero."
        )
    overrides = None
    if country_rates is not None:
        try:
            overrides = eu.parse_overrides(country_rates)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    code = (code or "").strip().lower()
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", code):
        raise SettingsError("A code is 1–40 lower-case letters, digits, dashes or underscores.")
    taken = session.scalar(select(TaxClass.id).where(TaxClass.code == code))
    if taken is not None and (tax is None or taken != tax.id):
        raise SettingsError(f"The code “{code}” is already used.")
    if tax is None:
        tax = TaxClass(code=code, name="", rate_bp=0)
        session.add(tax)
    tax.code, tax.name, tax.rate_bp = code, (name or code).strip()[:100], parse_rate(rate)
    if category is not None:
        tax.category = category
    if overrides is not None:
        tax.country_rates = [TaxClassRate(country=c, rate_bp=bp) for c, bp in overrides]
    session.flush()
    forget_tax_classes(session)
    return tax


def delete_tax_class(session: Session, tax: TaxClass) -> None:
    used = (
        session.scalar(
            select(func.count()).select_from(Product).where(Product.tax_class_id == tax.id)
        )
        or 0
    ) + (
        session.scalar(
            select(func.count())
            .select_from(ShippingRate)
            .where(ShippingRate.tax_class_id == tax.id)
        )
        or 0
    )
    if used:
        raise SettingsError("This tax class is still used by products or shipping rates.")
    session.delete(tax)


def zones(session: Session) -> list[ShippingZone]:
    return list(
        session.scalars(
            select(ShippingZone)
            .options(selectinload(ShippingZone.rates))
            .order_by(ShippingZone.position, ShippingZone.id)
        )
    )


def _check_zone(session: Session, zone: ShippingZone | None, name: str, codes: list[str]) -> None:
    """A country belongs to one zone only, so what shipping costs there is never ambiguous;
    and two zones of one name could not be told apart at checkout."""
    territories = Locale.parse("en").territories
    for other in zones(session):
        if zone is not None and other.id == zone.id:
            continue
        if other.name.strip().lower() == name.lower():
            raise SettingsError(
                f"A zone named “{other.name}” already exists: choose another "
                "name, or add the countries to that zone."
            )
        shared = [c for c in codes if c in ShippingZone.country_codes_of(other.countries)]
        if shared:
            named = ", ".join(f"{territories.get(c, c)} ({c})" for c in shared[:8])
            verb = "is" if len(shared) == 1 else "are"
            raise SettingsError(
                f"{named} {verb} already in the zone “{other.name}”. A country "
                "can be in one zone only: remove it there first."
            )


def save_zone(
    session: Session, zone: ShippingZone | None, name: str, countries: str
) -> ShippingZone:
    if not (name or "").strip():
        raise SettingsError("Give the zone a name.")
    parsed = parse_countries(countries)
    _check_zone(session, zone, name.strip()[:100], parsed.split(","))
    if zone is None:
        zone = ShippingZone(name="", countries="", position=len(zones(session)))
        session.add(zone)
    zone.name, zone.countries = name.strip()[:100], parsed
    session.flush()
    return zone


def delete_zone(session: Session, zone: ShippingZone) -> None:
    for rate in list(zone.rates):
        session.delete(rate)
    session.delete(zone)


def save_rate(
    session: Session,
    zone: ShippingZone,
    rate: ShippingRate | None,
    name: str,
    price: str,
    free_over: str,
    tax_class_id: int,
    currency: str,
) -> ShippingRate:
    if not (name or "").strip():
        raise SettingsError("Give the shipping rate a name.")
    if session.get(TaxClass, tax_class_id) is None:
        raise SettingsError("Choose a tax class.")
    try:
        amount = parse_price(price, currency)
        threshold = parse_price(free_over, currency) if (free_over or "").strip() else None
    except CatalogError as exc:
        raise SettingsError(str(exc)) from None
    if rate is None:
        rate = ShippingRate(zone_id=zone.id, name="", price=0, position=len(zone.rates))
        session.add(rate)
    rate.name, rate.price, rate.free_over, rate.tax_class_id = (
        name.strip()[:100],
        amount,
        threshold,
        tax_class_id,
    )
    session.flush()
    return rate
