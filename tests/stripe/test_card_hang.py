"""Issue 12, major 3: a Stripe that never answers must not freeze the shop.

In process: the request's time budget bounds "Pay by card" whatever the SDK's timeout and
retries, the attempt is committed before the call, and the next click finds the session Stripe
made meanwhile. As operators run it: the documented gunicorn command, a hanging Stripe, other
pages answering within a second and the customer getting a clear page within the budget.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from sqlalchemy import select

from shop.payments.stripe.models import CardPayment
from tests.conftest import TEST_SECRET
from tests.stripe.conftest import (
    API_KEY,
    WEBHOOK_SECRET,
    _close,
    build_card_app,
    csrf_token,
    place_card_order,
)

ROOT = Path(__file__).resolve().parents[2]
UNAVAILABLE = "Card payments are unavailable at the moment"


def _attempts(app, order_id: int) -> list[tuple[str, str | None]]:
    with app.extensions["shop.db"].job_session() as s:
        return [
            (a.status, a.session_id)
            for a in s.scalars(
                select(CardPayment)
                .where(CardPayment.order_id == order_id)
                .order_by(CardPayment.attempt)
            )
        ]


def test_pay_by_card_ends_within_the_budget_and_the_next_click_finds_the_session(
    db_url, tmp_path, fake
):
    # The SDK would wait 10 s, three times (two retries); the request may take 2 s in all.
    app = build_card_app(
        db_url, tmp_path / "instance", fake, stripe_timeout_seconds=10.0, request_budget_seconds=2.0
    )
    try:
        client = app.test_client()
        order = place_card_order(app)
        page = client.get(f"/orders/{order.token}")
        token = csrf_token(page.get_data(as_text=True))
        fake.hang()
        started = time.monotonic()
        response = client.post(f"/orders/{order.token}/pay/card", data={"csrf_token": token})
        elapsed = time.monotonic() - started
        assert elapsed < 3.0, f"Pay by card took {elapsed:.1f} s with a 2 s budget"
        assert response.status_code == 303
        assert response.headers["Location"].endswith(f"/orders/{order.token}")
        shown = client.get(response.headers["Location"]).get_data(as_text=True)
        assert UNAVAILABLE in shown
        # The attempt was committed before the call: a trace for the next click.
        assert _attempts(app, order.id) == [("creating", None)]

        fake.hang(False)  # Stripe catches up and creates the session it was asked for
        time.sleep(0.3)
        retried = client.post(f"/orders/{order.token}/pay/card", data={"csrf_token": token})
        assert retried.status_code == 303 and retried.headers["Location"].startswith(fake.api_base)
        assert len(fake.sessions) == 1
        [(status, session_id)] = _attempts(app, order.id)
        assert status == "open" and session_id in fake.sessions
    finally:
        _close(app)


def _documented_gunicorn() -> list[str]:
    """The gunicorn command README.md tells operators to run."""
    readme = (ROOT / "README.md").read_text()
    line = next(l for l in readme.splitlines() if l.startswith("gunicorn "))
    return shlex.split(line.split("#", 1)[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(db: str, instance: Path, fake, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SHOP_") and k != "GUNICORN_CMD_ARGS"
    }
    env.update(
        SHOP_DATABASE_URL=db,
        SHOP_INSTANCE_PATH=str(instance),
        SHOP_SECRET_KEY=TEST_SECRET,
        SHOP_STRIPE_SECRET_KEY=API_KEY,
        SHOP_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SHOP_STRIPE_API_BASE=fake.api_base,
        SHOP_STRIPE_CHECKOUT_ORIGIN=fake.api_base,
        **extra,
    )
    return env


def _gunicorn(args: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """The server, its output going to `log`. Not to a pipe: nobody reads a pipe while the test
    runs, and once its 64 KiB are full (about 900 access log lines) every worker thread blocks
    writing its log line, which looks like the shop itself stalling."""
    assert args[0] == "gunicorn"
    with log.open("w") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                *args[1:-1],
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                args[-1],
            ],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_the_documented_gunicorn_keeps_serving_while_stripe_hangs(
    tmp_path, sqlite_template, fake, monkeypatch
):
    path = tmp_path / "shop.sqlite3"
    shutil.copyfile(sqlite_template, path)
    db = f"sqlite:///{path}"
    instance = tmp_path / "instance"
    app = build_card_app(db, instance, fake)
    orders = [place_card_order(app) for _ in range(3)]
    _close(app)
    budget = 8.0  # the default SHOP_REQUEST_BUDGET_SECONDS, with the SDK's defaults
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    server = _gunicorn(_documented_gunicorn(), _env(db, instance, fake), port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, log.read_text()
            time.sleep(0.1)
        fake.hang()
        payers = []

        def pay(order) -> None:
            browser = requests.Session()
            token = csrf_token(browser.get(f"{base}/orders/{order.token}", timeout=5).text)
            started = time.monotonic()
            response = browser.post(
                f"{base}/orders/{order.token}/pay/card", data={"csrf_token": token}, timeout=60
            )
            payers.append((time.monotonic() - started, response.status_code, response.text))

        # More customers pressing "Pay by card" than the documented command has workers.
        threads = [threading.Thread(target=pay, args=(o,)) for o in orders]
        for t in threads:
            t.start()
        time.sleep(1.0)  # all of them are now waiting on Stripe
        slowest = 0.0
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for path in ("/", "/products/harbour-at-dawn", "/cart", "/healthz"):
                started = time.monotonic()
                got = requests.get(base + path, timeout=5)
                assert got.status_code == 200, (path, got.status_code)
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.0, f"a page took {slowest:.2f} s while Stripe hung"
        for t in threads:
            t.join(timeout=budget + 20)
        assert len(payers) == 3
        for elapsed, status, text in payers:
            assert elapsed < budget + 2, f"Pay by card took {elapsed:.1f} s"
            assert status == 200 and UNAVAILABLE in text  # the order page, with the message
        assert server.poll() is None
    finally:
        fake.hang(False)
        server.terminate()
        server.wait(timeout=30)
        print(log.read_text())


def test_gunicorn_refuses_a_budget_that_outlasts_its_timeout(tmp_path, sqlite_template, fake):
    path = tmp_path / "shop.sqlite3"
    shutil.copyfile(sqlite_template, path)
    args = _documented_gunicorn()
    args[-1:-1] = ["--timeout", "10"]
    log = tmp_path / "gunicorn.log"
    server = _gunicorn(
        args,
        _env(f"sqlite:///{path}", tmp_path / "instance", fake, SHOP_REQUEST_BUDGET_SECONDS="8"),
        _free_port(),
        log,
    )
    try:
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    output = log.read_text()
    assert server.returncode != 0
    assert re.search(
        r"SHOP_REQUEST_BUDGET_SECONDS \(8\) must be at least 5 s below "
        r"gunicorn's --timeout \(10\)",
        output,
    ), output
