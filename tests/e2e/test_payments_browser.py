"""Paying in a real browser: Bitcoin on the demo's simulated chain with JavaScript off, and a card
through the fake Stripe hosted page on loopback (form-action in the CSP must let the browser go)."""

from __future__ import annotations

import re
import urllib.request

import pytest
from sqlalchemy import select

from shop.orders.models import Order
from shop.payments.bitcoin.models import BitcoinInvoice
from tests.e2e.conftest import watch_requests
from tests.stripe.fake_stripe import FakeStripe, fast_sdk_retries

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

API_KEY = "sk_test_cardshop_0123456789"
WEBHOOK_SECRET = "whsec_cardshop0123456789"
SERIOUS = {"serious", "critical"}


def axe_problems(page, skip: tuple[str, ...] = ()) -> list[str]:
    options = {"rules": {rule: {"enabled": False} for rule in skip}} if skip else None
    results = axe_module.Axe().run(page, options=options)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]


@pytest.fixture
def fake_stripe(monkeypatch):
    fast_sdk_retries(monkeypatch)
    with FakeStripe(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        yield fake


@pytest.fixture
def live_app_config(request):
    if "fake_stripe" in request.fixturenames:
        fake = request.getfixturevalue("fake_stripe")
        return {
            "stripe_secret_key": API_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_api_base": fake.api_base,
            "stripe_checkout_origin": fake.api_base,
            "stripe_timeout_seconds": 2.0,
        }
    return {"bitcoin_simulated": True, "rate_providers": ""}


def _order_ebook(page, base_url: str, method: re.Pattern) -> str:
    page.goto(base_url + "/products/small-hours")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    page.get_by_label(method).check()
    page.get_by_label(re.compile("lose my right of withdrawal")).check()
    page.get_by_role("button", name="Place order").click()
    assert re.search(r"/orders/[A-Za-z0-9_-]{43}$", page.url), page.url
    assert "Awaiting payment" in page.inner_text("main")
    return page.url


def test_bitcoin_purchase_without_javascript(
    browser, live_server, screenshot, third_party_requests
):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    watch_requests(page, third_party_requests)
    order_url = _order_ebook(page, live_server.url, re.compile("Bitcoin"))
    page.get_by_role("button", name="Pay with Bitcoin").click()
    assert page.url == order_url + "/bitcoin"

    main = page.inner_text("main")
    address = page.inner_text("#btc-address")
    assert address.startswith("bcrt1q")
    assert "0.00015980 BTC" in main and "simulated Bitcoin network" in main
    assert page.locator("figure.btc-qr svg path").count() >= 1
    # The demo's simulated Lightning node rides along (tests/lightning/ checks that part).
    assert (
        page.locator("figure.btc-qr a").get_attribute("href").split("&lightning=")[0]
        == f"bitcoin:{address}?amount=0.00015980"
    )
    assert page.locator("meta[http-equiv=refresh]").count() == 1
    screenshot(page, "bitcoin-before")
    # axe needs JavaScript: check the same page in a second context that has it.
    checker = browser.new_context()
    axe_page = checker.new_page()
    watch_requests(axe_page, third_party_requests)
    axe_page.goto(page.url)
    assert axe_page.inner_text("#btc-address") == address
    # The timed meta refresh is how the page follows the payment without JavaScript (issue 3).
    # axe rates any refresh under 20 hours critical (WCAG 2.2.1) without looking for a way to
    # turn it off; the page offers one ("Stop automatic updates", tested below and in
    # tests/bitcoin/test_pages.py), so that one rule is skipped on this page only.
    problems = axe_problems(axe_page, skip=("meta-refresh",))
    axe_page.get_by_role("link", name="Stop automatic updates").click()
    assert axe_page.locator("meta[http-equiv=refresh]").count() == 0
    problems += axe_problems(axe_page)  # with updates off, every rule
    checker.close()

    page.get_by_role("button", name=re.compile("Simulate payment")).click()
    assert "Status: Paid" in page.inner_text("main")
    page.reload()
    assert "Status: Paid" in page.inner_text("main")
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    screenshot(page, "bitcoin-after")
    page.get_by_role("link", name="Back to your order").click()
    assert page.url == order_url and "Status: Paid" in page.inner_text("main")
    context.close()

    with live_server.app.extensions["shop.db"].job_session() as s:
        order = s.scalar(select(Order))
        invoice = s.scalar(select(BitcoinInvoice))
        assert (order.status, order.amount_paid, order.payment_method) == (
            "paid",
            order.total,
            "bitcoin",
        )
        assert (invoice.address, invoice.received_sats) == (address, 15980)
    assert third_party_requests == []
    assert problems == []


def test_card_purchase_through_the_hosted_page(
    browser, fake_stripe, live_server, screenshot, third_party_requests
):
    context = browser.new_context()
    page = context.new_page()
    watch_requests(page, third_party_requests)
    try:
        order_url = _order_ebook(page, live_server.url, re.compile("^Card"))
        # The browser really follows the 303 to the hosted page: CSP form-action allows it.
        page.get_by_role("button", name="Pay by card").click()
        assert page.url.startswith(fake_stripe.api_base + "/pay/cs_test_"), page.url
        assert "Pay 799 EUR" in page.inner_text("body")
        screenshot(page, "card-hosted")
        page.get_by_role("button", name="Pay").click()

        # Back at the shop: processing until Stripe's signed webhook arrives.
        assert page.url == order_url, page.url
        main = page.inner_text("main")
        assert "Stripe is confirming your payment" in main
        assert "Payment processing" in main and "Awaiting payment" in main
        screenshot(page, "card-returned")
        problems = axe_problems(page)

        [event] = [e for e in fake_stripe.events if e.type == "checkout.session.completed"]
        request = urllib.request.Request(
            f"{live_server.url}/webhooks/stripe",
            data=event.payload,
            headers={"Stripe-Signature": event.header, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        from tests.stripe.conftest import run_event_worker

        run_event_worker(live_server.app)  # `shop worker` applies what the endpoint stored

        page.reload()
        main = page.inner_text("main")
        assert "Status: Paid" in main and "Pay by card" not in main
        screenshot(page, "card-paid")
    finally:
        context.close()
        live_server.app.extensions["shop.payment_methods"]["card"].close()
    with live_server.app.extensions["shop.db"].job_session() as s:
        order = s.scalar(select(Order))
        assert (order.status, order.amount_paid, order.payment_method) == ("paid", 799, "card")
    assert third_party_requests == []
    assert problems == []
