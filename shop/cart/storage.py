"""The cart lives in the signed session cookie: no server-side rows, nothing personal.

A line is [variant_id, quantity, price_seen]. The price the customer saw is kept so checkout can
tell them when it changed instead of silently charging another amount.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from shop.cart.pricing import MAX_LINES, MAX_QUANTITY

CART_KEY = "cart"


@dataclass
class CartLine:
    variant_id: int
    quantity: int
    price_seen: int


def _valid_int(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def load_cart(session: MutableMapping[str, Any]) -> list[CartLine]:
    """Read the cart, dropping anything malformed (an old or hand-edited cookie)."""
    raw = session.get(CART_KEY)
    if not isinstance(raw, list):
        return []
    lines: dict[int, CartLine] = {}
    for item in raw[:MAX_LINES]:
        if not (isinstance(item, list) and len(item) == 3):
            continue
        variant_id, quantity, price = item
        if (
            _valid_int(variant_id, 1, 2**31 - 1)
            and _valid_int(quantity, 1, MAX_QUANTITY)
            and _valid_int(price, 0, 2**62)
            and variant_id not in lines
        ):
            lines[variant_id] = CartLine(variant_id, quantity, price)
    return list(lines.values())


def save_cart(session: MutableMapping[str, Any], lines: list[CartLine]) -> None:
    if lines:
        session[CART_KEY] = [[l.variant_id, l.quantity, l.price_seen] for l in lines[:MAX_LINES]]
    else:
        session.pop(CART_KEY, None)


def cart_count(session: MutableMapping[str, Any]) -> int:
    return sum(line.quantity for line in load_cart(session))
