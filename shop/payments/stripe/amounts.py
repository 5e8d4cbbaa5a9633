"""Amounts between the shop's ISO 4217 minor units and Stripe's API units.

The shop counts money in the minor unit Babel (CLDR) gives a currency; Stripe has its own idea of
the exponent for a few currencies and extra rules for some others
(https://docs.stripe.com/currencies). Both directions are exact or raise: a payment must never be
for a rounded amount the customer did not see.
"""

from __future__ import annotations

from babel.numbers import get_currency_precision

# Stripe takes these as whole units.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip

# Three decimals in the API, but Stripe's acquiring partners need the last digit to be 0.
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

# ISK became effectively zero-decimal, but the API keeps it two-decimal for backwards
# compatibility: 5 ISK is 500 and the amount must divide by 100.
WHOLE_UNITS_IN_TWO_DECIMALS = frozenset({"ISK"})

# Not listed above, and why:
# - HUF and TWD are two-decimal for charges and refunds; Stripe's "divisible by 100" rule for them
#   applies to payouts only, which the shop never creates. CLDR gives HUF 0 decimals, so the
#   conversion below multiplies by 100, which satisfies the payout rule anyway.
# - UGX is zero-decimal for charges; its two-decimal form is for payouts only.


class StripeAmountError(ValueError):
    """An amount that Stripe cannot represent exactly (or that is not an amount at all)."""


def normalize_currency(currency: str) -> str:
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise StripeAmountError(f"not an ISO 4217 currency code: {currency!r}")
    return code


def shop_exponent(currency: str) -> int:
    """Decimals of the shop's minor unit (Babel's currency precision, as in shop.money)."""
    return get_currency_precision(normalize_currency(currency))


def stripe_exponent(currency: str) -> int:
    """Decimals Stripe's API uses for `currency`."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def _stripe_granularity(code: str) -> int:
    """Stripe amounts in `code` must be a multiple of this."""
    if code in THREE_DECIMAL_CURRENCIES:
        return 10
    if code in WHOLE_UNITS_IN_TWO_DECIMALS:
        return 100
    return 1


def _check_int(amount: int) -> None:
    # bool is an int subclass; True as an amount is always a bug.
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise StripeAmountError(f"amounts are integers in minor units, got {amount!r}")
    if amount < 0:
        raise StripeAmountError(f"negative amount {amount}")


def to_stripe_amount(minor: int, currency: str) -> int:
    """ISO minor units -> Stripe API amount. Raises StripeAmountError if not exact."""
    _check_int(minor)
    code = normalize_currency(currency)
    shift = stripe_exponent(code) - shop_exponent(code)
    if shift >= 0:
        amount = minor * 10**shift
    else:
        factor = 10**-shift
        if minor % factor:
            raise StripeAmountError(
                f"{minor} minor units of {code} have more decimals than Stripe accepts"
            )
        amount = minor // factor
    granularity = _stripe_granularity(code)
    if amount % granularity:
        raise StripeAmountError(
            f"Stripe needs {code} amounts in multiples of {granularity} (got {amount})"
        )
    return amount


def from_stripe_amount(stripe_amount: int, currency: str) -> int:
    """Stripe API amount -> ISO minor units. Raises StripeAmountError if not exact."""
    _check_int(stripe_amount)
    code = normalize_currency(currency)
    shift = shop_exponent(code) - stripe_exponent(code)
    if shift >= 0:
        return stripe_amount * 10**shift
    factor = 10**-shift
    if stripe_amount % factor:
        raise StripeAmountError(
            f"Stripe amount {stripe_amount} {code} is finer than the shop's minor unit"
        )
    return stripe_amount // factor
