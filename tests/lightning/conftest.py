"""Fixtures for Lightning: a shop wired to an LND or Core Lightning stand-in, and a listener."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shop.db import Database
from shop.payments.lightning.listener import LightningListener
from shop.payments.lightning.method import LightningPayment
from tests.bitcoin.conftest import store_rate
from tests.conftest import make_test_app
from tests.lightning.fake_cln import FakeCln
from tests.lightning.fake_lnd import FakeLnd
from tests.lightning.keys import INVOICE_OPS


@dataclass
class Node:
    """One stand-in behind the same small test API, so each test runs against both nodes."""

    kind: str
    fake: FakeLnd | FakeCln
    settings: dict

    def settle(self, payment_hash: str, at: int | None = None) -> None:
        if self.kind == "lnd":
            self.fake.settle(payment_hash, at)
        else:
            self.fake.pay(payment_hash, at)

    def drop_mid_message(self) -> None:
        if self.kind == "lnd":
            self.fake.drop_stream_mid_message()
        else:
            self.fake.drop_next_wait_mid_message()

    def streaming(self) -> bool:
        """A listener is following the node's settlements right now."""
        if self.kind == "lnd":
            return bool(self.fake._streams)
        return self.fake.waiting > 0

    def invoice_count(self) -> int:
        return len(self.fake.invoices)

    def stop(self) -> None:
        self.fake.stop()

    def start(self) -> None:
        self.fake.start()


def lnd_node(directory: Path) -> Node:
    fake = FakeLnd(directory).start()
    macaroon = fake.bake(INVOICE_OPS)
    return Node(
        "lnd",
        fake,
        {
            "lightning_lnd_url": fake.url,
            "lightning_lnd_macaroon": str(macaroon),
            "lightning_lnd_cert": str(fake.cert_path),
        },
    )


def cln_node(directory: Path) -> Node:
    fake = FakeCln(directory).start()
    return Node("cln", fake, {"lightning_cln_rpc": fake.socket_path})


@pytest.fixture(params=["lnd", "cln"])
def node(request, tmp_path) -> Iterator[Node]:
    # A short directory: a unix socket path must stay under ~100 bytes.
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="ln-"))
    made = (lnd_node if request.param == "lnd" else cln_node)(directory)
    yield made
    made.stop()


def ln_app(db_url: str, tmp_path: Path, node: Node | None, **overrides):
    from shop.demo import seed_demo

    settings = {
        "rate_providers": "",
        "lightning_poll_seconds": 60,
        **(node.settings if node else {}),
        **overrides,
    }
    app = make_test_app(db_url, tmp_path / "instance", **settings)
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    store_rate(app.extensions["shop.db"])
    return app


@pytest.fixture
def app(db_url, tmp_path, node):
    app = ln_app(db_url, tmp_path, node)
    yield app
    app.extensions["shop.db"].dispose()


@pytest.fixture
def db(app) -> Database:
    return app.extensions["shop.db"]


@pytest.fixture
def method(app) -> LightningPayment:
    return app.extensions["shop.payment_methods"]["lightning"]


class RunningListener:
    def __init__(self, listener: LightningListener):
        self.listener = listener
        self.stop = threading.Event()
        self.thread = threading.Thread(target=listener.run_forever, args=(self.stop,), daemon=True)
        self.settled: list = []
        listener.on_settled = self.settled.append

    def __enter__(self) -> RunningListener:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


def listen(db: Database, method: LightningPayment, poll_seconds: float = 60) -> RunningListener:
    return RunningListener(LightningListener(db, method.backend, poll_seconds=poll_seconds))


def wait_for(condition, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")
