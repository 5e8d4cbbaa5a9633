"""Fixtures for the merchant admin: an account, a signed-in browser, a local SMTP server."""

from __future__ import annotations

import pytest

from shop.admin import auth
from tests.browser import Browser

PASSWORD = "correct horse battery staple"
# What the shop really uses, captured before any test swaps in the cheap hasher below.
REAL_HASHER, REAL_DUMMY_HASH = auth._hasher, auth._DUMMY_HASH


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch):
    """argon2id with tiny costs: the tests sign in hundreds of times on a shared CI machine.
    test_auth.py::test_production_hashes_are_argon2id_with_rfc9106_costs checks the real ones."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", cheap)
    monkeypatch.setattr(auth, "_DUMMY_HASH", cheap.hash("dummy password"))


@pytest.fixture
def merchant(database):
    with database.job_session() as session:
        user = auth.create_user(session, "merchant", PASSWORD)
        return user.id


def sign_in(
    client, username: str = "merchant", password: str = PASSWORD, expect: int = 200
) -> Browser:
    b = Browser(client)
    b.get("/admin/login")
    b.submit(b.form("main form"), {"username": username, "password": password}, expect=expect)
    return b


@pytest.fixture
def admin(client, merchant) -> Browser:
    b = sign_in(client)
    assert b.page.url == "/admin", b.page.url
    return b


def buy(
    client,
    slug: str = "tote-bag",
    email: str | None = "ada@example.org",
    pay: bool = True,
    quantity: str = "1",
) -> str:
    """Buy one item through the storefront as a customer would; returns the order page path."""
    b = Browser(client)
    b.get(f"/products/{slug}")
    b.submit(b.form(f"form[action$='/cart/add/{slug}']"), {"quantity": quantity})
    page = b.get("/checkout")
    fields = {"email": email or "", "country": "DE"}
    if page.soup.find(attrs={"name": "street"}) is not None:
        fields.update(
            {
                "name": "Ada Lovelace",
                "street": "1 Harbour Road",
                "postal_code": "10115",
                "city": "Berlin",
            }
        )
    if page.soup.find(attrs={"name": "digital_consent"}) is not None:
        fields["digital_consent"] = "y"  # immediate download (see tests/test_legal_checkout.py)
    page = b.submit(b.form("main form"), fields, button="Place order")
    assert page.url.startswith("/orders/"), page.text[:300]
    if pay:
        page = b.submit(b.form(".demo-pay form"))
        assert "Thank you" in page.text, page.text[:500]
    return page.url


class SmtpSink:
    """An aiosmtpd handler that keeps what it receives and can refuse chosen recipients."""

    def __init__(self):
        self.envelopes = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        from email import message_from_bytes, policy

        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    yield sink
    controller.stop()


@pytest.fixture
def mail_app(db_url, tmp_path, smtp_server):
    from shop.demo import seed_demo
    from tests.conftest import make_test_app

    app = make_test_app(
        db_url,
        tmp_path / "instance",
        smtp_url=f"smtp://127.0.0.1:{smtp_server.port}",
        mail_from="orders@shop.example",
        base_url="https://shop.example",
        store_name="Harbour Prints",
    )
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    yield app
    app.extensions["shop.db"].dispose()
