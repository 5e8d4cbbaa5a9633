"""Card settings: validated at start-up, production refuses unsafe ones, CSP follows them."""

from __future__ import annotations

import pytest

from shop.config import ConfigError, load_settings

LIVE = {"SHOP_STRIPE_SECRET_KEY": "sk_live_abc123", "SHOP_STRIPE_WEBHOOK_SECRET": "whsec_abc123"}
PRODUCTION = {
    "SHOP_ENV": "production",
    "SHOP_SECRET_KEY": "p" * 40,
    "SHOP_DATA_KEY": "",
    "SHOP_BASE_URL": "https://shop.example",
}


def _problems(environ: dict[str, str]) -> list[str]:
    try:
        load_settings(environ)
    except ConfigError as exc:
        return exc.problems
    return []


def _card_problems(environ: dict[str, str]) -> list[str]:
    return [p for p in _problems(environ) if "STRIPE" in p or "card payments" in p]


def test_keys_are_read_from_the_environment():
    settings = load_settings(
        {
            **LIVE,
            "SHOP_STRIPE_API_BASE": "http://127.0.0.1:12111",
            "SHOP_STRIPE_TIMEOUT_SECONDS": "4.5",
        }
    )
    assert settings.stripe_secret_key == "sk_live_abc123"
    assert settings.stripe_api_base == "http://127.0.0.1:12111"
    assert settings.stripe_timeout_seconds == 4.5
    assert settings.stripe_checkout_origin == "https://checkout.stripe.com"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SHOP_STRIPE_SECRET_KEY": "sk_test_abc"}, "go together"),
        ({"SHOP_STRIPE_WEBHOOK_SECRET": "whsec_abc"}, "go together"),
        ({**LIVE, "SHOP_STRIPE_SECRET_KEY": "pk_live_abc"}, "never the publishable"),
        ({**LIVE, "SHOP_STRIPE_WEBHOOK_SECRET": "abc"}, "signing secret"),
        ({**LIVE, "SHOP_STRIPE_API_BASE": "api.stripe.com"}, "SHOP_STRIPE_API_BASE"),
        ({"SHOP_STRIPE_CHECKOUT_ORIGIN": "https://checkout.stripe.com/pay"}, "without a path"),
        ({"SHOP_STRIPE_TIMEOUT_SECONDS": "0"}, "between 1 and 120"),
    ],
)
def test_bad_card_settings_are_refused(environ, expected):
    problems = _card_problems(environ)
    assert problems and expected in " ".join(problems)


def test_production_refuses_test_keys_and_plain_http():
    problems = _card_problems(
        {
            **PRODUCTION,
            **LIVE,
            "SHOP_STRIPE_SECRET_KEY": "sk_test_abc",
            "SHOP_STRIPE_API_BASE": "http://api.example",
            "SHOP_STRIPE_CHECKOUT_ORIGIN": "http://checkout.example",
        }
    )
    text = " ".join(problems)
    assert "is a test key" in text
    assert "SHOP_STRIPE_API_BASE must use https" in text
    assert "SHOP_STRIPE_CHECKOUT_ORIGIN must use https" in text
    assert _card_problems({**PRODUCTION, **LIVE}) == []
    no_base = {k: v for k, v in PRODUCTION.items() if k != "SHOP_BASE_URL"}
    assert "SHOP_BASE_URL is required" in " ".join(_card_problems({**no_base, **LIVE}))


def test_csp_allows_the_checkout_origin_only_when_cards_are_on(card_app, fake, client):
    with_cards = card_app.test_client().get("/").headers["Content-Security-Policy"]
    assert f"form-action 'self' {fake.api_base}" in with_cards
    without = client.get("/").headers["Content-Security-Policy"]
    assert "form-action 'self';" in without + ";" and fake.api_base not in without
