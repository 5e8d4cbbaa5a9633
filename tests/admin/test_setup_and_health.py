"""A shop that cannot take orders says so (issue 14): a setup checklist on the dashboard, a
checkout that explains instead of collecting an address for nothing, and the dashboard showing
stopped workers and failing email."""

from __future__ import annotations

import pytest

from shop.admin import auth
from shop.demo import seed_demo
from shop.jobs.heartbeat import Heartbeat
from shop.mail import outbox
from tests.admin.conftest import PASSWORD, buy, free_port, sign_in
from tests.browser import Browser
from tests.conftest import make_test_app


@pytest.fixture
def bare_app(db_url, tmp_path):
    """Production-like: no payment method, no SMTP, no legal pages, no worker."""
    app = make_test_app(db_url, tmp_path / "instance", demo_payments=False)
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    with app.extensions["shop.db"].job_session() as s:
        auth.create_user(s, "merchant", PASSWORD)
    yield app
    app.extensions["shop.db"].dispose()


def _checklist(page) -> dict[str, str]:
    return {
        li.select_one("strong").get_text(strip=True): li.get("class", [""])[-1]
        for li in page.soup.select("ul.setup li")
    }


def test_dashboard_shows_what_is_missing_before_the_shop_can_sell(bare_app):
    admin = sign_in(bare_app.test_client())
    page = admin.get("/admin")
    assert "cannot take orders yet" in page.text
    assert _checklist(page) == {
        "Payment method": "todo",
        "Legal pages": "todo",
        "Email (SMTP)": "todo",
        "Worker": "todo",
    }
    assert "Returns and right of withdrawal" in page.text  # which legal pages are missing


def test_checkout_says_plainly_that_no_order_can_be_taken(bare_app):
    b = Browser(bare_app.test_client())
    b.get("/products/tote-bag")
    b.submit(b.form("form[action$='/cart/add/tote-bag']"))
    page = b.get("/checkout", expect=503)
    assert "cannot take orders yet" in page.text
    assert page.soup.find(attrs={"name": "street"}) is None  # nothing to fill in for nothing


def test_a_cleanly_stopped_worker_shows_on_the_dashboard(admin, database):
    beat = Heartbeat(database, ["expire-orders"])
    beat.beat()
    assert _checklist(admin.get("/admin"))["Worker"] == "done"
    beat.remove()
    page = admin.get("/admin")
    # Before: "last heartbeat never" under Settings, and nothing on the dashboard.
    assert "No worker running: the last one stopped" in page.text
    assert "last heartbeat never" not in page.text and _checklist(page)["Worker"] == "todo"


def test_email_refused_by_the_smtp_server_shows_on_the_dashboard(db_url, tmp_path):
    app = make_test_app(
        db_url,
        tmp_path / "instance",
        smtp_url=f"smtp://127.0.0.1:{free_port()}",
        mail_from="shop@example.org",
    )
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    database = app.extensions["shop.db"]
    with database.job_session() as s:
        auth.create_user(s, "merchant", PASSWORD)
    client = app.test_client()
    buy(client, email="ada@example.org")
    assert outbox.deliver_due(database, app.extensions["shop.settings"]) == 0  # refused
    page = sign_in(client).get("/admin")
    assert "Email delivery is failing" in page.text
    assert "refused" in page.text.lower() or "connect" in page.text.lower()
    app.extensions["shop.db"].dispose()
