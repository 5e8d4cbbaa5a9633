"""A customer's whole journey through the pages, as a browser would make it."""

from __future__ import annotations

import re

from sqlalchemy import select

from shop.catalog.models import Variant
from shop.orders.models import Order, OrderContact
from shop.privacy.store import read_contact
from tests.browser import Browser
from tests.conftest import make_test_app


def _stock(database, sku: str) -> int | None:
    with database.job_session() as s:
        return s.scalar(select(Variant).where(Variant.sku == sku)).available


def test_purchase_end_to_end_with_demo_payment(client, database):
    b = Browser(client)
    home = b.get("/")
    assert "Harbour at Dawn" in home.text
    b.follow("Harbour at Dawn")
    product = b.page
    assert "A3" in product.text and "€39.00" in product.text
    b.submit(
        b.form("form[action$='/cart/add/harbour-at-dawn']"),
        {"variant": b.option_value("A3"), "quantity": "2"},
    )
    assert "Added 2 × Harbour at Dawn" in " ".join(b.page.messages())
    assert "€78.00" in b.page.text

    # Change the quantity, then add and remove a second line.
    b.submit(b.form("form[action$='/cart/update']"), {"quantity": "1"})
    assert "Subtotal (incl. VAT) €39.00" in b.page.text
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.submit(b.form("form[action$='/cart/remove']", index=1))
    assert "Small Hours" not in b.page.soup.select_one("table.lines").get_text()

    b.follow("Check out")
    checkout = b.page
    for name, token in [
        ("email", "email"),
        ("name", "name"),
        ("street", "street-address"),
        ("postal_code", "postal-code"),
        ("city", "address-level2"),
        ("country", "country"),
    ]:
        element = checkout.soup.find(attrs={"name": name})
        assert element["autocomplete"] == token
        assert checkout.soup.find("label", attrs={"for": element["id"]}) is not None
    order_page = b.submit(
        b.form("main form"),
        {
            "email": "ada@example.org",
            "name": "Ada Lovelace",
            "street": "1 Harbour Road",
            "postal_code": "10115",
            "city": "Berlin",
            "country": "DE",
        },
        button="Place order",
    )
    assert re.fullmatch(r"/orders/[A-Za-z0-9_-]{43}", order_page.url)
    assert "Awaiting payment" in order_page.text
    # €39.00 print + €4.90 shipping (below the €50 free-shipping threshold), 19 % VAT included.
    assert "Total €43.90" in order_page.text
    assert "Includes VAT 19% on €43.90 (net €36.89) €7.01" in order_page.text
    assert _stock(database, "PRINT-HARB-A3") == 4

    paid = b.submit(b.form(".demo-pay form"))
    assert "Status: Paid" in paid.text
    assert "Payment received (demo)" in " ".join(paid.messages())
    with database.job_session() as s:
        order = s.scalar(select(Order))
        assert (order.status, order.amount_paid, order.total) == ("paid", 4390, 4390)
        assert order.number.endswith("-000001")
        contact = read_contact(s, order)  # stored encrypted (shop/privacy/store.py)
        assert (contact.email, contact.city) == ("ada@example.org", "Berlin")
    # The cart was emptied by the purchase.
    assert "Your cart is empty" in b.get("/cart").text


def test_digital_only_checkout_asks_no_address(client, database):
    b = Browser(client)
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    page = b.get("/checkout")
    assert page.soup.find(attrs={"name": "street"}) is None
    assert page.soup.find(attrs={"name": "name"}) is None
    assert "Digital goods need no address" in page.text
    order_page = b.submit(
        b.form("main form"), {"country": "FR", "digital_consent": "y"}, button="Place order"
    )
    assert "Total €7.99" in order_page.text
    assert "the only way back to it" in order_page.text  # no email given
    with database.job_session() as s:
        order = s.scalar(select(Order))
        assert (order.country, order.requires_shipping, order.shipping) == ("FR", False, 0)
        assert s.get(OrderContact, order.id) is None  # nothing personal was stored
    assert _stock(database, "EBOOK-SMALL") is None  # unlimited stays unlimited


def test_free_shipping_threshold_and_zone_rates(client):
    b = Browser(client)
    b.get("/products/house-espresso")
    b.submit(
        b.form("form[action$='/cart/add/house-espresso']"),
        {"variant": b.option_value("1 kg"), "quantity": "2"},
    )
    page = b.get("/checkout")
    assert "Standard parcel (Germany) — free" in page.text  # €64 is over the €50 threshold
    # Choosing another country and refreshing shows that zone's rates, without JavaScript.
    page = b.submit(b.form("main form"), {"country": "FR"}, button="Update shipping options")
    assert "Tracked parcel (European Union) — €12.90" in page.text
    assert (
        "Germany"
        not in page.soup.select_one(
            "fieldset:has(legend:-soup-contains('Shipping method'))"
        ).get_text()
    )
    # Mixed VAT rates: 7 % on coffee and 19 % on shipping, each shown.
    assert "Includes VAT 19% on €12.90" in page.text
    assert "Includes VAT 7% on €64.00" in page.text


def test_physical_checkout_requires_address(client, database):
    b = Browser(client)
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    b.get("/checkout")
    page = b.submit(
        b.form("main form"), {"name": "", "street": ""}, button="Place order", expect=400
    )
    assert "Needed to ship your order." in page.text
    with database.job_session() as s:
        assert s.scalar(select(Order)) is None


def test_search_and_pagination(client, db_url, tmp_path):
    b = Browser(client)
    page = b.get("/?q=print")
    titles = [h.get_text() for h in page.soup.select(".card h2")]
    # Title or description matches ("screen printed" tote bag); the coffee does not.
    assert set(titles) == {
        "Harbour at Dawn — art print",
        "Forest Floor — art print",
        "Night Train — art print",
        "Field Notes on Printmaking — e-book",
        "Canvas tote bag",
    }
    assert [h.get_text() for h in b.get("/?q=ART+print+harbour").soup.select(".card h2")] == [
        "Harbour at Dawn — art print"
    ]
    assert b.get("/?q=%25").soup.select(".card") == []  # LIKE wildcards are literal
    assert "No products found" in b.get("/?q=zzzz-nothing").text
    small_pages = make_test_app(db_url, tmp_path / "instance", products_per_page=3)
    b = Browser(small_pages.test_client())
    first = b.get("/")
    assert len(first.soup.select(".card")) == 3 and "Previous" not in first.text
    b.follow("Next")
    second = [h.get_text() for h in b.page.soup.select(".card h2")]
    assert len(second) == 3 and not set(second) & {
        h.get_text() for h in first.soup.select(".card h2")
    }
    b.follow("Previous")
    assert [h.get_text() for h in b.page.soup.select(".card h2")] == [
        h.get_text() for h in first.soup.select(".card h2")
    ]
    # Links from before keyset paging go to the first page; garbage is no page of ours.
    moved = small_pages.test_client().get("/?page=99&q=print")
    assert moved.status_code == 301 and moved.headers["Location"] == "/?q=print"
    b.get("/?page=abc", expect=404)
    b.get("/?after=abc", expect=400)


def test_cart_explains_price_change_and_sell_out(client, database):
    b = Browser(client)
    b.get("/products/forest-floor")
    b.submit(
        b.form("form[action$='/cart/add/forest-floor']"),
        {"variant": b.option_value("A3"), "quantity": "2"},
    )
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    with database.job_session() as s:
        s.scalar(select(Variant).where(Variant.sku == "PRINT-FOR-A3")).on_hand = 1
        s.scalar(select(Variant).where(Variant.sku == "TOTE-NAT")).price = 1800
    page = b.get("/checkout")  # redirected back to the cart with explanations
    assert page.url == "/cart"
    messages = " ".join(page.messages())
    assert "Only 1 of “Forest Floor — art print (A3)” left" in messages
    assert "The price of “Canvas tote bag (Natural)” has changed" in messages
    assert "€18.00" in page.text
    # Having been told, the customer can now check out at the new terms.
    assert b.get("/checkout").url == "/checkout"


def test_cached_product_page_never_sells_what_is_gone(client, database, db_url, tmp_path):
    b = Browser(client)
    assert "only 4 left" in b.get("/products/tote-bag").text
    with database.job_session() as s:
        s.scalar(select(Variant).where(Variant.sku == "TOTE-BLK")).on_hand = 0
    page = b.get("/products/tote-bag")  # served from the short-lived catalog cache
    assert "only 4 left" in page.text
    page = b.submit(
        b.form("form[action$='/cart/add/tote-bag']"),
        {"variant": b.option_value("Black")},
        expect=409,
    )
    assert "Sold out." in page.text  # adding to the cart reads the database, not the cache
    uncached = Browser(
        make_test_app(db_url, tmp_path / "i2", catalog_cache_seconds=0).test_client()
    )
    assert "sold out" in uncached.get("/products/tote-bag").text


def _buy_tote_in_germany(client) -> Browser:
    b = Browser(client)
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    b.get("/checkout")
    return b


def test_shipping_charged_is_the_shipping_shown(client, database, db_url, tmp_path):
    """Shipping rates are shared between requests as briefly as the catalog; the checkout page
    and placing the order use one snapshot, so a rate changed meanwhile is never charged
    unseen. (The admin clears that cache when it saves, see tests/admin/test_settings.py.)"""
    from shop.cart.models import ShippingRate

    b = _buy_tote_in_germany(client)  # caches the zones: Standard parcel €4.90
    assert "Standard parcel (Germany) — €4.90" in " ".join(b.page.text.split())
    with database.job_session() as s:
        s.scalar(select(ShippingRate).where(ShippingRate.name == "Standard parcel")).price = 690
    page = b.submit(
        b.form("main form"),
        {"name": "Ada", "street": "1 Road", "postal_code": "10115", "city": "Berlin"},
        button="Place order",
    )
    with database.job_session() as s:
        order = s.scalar(select(Order))
        assert (order.shipping_method, order.shipping) == ("Standard parcel", 490)
    assert "/orders/" in page.url

    fresh = make_test_app(db_url, tmp_path / "fresh", catalog_cache_seconds=0)
    page = _buy_tote_in_germany(fresh.test_client()).page
    assert "Standard parcel (Germany) — €6.90" in " ".join(page.text.split())
    fresh.extensions["shop.db"].dispose()
