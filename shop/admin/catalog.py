"""Catalog changes made by the merchant: products, variants, stock (logged), images. No Flask."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import InvalidOperation
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from shop.admin import images
from shop.admin.models import AdminUser
from shop.catalog.models import (
    DIGITAL,
    PHYSICAL,
    Product,
    ProductImage,
    StockAdjustment,
    TaxClass,
    Variant,
)
from shop.db import utcnow
from shop.money import to_minor

MAX_PRICE = 10**11  # minor units; well inside a 64-bit integer, and above any real price


class CatalogError(ValueError):
    """A change the merchant asked for that cannot be made; the message says why."""


@dataclass(frozen=True)
class ProductData:
    title: str
    slug: str
    description: str
    kind: str
    tax_class_id: int
    position: int = 0


@dataclass(frozen=True)
class VariantData:
    sku: str
    label: str
    price: str
    stock: int | None
    active: bool = True


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:120] or "product"


def parse_price(text: str, currency: str) -> int:
    try:
        amount = to_minor((text or "").strip().replace(",", "."), currency)
    except (InvalidOperation, ValueError):
        raise CatalogError(f"“{text}” is not a price in {currency}, e.g. 12.50.") from None
    if not 0 <= amount <= MAX_PRICE:
        raise CatalogError("A price must be zero or more, and not absurdly large.")
    return amount


def all_products(session: Session) -> list[Product]:
    return list(
        session.scalars(
            select(Product)
            .options(selectinload(Product.variants), selectinload(Product.images))
            .order_by(Product.active.desc(), Product.position, Product.id)
        )
    )


def get_product(session: Session, product_id: int) -> Product | None:
    return session.scalar(
        select(Product)
        .where(Product.id == product_id)
        .options(selectinload(Product.variants), selectinload(Product.images))
    )


def tax_classes(session: Session) -> list[TaxClass]:
    return list(session.scalars(select(TaxClass).order_by(TaxClass.rate_bp.desc(), TaxClass.id)))


def _check_product(session: Session, data: ProductData, product_id: int | None) -> str:
    if data.kind not in (PHYSICAL, DIGITAL):
        raise CatalogError("Choose physical or digital.")
    if session.get(TaxClass, data.tax_class_id) is None:
        raise CatalogError("Choose a tax class.")
    slug = data.slug or slugify(data.title)
    taken = session.scalar(select(Product.id).where(Product.slug == slug))
    if taken is not None and taken != product_id:
        raise CatalogError(f"Another product already uses the address name “{slug}”.")
    return slug


def create_product(session: Session, data: ProductData) -> Product:
    product = Product(
        slug=_check_product(session, data, None),
        title=data.title.strip(),
        description=data.description,
        kind=data.kind,
        tax_class_id=data.tax_class_id,
        position=data.position,
        active=True,
    )
    session.add(product)
    session.flush()
    return product


def update_product(session: Session, product: Product, data: ProductData) -> None:
    product.slug = _check_product(session, data, product.id)
    product.title, product.description = data.title.strip(), data.description
    product.kind, product.tax_class_id, product.position = (
        data.kind,
        data.tax_class_id,
        data.position,
    )


def set_archived(product: Product, archived: bool) -> None:
    """Archived products leave the storefront; past orders keep their own copy of the lines."""
    product.active = not archived


def _check_sku(session: Session, sku: str, variant_id: int | None) -> None:
    taken = session.scalar(select(Variant.id).where(func.lower(Variant.sku) == sku.lower()))
    if taken is not None and taken != variant_id:
        raise CatalogError(f"The SKU “{sku}” is already used by another variant.")


def add_variant(
    session: Session, product: Product, data: VariantData, currency: str, user: AdminUser | None
) -> Variant:
    _check_sku(session, data.sku, None)
    variant = Variant(
        product_id=product.id,
        sku=data.sku,
        label=data.label.strip(),
        price=parse_price(data.price, currency),
        on_hand=data.stock,
        active=data.active,
        position=len(product.variants),
    )
    session.add(variant)
    session.flush()
    session.add(
        StockAdjustment(
            variant_id=variant.id,
            kind="count",
            stock_before=None,
            stock_after=data.stock,
            reason="New variant",
            admin_user_id=user.id if user else None,
            at=utcnow(),
        )
    )
    return variant


def update_variant(
    session: Session, variant: Variant, data: VariantData, currency: str, user: AdminUser | None
) -> None:
    _check_sku(session, data.sku, variant.id)
    variant.sku, variant.label = data.sku, data.label.strip()
    variant.price, variant.active = parse_price(data.price, currency), data.active
    if data.stock != variant.on_hand:
        set_stock(session, variant, data.stock, "Edited with the variant", user)


def set_stock(
    session: Session, variant: Variant, stock: int | None, reason: str, user: AdminUser | None
) -> StockAdjustment:
    """Record a count: ``stock`` units are on the shelf (None: unlimited), logging before and
    after. What orders hold (reserved, committed) is kept apart and stays as it is, so a count
    never double-counts units that unpaid or unshipped orders still hold."""
    if stock is not None and stock < 0:
        raise CatalogError("Stock cannot be negative.")
    # Lock the row so a shipment recorded meanwhile is not silently overwritten.
    current = session.scalar(
        select(Variant.on_hand).where(Variant.id == variant.id).with_for_update()
    )
    session.refresh(variant)
    variant.on_hand = stock
    entry = StockAdjustment(
        variant_id=variant.id,
        kind="count",
        stock_before=current,
        stock_after=stock,
        reason=reason.strip()[:300],
        admin_user_id=user.id if user else None,
        at=utcnow(),
    )
    session.add(entry)
    return entry


def stock_log(session: Session, product: Product, limit: int = 50) -> list[StockAdjustment]:
    ids = [v.id for v in product.variants]
    if not ids:
        return []
    return list(
        session.scalars(
            select(StockAdjustment)
            .where(StockAdjustment.variant_id.in_(ids))
            .order_by(StockAdjustment.id.desc())
            .limit(limit)
        )
    )


def add_image(
    session: Session, product: Product, data: bytes, alt: str, uploads: Path
) -> ProductImage:
    filename = images.process_image(data, uploads)
    image = ProductImage(
        product_id=product.id,
        filename=filename,
        alt=alt.strip()[:300],
        position=len(product.images),
    )
    session.add(image)
    session.flush()
    return image


def remove_image(session: Session, image: ProductImage) -> None:
    # The file stays: deleting it before the commit could lose it on a rollback, and orders'
    # pages never link images, so an orphan costs only disk space.
    session.delete(image)
    session.flush()
