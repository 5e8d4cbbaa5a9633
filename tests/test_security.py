"""Headers, cookies, CSRF, and bad input: a clear 4xx, never a 5xx."""

from __future__ import annotations

import itertools
import re

import pytest
from bs4 import BeautifulSoup

from tests.browser import Browser
from tests.conftest import make_test_app

GARBAGE = [
    "",
    "0",
    "-1",
    "99999999999999999999",
    "abc",
    "1e9",
    "<script>",
    "\x00",
    "é" * 500,
    "' OR 1=1 --",
    "[]",
    "{}",
    " ",
    "NaN",
]


def test_security_headers_on_every_page(client):
    for url in ["/", "/products/tote-bag", "/cart", "/checkout", "/nope"]:
        response = client.get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "<script" not in response.get_data(as_text=True)  # no inline script anywhere


def test_pages_reference_no_third_party_host(client):
    b = Browser(client)
    for url in ["/", "/products/harbour-at-dawn", "/cart"]:
        page = b.get(url)
        for tag, attr in [("link", "href"), ("img", "src"), ("script", "src"), ("form", "action")]:
            for element in page.soup.find_all(tag):
                value = element.get(attr, "")
                assert not re.match(r"^(https?:)?//", value), (url, value)


def test_cookie_flags_in_production(db_url, tmp_path):
    app = make_test_app(
        db_url,
        tmp_path / "i",
        env="production",
        demo_payments=False,
        data_key="VJYXYSuqGqYv5IEqzRpeYpzM-bUVkNRvDWhmmE4ojtg=",
    )  # production needs one
    from shop.demo import seed_demo

    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    client = app.test_client()
    page = client.get("/products/tote-bag", base_url="https://shop.example")
    cookie = page.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    soup = BeautifulSoup(page.text, "html.parser")
    response = client.post(
        "/cart/add/tote-bag",
        base_url="https://shop.example",
        headers={"Referer": "https://shop.example/products/tote-bag"},
        data={
            "csrf_token": soup.find(attrs={"name": "csrf_token"})["value"],
            "variant": soup.find(attrs={"name": "variant"})["value"],
            "quantity": "1",
        },
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_post_without_csrf_token_is_refused(client):
    response = client.post("/cart/add/tote-bag", data={"variant": "1", "quantity": "1"})
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)


def test_unknown_things_are_404(client):
    assert client.get("/products/no-such-thing").status_code == 404
    assert client.get("/orders/not-a-real-token").status_code == 404
    assert client.get("/orders/" + "x" * 500).status_code == 404
    assert client.get("/orders/abc%00def").status_code == 404
    assert client.get("/media/../../etc/passwd").status_code == 404


def test_tampered_session_cookie_is_ignored(client):
    client.set_cookie("shop_session", "eyJjYXJ0IjpbWzEsOTk5LDBdXX0.forged.signature")
    response = client.get("/cart")
    assert response.status_code == 200
    assert "Your cart is empty" in response.get_data(as_text=True)


def _post_forms(app):
    """Every POST route of the app, with a real path for each."""
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or set()):
            continue
        values = {
            arg: {"slug": "tote-bag", "token": "TOKEN"}.get(arg, "x") for arg in rule.arguments
        }
        # Integer URL parts (admin ids) cannot be built from "x".
        values.update(
            {
                arg: 1
                for arg, conv in rule._converters.items()
                if type(conv).__name__ == "IntegerConverter"
            }
        )
        yield rule.endpoint, rule, values


def test_malformed_data_to_every_form_never_500(client, app):
    b = Browser(client)
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    b.get("/checkout")
    order_page = b.submit(
        b.form("main form"),
        {"name": "N", "street": "S", "postal_code": "1", "city": "C", "country": "DE"},
        button="Place order",
    )
    token = order_page.url.rsplit("/", 1)[1]
    csrf = order_page.soup.find("input", attrs={"name": "csrf_token"})["value"]
    field_names = [
        "variant",
        "quantity",
        "variant_id",
        "email",
        "name",
        "street",
        "postal_code",
        "city",
        "country",
        "shipping_rate",
        "payment_method",
        "submit",
        "refresh",
    ]
    checked = set()
    with app.test_request_context():
        from flask import url_for

        routes = [
            (
                endpoint,
                url_for(endpoint, **{k: (token if v == "TOKEN" else v) for k, v in values.items()}),
            )
            for endpoint, _rule, values in _post_forms(app)
        ]
    # Also a product that does not exist and an order token that is wrong.
    routes += [("cart.add", "/cart/add/nope"), ("demo.pay", "/orders/wrong/pay/demo")]
    assert {"cart.add", "cart.update", "cart.remove", "checkout.checkout", "demo.pay"} <= {
        e for e, _ in routes
    }
    for (endpoint, url), garbage in itertools.product(routes, GARBAGE):
        for with_token in (True, False):
            data = {name: garbage for name in field_names}
            if with_token:
                data["csrf_token"] = csrf
            response = client.post(url, data=data)
            assert response.status_code < 500, (url, garbage, response.status_code)
            checked.add(endpoint)
        # Non-form bodies too.
        response = client.post(url, data=b"\xff\xfe garbage", content_type="application/json")
        assert response.status_code < 500, (url, "raw body")
    assert client.post("/cart/add/tote-bag", data={"x": "y" * 2_000_000}).status_code == 413
    assert len(checked) >= 5


@pytest.mark.parametrize("quantity", ["-1", "0", "100", "99999999999", "1.5", ""])
def test_bad_quantities_are_explained(client, quantity):
    b = Browser(client)
    b.get("/products/tote-bag")
    page = b.submit(
        b.form("form[action$='/cart/add/tote-bag']"), {"quantity": quantity}, expect=400
    )
    assert page.soup.select(".error"), page.text
    assert "Your cart is empty" in b.get("/cart").text


def test_cannot_add_more_than_stock(client):
    b = Browser(client)
    b.get("/products/tote-bag")
    page = b.submit(
        b.form("form[action$='/cart/add/tote-bag']"),
        {"variant": b.option_value("Black"), "quantity": "5"},
        expect=409,
    )
    assert "Only 4 left in stock." in page.text


def test_healthz_checks_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {
        "status": "ok",
        "database": "ok",
        "worker": "missing",
        "worker_last_beat_seconds": None,
    }  # tests/test_workers.py: heartbeat


def test_behind_a_trusted_proxy_the_client_address_is_the_forwarded_one(tmp_path):
    """The sign-in throttle counts per client: behind nginx every request comes from 127.0.0.1."""
    from flask import request

    from tests.conftest import make_test_app

    seen = []
    for proxies in (0, 1):
        app = make_test_app(
            f"sqlite:///{tmp_path / f'p{proxies}.sqlite3'}", tmp_path / "i", trusted_proxies=proxies
        )
        app.add_url_rule("/_addr", "addr", lambda: seen.append(request.remote_addr) or "")
        client = app.test_client()
        client.get(
            "/_addr",
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        app.extensions["shop.db"].dispose()
    assert seen == ["127.0.0.1", "203.0.113.7"]  # believed only when configured
