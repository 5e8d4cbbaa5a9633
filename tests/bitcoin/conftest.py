"""Fixtures for Bitcoin checkout: a shop configured with a regtest descriptor and a FakeNode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.db import Database
from shop.demo import seed_demo
from shop.orders import service
from shop.orders.models import Order
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.method import BitcoinPayment
from shop.payments.bitcoin.node import NodeClient
from shop.payments.bitcoin.rates import Quote, store_quote
from shop.payments.bitcoin.settings import SIMULATED_DESCRIPTOR
from shop.payments.bitcoin.watcher import ChainWatcher
from tests.bitcoin.fake_node import FakeNode
from tests.conftest import make_test_app

# Any regtest account key works; this one has no known private key.
TEST_DESCRIPTOR = SIMULATED_DESCRIPTOR
RATE = Decimal("50000")  # EUR per BTC: one euro cent is 20 sats


class Clock:
    """A settable clock for the watcher and the services."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with FakeNode() as fake:
        yield fake


def btc_settings(node: FakeNode | None, **overrides) -> dict:
    return {
        "bitcoin_descriptor": TEST_DESCRIPTOR,
        "bitcoin_network": "regtest",
        "bitcoin_rpc_url": node.url if node is not None else "http://u:p@127.0.0.1:9",
        "rate_providers": "",  # tests never talk to exchanges
        **overrides,
    }


@pytest.fixture
def btc_app(db_url, tmp_path, node):
    app = make_test_app(db_url, tmp_path / "instance", **btc_settings(node))
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    yield app
    app.extensions["shop.db"].dispose()


@pytest.fixture
def db(btc_app) -> Database:
    return btc_app.extensions["shop.db"]


@pytest.fixture
def method(btc_app) -> BitcoinPayment:
    return btc_app.extensions["shop.payment_methods"]["bitcoin"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def store_rate(
    database: Database, currency: str = "EUR", rate: Decimal = RATE, at: datetime | None = None
) -> None:
    at = at or datetime.now(UTC)
    with database.job_session() as session:
        store_quote(session, Quote(currency=currency, fiat_per_btc=rate, as_of=at), at)


def place(
    session,
    sku: str = "EBOOK-SMALL",
    quantity: int = 1,
    now: datetime | None = None,
    method: str = "bitcoin",
) -> Order:
    variant = session.scalar(select(Variant).where(Variant.sku == sku))
    return service.place_order(
        session,
        service.PlaceOrder(
            digital_consent=True,
            cart=[CartLine(variant.id, quantity, variant.price)],
            country="DE",
            payment_method=method,
            currency="EUR",
            expiry_minutes=15,
        ),
        now=now,
    )


def new_invoice(
    database: Database, method: BitcoinPayment, now: datetime, sku: str = "EBOOK-SMALL"
) -> tuple[int, int, bytes, int]:
    """Place an order and create its invoice; returns (order id, invoice id, script, sats)."""
    with database.job_session() as session:
        order = place(session, sku, now=now)
        invoice = inv.create_invoice(
            session, order, method.descriptor, method.policy, inv.LockedRate(RATE), now=now
        )
        return order.id, invoice.id, bytes(invoice.script_pubkey), invoice.amount_sats


def make_watcher(database: Database, node: FakeNode, policy, clock=None, **kw) -> ChainWatcher:
    return ChainWatcher(
        database,
        NodeClient(node.url, timeout=5),
        policy,
        clock=clock or (lambda: datetime.now(UTC)),
        **kw,
    )
