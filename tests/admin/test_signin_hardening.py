"""Sign-in hardening: hostile next= targets, throttling kept in the database, re-authentication."""

from __future__ import annotations

from tests.admin.conftest import PASSWORD
from tests.browser import Browser


def test_crlf_in_next_after_sign_in_is_not_a_500(client, merchant):
    b = Browser(client)
    b.get("/admin/login")
    form = b.form("main form")
    page = b.submit(
        form,
        {
            "username": "merchant",
            "password": PASSWORD,
            "next": "/admin/orders\r\nSet-Cookie: evil=1",
        },
    )
    assert page.url == "/admin"
    assert client.get("/admin/login?next=/admin%0d%0aX-Evil:1").status_code == 400


import pyotp  # noqa: E402

from tests.admin.conftest import sign_in  # noqa: E402
from tests.admin.test_auth import _enable_totp  # noqa: E402
from tests.conftest import make_test_app  # noqa: E402


def test_failures_count_across_workers(db_url, tmp_path, merchant):
    """Two worker processes (two apps on one database) share one count of failures."""
    first = make_test_app(db_url, tmp_path / "w1")
    second = make_test_app(db_url, tmp_path / "w2")
    for app in (first, second):
        from shop.demo import seed_demo

        seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    for _ in range(3):
        sign_in(first.test_client(), password="wrong password guess", expect=401)
    for _ in range(2):
        sign_in(second.test_client(), password="wrong password guess", expect=401)
    sign_in(second.test_client(), password="another wrong guess", expect=429)
    for app in (first, second):
        app.extensions["shop.db"].dispose()


def test_guessing_never_locks_out_the_owner_with_two_factor(client, merchant):
    b = sign_in(client)
    secret, _codes = _enable_totp(b)
    b.submit(b.form("header form"), button="Sign out")
    for _ in range(8):  # someone else guesses the password
        sign_in(client, password="wrong password guess", expect=None)
    b = sign_in(client)  # the owner: right password ...
    assert b.page.url.startswith("/admin/login/code")
    page = b.submit(
        b.form("main form"), {"code": pyotp.TOTP(secret).at(__import__("time").time() + 30)}
    )
    assert page.url == "/admin"  # ... and a valid code: in, throttled or not


def test_account_changes_need_the_password_and_second_factor_again(client, merchant):
    b = sign_in(client)
    secret, codes = _enable_totp(b)
    page = b.get("/admin/account")
    codes_form = page.soup.select_one("form.codes-form")
    assert codes_form.find(attrs={"name": "codes-password"}) is not None
    refused = b.submit(
        b.form("form.codes-form"),
        {"codes-password": "wrong password guess", "codes-code": codes[0]},
    )
    assert "not correct" in refused.text and "recovery-codes" not in refused.url
    page = b.submit(b.form("form.codes-form"), {"codes-password": PASSWORD, "codes-code": codes[1]})
    assert len(page.soup.select(".codes code")) == 10
    # Turning two-factor authentication off needs a code as well as the password.
    page = b.get("/admin/account")
    page = b.submit(b.form("form.disable-form"), {"disable-password": PASSWORD, "disable-code": ""})
    assert "stays on" in page.text
