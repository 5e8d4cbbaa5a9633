"""The checkout steps EU consumer law requires (§ 312j BGB as the strictest case)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shop.downloads import service as downloads
from shop.orders.models import Order
from tests.browser import Browser
from tests.conftest import make_test_app


@pytest.fixture
def make_store(db_url, tmp_path):
    """A demo store (e-books with files, sample legal texts) with the given settings."""
    from shop.demo import seed_demo, seed_ebook_files, seed_legal_samples

    apps = []

    def make(**settings):
        app = make_test_app(db_url, tmp_path / f"instance{len(apps)}", **settings)
        database, shop_settings = app.extensions["shop.db"], app.extensions["shop.settings"]
        seed_demo(database, shop_settings)
        seed_ebook_files(database, shop_settings)
        seed_legal_samples(database)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["shop.db"].dispose()


@pytest.fixture
def store(make_store):
    return make_store()


def _ebook_checkout(app) -> Browser:
    b = Browser(app.test_client())
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.get("/checkout")
    return b


def test_the_order_button_says_it_commits_to_pay(store):
    page = _ebook_checkout(store).page
    buttons = [x.get("value") or x.get_text() for x in page.soup.select("main form [type=submit]")]
    assert "Place order and pay" in buttons


def test_missing_consent_blocks_an_e_book_order_with_a_clear_error(store):
    from shop.orders import consent

    b = _ebook_checkout(store)
    box = b.page.soup.find("input", attrs={"name": "digital_consent", "type": "checkbox"})
    # The wording the order records as consent.VERSION is the wording the customer saw.
    assert b.page.soup.find("label", attrs={"for": box["id"]}).get_text() == consent.wording(
        consent.VERSION
    )
    page = b.submit(b.form("main form"), {"country": "NL"}, button="Place order", expect=400)
    assert "lose my right of withdrawal" in page.text
    assert "Please confirm that delivery may start now" in page.text
    with store.extensions["shop.db"].job_session() as s:
        assert s.scalar(select(Order)) is None


def test_every_checkout_error_shows_at_once(db_url, tmp_path):
    """Before: first "Please choose how to pay", only after that the address."""
    from shop.demo import seed_demo

    # Cards besides the demo method: two choices, so none is preselected.
    app = make_test_app(
        db_url,
        tmp_path / "instance",
        stripe_secret_key="sk_test_x",
        stripe_webhook_secret="whsec_x",
    )
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    try:
        b = Browser(app.test_client())
        for slug in ("tote-bag", "small-hours"):
            b.get(f"/products/{slug}")
            b.submit(b.form(f"form[action$='/cart/add/{slug}']"))
        b.get("/checkout")
        assert len(b.page.soup.select("input[name=payment_method]")) > 1
        page = b.submit(
            b.form("main form"),
            {"name": "", "street": "", "payment_method": ""},
            button="Place order",
            expect=400,
        )
        assert "Please choose how to pay." in page.text
        assert "Needed to ship your order." in page.text
        assert "Please confirm that delivery may start now" in page.text
    finally:
        app.extensions["shop.db"].dispose()


def test_consent_is_recorded_and_repeated_in_the_confirmation(store):
    b = _ebook_checkout(store)
    page = b.submit(
        b.form("main form"), {"country": "NL", "digital_consent": "y"}, button="Place order"
    )
    assert page.url.startswith("/orders/")
    with store.extensions["shop.db"].job_session() as s:
        order = s.scalar(select(Order))
        assert order.digital_consent_at is not None and order.digital_consent_version
        assert order.downloads_from is None
        from shop.mail import outbox
        from shop.orders.consent import wording

        message = outbox.render(
            store.extensions["shop.settings"],
            order,
            outbox.ORDER_RECEIVED,
            {},
            "ada@example.org",
            legal=outbox.legal_texts(s),
        )
        text = message.get_body(("plain",)).get_content()
        assert wording(order.digital_consent_version) in text
        # The durable medium: the terms and the withdrawal information (with the model form)
        # travel with the confirmation, as the merchant wrote them.
        assert "1. Scope" in text and "Model withdrawal form" in text
        assert "Includes VAT 9% (Netherlands)" in text  # an e-book is taxed where the customer is


def test_without_consent_the_download_waits_for_the_withdrawal_period(make_store):
    store = make_store(digital_without_consent="delay")
    b = _ebook_checkout(store)
    page = b.submit(b.form("main form"), {"country": "NL"}, button="Place order")
    assert page.url.startswith("/orders/")
    page = b.submit(b.form(".demo-pay form"))
    with store.extensions["shop.db"].job_session() as s:
        order = s.scalar(select(Order))
        assert order.digital_consent_at is None
        assert order.downloads_from == order.placed_at + timedelta(days=14)
        grant = downloads.offered(s, order)[0]
        assert not grant.usable and grant.available_from == order.downloads_from
        with pytest.raises(downloads.DownloadUnavailable, match="withdrawal"):
            downloads.take_download(s, grant.token, store.extensions["shop.settings"].instance_path)
        later = order.downloads_from + timedelta(minutes=1)
        downloads.take_download(
            s, grant.token, store.extensions["shop.settings"].instance_path, now=later
        )
        # The link's own days start when the download does.
        assert grant.expires_at > order.downloads_from
        from shop.mail import outbox

        message = outbox.render(
            store.extensions["shop.settings"], order, outbox.PAYMENT_RECEIVED, {}, "ada@example.org"
        )
        assert "withdrawal period has ended" in message.get_body(("plain",)).get_content()
    assert "available from" in page.text.lower()


def test_production_dashboard_warns_while_legal_pages_are_empty(db_url, tmp_path):
    from shop.admin import auth
    from shop.legal import service as legal
    from shop.privacy.crypto import generate_master_key_text
    from tests.admin.conftest import PASSWORD, sign_in

    app = make_test_app(
        db_url,
        tmp_path / "instance",
        env="production",
        demo_payments=False,
        data_key=generate_master_key_text(),
        base_url="https://shop.example",
    )
    database = app.extensions["shop.db"]
    try:
        with database.job_session() as s:
            auth.create_user(s, "merchant", PASSWORD)
        admin = sign_in(app.test_client())
        warning = admin.get("/admin").soup.select_one("#legal-missing").get_text(" ")
        for title in (
            "Imprint",
            "Terms and conditions",
            "Returns and right of withdrawal",
            "Privacy notice",
        ):
            assert title in warning
        with database.job_session() as s:
            for slug in ("terms", "withdrawal", "privacy"):
                legal.save_page(s, slug, "Written.")
        warning = admin.get("/admin").soup.select_one("#legal-missing").get_text(" ")
        assert "Imprint" in warning and "Terms" not in warning
        with database.job_session() as s:
            legal.save_page(s, "imprint", "", {"legal_name": "Harbour Prints GmbH"})
        assert admin.get("/admin").soup.select_one("#legal-missing") is None
    finally:
        database.dispose()


def test_the_demo_ships_sample_legal_texts_marked_as_samples(store):
    b = Browser(store.test_client())
    for slug in ("imprint", "terms", "withdrawal", "privacy"):
        page = b.get(f"/legal/{slug}")
        assert "sample" in page.text.lower(), slug
    assert "model withdrawal form" in b.get("/legal/withdrawal").text.lower()
