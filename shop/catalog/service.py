"""Catalog queries for the storefront (read-only).

The listing and product pages are the hottest pages and change only when the merchant edits the
catalog or stock moves, so their data is kept briefly in a per-process cache (`CatalogCache`).
Nothing that takes money relies on it: adding to the cart and checking out read fresh rows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from cachetools import TTLCache
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session, joinedload

from shop.catalog.models import Product, ProductImage, Variant, available

MAX_QUERY_LENGTH = 100


@dataclass(frozen=True)
class ProductCard:
    """What the listing shows of a product: read with one query, no ORM objects."""

    slug: str
    title: str
    kind: str
    min_price: int | None
    max_price: int | None
    image: str | None


@dataclass(frozen=True)
class Page:
    items: list[ProductCard]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def list_products(session: Session, *, query: str = "", page: int = 1, per_page: int = 12) -> Page:
    conditions = [Product.active.is_(True)]
    query = query.strip()[:MAX_QUERY_LENGTH]
    if query:
        words = query.lower().split()[:8]
        for word in words:
            conditions.append(
                or_(
                    func.lower(Product.title).contains(word, autoescape=True),
                    func.lower(Product.description).contains(word, autoescape=True),
                )
            )
    total = session.scalar(select(func.count()).select_from(Product).where(*conditions)) or 0
    prices = (
        select(Variant.product_id, func.min(Variant.price).label("lo"),
               func.max(Variant.price).label("hi"))
        .where(Variant.active.is_(True))
        .group_by(Variant.product_id)
        .subquery()
    )
    first_image = (
        select(ProductImage.filename)
        .where(ProductImage.product_id == Product.id)
        .order_by(ProductImage.position, ProductImage.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Product.slug, Product.title, Product.kind, prices.c.lo, prices.c.hi, first_image)
        .outerjoin(prices, prices.c.product_id == Product.id)
        .where(*conditions)
        .order_by(Product.position, Product.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page([ProductCard(*row) for row in rows], total, page, per_page)


def get_variants(session: Session, ids: list[int]) -> dict[int, Variant]:
    if not ids:
        return {}
    variants = session.scalars(
        select(Variant).where(Variant.id.in_(ids)).options(joinedload(Variant.product))
    ).all()
    return {v.id: v for v in variants}




@dataclass(frozen=True)
class ImageView:
    filename: str
    alt: str


@dataclass(frozen=True)
class VariantView:
    id: int
    label: str
    price: int
    stock: int | None  # available to sell; None: unlimited
    active: bool
    purchasable: bool


@dataclass(frozen=True)
class ProductView:
    """A detached snapshot of an active product, safe to share between requests."""

    id: int
    slug: str
    title: str
    description: str
    kind: str
    images: tuple[ImageView, ...]
    variants: tuple[VariantView, ...]


# Built once: adding to the cart runs these on every request.
_PRODUCT_ROWS = (
    select(Product.id, Product.slug, Product.title, Product.description, Product.kind,
           Variant.id, Variant.label, Variant.price, Variant.on_hand, Variant.reserved,
           Variant.committed, Variant.active)
    .outerjoin(Variant, Variant.product_id == Product.id)
    .where(Product.slug == bindparam("slug"), Product.active.is_(True))
    .order_by(Variant.position, Variant.id)
)
_IMAGE_ROWS = (
    select(ProductImage.filename, ProductImage.alt)
    .where(ProductImage.product_id == bindparam("product_id"))
    .order_by(ProductImage.position, ProductImage.id)
)


def product_view(session: Session, slug: str, *, images: bool = True) -> ProductView | None:
    """The active product ``slug`` as plain values: one query, and one more for its images.

    Adding to the cart needs no images (``images=False``), only fresh variants.
    """
    rows = session.execute(_PRODUCT_ROWS, {"slug": slug}).all()
    if not rows:
        return None
    product_id, slug, title, description, kind = rows[0][:5]
    image_rows = session.execute(_IMAGE_ROWS, {"product_id": product_id}).all() if images else []
    return ProductView(
        id=product_id, slug=slug, title=title, description=description, kind=kind,
        images=tuple(ImageView(filename, alt) for filename, alt in image_rows),
        variants=tuple(
            VariantView(v_id, label, price, left, active, purchasable=active and left != 0)
            for *_, v_id, label, price, on_hand, reserved, committed, active in rows
            if v_id is not None
            for left in (available(on_hand, reserved, committed),)
        ),
    )


T = TypeVar("T")


class CatalogCache:
    """A small thread-safe TTL cache; ttl 0 turns it off (every call reads the database)."""

    def __init__(self, ttl_seconds: float, maxsize: int = 2048):
        self.ttl = ttl_seconds
        self._cache: TTLCache[Hashable, Any] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl_seconds) if ttl_seconds > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        if self._cache is None:
            return load()
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = load()  # outside the lock: a slow query must not block other pages
        with self._lock:
            self._cache[key] = value
        return value

    def clear(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()
