"""Placing an order: once per checkout, and only for the amount the customer saw (issue 14)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from shop.catalog.models import Variant
from shop.demo import seed_demo
from shop.orders.models import Order
from tests.browser import Browser
from tests.conftest import make_test_app

COOKIE = "shop_session"
ADDRESS = {
    "name": "Ada Lovelace",
    "street": "1 Harbour Road",
    "postal_code": "10115",
    "city": "Berlin",
}


def _at_checkout(client, slug: str = "tote-bag", quantity: str = "1") -> Browser:
    b = Browser(client)
    b.get(f"/products/{slug}")
    b.submit(b.form(f"form[action$='/cart/add/{slug}']"), {"quantity": quantity})
    b.get("/checkout")
    return b


def _form_data(b: Browser, fields: dict[str, str], button: str = "Place order") -> dict[str, str]:
    """What the browser sends for the checkout form (as Browser.submit builds it)."""
    form = b.form("main form")
    data = {}
    for el in form.find_all(["input", "select"]):
        name = el.get("name")
        if not name or el.get("type") == "submit":
            continue
        if el.get("type") in ("radio", "checkbox"):
            if el.has_attr("checked"):
                data[name] = el.get("value", "on")
        elif el.name == "select":
            chosen = el.find("option", selected=True) or el.find("option")
            data[name] = chosen.get("value")
        else:
            data[name] = el.get("value", "")
    data.update(fields)
    data["submit"] = button
    return data


def _orders(database) -> int:
    with database.job_session() as s:
        return s.scalar(select(func.count()).select_from(Order))


def test_posting_the_same_checkout_again_places_no_second_order(client, database):
    b = _at_checkout(client)
    data = _form_data(b, {"country": "DE", **ADDRESS})
    old_cookie = client.get_cookie(COOKIE).value
    first = client.post("/checkout", data=data)
    assert first.status_code == 303 and "/orders/" in first.location
    # The browser resends the form with the cookie it had (back button, double click, retry).
    client.set_cookie(COOKIE, old_cookie)
    again = client.post("/checkout", data=data)
    assert again.status_code == 303 and again.location == first.location
    assert _orders(database) == 1
    with database.job_session() as s:
        tote = s.scalar(select(Variant).where(Variant.sku == "TOTE-NAT"))
        assert tote.reserved == 1
    # The cart of that checkout is spent: the checkout page no longer offers to order it again.
    client.set_cookie(COOKIE, old_cookie)
    page = client.get("/checkout", follow_redirects=True)
    assert "already placed" in page.get_data(as_text=True)
    assert _orders(database) == 1


def test_the_same_cart_posted_three_times_at_once_makes_one_order(pg_url, tmp_path):
    app = make_test_app(pg_url, tmp_path / "instance")
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    client = app.test_client()
    b = _at_checkout(client)
    data = _form_data(b, {"country": "DE", **ADDRESS})
    cookie = client.get_cookie(COOKIE).value
    barrier = threading.Barrier(3)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post() -> None:
        c = app.test_client()
        c.set_cookie(COOKIE, cookie)
        barrier.wait()
        r = c.post("/checkout", data=data)
        with lock:
            results.append((r.status_code, r.location or ""))

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    database = app.extensions["shop.db"]
    assert len(results) == 3
    assert {status for status, _ in results} == {303}
    assert len({location for _, location in results}) == 1, results
    c = app.test_client()
    c.set_cookie(COOKIE, cookie)
    assert c.post("/checkout", data=data).location == results[0][1]  # and once more, later
    assert _orders(database) == 1
    with database.job_session() as s:
        assert s.scalar(select(Variant.reserved).where(Variant.sku == "TOTE-NAT")) == 1
    database.dispose()


def test_changing_the_country_without_updating_shows_the_new_total_first(client, database):
    b = _at_checkout(client)
    page = b.page
    assert "€20.90" in page.text  # €16.00 bag + €4.90 shipping to Germany
    page = b.submit(
        b.form("main form"), {"country": "NL", **ADDRESS}, button="Place order", expect=409
    )
    text = " ".join(page.text.split())
    assert _orders(database) == 0  # before: placed at €28.90 the customer never saw
    assert "€28.90" in text and "Netherlands" in text
    assert "The total is now €28.90 (was €20.90)" in text
    page = b.submit(b.form("main form"), button="Place order")
    assert "/orders/" in page.url
    with database.job_session() as s:
        order = s.scalar(select(Order))
        assert (order.country, order.shipping, order.total) == ("NL", 1290, 2890)


def test_a_price_changed_since_the_page_was_shown_is_not_charged(client, database):
    b = _at_checkout(client)
    with database.job_session() as s:
        s.scalar(select(Variant).where(Variant.sku == "TOTE-NAT")).price = 1800
    page = b.submit(b.form("main form"), {"country": "DE", **ADDRESS}, button="Place order")
    assert _orders(database) == 0
    assert "price" in " ".join(page.messages()).lower()


def test_a_shipping_rate_changed_since_the_page_was_shown_is_shown_first(db_url, tmp_path):
    from shop.cart.models import ShippingRate

    app = make_test_app(db_url, tmp_path / "fresh", catalog_cache_seconds=0)
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    database = app.extensions["shop.db"]
    b = _at_checkout(app.test_client())
    with database.job_session() as s:
        s.scalar(select(ShippingRate).where(ShippingRate.name == "Standard parcel")).price = 690
    page = b.submit(
        b.form("main form"), {"country": "DE", **ADDRESS}, button="Place order", expect=409
    )
    text = " ".join(page.text.split())
    assert (
        "The total is now €22.90 (was €20.90). Shipping (Standard parcel) costs €6.90 now." in text
    )
    assert _orders(database) == 0
    b.submit(b.form("main form"), button="Place order")
    with database.job_session() as s:
        assert s.scalar(select(Order.total)) == 2290
    database.dispose()


def test_place_order_refuses_a_total_it_did_not_show(demo_catalog, database):
    from shop.orders import service
    from tests.test_orders import _place

    with database.job_session() as s:
        try:
            _place(s, "TOTE-NAT", 1, shown_total=1)
        except service.TotalChanged as exc:
            assert (exc.shown, exc.total) == (1, 2090)
        else:
            raise AssertionError("placed an order for a total nobody saw")
    with database.job_session() as s:
        assert s.scalar(select(Variant.reserved).where(Variant.sku == "TOTE-NAT")) == 0
        assert _orders(database) == 0
