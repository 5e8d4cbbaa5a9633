"""Pure parts: money, VAT, totals, the order state machine, the cart cookie, settings."""

from __future__ import annotations

import pytest

from shop.cart.pricing import PricedLine, compute_totals, shipping_price
from shop.cart.storage import load_cart
from shop.config import ConfigError, load_settings
from shop.money import Money, currency_exponent, format_money, to_minor, vat_included
from shop.orders.states import ALLOWED, IllegalTransition, OrderStatus, check_transition


def test_currency_exponents_and_formatting():
    assert [currency_exponent(c) for c in ("EUR", "JPY", "BHD", "BTC")] == [2, 0, 3, 8]
    assert format_money(123456, "EUR") == "€1,234.56"
    assert format_money(500, "JPY") == "¥500"
    assert format_money(1234, "BHD") == "BHD1.234"
    assert format_money(12345, "BTC") == "0.00012345 BTC"
    assert format_money(199, "EUR", "de_DE") == "1,99\xa0€"
    assert to_minor("12.50", "EUR") == 1250
    with pytest.raises(ValueError):
        to_minor("1.5", "JPY")


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(TypeError):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "EUR") + Money(1, "USD")
    assert Money(150, "EUR") * 3 == Money(450, "EUR")


@pytest.mark.parametrize(
    "gross,rate,vat",
    [
        (11900, 1900, 1900),
        (1070, 700, 70),
        (100, 1900, 16),
        (1, 1900, 0),
        (0, 1900, 0),
        (4390, 1900, 701),
        (1077, 770, 77),
    ],
)
def test_vat_included(gross, rate, vat):
    assert vat_included(gross, rate) == vat


def test_totals_group_vat_per_rate():
    line = lambda price, qty, rate: PricedLine(1, "s", "t", "", "sku", "physical", price, qty, rate)
    totals = compute_totals([line(999, 3, 700), line(2400, 1, 1900)], 490, 1900)
    assert (totals.subtotal, totals.shipping, totals.total) == (5397, 490, 5887)
    assert [(v.rate_bp, v.gross, v.vat) for v in totals.vat] == [
        (1900, 2890, 461),
        (700, 2997, 196),
    ]
    assert totals.vat_total == 657
    assert shipping_price(490, 5000, 5000) == 0 and shipping_price(490, 5000, 4999) == 490
    assert shipping_price(490, None, 10**9) == 490


def test_state_machine():
    check_transition(OrderStatus.PENDING_PAYMENT, OrderStatus.PAID)
    with pytest.raises(IllegalTransition, match="cannot become"):
        check_transition(OrderStatus.CANCELLED, OrderStatus.PAID)
    with pytest.raises(IllegalTransition):
        check_transition(OrderStatus.PENDING_PAYMENT, OrderStatus.FULFILLED)
    assert set(ALLOWED) == set(OrderStatus)


def test_cart_cookie_parsing_drops_garbage():
    session = {
        "cart": [
            [1, 2, 100],
            [1, 3, 100],
            ["x", 1, 1],
            [2, 0, 1],
            [3, 100, 1],
            [4, 1, -1],
            [5, True, 1],
            "junk",
            [6, 1, 50],
        ]
    }
    assert [(l.variant_id, l.quantity, l.price_seen) for l in load_cart(session)] == [
        (1, 2, 100),
        (6, 1, 50),
    ]
    assert load_cart({"cart": "nope"}) == []


def test_settings_from_environment_and_validation(tmp_path):
    settings = load_settings(
        {
            "SHOP_CURRENCY": "JPY",
            "SHOP_STORE_NAME": "Roastery",
            "SHOP_ORDER_EXPIRY_MINUTES": "45",
            "SHOP_DEMO_PAYMENTS": "yes",
            "SHOP_INSTANCE_PATH": str(tmp_path),
        }
    )
    assert (settings.currency, settings.store_name, settings.order_expiry_minutes) == (
        "JPY",
        "Roastery",
        45,
    )
    assert settings.demo_payments and settings.instance_path == tmp_path
    assert load_settings({"SHOP_CURRENCY": "BTC"}).currency == "BTC"
    with pytest.raises(ConfigError) as exc:
        load_settings(
            {
                "SHOP_CURRENCY": "XYZ",
                "SHOP_COUNTRY": "Germany",
                "SHOP_ORDER_EXPIRY_MINUTES": "soon",
                "SHOP_DEMO_PAYMENTS": "maybe",
                "SHOP_ENV": "staging",
            }
        )
    text = str(exc.value)
    for fragment in (
        "SHOP_CURRENCY",
        "SHOP_COUNTRY",
        "SHOP_ORDER_EXPIRY_MINUTES",
        "SHOP_DEMO_PAYMENTS",
        "SHOP_ENV",
    ):
        assert fragment in text


@pytest.mark.parametrize("secret", [None, "", "change-me", "short"])
def test_production_refuses_missing_or_weak_secret(secret):
    env = {"SHOP_ENV": "production"}
    if secret is not None:
        env["SHOP_SECRET_KEY"] = secret
    with pytest.raises(ConfigError, match="SHOP_SECRET_KEY"):
        load_settings(env)


def test_production_refuses_demo_payments():
    with pytest.raises(ConfigError, match="SHOP_DEMO_PAYMENTS"):
        load_settings(
            {"SHOP_ENV": "production", "SHOP_SECRET_KEY": "k" * 40, "SHOP_DEMO_PAYMENTS": "1"}
        )
