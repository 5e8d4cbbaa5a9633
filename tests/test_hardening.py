"""Hardening from the independent review: hostile bytes at the edge, production transport
security, a database that is down, concurrent writers on SQLite, and what a simulated date may do."""

from __future__ import annotations

import threading

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from shop.orders.models import Order
from tests.browser import Browser
from tests.conftest import make_test_app

PROD_KEY = "VJYXYSuqGqYv5IEqzRpeYpzM-bUVkNRvDWhmmE4ojtg="


@pytest.mark.parametrize(
    "url,status",
    [
        ("/products/%00", 404),
        ("/products/tote%00bag", 404),
        ("/orders/%0d%0a", 404),
        ("/?q=%00", 400),
        ("/?q=tote%1b[31m", 400),
        ("/?page=1%00", 400),
        ("/cart?x=%7f", 400),
    ],
)
def test_control_characters_at_the_edge_are_refused(client, url, status):
    response = client.get(url)
    assert response.status_code == status
    assert "Something went wrong" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "field,value",
    [
        ("name", "Ada\x00Lovelace"),
        ("street", "1 Harbour\r\nRoad"),
        ("city", "Ber\x1blin"),
        ("postal_code", "101\x7f15"),
        ("name", "Ada \u202eecalevoL"),
        ("email", "ada\u2066@example.org"),
    ],
)
def test_contact_fields_refuse_control_characters(client, database, field, value):
    b = Browser(client)
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    b.get("/checkout")
    fields = {
        "email": "ada@example.org",
        "name": "Ada Lovelace",
        "street": "1 Harbour Road",
        "postal_code": "10115",
        "city": "Berlin",
        "country": "DE",
        field: value,
    }
    page = b.submit(b.form("main form"), fields, button="Place order", expect=400)
    assert "control or direction characters" in page.text
    with database.job_session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


def test_production_sends_hsts_and_a_host_only_session_cookie(db_url, tmp_path):
    app = make_test_app(
        db_url, tmp_path / "i", env="production", demo_payments=False, data_key=PROD_KEY
    )
    from shop.demo import seed_demo

    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    client = app.test_client()
    page = client.get("/products/tote-bag", base_url="https://shop.example")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("__Host-shop_session=") and "Secure" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
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
    assert response.status_code == 303  # the session (and its CSRF token) came back
    app.extensions["shop.db"].dispose()


def test_development_sends_no_hsts(client):
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_database_down_is_a_calm_503(tmp_path):
    app = make_test_app(
        "postgresql+psycopg://postgres@127.0.0.1:9/none", tmp_path / "i", catalog_cache_seconds=0
    )
    app.config["TESTING"] = False
    client = app.test_client()
    for url in ("/", "/products/tote-bag", "/orders/" + "A" * 43, "/cart"):
        response = client.get(url)
        if url == "/cart" and response.status_code == 200:
            continue  # the cart lives in the cookie: it may not need the database at all
        assert response.status_code == 503, url
        text = response.get_data(as_text=True)
        assert "temporarily unavailable" in text and "Traceback" not in text
        assert response.headers.get("Retry-After")
    app.extensions["shop.db"].dispose()


def test_sqlite_concurrent_orders_and_user_creation_do_not_lock(tmp_path, sqlite_template):
    """Writers start with BEGIN IMMEDIATE and wait (busy timeout) instead of failing."""
    import shutil

    from shop.admin import auth
    from shop.demo import seed_demo
    from tests.privacy.helpers import place

    shutil.copyfile(sqlite_template, tmp_path / "shop.sqlite3")
    app = make_test_app(f"sqlite:///{tmp_path / 'shop.sqlite3'}", tmp_path / "i")
    database = app.extensions["shop.db"]
    seed_demo(database, app.extensions["shop.settings"])
    errors: list[BaseException] = []

    def orders() -> None:
        for _ in range(8):
            try:
                with database.job_session(write_lock=True) as s:  # as a checkout request
                    place(s, "EBOOK-SMALL")
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    def users(n: int) -> None:
        try:
            with database.job_session(write_lock=True) as s:  # as `shop admin create-user`
                auth.create_user(s, f"clerk{n}", "a long enough passphrase 123")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=orders) for _ in range(4)]
    threads += [threading.Thread(target=users, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with database.job_session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 32
    database.dispose()
