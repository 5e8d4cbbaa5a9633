"""What a new customer found trying the shop (issue 16), as a browser without JavaScript sees it."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from shop.catalog.models import Variant
from shop.legal import service as legal
from shop.mail.models import SENT, OutboxMessage
from shop.models import metadata
from shop.orders.models import Order
from tests.browser import Browser
from tests.conftest import make_test_app

NOT_COUNTRIES = {"EU", "EZ", "UN", "XA", "XB", "QO", "ZZ", "AC", "CP", "DG", "EA", "IC", "TA"}


def _app(db_url, tmp_path, **overrides):
    from shop.demo import seed_demo

    app = make_test_app(db_url, tmp_path / "instance", **{"rate_providers": "", **overrides})
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    return app


def _options(page) -> set[str]:
    return {o["value"] for o in page.soup.select("select[name=country] option")}


def _buy(b: Browser, slug: str, fields: dict[str, str] | None = None, method: str = "Demo"):
    b.get(f"/products/{slug}")
    b.submit(b.form(f"form[action$='/cart/add/{slug}']"))
    b.get("/checkout")
    form = b.form("main form")
    # An e-book is delivered at once only with the customer's consent (issue 16's legal steps).
    consent = {"digital_consent": "y"} if form.find(attrs={"name": "digital_consent"}) else {}
    fields = {"payment_method": b.option_value(method), **consent, **(fields or {})}
    page = b.submit(form, fields, button="Place order")
    assert re.fullmatch(r"/orders/[A-Za-z0-9_-]{43}", page.url), page.text[:500]
    return page


ADDRESS = {
    "email": "ada@example.org",
    "name": "Ada Lovelace",
    "street": "1 Harbour Road",
    "postal_code": "10115",
    "city": "Berlin",
    "country": "DE",
}


# ---------------------------------------------------------------- the country list


def test_country_list_offers_real_countries_and_real_destinations(client):
    b = Browser(client)
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    digital = _options(b.get("/checkout"))
    assert {"DE", "FR", "NL", "BE", "US", "JP"} <= digital
    assert digital & NOT_COUNTRIES == set()
    assert len(digital) == 249  # ISO 3166-1

    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    physical = _options(b.get("/checkout"))
    from shop.demo import EU

    assert physical == {"DE", *EU.split(","), "CH", "GB", "NO", "US", "CA", "AU", "JP", "NZ"}


@pytest.mark.parametrize("slug", ["small-hours", "tote-bag"])
def test_a_posted_non_country_is_refused_with_a_message(client, database, slug):
    b = Browser(client)
    b.get(f"/products/{slug}")
    b.submit(b.form(f"form[action$='/cart/add/{slug}']"))
    b.get("/checkout")
    form = b.form("main form")
    page = b.submit(
        form,
        {**({k: v for k, v in ADDRESS.items() if form.find(attrs={"name": k})}), "country": "EU"},
        button="Place order",
        expect=400,
    )
    assert "Please choose your country from the list." in page.text
    with database.job_session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


# ---------------------------------------------------------------- BTC demo prices


def test_demo_in_btc_seeds_sensible_prices(db_url, tmp_path):
    from shop.payments.bitcoin.rates import DEMO_RATE

    app = _app(db_url, tmp_path, currency="BTC")
    with app.extensions["shop.db"].job_session() as s:
        a4 = s.scalar(select(Variant).where(Variant.sku == "PRINT-HARB-A4")).price
        ebook = s.scalar(select(Variant).where(Variant.sku == "EBOOK-SMALL")).price
    # €24 and €7.99 at the demo rate, in sats rounded to 100 sats: not 24 BTC.
    assert a4 == round(24 * 100_000_000 / DEMO_RATE, -2) == 48_000
    assert ebook == round(799 * 1_000_000 / DEMO_RATE, -2)
    page = Browser(app.test_client()).get("/products/harbour-at-dawn")
    assert "24.00000000" not in page.text and "0.00048" in page.text
    app.extensions["shop.db"].dispose()


# ---------------------------------------------------------------- the order page


def test_order_page_echoes_address_local_times_and_next_step(client):
    b = Browser(client)
    page = _buy(b, "tote-bag", ADDRESS)
    details = page.soup.select_one("section.order-details").get_text(" ")
    for value in (
        "Ada Lovelace",
        "1 Harbour Road",
        "10115",
        "Berlin",
        "Germany",
        "ada@example.org",
    ):
        assert value in details
    # Store time zone (default Europe/Berlin) with its name, not UTC.
    history = page.soup.select_one("ol.history").get_text(" ")
    assert re.search(r"\b(CET|CEST)\b", history) and "UTC" not in history
    assert "What happens next" in page.text and "pay by" in page.text.lower()
    paid = b.submit(b.form(".demo-pay form"))
    nxt = paid.soup.select_one(".next-step").get_text(" ")
    assert "pack" in nxt and "ship" in nxt
    # Another browser with the link sees the order; that is what the link is for. Without it,
    # nothing: the address is not on any other page.
    assert "Ada Lovelace" not in b.get("/cart").text


def test_digital_order_has_no_shipping_row_on_page_or_in_email(client, database, settings):
    from shop.mail.outbox import render

    b = Browser(client)
    page = _buy(b, "small-hours", {"email": "ada@example.org", "country": "FR"})
    rows = [th.get_text(" ").strip() for th in page.soup.select("table.lines tfoot th")]
    assert "Shipping" not in rows and "Total" in rows
    assert "download" in page.soup.select_one(".next-step").get_text(" ").lower()
    with database.job_session() as s:
        order = s.scalar(select(Order))
        message = render(settings, order, "order_received", {}, "ada@example.org")
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
    assert "Shipping" not in text and "Shipping" not in html and "Total" in text


def test_checkout_shows_the_total_before_the_place_order_button(client):
    b = Browser(client)
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    page = b.get("/checkout")
    form = page.soup.select_one("main form")
    total = form.select_one(".checkout-total")
    button = form.find("input", attrs={"type": "submit", "value": re.compile("Place order")})
    assert total is not None and "€20.90" in total.get_text()
    assert total.sourceline < button.sourceline or (
        total.sourceline == button.sourceline and total.sourcepos < button.sourcepos
    )


# ---------------------------------------------------------------- the link to the order


def test_keep_the_link_warning_stays_when_no_email_can_be_sent(client):
    b = Browser(client)
    page = _buy(b, "tote-bag", ADDRESS)  # email given, but SMTP is not set up
    assert page.soup.select_one(".bookmark") is not None
    assert "no email" in page.soup.select_one(".bookmark").get_text().lower()
    assert page.soup.select_one("form.email-link") is None
    paid = b.submit(b.form(".demo-pay form"))
    assert paid.soup.select_one(".bookmark") is not None


def _mail_app(db_url, tmp_path):
    return _app(
        db_url,
        tmp_path,
        smtp_url="smtp://127.0.0.1:2525",
        mail_from="shop@example.org",
        base_url="https://shop.example",
    )


def test_link_by_email_when_smtp_is_set(db_url, tmp_path):
    app = _mail_app(db_url, tmp_path)
    database = app.extensions["shop.db"]
    b = Browser(app.test_client())
    page = _buy(b, "tote-bag", ADDRESS)
    # Queued is not sent: the warning stays until the email has gone out.
    assert page.soup.select_one(".bookmark") is not None
    sent = b.submit(b.form("form.email-link"))
    assert "We are sending the link to this order to the email address you gave" in " ".join(
        sent.messages()
    )
    with database.job_session() as s:
        kinds = sorted(m.kind for m in s.scalars(select(OutboxMessage)))
        assert kinds == ["order_link", "order_received"]
        for message in s.scalars(select(OutboxMessage)):
            assert "ada@" not in message.payload  # the outbox keeps no address
    again = b.submit(b.form("form.email-link"), expect=429)
    assert "Please wait" in " ".join(again.messages())
    with database.job_session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 2
        for message in s.scalars(select(OutboxMessage)):
            message.status = SENT
    after = b.get(page.url)
    assert after.soup.select_one(".bookmark") is None
    assert "We emailed you the link" in after.text
    app.extensions["shop.db"].dispose()


def test_link_email_renders_the_link(db_url, tmp_path):
    from shop.mail.outbox import render

    app = _mail_app(db_url, tmp_path)
    _buy(Browser(app.test_client()), "small-hours", {"email": "ada@example.org"})
    with app.extensions["shop.db"].job_session() as s:
        order = s.scalar(select(Order))
        message = render(
            app.extensions["shop.settings"], order, "order_link", {}, "ada@example.org"
        )
        assert (
            f"https://shop.example/orders/{order.token}"
            in message.get_body(("plain",)).get_content()
        )
        assert order.number in message["Subject"]
    app.extensions["shop.db"].dispose()


def test_no_link_email_offered_without_an_address(db_url, tmp_path):
    app = _mail_app(db_url, tmp_path)
    b = Browser(app.test_client())
    page = _buy(b, "small-hours", {"country": "FR"})
    assert page.soup.select_one("form.email-link") is None
    token = page.url.rsplit("/", 1)[1]
    response = app.test_client().post(f"/orders/{token}/email-link")
    assert response.status_code == 400
    app.extensions["shop.db"].dispose()


# ---------------------------------------------------------------- privacy


def test_privacy_notice_is_written_for_customers(client):
    page = Browser(client).get("/legal/privacy")
    text = page.text
    for internal in ("seal(", "see Retention", "Art. 6(1)", "eraser", "register_hold", "`"):
        assert internal not in text
    for heading in (
        "What we keep and why",
        "How long we keep it",
        "Your rights",
        "How to erase your data",
    ):
        assert page.soup.find(["h2", "h3"], string=re.compile(heading)) is not None, heading
    assert "24 hours" in text and "30 days" in text and "7 years" in text
    # No wide table: a list reads on a phone.
    assert all(len(t.select("thead th")) <= 2 for t in page.soup.select("table"))


def test_privacy_notice_follows_the_retention_settings(db_url, tmp_path):
    app = _app(db_url, tmp_path, retention_unpaid_hours=48, retention_fulfilled_days=14)
    text = Browser(app.test_client()).get("/legal/privacy").text
    assert "48 hours" in text and "14 days" in text
    app.extensions["shop.db"].dispose()


def test_every_personal_column_is_explained_to_customers():
    marked = {
        f"{t.name}.{c.name}"
        for t in metadata.tables.values()
        for c in t.columns
        if c.info.get("personal")
    }
    covered = {
        column for item in legal.customer_notice() if item.written for column in item.columns
    }
    assert marked <= covered, marked - covered
    assert covered <= marked, covered - marked


def test_ebook_privacy_panel_says_one_thing(client):
    b = Browser(client)
    page = _buy(b, "small-hours", {"country": "FR"})  # no email: nothing personal kept
    panel = page.soup.select_one("section.privacy").get_text(" ")
    assert "We hold no personal data for this order" in panel
    assert "kept for now" not in panel and "name and address" not in panel
    assert page.soup.select_one("form.erase") is None

    b2 = Browser(client)
    page = _buy(b2, "small-hours", {"email": "ebook@example.org", "country": "FR"})
    panel = page.soup.select_one("section.privacy").get_text(" ")
    assert "your email address" in panel and "address" not in panel.replace("email address", "")
    form = page.soup.select_one("form.erase").get_text(" ")
    # Before pressing: it says that it cannot erase at once, why, and when it will.
    assert "cannot erase" in form and "awaiting payment" in form and "as soon as" in form


# ---------------------------------------------------------------- the Bitcoin page


def test_bitcoin_status_endpoint_and_script_friendly_page(db_url, tmp_path):
    app = _app(db_url, tmp_path, bitcoin_simulated=True)
    b = Browser(app.test_client())
    order_page = _buy(b, "small-hours", {"country": "FR"}, method="Bitcoin")
    page = b.submit(order_page.soup and b.form(".bitcoin-pay form"))
    # Without JavaScript the meta refresh works; with it, <noscript> hides it from the browser.
    refresh = page.soup.select_one("noscript meta[http-equiv=refresh]")
    assert refresh is not None
    assert page.soup.select_one("[aria-live]") is not None
    status_url = page.soup.select_one("[data-status-url]")["data-status-url"]
    response = app.test_client().get(status_url)
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = response.get_json()
    assert data["status"] == "new" and data["final"] is False
    assert data["state_label"] and data["remaining_sats"] > 0 and data["btc"]
    b.submit(b.form("form.demo-pay"))
    data = app.test_client().get(status_url).get_json()
    assert data["status"] == "settled" and data["final"] is True
    assert (
        app.test_client().get(status_url.replace(page.url.split("/")[2], "x" * 43)).status_code
        == 404
    )
    app.extensions["shop.db"].dispose()


# ---------------------------------------------------------------- logo and favicon


def test_default_favicon_is_served_locally(client):
    page = Browser(client).get("/")
    icon = page.soup.select_one("link[rel=icon]")
    assert icon is not None and icon["href"].startswith("/")
    response = client.get(icon["href"])
    assert response.status_code == 200 and response.mimetype.startswith("image/")
    assert page.soup.select_one(".site-header img.logo") is None


def test_json_status_is_not_cached_by_shared_caches(db_url, tmp_path):
    app = _app(db_url, tmp_path, bitcoin_simulated=True)
    b = Browser(app.test_client())
    order_page = _buy(b, "small-hours", {"country": "FR"}, method="Bitcoin")
    assert order_page
    page = b.submit(b.form(".bitcoin-pay form"))
    response = app.test_client().get(page.soup.select_one("[data-status-url]")["data-status-url"])
    assert "no-store" in response.headers.get("Cache-Control", "")
    assert json.loads(response.data)["order_url"].endswith(page.url.removesuffix("/bitcoin"))
    app.extensions["shop.db"].dispose()


def test_shipping_zones_take_only_real_countries():
    from shop.admin.store_settings import SettingsError, parse_countries

    assert parse_countries("de, at") == "DE,AT"
    for grouping in ("EU", "EZ", "UN", "XA", "QO"):
        with pytest.raises(SettingsError, match=grouping):
            parse_countries(f"DE, {grouping}")


def test_store_time_zone_setting(db_url, tmp_path):
    from shop.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="SHOP_TIMEZONE"):
        load_settings({"SHOP_TIMEZONE": "Mars/Olympus_Mons"})
    app = _app(db_url, tmp_path, timezone="UTC")
    page = _buy(Browser(app.test_client()), "small-hours", {"country": "FR"})
    assert "UTC" in page.soup.select_one("ol.history").get_text(" ")
    app.extensions["shop.db"].dispose()


def test_checkout_does_not_promise_emails_the_shop_cannot_send(client, db_url, tmp_path):
    b = Browser(client)
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    hint = b.get("/checkout").soup.select_one("#email-hint").get_text()
    assert "sends no emails" in hint and "order updates" not in hint
    app = _mail_app(db_url, tmp_path)
    b = Browser(app.test_client())
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    assert "order updates" in b.get("/checkout").soup.select_one("#email-hint").get_text()
    app.extensions["shop.db"].dispose()
