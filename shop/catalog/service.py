"""Catalog queries for the storefront (read-only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from shop.catalog.models import Product, Variant

MAX_QUERY_LENGTH = 100


@dataclass(frozen=True)
class Page:
    items: list[Product]
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
    items = session.scalars(
        select(Product)
        .where(*conditions)
        .options(selectinload(Product.variants), selectinload(Product.images))
        .order_by(Product.position, Product.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page(list(items), total, page, per_page)


def get_active_product(session: Session, slug: str) -> Product | None:
    return session.scalar(
        select(Product)
        .where(Product.slug == slug, Product.active.is_(True))
        .options(selectinload(Product.variants), selectinload(Product.images))
    )


def get_variants(session: Session, ids: list[int]) -> dict[int, Variant]:
    if not ids:
        return {}
    variants = session.scalars(
        select(Variant).where(Variant.id.in_(ids)).options(selectinload(Variant.product))
    ).all()
    return {v.id: v for v in variants}


def price_range(product: Product) -> tuple[int, int] | None:
    prices = [v.price for v in product.variants if v.active]
    return (min(prices), max(prices)) if prices else None
