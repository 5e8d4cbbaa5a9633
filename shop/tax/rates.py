"""Where a sale is taxed and at which rate; what a tax-inclusive price becomes abroad. Pure.

The EU rates are data (eu_rates.json, from the Commission's TEDB), never code. A tax class names
a category (standard, reduced, super_reduced, zero); a merchant's per-country rate for a class
overrides the table. The store's own rate for a class (``TaxClass.rate_bp``) is the home rate.

Rules (docs/TAX.md has the reasoning and what is left out):
- Destination outside the EU: an export, no EU VAT (rate 0).
- Destination = the store's country: the home rate.
- Digital goods to another EU country: always that country's rate (e-services are taxed where
  the customer is; see docs/TAX.md for the €10,000 threshold nuance).
- Physical goods to another EU country: the home rate under the threshold (``origin``), the
  destination's rate when registered for the One-Stop-Shop (``oss``).
- Prices are tax-inclusive. ``gross`` pricing keeps the shown price everywhere (the VAT share
  changes); ``net`` pricing keeps the price before VAT, so the gross is recomputed with the
  destination's rate, rounded half up to the minor unit once per unit price.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

ORIGIN, OSS = "origin", "oss"
SCHEMES = (ORIGIN, OSS)
GROSS, NET = "gross", "net"
FIXED = (GROSS, NET)
CATEGORIES = ("standard", "reduced", "super_reduced", "zero")
DIGITAL = "digital"  # catalog.models.DIGITAL; repeated so these rules import no ORM

_DATA = Path(__file__).with_name("eu_rates.json")


class UnknownCountry(LookupError):
    pass


def _bp(percent: str) -> int:
    return int(Decimal(percent) * 100)


@dataclass(frozen=True)
class EuRates:
    valid_from: str
    checked: str
    source: str
    # country -> category -> basis points
    rates: dict[str, dict[str, int]]

    def members(self) -> frozenset[str]:
        return frozenset(self.rates)

    def rate(self, country: str, category: str) -> int:
        try:
            return self.rates[country][category]
        except KeyError:
            raise UnknownCountry(country) from None


def parse(doc: dict) -> EuRates:
    table = {}
    for code, row in doc["countries"].items():
        standard = _bp(row["standard"])
        reduced = standard if row.get("reduced") is None else _bp(row["reduced"])
        table[code] = {
            "standard": standard,
            "reduced": reduced,
            "super_reduced": (
                reduced if row.get("super_reduced") is None else _bp(row["super_reduced"])
            ),
            "zero": 0,
        }
    return EuRates(doc["valid_from"], doc["checked"], doc["source"], table)


@cache
def eu_rates() -> EuRates:
    return parse(json.loads(_DATA.read_text()))


@dataclass(frozen=True)
class TaxPolicy:
    home: str = "DE"
    scheme: str = ORIGIN
    fixed: str = GROSS


@dataclass(frozen=True)
class TaxClassInfo:
    """What the rules need of a tax class: its home rate, category and per-country rates."""

    home_bp: int
    category: str = "standard"
    overrides: tuple[tuple[str, int], ...] = ()


def taxed_in(policy: TaxPolicy, kind: str, destination: str, table: EuRates | None = None) -> str:
    """The country whose VAT applies, or "" for an export (no EU VAT)."""
    members = (table or eu_rates()).members()
    destination = destination.upper()
    if policy.home not in members:
        return policy.home  # a store outside the EU: its own single rate, as before
    if destination not in members:
        return ""
    if destination == policy.home:
        return policy.home
    if kind == DIGITAL or policy.scheme == OSS:
        return destination
    return policy.home


def rate_in(
    tax: TaxClassInfo, country: str, policy: TaxPolicy, table: EuRates | None = None
) -> int:
    if not country:
        return 0
    if country == policy.home:
        return tax.home_bp
    overrides = dict(tax.overrides)
    if country in overrides:
        return overrides[country]
    return (table or eu_rates()).rate(country, tax.category)


def localize(unit_price: int, home_bp: int, rate_bp: int, fixed: str) -> int:
    """A home tax-inclusive price charged at ``rate_bp`` instead: unchanged when the gross is
    fixed; with a fixed net, gross x (1 + rate) / (1 + home rate), half up, once per unit."""
    if fixed == GROSS or rate_bp == home_bp:
        return unit_price
    value = Decimal(unit_price) * (10_000 + rate_bp) / (10_000 + home_bp)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_overrides(text: str) -> tuple[tuple[str, int], ...]:
    """ "NL=9, FR=5.5" -> (("FR", 550), ("NL", 900)); ValueError with a message otherwise."""
    out: dict[str, int] = {}
    for part in text.replace("\n", ",").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        code, sep, value = part.partition("=")
        code = code.strip().upper()
        if not sep or len(code) != 2 or not code.isalpha():
            raise ValueError(f"“{part[:20]}” is not COUNTRY=RATE such as NL=9.")
        try:
            bp = Decimal(value.strip().rstrip("%").strip())
        except ArithmeticError:
            raise ValueError(f"“{part[:20]}”: the rate is not a number.") from None
        if not 0 <= bp <= 100 or bp != bp.quantize(Decimal("0.01")):
            raise ValueError(
                f"“{part[:20]}”: a rate is between 0 and 100 %, with at most two decimals."
            )
        out[code] = int(bp * 100)
    return tuple(sorted(out.items()))


def format_overrides(overrides: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{c}={Decimal(bp).scaleb(-2).normalize():f}" for c, bp in overrides)
