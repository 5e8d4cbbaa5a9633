"""Lightning through the merchant's own node, against LND and Core Lightning stand-ins that
speak the real protocols (tests/lightning/fake_lnd.py, fake_cln.py) and issue real BOLT11
invoices; the invoices are decoded here with pyln-proto, independently of the shop's bolt11."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from pyln.proto.invoice import Invoice
from sqlalchemy import func, select

from shop.db import utcnow
from shop.orders import service as orders
from shop.orders.models import Order, PaymentRecord
from shop.orders.views import order_view
from shop.payments.lightning import service
from shop.payments.lightning.models import LightningInvoice, LightningStreamState
from shop.privacy.store import ContactDetails
from tests.bitcoin.conftest import place
from tests.browser import Browser
from tests.lightning.conftest import listen, wait_for
from tests.lightning.keys import NODE_PUBKEY

pytestmark = pytest.mark.timeout(90)

# 7.99 EUR at 50,000 EUR/BTC (tests.bitcoin.conftest.RATE), rounded up to the satoshi.
SATS = 15_980


def _checkout(b: Browser, method_label: str = "Lightning"):
    b.get("/products/small-hours")
    b.submit(b.form("form[action$='/cart/add/small-hours']"))
    b.follow("Check out")
    # The e-book is delivered at once, which needs the customer's consent.
    page = b.submit(
        b.form("main form"),
        {"payment_method": b.option_value(method_label), "digital_consent": "y"},
        button="Place order",
    )
    assert re.fullmatch(r"/orders/[A-Za-z0-9_-]{43}", page.url)
    return page


def _new_invoice(db, method, **contact) -> tuple[int, LightningInvoice]:
    with db.job_session(write_lock=True) as session:
        order = place(session, method="lightning")
        if contact:
            from shop.privacy.store import set_contact

            set_contact(session, order, ContactDetails(**contact))
        view = order_view(order)
    return view.id, method.new_invoice(view)


def _paid_records(db, order_id: int) -> int:
    with db.job_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(PaymentRecord)
            .where(
                PaymentRecord.order_id == order_id,
                PaymentRecord.provider == "lightning",
                PaymentRecord.kind == "paid",
            )
        )


def _following(db, node) -> bool:
    """The listener has made its first reconcile round and is streaming: what is settled from
    now on reaches the order through the stream."""
    with db.job_session() as session:
        state = session.get(LightningStreamState, node.kind)
        return state is not None and state.last_success_at is not None and node.streaming()


def _a_worker_listens(db) -> None:
    """A live worker's heartbeat says it follows the node (as `shop worker` writes it)."""
    from shop.jobs.heartbeat import Heartbeat
    from shop.payments.lightning.listener import LightningListener

    Heartbeat(db, ["lightning-listener"], listening=lambda: [LightningListener.follows]).beat()


def _order(db, order_id: int) -> Order:
    with db.job_session() as session:
        return session.get(Order, order_id)


def test_one_real_bolt11_invoice_per_order_through_the_pages(app, db, node):
    b = Browser(app.test_client())
    order_page = _checkout(b)
    button = b.form(".lightning-pay form")  # "Pay with Lightning"
    page = b.submit(button)
    assert page.url.endswith("/lightning")
    text = page.soup.select_one("#ln-invoice").get_text()
    decoded = Invoice.decode(text)  # pyln-proto: checks the bech32 and recovers the signer
    assert decoded.pubkey.format().hex() == NODE_PUBKEY
    assert decoded.currency == "bcrt"
    assert int(decoded.amount * 10**11) == SATS * 1000
    with db.job_session() as session:
        order = session.scalar(select(Order))
        row = service.get_invoice(session, order.id)
    assert decoded.paymenthash.hex() == row.payment_hash
    assert dict(decoded.tags)["d"] == f"Demo Shop order {order.number}"
    assert dict(decoded.tags)["x"] == pytest.approx(30 * 60, abs=5)  # the payment window
    assert row.expires_at - row.created_at == timedelta(minutes=30)
    assert order.expires_at == row.expires_at  # the stock is held while the invoice is open
    if node.kind == "lnd":  # asked with private=true: route hints for the private channel
        assert len(decoded.route_hints.route_hints) == 1
    # The QR code is the lightning: URI of the same invoice.
    from tests.lightning.qr import decode_svg

    assert decode_svg(page.soup.select_one("figure.btc-qr svg")).lower() == f"lightning:{text}"
    refresh = page.soup.find("meta", attrs={"http-equiv": "refresh"})
    assert refresh is not None  # no JavaScript needed to see the payment arrive

    # Reloads, a second click and the order page never make a second invoice.
    b.get(page.url)
    assert "show the invoice" in b.get(order_page.url).text
    assert b.submit(button).url == page.url
    assert b.get(page.url).soup.select_one("#ln-invoice").get_text() == text
    assert node.invoice_count() == 1
    with db.job_session() as session:
        assert session.scalar(select(func.count()).select_from(LightningInvoice)) == 1


def test_settlement_marks_the_order_paid_exactly_once(app, db, method, node):
    order_id, invoice = _new_invoice(db, method)
    if node.kind == "lnd":
        node.fake.repeat_next_settle()  # the stream says it twice
    with listen(db, method) as running:
        node.settle(invoice.payment_hash)
        wait_for(lambda: _order(db, order_id).status == "paid")
        # Duplicates: the stream's repeat, the reconcile poll, and the same event again.
        running.listener.reconcile()
        settled = method.backend.lookup(invoice.payment_hash)
        assert service.handle_settled(db, method.backend.name, [settled]) == []
    order = _order(db, order_id)
    assert order.amount_paid == order.total
    assert not order.attention
    assert _paid_records(db, order_id) == 1
    with db.job_session() as session:
        row = service.get_invoice(session, order_id)
        assert (row.status, row.received_msat) == ("settled", SATS * 1000)
        # Refunded on-chain to an address the customer gives: no spending rights on the node.
        refundable = method.refundable(session, session.get(Order, order_id))
        assert refundable.to_address and not refundable.automatic
        assert refundable.amount == order.total


def test_unpaid_invoice_expires_with_the_order(app, db, method, node):
    order_id, invoice = _new_invoice(db, method)
    later = invoice.expires_at + timedelta(minutes=1)
    with db.job_session() as session:
        orders.expire_due_orders(session, later)
    assert _order(db, order_id).status == "expired"
    with listen(db, method) as running:
        assert running.listener.reconcile() == 0
    assert _paid_records(db, order_id) == 0


def test_settlement_after_expiry_is_credited_and_flagged_late(app, db, method, node):
    order_id, invoice = _new_invoice(db, method)
    later = invoice.expires_at + timedelta(minutes=5)
    with db.job_session() as session:
        orders.expire_due_orders(session, later)
    assert _order(db, order_id).status == "expired"
    with listen(db, method):
        node.settle(invoice.payment_hash, at=int(later.timestamp()))
        wait_for(lambda: _order(db, order_id).status == "paid")
    order = _order(db, order_id)
    assert "after its invoice expired" in order.attention
    assert _paid_records(db, order_id) == 1


def test_stream_dropped_mid_message_resumes_from_the_stored_index(app, db, method, node):
    first_id, first = _new_invoice(db, method)
    second_id, second = _new_invoice(db, method)
    # Poll once a minute: only the stream can find the second payment within the test.
    with listen(db, method, poll_seconds=60) as running:
        wait_for(lambda: _following(db, node))
        node.settle(first.payment_hash)
        wait_for(lambda: _order(db, first_id).status == "paid")
        assert service.last_index(db, node.kind) == 1
        node.drop_mid_message()
        node.settle(second.payment_hash)
        wait_for(lambda: _order(db, second_id).status == "paid")
        assert [s.payment_hash for s in running.settled].count(second.payment_hash) == 1
    assert service.last_index(db, node.kind) == 2
    assert _paid_records(db, first_id) == _paid_records(db, second_id) == 1


def test_node_restart_with_a_payment_while_it_was_away(app, db, method, node):
    first_id, first = _new_invoice(db, method)
    second_id, second = _new_invoice(db, method)
    with listen(db, method, poll_seconds=60):
        wait_for(lambda: _following(db, node))
        node.settle(first.payment_hash)
        wait_for(lambda: _order(db, first_id).status == "paid")
        node.stop()
        node.settle(second.payment_hash)  # recorded by the node; nobody is listening
        time.sleep(0.5)
        node.start()
        wait_for(lambda: _order(db, second_id).status == "paid", timeout=15)
    assert _paid_records(db, first_id) == _paid_records(db, second_id) == 1
    with db.job_session() as session:
        state = service.stream_state(session, node.kind)
        assert state.last_index == 2


def test_no_personal_data_in_any_invoice_field(app, db, method, node):
    contact = {
        "email": "ada.lovelace@example.org",
        "name": "Ada Lovelace",
        "street": "12 Analytical Row",
        "postal_code": "10115",
        "city": "Berlin",
    }
    order_id, invoice = _new_invoice(db, method, **contact)
    decoded = Invoice.decode(invoice.bolt11)
    fields = [str(v) for _k, v in decoded.tags] + [str(v) for _k, v in decoded.unknown_tags]
    if node.kind == "cln":  # what the node itself stores: label and description
        stored = node.fake.invoices
        fields += [k for k in stored] + [i["description"] for i in stored.values()]
    else:
        fields += [i["memo"] for i in node.fake.invoices.values()]
    text = " ".join(fields + [invoice.bolt11]).lower()
    for value in contact.values():
        for word in value.lower().replace("@", " ").replace(".", " ").split():
            if len(word) > 3 and word not in ("example",):
                assert word not in text, word


def test_node_unreachable_leaves_lightning_out_and_order_pays_later(app, db, method, node):
    node.stop()
    with db.job_session() as session:
        view = order_view(place(session, method="lightning"))
    with pytest.raises(service.LightningUnavailable, match="cannot be reached"):
        method.new_invoice(view)
    with db.job_session() as session:
        health = method.health(session, utcnow())
    assert health[0].status == "warning" and "unreachable" in health[0].summary
    node.start()
    _a_worker_listens(db)
    method._info = None  # the cached state expires after INFO_SECONDS; a test does not wait
    invoice = method.new_invoice(view)  # the failed attempt is retried, once
    assert invoice.status == "open" and node.invoice_count() == 1
    with db.job_session() as session:
        health = method.health(session, utcnow())
    assert health[0].status == "ok" and "can receive" in health[0].summary


def test_admin_health_shows_the_node_and_its_inbound_liquidity(app, db, method, node):
    from shop.admin import health

    methods = app.extensions["shop.payment_methods"]
    settings = app.extensions["shop.settings"]
    _new_invoice(db, method)
    _a_worker_listens(db)
    with db.job_session() as session:
        checks = {c.name: c for c in health.checks(session, settings, utcnow(), methods=methods)}
    ln = checks["Lightning node"]
    assert ln.status == "ok"
    assert "1,480,000 sats" in ln.summary or "1,500,000 sats" in ln.summary
    assert any("1 active channel" in d for d in ln.details)
    # Too little inbound liquidity for the orders the shop takes: a warning that says so.
    if node.kind == "lnd":
        node.fake.channels[0]["remote_balance"] = "25000"
    else:
        node.fake.receivable_msat = 5_000_000
    method._info = None
    with db.job_session() as session:
        checks = {c.name: c for c in health.checks(session, settings, utcnow(), methods=methods)}
    assert checks["Lightning node"].status == "warning"
    assert any("inbound liquidity" in d for d in checks["Lightning node"].details)


def test_one_listener_at_a_time_on_postgresql(app, db, method, node):
    from shop.payments.lightning.listener import LightningListener

    if not db.is_postgres:
        pytest.skip("SQLite serves one worker; the advisory lock is PostgreSQL's")
    first = LightningListener(db, method.backend)
    second = LightningListener(db, method.backend)
    try:
        assert first.acquire()
        assert not second.acquire()  # stands by
        first.release()
        assert second.acquire()  # takes over when the first goes
    finally:
        first.release()
        second.release()


def test_the_worker_starts_the_listener_from_the_settings(app, db, method, node):
    import threading

    from shop.payments.registry import start_listeners

    order_id, invoice = _new_invoice(db, method)
    stop = threading.Event()
    threads = start_listeners(db, app.extensions["shop.settings"], stop)
    try:
        assert [t.name for t in threads] == ["lightning-listener"]
        wait_for(lambda: _following(db, node))
        node.settle(invoice.payment_hash)
        wait_for(lambda: _order(db, order_id).status in ("paid", "fulfilled"))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not any(t.is_alive() for t in threads)


def test_admin_health_shows_whether_a_worker_listens_to_the_node(app, db, method, node):
    """The worker's heartbeat says which listeners this process runs and whether each holds
    its lock and listens; the Lightning check warns when no live worker does."""
    import threading

    from shop.admin import health
    from shop.jobs.worker import heartbeat_for
    from shop.payments.registry import start_listeners

    methods = app.extensions["shop.payment_methods"]
    settings = app.extensions["shop.settings"]

    def checks() -> dict:
        with db.job_session() as session:
            found = health.checks(session, settings, utcnow(), methods=methods)
        return {c.name: c for c in found}

    stop = threading.Event()
    threads = start_listeners(db, settings, stop)
    heartbeat = heartbeat_for(db, None, threads)
    try:
        wait_for(lambda: _following(db, node))
        assert heartbeat.beat("")
        found = checks()
        assert "following the Lightning node" in found["Worker"].details[0]
        assert found["Lightning node"].status == "ok"
        assert any("listens to the node" in d for d in found["Lightning node"].details)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert heartbeat.beat("")  # the listener let go: written at once, not after 5 s
    found = checks()
    assert "following the Lightning node" not in found["Worker"].details[0]
    assert found["Lightning node"].status == "warning"
    assert any("No running worker listens" in d for d in found["Lightning node"].details)
