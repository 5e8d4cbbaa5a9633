"""Exchange-rate settings (SHOP_HTTP_PROXY, SHOP_RATE_*), validated at start-up.

`validate` is composed into shop.config's checks and gets the whole Settings. Kept apart from
rates.py (HTTP, the database) so validating settings imports neither, and nothing here imports
shop.config at run time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shop.config import Settings

# The exchanges rates.py can ask (rates.PROVIDERS has one class for each).
PROVIDER_NAMES = ("kraken", "bitstamp", "coinbase", "gemini")


def parse_provider_names(raw: str) -> list[str]:
    """'kraken, bitstamp' -> ['kraken', 'bitstamp']; ValueError names the unknown ones."""
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROVIDER_NAMES]
    if unknown:
        raise ValueError(
            f"unknown rate provider(s) {', '.join(unknown)}; known: {', '.join(PROVIDER_NAMES)}"
        )
    return list(dict.fromkeys(names))


def validate(s: Settings) -> list[str]:
    problems = []
    if s.http_proxy:
        if s.http_proxy.startswith("socks5://"):
            problems.append(
                "SHOP_HTTP_PROXY: use socks5h:// rather than socks5:// so host names "
                "are resolved by the proxy, not by a DNS lookup outside it"
            )
        elif not re.fullmatch(r"(socks5h|https?)://[^\s/]+/?", s.http_proxy):
            problems.append(
                "SHOP_HTTP_PROXY must look like socks5h://127.0.0.1:9050 (or "
                f"http(s)://host:port) (got {s.http_proxy!r})"
            )
    try:
        providers = parse_provider_names(s.rate_providers)
    except ValueError as exc:
        problems.append(f"SHOP_RATE_PROVIDERS: {exc}")
        providers = []
    if providers and not 2 <= s.rate_min_sources <= len(providers):
        problems.append(
            f"SHOP_RATE_MIN_SOURCES must be between 2 and the number of "
            f"SHOP_RATE_PROVIDERS ({len(providers)}): one exchange alone must never "
            "set the price"
        )
    if not 60 <= s.rate_max_age_seconds <= 3600:
        problems.append("SHOP_RATE_MAX_AGE_SECONDS must be between 60 and 3600")
    if not 1 <= s.rate_max_deviation_bp <= 2000:
        problems.append("SHOP_RATE_MAX_DEVIATION_BP must be between 1 and 2000 (0.01 % to 20 %)")
    if not 10 <= s.rate_refresh_seconds < s.rate_max_age_seconds:
        problems.append(
            "SHOP_RATE_REFRESH_SECONDS must be at least 10 and less than "
            "SHOP_RATE_MAX_AGE_SECONDS, or every quote would go stale between fetches"
        )
    return problems
