"""Settings and health page; tax classes, shipping zones and rates edited by the merchant."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shop.admin import health
from shop.cart.models import ShippingRate, ShippingZone
from shop.catalog.models import TaxClass
from shop.db import utcnow
from shop.mail.models import OutboxMessage
from tests.admin.conftest import buy
from tests.browser import Browser


def test_health_page_shows_what_is_off(admin):
    page = admin.get("/admin/settings")
    text = page.text
    assert "Card payments are not set up" in text and "Bitcoin checkout is not set up" in text
    assert "No SMTP server" in text
    assert "24 hours after they ended" in text and "30 days after fulfilment" in text


def test_health_reads_stripe_bitcoin_rates_and_mail(database, settings):
    import dataclasses

    from shop.payments.bitcoin.models import BitcoinBlock, BitcoinWatcherStatus
    from shop.payments.bitcoin.rate_models import RateQuote
    from shop.payments.stripe.models import StripeEventRecord

    now = utcnow()
    configured = dataclasses.replace(
        settings,
        stripe_secret_key="sk_test_x",
        smtp_url="smtp://127.0.0.1",
        bitcoin_descriptor="wpkh(x)",
    )
    with database.job_session() as session:
        from shop.payments.registry import build_methods

        methods = build_methods(dataclasses.replace(configured, stripe_webhook_secret="whsec_x"))
        checks = {c.name: c for c in health.checks(session, configured, now, methods=methods)}
        assert checks["Stripe"].status == "warning" and "never" in checks["Stripe"].summary
        assert checks["Exchange rates"].status == "warning"
        assert checks["Bitcoin node"].status == "warning"
        session.add(
            StripeEventRecord(
                event_id="evt_1",
                type="checkout.session.completed",
                received_at=now - timedelta(minutes=5),
            )
        )
        session.add(
            BitcoinWatcherStatus(
                id=1, last_success_at=now - timedelta(seconds=30), tip_height=871000, last_error=""
            )
        )
        session.add(
            BitcoinBlock(
                height=871000,
                hash="00" * 32,
                prev_hash="11" * 32,
                processed_at=now - timedelta(minutes=3),
            )
        )
        session.add(
            RateQuote(
                currency="EUR",
                fiat_per_btc="87123.45",
                sources='[{"source": "kraken", "price": "87120.1"}]',
                as_of=now - timedelta(seconds=60),
                fetched_at=now,
            )
        )
        session.add(OutboxMessage(kind="order_received", status="failed", payload="{}"))
        session.flush()
        from shop.payments.registry import build_methods

        methods = build_methods(dataclasses.replace(configured, stripe_webhook_secret="whsec_x"))
        checks = {c.name: c for c in health.checks(session, configured, now, methods=methods)}
    assert (checks["Stripe"].status, checks["Stripe"].summary) == (
        "ok",
        "Last webhook received 5 min ago.",
    )
    assert checks["Bitcoin node"].status == "ok"
    assert "height 871000, processed 3 min ago" in checks["Bitcoin node"].details[0]
    assert (
        checks["Exchange rates"].status == "ok"
        and "87123.45 EUR" in checks["Exchange rates"].summary
    )
    assert checks["Exchange rates"].details == ["kraken: 87120.1"]
    assert checks["Email"].status == "warning" and "1 failed" in checks["Email"].summary
    with database.job_session() as session:
        later = {
            c.name: c
            for c in health.checks(session, configured, now + timedelta(hours=2), methods=methods)
        }
    assert later["Bitcoin node"].status == "warning" and later["Exchange rates"].status == "warning"


def test_tax_classes(admin, database, client):
    b = admin
    b.get("/admin/settings")
    b.follow("Tax classes")
    page = b.submit(
        b.form("form[action$='/settings/tax']"),
        {"new-code": "super-reduced", "new-name": "Super reduced", "new-rate": "5.5"},
    )
    assert any("Tax class saved" in m for m in page.messages())
    bad = b.submit(
        b.form("form[action$='/settings/tax']"),
        {"new-code": "odd", "new-name": "Odd", "new-rate": "5.555"},
    )
    assert any("at most two decimals" in m for m in bad.messages())
    dup = b.submit(
        b.form("form[action$='/settings/tax']"),
        {"new-code": "standard", "new-name": "x", "new-rate": "1"},
    )
    assert any("already used" in m for m in dup.messages())
    with database.job_session() as session:
        assert (
            session.scalar(select(TaxClass.rate_bp).where(TaxClass.code == "super-reduced")) == 550
        )
        standard = session.scalar(select(TaxClass).where(TaxClass.code == "standard"))
        assert session.scalar(select(TaxClass).where(TaxClass.code == "odd")) is None

    # Changing the standard rate changes the VAT of future orders.
    form = b.form(f"form[action$='/settings/tax/{standard.id}']")
    b.submit(form, {f"tax{standard.id}-rate": "20"})
    buy(client, pay=False)
    with database.job_session() as session:
        from shop.orders.models import OrderLine

        assert session.scalar(select(OrderLine.tax_rate_bp)) == 2000

    # A class in use cannot be deleted.
    b.get("/admin/settings/tax")
    page = b.submit(b.form(f"form[action$='/settings/tax/{standard.id}/delete']"))
    assert any("still used" in m for m in page.messages())


def test_shipping_zones_and_rates(admin, database, client):
    b = admin
    b.get("/admin/settings/shipping")
    page = b.submit(
        b.form("form[action$='/shipping/zones']"),
        {"newzone-name": "Alps", "newzone-countries": "li, sm"},
    )
    assert "Shipping zone saved." in page.messages()
    bad = b.submit(
        b.form("form[action$='/shipping/zones']"),
        {"newzone-name": "Nowhere", "newzone-countries": "XX, Q1"},
    )
    assert any("Not a two-letter country code: XX, Q1" in m for m in bad.messages())
    with database.job_session() as session:
        zone = session.scalar(select(ShippingZone).where(ShippingZone.name == "Alps"))
        assert zone.countries == "LI,SM"
        standard = session.scalar(select(TaxClass.id).where(TaxClass.code == "standard"))
    page = b.get("/admin/settings/shipping")
    form = b.form(f"form[action$='/zones/{zone.id}/rates']")
    page = b.submit(
        form,
        {
            f"newrate{zone.id}-name": "Alpine post",
            f"newrate{zone.id}-price": "15.00",
            f"newrate{zone.id}-free_over": "100",
            f"newrate{zone.id}-tax_class": str(standard),
        },
    )
    assert "Shipping rate saved." in page.messages()
    with database.job_session() as session:
        rate = session.scalar(select(ShippingRate).where(ShippingRate.zone_id == zone.id))
        assert (rate.name, rate.price, rate.free_over) == ("Alpine post", 1500, 10000)

    # Customers in Liechtenstein can now choose it.
    customer = Browser(client)
    customer.get("/products/tote-bag")
    customer.submit(customer.form("form[action$='/cart/add/tote-bag']"))
    customer.get("/checkout")
    page = customer.submit(
        customer.form("main form"), {"country": "LI"}, button="Update shipping options"
    )
    assert "Alpine post (Alps) — €15.00" in page.text

    # Edit, then delete the rate; then the zone.
    b.get("/admin/settings/shipping")
    b.submit(
        b.form(f"form[action$='/rates/{rate.id}']"),
        {f"rate{rate.id}-price": "17.50", f"rate{rate.id}-free_over": ""},
    )
    with database.job_session() as session:
        edited = session.get(ShippingRate, rate.id)
        assert (edited.price, edited.free_over) == (1750, None)
    # Saving cleared the storefront's short-lived cache: the customer sees the new price at once.
    page = customer.submit(
        customer.form("main form"), {"country": "LI"}, button="Update shipping options"
    )
    assert "Alpine post (Alps) — €17.50" in page.text
    b.submit(b.form(f"form[action$='/rates/{rate.id}/delete']"))
    b.submit(b.form(f"form[action$='/zones/{zone.id}/delete']"))
    with database.job_session() as session:
        assert (
            session.get(ShippingZone, zone.id) is None
            and session.get(ShippingRate, rate.id) is None
        )
