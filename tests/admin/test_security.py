"""Every admin route needs a signed-in merchant; every admin POST needs the CSRF token;
admin pages follow the CSP (no inline script or style)."""

from __future__ import annotations

import re

from flask import url_for

from tests.browser import Browser

PUBLIC = {"admin.login", "admin.login_second_factor"}


def _admin_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/admin")]
    assert len(rules) >= 20, "the admin blueprint is not registered"
    return rules


def _url(app, rule) -> str:
    values = {}
    for arg in rule.arguments:
        converter = rule._converters[arg].__class__.__name__
        values[arg] = 1 if converter == "IntegerConverter" else "2026-000001"
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def _csrf(client) -> str:
    page = Browser(client).get("/admin/login")
    return page.soup.find("input", attrs={"name": "csrf_token"})["value"]


def test_every_admin_route_requires_sign_in(app, client, demo_catalog, merchant):
    token = _csrf(client)  # a valid token, so it is the sign-in check that refuses, not CSRF
    checked = 0
    for rule in _admin_rules(app):
        url = _url(app, rule)
        for method in sorted(rule.methods):  # GET, HEAD, OPTIONS and POST: every one
            response = client.open(url, method=method, data={"csrf_token": token})
            if rule.endpoint in PUBLIC:
                assert response.status_code in (200, 303, 400, 401), (method, url)
                continue
            checked += 1
            assert response.status_code in (302, 303, 401, 403), (method, url, response.status_code)
            if response.status_code in (302, 303):
                assert response.headers["Location"].startswith("/admin/login"), (method, url)
    assert checked >= 20
    assert {r.endpoint for r in _admin_rules(app) if r.endpoint in PUBLIC} == PUBLIC


def test_a_cookie_signed_with_another_key_does_not_sign_in(app, client, merchant, tmp_path):
    from tests.conftest import make_test_app

    other = make_test_app(
        app.extensions["shop.settings"].database_url,
        tmp_path / "other",
        secret_key="another-secret-key-that-is-long-enough-987654",
    )
    with other.test_request_context():
        from flask import session

        forged = other.session_interface.get_signing_serializer(other).dumps(
            {"admin": {"uid": merchant, "v": 1, "at": 9e12, "seen": 9e12}}
        )
        assert session is not None
    other.extensions["shop.db"].dispose()
    client.set_cookie("shop_session", forged)
    assert client.get("/admin").status_code == 303
    client.set_cookie("shop_session", '{"admin": {"uid": 1, "v": 1}}')
    assert client.get("/admin/products").status_code == 303


def test_every_admin_post_needs_the_csrf_token(app, admin):
    client = admin.client
    posts = [r for r in _admin_rules(app) if "POST" in r.methods]
    assert len(posts) >= 15
    for rule in posts:
        url = _url(app, rule)
        response = client.post(url, data={"username": "merchant", "password": "x" * 20})
        assert response.status_code == 400, (url, response.status_code)
        assert "Form expired" in response.get_data(as_text=True)
    assert client.get("/admin").status_code == 200  # still signed in: nothing changed


def test_admin_pages_follow_the_csp(app, admin):
    b = admin
    from tests.admin.conftest import buy

    buy(b.client)
    pages = [
        "/admin",
        "/admin/orders",
        "/admin/tasks",
        "/admin/products",
        "/admin/products/new",
        "/admin/products/1",
        "/admin/products/1/variants/1",
        "/admin/account",
        "/admin/orders/" + b.get("/admin/orders").soup.select_one("tbody th a").get_text(),
        "/admin/bookkeeping",
        "/admin/legal",
        "/admin/legal/imprint",
        "/admin/settings",
        "/admin/settings/tax",
        "/admin/settings/shipping",
    ]
    for url in pages:
        page = b.get(url)
        csp = page.response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp
        assert page.response.headers["Cache-Control"] == "no-store"
        assert "<script" not in page.html and not re.search(r"\sstyle=", page.html), url
        assert "<style" not in page.html
        assert page.soup.find("main") is not None and page.soup.find("h1") is not None
        ids = [e["id"] for e in page.soup.select("[id]") if e.get("type") != "hidden"]
        assert len(ids) == len(set(ids)), (url, sorted(i for i in ids if ids.count(i) > 1))
        for control in page.soup.select("main input, main select, main textarea"):
            if control.get("type") in ("hidden", "submit"):
                continue
            assert page.soup.find("label", attrs={"for": control.get("id")}), (url, control)


def test_logins_are_not_cached_or_indexed(client):
    response = client.get("/admin/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
