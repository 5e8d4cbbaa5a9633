"""The e-book consent and destination VAT in a real browser with JavaScript off."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_storefront_browser import _axe_problems


@pytest.fixture
def live_app_config():
    return {"vat_scheme": "oss"}


def test_e_book_needs_the_consent_and_a_dutch_print_pays_dutch_vat(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    for slug in ("small-hours", "harbour-at-dawn"):
        page.goto(f"{live_server.url}/products/{slug}")
        page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Country").select_option("NL")
    page.get_by_role("button", name="Update shipping options").click()
    summary = page.inner_text("aside")
    assert (
        "Includes VAT 21% (Netherlands)" in summary and "Includes VAT 9% (Netherlands)" in summary
    )
    page.get_by_role("button", name="Place order and pay").click()  # no address, no consent
    main = page.inner_text("main")
    assert "Needed to ship your order." in main
    assert "Please confirm that delivery may start now" in main
    page.get_by_label("Full name").fill("Anne de Vries")
    page.get_by_label("Street and house number").fill("Prinsengracht 1")
    page.get_by_label("Postal code").fill("1015 DV")
    page.get_by_label("City").fill("Amsterdam")
    page.get_by_label(re.compile("lose my right of withdrawal")).check()
    page.get_by_role("button", name="Place order and pay").click()
    assert re.search(r"/orders/[A-Za-z0-9_-]{43}$", page.url), page.url
    assert "Includes VAT 21% (Netherlands)" in page.inner_text("main")
    context.close()


def test_the_consent_and_its_error_pass_axe(browser, live_server):
    context = browser.new_context()  # axe runs as JavaScript in the page
    page = context.new_page()
    page.goto(f"{live_server.url}/products/small-hours")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    page.get_by_role("button", name="Place order and pay").click()
    assert "Please confirm that delivery may start now" in page.inner_text("main")
    assert _axe_problems(page) == []
    context.close()
