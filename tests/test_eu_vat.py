"""VAT by destination (EU One-Stop-Shop): whose VAT, at which rate, and what the customer pays.

The demo store is German: a print is standard-rated (19 % at home), an e-book reduced (7 %).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from shop.admin import bookkeeping
from shop.cart.service import shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import TaxClass, TaxClassRate, Variant
from shop.demo import seed_demo
from shop.money import vat_included
from shop.orders import service
from shop.privacy.models import LedgerEntry
from shop.tax import rates
from tests.browser import Browser
from tests.conftest import make_test_app
from tests.privacy.helpers import ADA, pay

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture
def make_store(db_url, tmp_path):
    """A demo store with the given settings."""
    apps = []

    def make(**settings):
        app = make_test_app(db_url, tmp_path / f"instance{len(apps)}", **settings)
        seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["shop.db"].dispose()


@pytest.fixture
def store(make_store):
    return make_store()


def _place(s, sku: str, country: str, **kw):
    variant = s.scalar(select(Variant).where(Variant.sku == sku))
    rate_id = None
    if variant.product.is_physical:
        rate_id = shipping_options(s, country, variant.price)[0].rate_id
    return service.place_order(
        s,
        service.PlaceOrder(
            cart=[CartLine(variant.id, 1, variant.price)],
            country=country,
            payment_method="demo",
            currency="EUR",
            expiry_minutes=30,
            shipping_rate_id=rate_id,
            contact=ADA,
            digital_consent=True,
            **kw,
        ),
        now=T0,
    )


def _print_line(order):
    return next(line for line in order.lines if line.sku == "PRINT-HARB-A4")


# ---------------------------------------------------------------- the rules, pure


def test_the_rates_are_data_for_all_27_member_states():
    table = rates.eu_rates()
    assert len(table.members()) == 27 and "GB" not in table.members()
    assert table.rate("NL", "standard") == 2100 and table.rate("NL", "reduced") == 900
    assert table.rate("FI", "standard") == 2550  # 25.5 %: basis points, no floats
    assert table.rate("DK", "reduced") == 2500  # no reduced rate: the standard one
    assert table.valid_from and table.checked


@pytest.mark.parametrize(
    "scheme, kind, destination, expected",
    [
        ("origin", "physical", "NL", "DE"),  # under the threshold: home VAT
        ("oss", "physical", "NL", "NL"),  # OSS: where the customer is
        ("origin", "digital", "NL", "NL"),  # e-services: always where the customer is
        ("oss", "physical", "DE", "DE"),  # domestic
        ("oss", "physical", "US", ""),  # export: no EU VAT
        ("origin", "digital", "CH", ""),
    ],
)
def test_where_a_sale_is_taxed(scheme, kind, destination, expected):
    assert rates.taxed_in(rates.TaxPolicy("DE", scheme), kind, destination) == expected


def test_net_fixed_prices_are_recomputed_half_up_once_per_unit():
    assert rates.localize(2400, 1900, 2100, rates.NET) == 2440  # 24.00 / 1.19 * 1.21 = 24.4033
    assert rates.localize(2400, 1900, 0, rates.NET) == 2017  # 20.168 -> 20.17
    assert rates.localize(1, 1900, 2100, rates.NET) == 1
    assert rates.localize(2400, 1900, 2100, rates.GROSS) == 2400


# ---------------------------------------------------------------- orders


def test_dutch_consumer_buying_a_print_from_an_oss_store_pays_dutch_vat(make_store):
    store = make_store(vat_scheme="oss")
    with store.extensions["shop.db"].job_session() as s:
        order = _place(s, "PRINT-HARB-A4", "NL")
        line = _print_line(order)
        # Gross fixed (the default): same €24.00, but the VAT inside it is the Dutch 21 %.
        assert (line.unit_price, line.tax_rate_bp, line.tax_country) == (2400, 2100, "NL")
        assert (order.shipping_tax_rate_bp, order.shipping_tax_country) == (2100, "NL")
        assert order.vat_total == vat_included(2400 + order.shipping, 2100)


def test_net_fixed_recomputes_the_gross_with_the_dutch_rate(make_store):
    store = make_store(vat_scheme="oss", vat_fixed_price="net")
    with store.extensions["shop.db"].job_session() as s:
        order = _place(s, "PRINT-HARB-A4", "NL")
        line = _print_line(order)
        assert (line.unit_price, line.tax_rate_bp, line.line_total) == (2440, 2100, 2440)
        # Shipping too: €12.90 at 19 % is €13.12 at 21 %.
        assert order.shipping == 1312
        assert order.total == 2440 + 1312
        home = _place(s, "PRINT-HARB-A4", "DE")
        assert _print_line(home).unit_price == 2400  # at home nothing changes


def test_under_the_threshold_a_print_to_the_netherlands_keeps_german_vat(store):
    with store.extensions["shop.db"].job_session() as s:
        order = _place(s, "PRINT-HARB-A4", "NL")
        line = _print_line(order)
        assert (line.unit_price, line.tax_rate_bp, line.tax_country) == (2400, 1900, "DE")


def test_an_e_book_to_the_netherlands_is_taxed_there_even_under_the_threshold(store):
    with store.extensions["shop.db"].job_session() as s:
        order = _place(s, "EBOOK-SMALL", "NL")
        line = order.lines[0]
        assert (line.unit_price, line.tax_rate_bp, line.tax_country) == (799, 900, "NL")
        assert order.vat_total == vat_included(799, 900)


def test_exports_outside_the_eu_carry_no_vat(store):
    with store.extensions["shop.db"].job_session() as s:
        order = _place(s, "PRINT-HARB-A4", "US")
        assert (_print_line(order).tax_rate_bp, _print_line(order).tax_country) == (0, "")
        assert order.vat_total == 0


def test_a_merchant_rate_for_a_country_overrides_the_table(make_store):
    store = make_store(vat_scheme="oss")
    with store.extensions["shop.db"].job_session() as s:
        standard = s.scalar(select(TaxClass).where(TaxClass.code == "standard"))
        standard.country_rates.append(TaxClassRate(country="NL", rate_bp=900))
        s.flush()
        order = _place(s, "PRINT-HARB-A4", "NL")
        assert _print_line(order).tax_rate_bp == 900


# ---------------------------------------------------------------- ledger and VAT summary


def test_ledger_and_vat_summary_carry_country_and_rate(make_store):
    store = make_store(vat_scheme="oss")
    with store.extensions["shop.db"].job_session() as s:
        nl = _place(s, "PRINT-HARB-A4", "NL")
        de = _place(s, "PRINT-HARB-A4", "DE")
        us = _place(s, "PRINT-HARB-A4", "US")
        for order in (nl, de, us):
            pay(s, order, now=T0, key=f"pay-{order.number}")
        entry = s.scalar(select(LedgerEntry).where(LedgerEntry.order_number == nl.number))
        assert [(r.tax_country, r.tax_rate_bp) for r in entry.rates] == [("NL", 2100)]
        rows = bookkeeping.vat_summary(s, date(2026, 3, 1), date(2026, 3, 31))
        oss = bookkeeping.oss_return(rows, home="DE")
        assert [(r.country, r.rate_bp, r.gross) for r in oss] == [("NL", 2100, nl.total)]
        domestic = bookkeeping.domestic(rows, home="DE")
        assert [(r.country, r.rate_bp, r.gross) for r in domestic] == [
            ("DE", 1900, de.total),
            ("", 0, us.total),
        ]


# ---------------------------------------------------------------- pages


def test_checkout_and_cart_show_the_destination_vat(make_store):
    store = make_store(vat_scheme="oss")
    b = Browser(store.test_client())
    b.get("/products/harbour-at-dawn")
    b.submit(b.form("form[action$='/cart/add/harbour-at-dawn']"), {"variant": b.option_value("A4")})
    b.get("/checkout")
    page = b.submit(b.form("main form"), {"country": "NL"}, button="Update shipping options")
    assert "Includes VAT 21% (Netherlands) on €36.90" in page.text
    cart = b.get("/cart")  # the country is known now
    assert "21%" in cart.text and "Netherlands" in cart.text


def test_two_countries_at_the_same_rate_are_booked_apart_and_refunded_exactly(store):
    """Under the threshold a German print to Cyprus carries German 19 %, a standard-rated
    download Cypriot 19 %: same rate, two returns."""
    from shop.catalog.models import DIGITAL, Product
    from tests.privacy.helpers import refund

    with store.extensions["shop.db"].job_session() as s:
        standard = s.scalar(select(TaxClass).where(TaxClass.code == "standard"))
        app = Product(slug="app", title="Pattern app", kind=DIGITAL, tax_class_id=standard.id)
        app.variants = [Variant(sku="APP", price=1000, on_hand=None)]
        s.add(app)
        s.flush()
        variant = s.scalar(select(Variant).where(Variant.sku == "PRINT-HARB-A4"))
        rate_id = shipping_options(s, "CY", variant.price + 1000)[0].rate_id
        order = service.place_order(
            s,
            service.PlaceOrder(
                cart=[
                    CartLine(variant.id, 1, variant.price),
                    CartLine(app.variants[0].id, 1, 1000),
                ],
                country="CY",
                payment_method="demo",
                currency="EUR",
                expiry_minutes=30,
                shipping_rate_id=rate_id,
                contact=ADA,
                digital_consent=True,
            ),
            now=T0,
        )
        pay(s, order, now=T0)
        sale = s.scalar(select(LedgerEntry).where(LedgerEntry.kind == "sale"))
        assert sorted((r.tax_country, r.tax_rate_bp, r.gross) for r in sale.rates) == [
            ("CY", 1900, 1000),
            ("DE", 1900, 2400 + order.shipping),
        ]
        refund(s, order, 777, now=T0, key="r1")
        refund(s, order, order.total - 777, now=T0, key="r2")
        left: dict[tuple, list[int]] = {}
        for entry in s.scalars(select(LedgerEntry)):
            for r in entry.rates:
                sums = left.setdefault((r.tax_country, r.tax_rate_bp), [0, 0])
                sums[0] += r.gross
                sums[1] += r.vat
        assert left == {("CY", 1900): [0, 0], ("DE", 1900): [0, 0]}


def test_vat_settings_are_checked_at_start_up():
    from shop.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as error:
        load_settings(
            {
                "SHOP_VAT_SCHEME": "threshold",
                "SHOP_VAT_FIXED_PRICE": "both",
                "SHOP_DIGITAL_WITHOUT_CONSENT": "ignore",
            }
        )
    problems = " ".join(error.value.problems)
    for name in ("SHOP_VAT_SCHEME", "SHOP_VAT_FIXED_PRICE", "SHOP_DIGITAL_WITHOUT_CONSENT"):
        assert name in problems
    with pytest.raises(ConfigError, match="stores in the EU"):
        load_settings({"SHOP_VAT_SCHEME": "oss", "SHOP_COUNTRY": "CH"})
    settings = load_settings({"SHOP_VAT_SCHEME": "oss", "SHOP_VAT_FIXED_PRICE": "net"})
    assert (settings.vat_scheme, settings.vat_fixed_price) == ("oss", "net")
