"""Money as integer minor units of one currency. Pure: no Flask, no database.

Fiat amounts are ISO 4217 minor units (cents; yen have none; dinars have three). A store priced
in bitcoin counts satoshis. Floats never appear: conversions go through Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from babel.numbers import format_currency, format_decimal, get_currency_precision

BTC = "BTC"
SATS_PER_BTC = 100_000_000


def currency_exponent(currency: str) -> int:
    """Number of decimal places of the minor unit (EUR 2, JPY 0, BHD 3, BTC 8)."""
    if currency == BTC:
        return 8
    return get_currency_precision(currency)


@dataclass(frozen=True, order=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money amounts are integers in minor units")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if not isinstance(factor, int):
            raise TypeError("Money can only be multiplied by whole numbers")
        return Money(self.amount * factor, self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency}")

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount).scaleb(-currency_exponent(self.currency))

    def format(self, locale: str = "en") -> str:
        return format_money(self.amount, self.currency, locale)


def to_minor(value: str | Decimal, currency: str) -> int:
    """Parse a human amount ("12.50") into minor units; refuse sub-minor precision."""
    amount = Decimal(value)
    scaled = amount.scaleb(currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more decimals than {currency} allows")
    return int(scaled)


@lru_cache(maxsize=8192)
def format_money(amount: int, currency: str, locale: str = "en") -> str:
    # Babel's formatting costs ~0.3 ms a call and a page shows dozens of amounts: memoise it
    # (the result depends only on the arguments).
    value = Decimal(amount).scaleb(-currency_exponent(currency))
    if currency == BTC:
        # Babel has no BTC symbol; show the full eight decimals so satoshis stay visible.
        return f"{format_decimal(value, format='#,##0.00000000', locale=locale)} BTC"
    return format_currency(value, currency, locale=locale)


def format_btc(sats: int, locale: str = "en") -> str:
    """Satoshis as a BTC number in the reader's notation, all eight decimals ("0,00015980")."""
    return format_decimal(Decimal(sats).scaleb(-8), format="#,##0.00000000", locale=locale)


def format_sats(sats: int, locale: str = "en") -> str:
    return format_decimal(sats, locale=locale)


def format_rate(rate: str, currency: str, locale: str = "en") -> str:
    """An exchange rate kept as a decimal string, with every decimal it was locked at."""
    return format_currency(
        Decimal(rate), currency, locale=locale, currency_digits=False, decimal_quantization=False
    )


def vat_included(gross: int, rate_bp: int) -> int:
    """VAT contained in a tax-inclusive gross amount, rounded half up to the minor unit.

    rate_bp is the rate in basis points (19 % = 1900, 7.7 % = 770).
    """
    if rate_bp == 0:
        return 0
    vat = Decimal(gross) * rate_bp / (10_000 + rate_bp)
    return int(vat.quantize(Decimal(1), rounding=ROUND_HALF_UP))
