"""A customer in a real browser with JavaScript off, and the accessibility check of each page."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import watch_requests

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

SERIOUS = {"serious", "critical"}


def _axe_problems(page) -> list[str]:
    results = axe_module.Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]


def test_demo_purchase_without_javascript(browser, live_server, screenshot, third_party_requests):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    watch_requests(page, third_party_requests)
    page.goto(live_server.url + "/")
    screenshot(page, "catalog")
    page.get_by_role("link", name=re.compile("Harbour at Dawn")).click()
    page.get_by_label(re.compile("A3")).check()
    page.get_by_label("Quantity").fill("2")
    screenshot(page, "product")
    page.get_by_role("button", name="Add to cart").click()
    assert page.url.endswith("/cart")
    screenshot(page, "cart")
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Email (optional)").fill("browser@example.org")
    page.get_by_label("Full name").fill("Grace Hopper")
    page.get_by_label("Street and house number").fill("2 Dock Street")
    page.get_by_label("Postal code").fill("20095")
    page.get_by_label("City").fill("Hamburg")
    screenshot(page, "checkout")
    page.get_by_role("button", name="Place order").click()
    assert re.search(r"/orders/[A-Za-z0-9_-]{43}$", page.url)
    assert "Awaiting payment" in page.inner_text("main")
    screenshot(page, "order-pending")
    page.get_by_role("button", name=re.compile("Pay now")).click()
    assert "Status: Paid" in page.inner_text("main")
    screenshot(page, "order-paid")
    assert third_party_requests == []
    context.close()


def test_pages_have_no_serious_accessibility_violations(browser, live_server):
    context = browser.new_context()
    page = context.new_page()
    problems = {}
    page.goto(live_server.url + "/")
    problems["catalog"] = _axe_problems(page)
    page.goto(live_server.url + "/products/forest-floor")
    problems["product"] = _axe_problems(page)
    page.get_by_role("button", name="Add to cart").click()
    problems["cart"] = _axe_problems(page)
    page.get_by_role("link", name="Check out").click()
    problems["checkout"] = _axe_problems(page)
    page.get_by_role("button", name="Place order").click()  # errors shown: check them too
    problems["checkout with errors"] = _axe_problems(page)
    page.get_by_label("Full name").fill("Ada")
    page.get_by_label("Street and house number").fill("1 Road")
    page.get_by_label("Postal code").fill("10115")
    page.get_by_label("City").fill("Berlin")
    page.get_by_role("button", name="Place order").click()
    problems["order"] = _axe_problems(page)
    context.close()
    assert {name: p for name, p in problems.items() if p} == {}
