"""VAT settings (SHOP_VAT_*, SHOP_DIGITAL_WITHOUT_CONSENT), validated at start-up.

`validate` is composed into shop.config's checks and gets the whole Settings; nothing here imports
shop.config at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shop.tax import rates

if TYPE_CHECKING:
    from shop.config import Settings


def validate(s: Settings) -> list[str]:
    problems = []
    if s.vat_scheme not in rates.SCHEMES:
        problems.append(
            f"SHOP_VAT_SCHEME must be origin (under the EU's €10,000 threshold) or oss "
            f"(registered for the One-Stop-Shop) (got {s.vat_scheme!r})"
        )
    elif s.vat_scheme == rates.OSS and s.country not in rates.eu_rates().members():
        problems.append(
            f"SHOP_VAT_SCHEME=oss is for stores in the EU; SHOP_COUNTRY is {s.country!r}"
        )
    if s.vat_fixed_price not in rates.FIXED:
        problems.append(
            f"SHOP_VAT_FIXED_PRICE must be gross (the same price in every country) or "
            f"net (the price before VAT stays) (got {s.vat_fixed_price!r})"
        )
    if s.digital_without_consent not in ("refuse", "delay"):
        problems.append(
            "SHOP_DIGITAL_WITHOUT_CONSENT must be refuse (no order without the consent "
            "to immediate delivery) or delay (the download waits for the withdrawal "
            f"period) (got {s.digital_without_consent!r})"
        )
    return problems
