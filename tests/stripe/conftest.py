"""A shop with card payments against the fake Stripe API, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from shop.cart.service import shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.demo import seed_demo
from shop.orders import service as orders
from shop.orders.models import Order
from tests.conftest import make_test_app
from tests.stripe.fake_stripe import FakeStripe, fast_sdk_retries

API_KEY = "sk_test_cardshop_0123456789"
WEBHOOK_SECRET = "whsec_cardshop0123456789"


@pytest.fixture(autouse=True)
def _instant_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_sdk_retries(monkeypatch)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as server:
        yield server


def build_card_app(url: str, instance, fake: FakeStripe, **overrides):
    app = make_test_app(
        url,
        instance,
        **{
            "stripe_secret_key": API_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_api_base": fake.api_base,
            "stripe_checkout_origin": fake.api_base,
            "stripe_timeout_seconds": 1.0,
            **overrides,
        },
    )
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    return app


def _close(app) -> None:
    app.extensions["shop.payment_methods"]["card"].close()
    app.extensions["shop.db"].dispose()


@pytest.fixture
def card_app(db_url, tmp_path, fake):
    app = build_card_app(db_url, tmp_path / "instance", fake)
    yield app
    _close(app)


@pytest.fixture
def card_pg_app(pg_url, tmp_path, fake):
    app = build_card_app(pg_url, tmp_path / "instance", fake)
    yield app
    _close(app)


@dataclass(frozen=True)
class PlacedOrder:
    id: int
    token: str
    ref: str
    total: int


def place_card_order(
    app, sku: str = "PRINT-HARB-A3", quantity: int = 1, email: str | None = "ada@example.org"
) -> PlacedOrder:
    database = app.extensions["shop.db"]
    with database.job_session() as s:
        variant = s.scalar(select(Variant).where(Variant.sku == sku))
        rate_id = None
        if variant.product.is_physical:
            rate_id = shipping_options(s, "DE", variant.price * quantity)[0].rate_id
        order = orders.place_order(
            s,
            orders.PlaceOrder(
                digital_consent=True,
                cart=[CartLine(variant.id, quantity, variant.price)],
                country="DE",
                payment_method="card",
                currency=app.extensions["shop.settings"].currency,
                expiry_minutes=30,
                shipping_rate_id=rate_id,
                contact=orders.ContactDetails(
                    email=email,
                    name="Ada Lovelace",
                    street="1 Harbour Road",
                    postal_code="10115",
                    city="Berlin",
                )
                if email
                else orders.ContactDetails(),
            ),
        )
        return PlacedOrder(order.id, order.token, order.ref, order.total)


def load_order(app, order_id: int) -> Order:
    with app.extensions["shop.db"].job_session() as s:
        order = s.get(Order, order_id)
        s.expunge(order)
        return order


def gateway(app):
    return app.extensions["shop.payment_methods"]["card"].gateway


def post_event(client, signed: tuple[bytes, str]):
    """Stripe delivers the event; then the worker's job applies what was stored."""
    payload, header = signed
    response = client.post(
        "/webhooks/stripe",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    run_event_worker(client.application)
    return response


def run_event_worker(app) -> int:
    from shop.payments.stripe.jobs import StripeEventsJob

    return StripeEventsJob()(app.extensions["shop.db"], app.extensions["shop.settings"])


def start_card_payment(client, order: PlacedOrder) -> str:
    """Press "Pay by card"; the hosted page URL it redirects to."""
    page = client.get(f"/orders/{order.token}")
    assert page.status_code == 200
    response = client.post(
        f"/orders/{order.token}/pay/card",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response.headers["Location"]


def csrf_token(html: str) -> str:
    from bs4 import BeautifulSoup

    field = BeautifulSoup(html, "html.parser").find("input", attrs={"name": "csrf_token"})
    assert field is not None, "no CSRF token on the page"
    return field["value"]


def session_id_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


class LiveServer:
    """The app on a real loopback HTTP server, for concurrent webhook deliveries."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
