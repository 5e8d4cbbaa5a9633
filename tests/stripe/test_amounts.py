import pytest

from shop.money import currency_exponent
from shop.payments.stripe.amounts import (
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    StripeAmountError,
    from_stripe_amount,
    shop_exponent,
    stripe_exponent,
    to_stripe_amount,
)


@pytest.mark.parametrize(
    ("minor", "currency", "stripe_amount"),
    [
        (1999, "EUR", 1999),  # 19.99 EUR
        (1999, "eur", 1999),
        (0, "USD", 0),
        (500, "JPY", 500),  # 500 yen: zero-decimal on both sides
        (12000, "KRW", 12000),
        (5000, "UGX", 5000),  # zero-decimal for charges (two-decimal only for payouts)
        (1250, "BHD", 1250),  # 1.250 BHD: three decimals, last digit 0
        (10000, "KWD", 10000),
        (5, "ISK", 500),  # whole krónur, sent two-decimal
        (1000, "HUF", 100000),  # CLDR counts whole forints; Stripe charges HUF two-decimal
        (12345, "TWD", 12345),  # two-decimal for charges (whole units only for payouts)
        (1500, "COP", 150000),  # CLDR has 0 decimals for COP, Stripe 2
    ],
)
def test_round_trip(minor: int, currency: str, stripe_amount: int) -> None:
    assert to_stripe_amount(minor, currency) == stripe_amount
    assert from_stripe_amount(stripe_amount, currency) == minor


def test_shop_exponent_is_shop_money_exponent() -> None:
    for code in ["EUR", "JPY", "BHD", "ISK", "HUF", "TWD", "UGX", "MGA"]:
        assert shop_exponent(code) == currency_exponent(code)


def test_stripe_exponents() -> None:
    assert {stripe_exponent(c) for c in ZERO_DECIMAL_CURRENCIES} == {0}
    assert {stripe_exponent(c) for c in THREE_DECIMAL_CURRENCIES} == {3}
    assert stripe_exponent("ISK") == 2
    assert stripe_exponent("gbp") == 2


@pytest.mark.parametrize(
    ("minor", "currency"),
    [
        (-1, "EUR"),  # negative
        (1255, "BHD"),  # 1.255 BHD: Stripe needs the last digit to be 0
        (1, "OMR"),
    ],
)
def test_unrepresentable_to_stripe(minor: int, currency: str) -> None:
    with pytest.raises(StripeAmountError):
        to_stripe_amount(minor, currency)


@pytest.mark.parametrize(
    ("stripe_amount", "currency"),
    [
        (-100, "EUR"),
        (550, "ISK"),  # legacy fractional krónur: not a whole ISK amount
        (150050, "COP"),  # finer than the shop's (CLDR) minor unit
    ],
)
def test_unrepresentable_from_stripe(stripe_amount: int, currency: str) -> None:
    with pytest.raises(StripeAmountError):
        from_stripe_amount(stripe_amount, currency)


@pytest.mark.parametrize("amount", [19.99, "1999", True, None])
def test_only_integers(amount: object) -> None:
    with pytest.raises(StripeAmountError):
        to_stripe_amount(amount, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["", "EU", "EURO", "€UR", "12A"])
def test_bad_currency_codes(currency: str) -> None:
    with pytest.raises(StripeAmountError):
        to_stripe_amount(100, currency)


def test_errors_are_value_errors() -> None:
    # Callers validating user input can treat an unrepresentable price like any bad value.
    assert issubclass(StripeAmountError, ValueError)
