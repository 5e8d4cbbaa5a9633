"""Merchant sign-in: accounts from the CLI, argon2id, TOTP and recovery codes, throttling,
session rotation, timeouts and logout."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from shop.admin import auth
from shop.admin.models import AdminRecoveryCode, AdminUser
from shop.cli import cli
from tests.admin.conftest import PASSWORD, sign_in
from tests.browser import Browser


def _cli(app, args, input=None):
    return CliRunner().invoke(cli, args, input=input, obj=ScriptInfo(create_app=lambda: app))


def test_create_user_from_the_cli(app, database, client):
    result = _cli(app, ["admin", "create-user", "Alice", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with database.job_session() as session:
        user = session.scalar(select(AdminUser).where(AdminUser.username == "alice"))
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
    b = sign_in(client, "alice")
    assert b.page.url == "/admin" and "Overview" in b.page.text

    again = _cli(app, ["admin", "create-user", "alice", "--password-stdin"], input=PASSWORD + "\n")
    assert again.exit_code != 0 and "already exists" in again.output
    short = _cli(app, ["admin", "create-user", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "12" in short.output
    bad = _cli(app, ["admin", "create-user", "../x", "--password-stdin"], input=PASSWORD + "\n")
    assert bad.exit_code != 0 and "user name" in bad.output


def test_create_user_prompts_twice(app, database):
    result = _cli(app, ["admin", "create-user", "carol"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output and PASSWORD not in result.output
    mismatch = _cli(
        app,
        ["admin", "create-user", "dave"],
        input=f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert mismatch.exit_code == 0 and "do not match" in mismatch.output


def test_wrong_password_is_refused(client, merchant):
    b = sign_in(client, password="not the password at all", expect=401)
    assert "Wrong user name or password." in b.page.messages()
    b = sign_in(client, username="nobody", expect=401)
    assert b.client.get("/admin").status_code == 303


def test_sign_in_rotates_the_session_and_logout_kills_the_cookie(client, merchant):
    b = Browser(client)
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    before_csrf = b.get("/admin/login").soup.find("input", attrs={"name": "csrf_token"})["value"]
    page = b.submit(b.form("main form"), {"username": "merchant", "password": PASSWORD})
    assert page.url == "/admin"
    after_csrf = page.soup.find("input", attrs={"name": "csrf_token"})["value"]
    assert after_csrf != before_csrf
    assert "Your cart is empty" in b.get("/cart").text  # nothing carried over from before
    stolen = client.get_cookie("shop_session").value

    b.get("/admin")
    b.submit(b.form("header form"), button="Sign out")
    assert b.page.url == "/admin/login"
    assert client.get("/admin").status_code == 303
    client.set_cookie("shop_session", stolen)  # a copy taken before the logout
    response = client.get("/admin")
    assert response.status_code == 303 and "/admin/login" in response.headers["Location"]


def test_idle_and_absolute_timeouts(client, merchant, monkeypatch):
    sign_in(client)
    start = time.time()
    monkeypatch.setattr("shop.admin.session.time.time", lambda: start + 29 * 60)
    assert client.get("/admin").status_code == 200  # active: the idle clock restarts
    monkeypatch.setattr("shop.admin.session.time.time", lambda: start + 29 * 60 + 31 * 60)
    response = client.get("/admin/orders")
    assert response.status_code == 303 and "/admin/login" in response.headers["Location"]

    sign_in(client)
    start = time.time()
    for minutes in range(20, 12 * 60, 20):  # busy all day, never idle
        monkeypatch.setattr("shop.admin.session.time.time", lambda m=minutes: start + m * 60)
        assert client.get("/admin").status_code == 200
    monkeypatch.setattr("shop.admin.session.time.time", lambda: start + 12 * 3600 + 1)
    assert client.get("/admin").status_code == 303


def test_login_is_throttled_per_user_name(client, merchant):
    for _ in range(5):
        sign_in(client, password="wrong password guess", expect=401)
    # Locked now: without a second factor even the right password does not get in.
    b = sign_in(client, expect=429)
    assert any("Too many failed attempts" in m for m in b.page.messages())
    assert client.get("/admin").status_code == 303
    # The same client guessing other names is slowed down too (the count is per client as
    # well as per name); another name's own count is untouched (test_throttle_backs_off...).
    sign_in(client, username="someone-else", expect=429)


def test_next_parameter_stays_inside_the_admin(client, merchant):
    response = client.get("/admin/orders?status=paid")
    assert response.status_code == 303
    b = Browser(client)
    b.get(response.headers["Location"])
    page = b.submit(b.form("main form"), {"username": "merchant", "password": PASSWORD})
    assert page.url == "/admin/orders"
    b.submit(b.form("header form"), button="Sign out")
    for evil in ["https://evil.example/admin", "//evil.example/admin", "/\\evil.example"]:
        b.get("/admin/login?next=" + evil)
        form = b.form("main form")
        assert form.find(attrs={"name": "next"})["value"] == evil
        response = client.post(
            "/admin/login",
            data={
                "csrf_token": form.find(attrs={"name": "csrf_token"})["value"],
                "next": evil,
                "username": "merchant",
                "password": PASSWORD,
            },
        )
        assert response.status_code == 303 and response.headers["Location"] == "/admin", evil
        client.post(
            "/admin/logout",
            data={
                "csrf_token": b.get("/admin").soup.find("input", attrs={"name": "csrf_token"})[
                    "value"
                ]
            },
        )


def _enable_totp(b: Browser) -> tuple[str, list[str]]:
    b.get("/admin/account")
    page = b.submit(b.form("main form[action$='/2fa/start']"))
    assert page.url == "/admin/account/2fa"
    secret = page.soup.select_one("code.secret").get_text().strip()
    assert page.soup.select_one("img.qr")["src"].startswith("data:image/svg+xml")
    wrong = b.submit(b.form("main form"), {"code": "000000"}, expect=400)
    assert "not correct" in wrong.text
    page = b.submit(b.form("main form"), {"code": pyotp.TOTP(secret).now()})
    codes = [c.get_text() for c in page.soup.select(".codes code")]
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def test_totp_and_recovery_codes(client, merchant, database):
    b = sign_in(client)
    secret, codes = _enable_totp(b)
    with database.job_session() as session:
        stored = session.scalars(select(AdminRecoveryCode.code_hash)).all()
        assert len(stored) == 10 and not set(codes) & set(stored)  # hashed, not kept in clear
    b.submit(b.form("header form"), button="Sign out")

    # The password alone no longer signs in.
    b = sign_in(client)
    assert b.page.url.startswith("/admin/login/code")
    assert client.get("/admin").status_code == 303
    b.submit(b.form("main form"), {"code": "123456"}, expect=401)
    # The enrolment code's time step is spent; the next step's code is within the drift window.
    used_code = pyotp.TOTP(secret).at(time.time() + 30)
    page = b.submit(b.form("main form"), {"code": used_code})
    assert page.url == "/admin"
    b.submit(b.form("header form"), button="Sign out")

    # The same code cannot be replayed, but a recovery code works, once.
    b = sign_in(client)
    b.submit(b.form("main form"), {"code": used_code}, expect=401)
    page = b.submit(b.form("main form"), {"code": codes[0].upper()})
    assert page.url == "/admin"
    b.submit(b.form("header form"), button="Sign out")
    b = sign_in(client)
    b.submit(b.form("main form"), {"code": codes[0]}, expect=401)
    assert b.client.get("/admin").status_code == 303
    page = b.submit(b.form("main form"), {"code": codes[1]})
    assert page.url == "/admin"
    assert "8 unused recovery codes left" in b.get("/admin/account").text


def test_second_factor_step_is_throttled_too(client, merchant):
    b = sign_in(client)
    _enable_totp(b)
    b.submit(b.form("header form"), button="Sign out")
    b = sign_in(client)
    for _ in range(5):
        b.submit(b.form("main form"), {"code": "000000"}, expect=401)
    b.submit(b.form("main form"), {"code": "111111"}, expect=429)


def test_totp_codes_are_checked_by_time_step():
    user = AdminUser(username="x", password_hash="", totp_secret=pyotp.random_base32())
    totp = pyotp.TOTP(user.totp_secret)
    now = time.time()
    assert auth.verify_totp(user, totp.at(now), at=now)
    assert not auth.verify_totp(user, totp.at(now), at=now)  # replay
    assert auth.verify_totp(user, totp.at(now + 30), at=now)  # next step, clock drift
    assert not auth.verify_totp(user, totp.at(now + 120), at=now + 30)  # too far ahead
    assert not auth.verify_totp(user, "abcdef", at=now)
    assert not auth.verify_totp(user, "", at=now)


def test_throttle_backs_off_and_forgets(database):
    from datetime import UTC, datetime, timedelta

    from shop.admin import throttle

    policy = throttle.Policy(
        free_attempts=3,
        base_lock=timedelta(seconds=10),
        max_lock=timedelta(seconds=40),
        forget_after=timedelta(seconds=1000),
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    alice = [throttle.user_key("Alice")]
    with database.job_session() as s:
        for _ in range(2):
            throttle.record_failure(s, alice, now, policy)
            assert throttle.wait_seconds(s, [throttle.user_key("alice")], now, policy) == 0
        throttle.record_failure(s, alice, now, policy)
        assert throttle.wait_seconds(
            s, [throttle.user_key("ALICE ")], now, policy
        ) == pytest.approx(10)
        now += timedelta(seconds=10)
        assert throttle.wait_seconds(s, alice, now, policy) == 0
        throttle.record_failure(s, alice, now, policy)
        assert throttle.wait_seconds(s, alice, now, policy) == pytest.approx(20)
        for _ in range(5):
            throttle.record_failure(s, alice, now, policy)
        assert throttle.wait_seconds(s, alice, now, policy) == pytest.approx(40)  # capped
        assert throttle.wait_seconds(s, [throttle.user_key("bob")], now, policy) == 0
        throttle.clear(s, alice)
        assert throttle.wait_seconds(s, alice, now, policy) == 0
        carol = [throttle.user_key("carol")]
        for _ in range(3):
            throttle.record_failure(s, carol, now, policy)
        now += timedelta(seconds=2000)
        throttle.record_failure(s, carol, now, policy)  # long after: counting starts again
        assert throttle.wait_seconds(s, carol, now, policy) == 0


def test_throttle_has_a_global_limit(database):
    from datetime import UTC, datetime, timedelta

    from shop.admin import throttle

    policy = throttle.Policy(global_limit=50, global_window=timedelta(seconds=600))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with database.job_session() as s:
        for i in range(50):
            throttle.record_failure(s, [throttle.user_key(f"user{i}")], now, policy)
        anyone = [throttle.user_key("anyone")]
        assert throttle.wait_seconds(s, anyone, now, policy) == pytest.approx(600)
        assert throttle.wait_seconds(s, anyone, now + timedelta(seconds=601), policy) == 0


def test_throttle_stores_no_address(client, merchant, database):
    """Clients are told apart by a keyed hash that changes daily; no IP address is stored."""
    from shop.admin.models import SigninFailure

    sign_in(client, password="wrong password guess", expect=401)
    with database.job_session() as s:
        keys = set(s.scalars(select(SigninFailure.key)))
    assert "user:merchant" in keys and len(keys) == 2
    client_key = next(k for k in keys if k.startswith("client:"))
    assert re.fullmatch(r"client:[0-9a-f]{16}", client_key)
    assert "127.0.0.1" not in "".join(keys)


def test_production_hashes_are_argon2id_with_rfc9106_costs():
    from argon2 import Type

    from tests.admin.conftest import REAL_DUMMY_HASH, REAL_HASHER

    assert REAL_HASHER.type == Type.ID
    assert (REAL_HASHER.time_cost, REAL_HASHER.memory_cost) == (3, 65536)
    assert REAL_DUMMY_HASH.startswith("$argon2id$v=19$m=65536,t=3")
    assert REAL_HASHER.hash(PASSWORD).startswith("$argon2id$v=19$m=65536,t=3")
