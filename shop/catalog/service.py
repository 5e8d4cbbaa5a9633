"""Catalog queries for the storefront (read-only).

The listing and product pages are the hottest pages and change only when the merchant edits the
catalog or stock moves, so their data is kept briefly in a per-process cache (`CatalogCache`).
Nothing that takes money relies on it: adding to the cart and checking out read fresh rows.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from cachetools import TTLCache
from sqlalchemy import ColumnElement, Float, Integer, and_, bindparam, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload

from shop.catalog import search
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
    """One page of a listing or search, read by keyset: no offset, no total count.

    ``next_cursor``/``prev_cursor`` go into ``?after=``/``?before=`` links; None: no such page.
    """

    items: list[ProductCard]
    next_cursor: str | None
    prev_cursor: str | None
    per_page: int

    @property
    def has_prev(self) -> bool:
        return self.prev_cursor is not None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


class BadCursor(ValueError):
    """A ``?after=``/``?before=`` value this shop did not make."""


# A listing cursor is "<position>~<id>"; a search cursor "<rank>~<id>" with the rank as
# Python writes a float (exact, so the next page starts exactly after the last row shown).
_LIST_CURSOR = re.compile(r"(-?\d{1,10})~(\d{1,12})")
_SEARCH_CURSOR = re.compile(r"(-?\d{1,20}(?:\.\d{1,20})?(?:e-?\d{1,3})?)~(\d{1,12})")


def parse_cursor(raw: str, *, search: bool) -> tuple[int | float, int]:
    match = (_SEARCH_CURSOR if search else _LIST_CURSOR).fullmatch(raw)
    if match is None:
        raise BadCursor(raw[:40])
    key = float(match.group(1)) if search else int(match.group(1))
    if search and not math.isfinite(key):
        raise BadCursor(raw[:40])
    if not search and not -(2**31) <= key < 2**31:
        raise BadCursor(raw[:40])
    return key, int(match.group(2))


def _cursor(key: int | float, product_id: int) -> str:
    return f"{key!r}~{product_id}"


_PRICE = select(func.min(Variant.price)).where(
    Variant.product_id == Product.id, Variant.active.is_(True)
)
_LOW = _PRICE.scalar_subquery()
_HIGH = _PRICE.with_only_columns(func.max(Variant.price)).scalar_subquery()
_FIRST_IMAGE = (
    select(ProductImage.filename)
    .where(ProductImage.product_id == Product.id)
    .order_by(ProductImage.position, ProductImage.id)
    .limit(1)
    .scalar_subquery()
)


def list_products(
    session: Session,
    *,
    query: str = "",
    after: str | None = None,
    before: str | None = None,
    per_page: int = 12,
) -> Page:
    """Active products by (position, id), or by search rank when ``query`` has words (a
    bounded set of candidates: shop.catalog.search.ranked).

    Each page costs the same wherever it is: an index seek past the cursor, then the cheapest
    and dearest variant and the first image of just the products shown.
    """
    match = search.match_expression(
        query.strip()[:MAX_QUERY_LENGTH], session.get_bind().dialect.name == "postgresql"
    )
    backwards = before is not None
    raw = before if backwards else after
    if query.strip() and match is None:
        return Page([], None, None, per_page)
    sort_key: ColumnElement[Any] | InstrumentedAttribute[int]
    if match is None:
        sort_key, source = Product.position, None
    else:
        candidates = search.ranked(
            session.connection(), match, session.info.get("search_config", "simple")
        )
        if candidates is None:
            return Page([], None, None, per_page)
        source = candidates.columns(product_id=Integer, rank=Float).subquery("ranked")
        sort_key = source.c.rank
    # Listing ascending by position; search descending by rank. Backwards: the reverse.
    descending = (match is not None) != backwards
    order = [
        sort_key.desc() if descending else sort_key.asc(),
        Product.id.desc() if backwards else Product.id.asc(),
    ]

    def fetch(conditions: list, limit: int) -> list[Any]:
        stmt = (
            select(
                Product.slug,
                Product.title,
                Product.kind,
                _LOW,
                _HIGH,
                _FIRST_IMAGE,
                sort_key,
                Product.id,
            )
            # Bare, not "IS true": PostgreSQL matches only this form to the index.
            .where(Product.active, *conditions)
            .order_by(*order)
            .limit(limit)
        )
        if source is not None:
            stmt = stmt.join_from(Product, source, source.c.product_id == Product.id)
        return list(session.execute(stmt).all())

    limit = per_page + 1
    if raw is None:
        rows = fetch([], limit)
    elif match is None:
        key, last_id = parse_cursor(raw, search=False)
        # Two index seeks, each as cheap anywhere in the catalog: the rest of the cursor's
        # position, then the positions after it. (One row-value comparison would do on
        # PostgreSQL, but SQLite seeks only its first column, and positions repeat.)
        rows = fetch(
            [Product.position == key, Product.id < last_id if backwards else Product.id > last_id],
            limit,
        )
        if len(rows) < limit:
            rows += fetch(
                [Product.position < key if backwards else Product.position > key], limit - len(rows)
            )
    else:
        key, last_id = parse_cursor(raw, search=True)
        rows = fetch(
            [
                or_(sort_key > key, and_(sort_key == key, Product.id < last_id))
                if backwards
                else or_(sort_key < key, and_(sort_key == key, Product.id > last_id))
            ],
            limit,
        )
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
    items = [ProductCard(*row[:6]) for row in rows]
    if not rows:
        return Page(items, None, None, per_page)
    first, last = _cursor(*rows[0][6:8]), _cursor(*rows[-1][6:8])
    if backwards:
        return Page(items, last, first if more else None, per_page)
    return Page(items, last if more else None, first if raw is not None else None, per_page)


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
    select(
        Product.id,
        Product.slug,
        Product.title,
        Product.description,
        Product.kind,
        Variant.id,
        Variant.label,
        Variant.price,
        Variant.on_hand,
        Variant.reserved,
        Variant.committed,
        Variant.active,
    )
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
        id=product_id,
        slug=slug,
        title=title,
        description=description,
        kind=kind,
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
