"""The merchant in a real browser: sign in, create a product with a photo, see it in the shop,
ship an order a customer placed through the storefront; axe checks every admin page visited."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import select

from shop.admin import auth
from shop.catalog.models import Product, Variant
from shop.orders.models import Order
from tests.e2e.conftest import watch_requests
from tests.e2e.test_payments_browser import axe_problems

PASSWORD = "correct horse battery staple"


@pytest.fixture
def merchant(live_server, monkeypatch):
    """A merchant account; argon2 with tiny costs (tests/admin/conftest.py explains why)."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", cheap)
    monkeypatch.setattr(auth, "_DUMMY_HASH", cheap.hash("dummy password"))
    with live_server.app.extensions["shop.db"].job_session() as session:
        auth.create_user(session, "merchant", PASSWORD)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (180, 120, 60)).save(out, "PNG")
    return out.getvalue()


def test_merchant_creates_a_product_and_ships_an_order(
    browser, live_server, merchant, screenshot, third_party_requests
):
    base = live_server.url
    problems: dict[str, list[str]] = {}
    admin = browser.new_context().new_page()
    watch_requests(admin, third_party_requests)

    admin.goto(base + "/admin")
    assert admin.url.startswith(base + "/admin/login")
    problems["login"] = axe_problems(admin)
    admin.get_by_label("User name").fill("merchant")
    admin.get_by_label("Password").fill(PASSWORD)
    admin.get_by_role("button", name="Sign in").click()
    assert admin.url == base + "/admin", admin.url
    problems["dashboard"] = axe_problems(admin)
    screenshot(admin, "admin-dashboard")

    admin.get_by_role("link", name="Products", exact=True).first.click()
    problems["products"] = axe_problems(admin)
    admin.get_by_role("link", name="New product").click()
    product_form = admin.locator("main form").first
    product_form.locator("[name=title]").fill("Linen apron")
    product_form.locator("[name=description]").fill("Heavy washed linen.")
    product_form.locator("[name=kind]").select_option("physical")
    admin.get_by_role("button", name="Save product").click()
    assert "Product created." in admin.inner_text("main")
    product_url = admin.url

    variant = admin.locator("form[action$='/variants']")
    variant.locator("[name=sku]").fill("APRON")
    variant.locator("[name=label]").fill("One size")
    variant.locator("[name=price]").fill("30.00")
    variant.locator("[name=stock]").fill("3")
    admin.get_by_role("button", name="Save variant").click()
    assert "Variant added." in admin.inner_text("main")

    admin.goto(product_url)
    images = admin.locator("form[action$='/images']")
    images.locator("[name=image]").set_input_files(
        {"name": "apron.png", "mimeType": "image/png", "buffer": _png()}
    )
    images.locator("[name=alt]").fill("A linen apron")
    admin.get_by_role("button", name="Upload image").click()
    assert "Image added." in admin.inner_text("main"), admin.inner_text("main")[:500]
    problems["product"] = axe_problems(admin)
    screenshot(admin, "admin-product")
    with live_server.app.extensions["shop.db"].job_session() as s:
        product = s.scalar(select(Product).where(Product.slug == "linen-apron"))
        assert product.active and len(product.images) == 1
        image = product.images[0].filename
        assert s.scalar(select(Variant).where(Variant.sku == "APRON")).available == 3

    # A customer, without JavaScript, finds it in the shop (with the photo) and buys it.
    customer_context = browser.new_context(java_script_enabled=False)
    customer = customer_context.new_page()
    watch_requests(customer, third_party_requests)
    customer.goto(base + "/")
    customer.get_by_role("link", name=re.compile("Linen apron")).first.click()
    assert customer.url == base + "/products/linen-apron"
    assert "€30.00" in customer.inner_text("main")
    photo = customer.locator(f"main img[src*='{image}']")
    assert photo.count() >= 1 and photo.first.get_attribute("alt") == "A linen apron"
    screenshot(customer, "shop-product")
    customer.get_by_role("button", name="Add to cart").click()
    customer.get_by_role("link", name="Check out").click()
    customer.get_by_label("Full name").fill("Grace Hopper")
    customer.get_by_label("Street and house number").fill("2 Dock Street")
    customer.get_by_label("Postal code").fill("20095")
    customer.get_by_label("City").fill("Hamburg")
    customer.get_by_role("button", name="Place order").click()
    order_url = customer.url
    customer.get_by_role("button", name=re.compile("Pay now")).click()
    assert "Status: Paid" in customer.inner_text("main")
    with live_server.app.extensions["shop.db"].job_session() as s:
        number = s.scalar(select(Order.number))

    # The merchant ships it.
    admin.get_by_role("link", name="Orders", exact=True).first.click()
    problems["orders"] = axe_problems(admin)
    admin.get_by_role("link", name=number, exact=True).click()
    main = admin.inner_text("main")
    assert "Grace Hopper" in main and "20095 Hamburg" in main
    problems["order"] = axe_problems(admin)
    admin.get_by_label("Tracking reference (optional)").fill("DHL 00340434")
    admin.get_by_role("button", name="Mark shipped").click()
    assert "Marked as shipped." in admin.inner_text("main")
    problems["order shipped"] = axe_problems(admin)
    screenshot(admin, "admin-order-shipped")
    with live_server.app.extensions["shop.db"].job_session() as s:
        assert s.scalar(select(Order.status)) == "fulfilled"
        assert s.scalar(select(Variant).where(Variant.sku == "APRON")).available == 2

    customer.goto(order_url)
    assert "Tracking reference: DHL 00340434" in customer.inner_text("main")
    screenshot(customer, "shop-order-shipped")
    customer_context.close()
    admin.context.close()
    assert third_party_requests == []
    assert {name: p for name, p in problems.items() if p} == {}
