"""Card payment settings (SHOP_STRIPE_*, SHOP_REQUEST_BUDGET_SECONDS), validated at start-up.

`validate` is composed into shop.config's checks and gets the whole Settings; nothing here imports
shop.config at run time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shop.config import Settings


def validate(s: Settings) -> list[str]:
    problems = []
    key, hook = s.stripe_secret_key, s.stripe_webhook_secret
    if bool(key) != bool(hook):
        problems.append(
            "SHOP_STRIPE_SECRET_KEY and SHOP_STRIPE_WEBHOOK_SECRET go together: card "
            "payments are confirmed only by signed webhooks"
        )
    if key and not re.fullmatch(r"[sr]k_(test|live)_[A-Za-z0-9_]+", key):
        problems.append(
            "SHOP_STRIPE_SECRET_KEY must be a secret or restricted key (sk_live_…, "
            "sk_test_…, rk_…), never the publishable pk_… key"
        )
    if hook and not re.fullmatch(r"whsec_[A-Za-z0-9_+/=]+", hook):
        problems.append(
            "SHOP_STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret (whsec_…)"
        )
    if s.stripe_api_base and not re.fullmatch(r"https?://[^\s/]+/?", s.stripe_api_base):
        problems.append(
            "SHOP_STRIPE_API_BASE must be a scheme and host such as "
            f"https://api.stripe.com (got {s.stripe_api_base!r})"
        )
    if not re.fullmatch(r"https?://[^\s/]+", s.stripe_checkout_origin):
        problems.append(
            "SHOP_STRIPE_CHECKOUT_ORIGIN must be an origin such as "
            f"https://checkout.stripe.com, without a path (got {s.stripe_checkout_origin!r})"
        )
    if not 1 <= s.stripe_timeout_seconds <= 120:
        problems.append("SHOP_STRIPE_TIMEOUT_SECONDS must be between 1 and 120")
    if not 1 <= s.request_budget_seconds <= 60:
        problems.append("SHOP_REQUEST_BUDGET_SECONDS must be between 1 and 60")
    if s.production and key:
        if not s.base_url:
            problems.append(
                "SHOP_BASE_URL is required in production with card payments: Stripe "
                "sends customers back to it, so it must not depend on a request's "
                "Host header"
            )
        if "_test_" in key[:8]:
            problems.append(
                "SHOP_STRIPE_SECRET_KEY is a test key: in production, orders paid with "
                "test cards would be marked paid without any money moving"
            )
        for name, url in (
            ("SHOP_STRIPE_API_BASE", s.stripe_api_base),
            ("SHOP_STRIPE_CHECKOUT_ORIGIN", s.stripe_checkout_origin),
        ):
            if url and not url.startswith("https://"):
                problems.append(f"{name} must use https in production")
    return problems
