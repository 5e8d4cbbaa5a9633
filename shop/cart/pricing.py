"""Cart totals, shipping choice and the VAT breakdown. Pure functions over plain values.

Prices are tax-inclusive. VAT is computed once per country and rate over the summed gross of
that rate (lines and shipping), which is how an invoice shows it and avoids per-line rounding
drift. Which country's VAT, and the price abroad, come from shop/tax/rates.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from shop.money import vat_included

MAX_QUANTITY = 99
MAX_LINES = 30


@dataclass(frozen=True)
class PricedLine:
    variant_id: int
    product_slug: str
    product_title: str
    variant_label: str
    sku: str
    kind: str
    unit_price: int
    quantity: int
    tax_rate_bp: int
    tax_class_id: int = 0
    # Whose VAT applies once the destination is known ("" an export); None: not localized yet.
    tax_country: str | None = None

    @property
    def total(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class VatLine:
    rate_bp: int
    gross: int
    vat: int
    country: str | None = None

    @property
    def net(self) -> int:
        return self.gross - self.vat


@dataclass(frozen=True)
class Totals:
    subtotal: int
    shipping: int
    total: int
    vat: tuple[VatLine, ...]

    @property
    def vat_total(self) -> int:
        return sum(v.vat for v in self.vat)


@dataclass(frozen=True)
class ShippingOption:
    rate_id: int
    zone_name: str
    name: str
    list_price: int
    price: int
    free_over: int | None
    tax_rate_bp: int
    tax_country: str | None = None


def subtotal(lines: list[PricedLine]) -> int:
    return sum(line.total for line in lines)


def compute_totals(
    lines: list[PricedLine],
    shipping: int = 0,
    shipping_tax_rate_bp: int = 0,
    shipping_tax_country: str | None = None,
) -> Totals:
    gross_by_rate: dict[tuple[int, str | None], int] = defaultdict(int)
    for line in lines:
        gross_by_rate[line.tax_rate_bp, line.tax_country] += line.total
    if shipping:
        gross_by_rate[shipping_tax_rate_bp, shipping_tax_country] += shipping
    vat = tuple(
        VatLine(rate, gross, vat_included(gross, rate), country)
        for (rate, country), gross in sorted(
            gross_by_rate.items(), key=lambda item: (-item[0][0], item[0][1] or "")
        )
    )
    sub = subtotal(lines)
    return Totals(subtotal=sub, shipping=shipping, total=sub + shipping, vat=vat)


def shipping_price(list_price: int, free_over: int | None, goods_total: int) -> int:
    if free_over is not None and goods_total >= free_over:
        return 0
    return list_price
