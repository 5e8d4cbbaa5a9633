"""Customer emails: written to the outbox in the order's transaction, delivered by the worker
to a real SMTP server (aiosmtpd on loopback), retried on failure, never holding the address."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from shop.db import Database, utcnow
from shop.jobs.worker import send_emails
from shop.mail import outbox
from shop.mail.models import OutboxMessage
from shop.mail.smtp import SmtpUrlError, parse_smtp_url
from shop.orders import service
from shop.orders.models import Order
from shop.privacy.store import erase_contact
from tests.admin.conftest import SmtpSink, buy, free_port

EMAIL = "ada@example.org"


def _messages(database) -> list[OutboxMessage]:
    with database.job_session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _outbox_dump(database) -> str:
    """Every value in the outbox table, as text: to prove no address is kept there."""
    with database.engine.connect() as conn:
        return repr(conn.execute(text("SELECT * FROM outbox_messages")).fetchall())


def test_order_emails_are_queued_and_delivered_by_the_worker(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    client = mail_app.test_client()
    order_url = buy(client, email=EMAIL)
    queued = _messages(database)
    assert [m.kind for m in queued] == ["order_received", "payment_received"]
    assert all(m.status == "pending" for m in queued)
    assert EMAIL not in _outbox_dump(database) and "Lovelace" not in _outbox_dump(database)
    assert smtp_server.envelopes == []  # nothing is sent inside the request

    assert send_emails(database) == 2  # the worker job, with the app's own settings
    first, second = smtp_server.messages()
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [[EMAIL], [EMAIL]]
    with database.job_session() as session:
        number = session.scalar(select(Order.number))
    assert first["Subject"] == f"Order {number} received"
    assert first["From"] == "Harbour Prints <orders@shop.example>" and first["To"] == EMAIL
    assert first["Message-ID"].endswith("@shop.example>")
    plain = first.get_body(("plain",)).get_content()
    html = first.get_body(("html",)).get_content()
    assert "Canvas tote bag" in plain and "€20.90" in plain  # €16 + €4.90 shipping
    assert (
        f"https://shop.example{order_url}" in plain
        and f'href="https://shop.example{order_url}"' in html
    )
    assert "Ada" not in plain  # no name or address in the mail body
    assert second["Subject"] == f"Payment for order {number} received"
    assert "€20.90" in second.get_body(("plain",)).get_content()

    sent = _messages(database)
    assert [m.status for m in sent] == ["sent", "sent"] and all(m.sent_at for m in sent)
    assert EMAIL not in _outbox_dump(database)
    assert send_emails(database) == 0  # sent once only


def test_no_email_address_means_no_email(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    buy(mail_app.test_client(), email=None)
    assert _messages(database) == []
    assert send_emails(database) == 0 and smtp_server.envelopes == []


def test_a_rolled_back_change_sends_nothing(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    buy(mail_app.test_client(), email=EMAIL)
    before = len(_messages(database))
    with pytest.raises(RuntimeError), database.job_session() as session:
        order = session.scalar(select(Order))
        service.ship(session, order, "TRACK-1")
        session.flush()
        assert session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "shipped"))
        raise RuntimeError("something failed after the change")
    assert len(_messages(database)) == before
    with database.job_session() as session:
        assert session.scalar(select(Order)).status == "paid"


def test_shipped_and_refund_emails(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    buy(mail_app.test_client(), email=EMAIL)
    with database.job_session() as session:
        order = session.scalar(select(Order))
        service.ship(session, order, "  DHL 0034 1234 ")
        service.record_refund(session, order, 500, "Partial refund")
    outbox.deliver_due(database)
    shipped, refund = smtp_server.messages()[2:]
    assert "Tracking reference: DHL 0034 1234" in shipped.get_body(("plain",)).get_content()
    assert "<strong>DHL 0034 1234</strong>" in shipped.get_body(("html",)).get_content()
    body = refund.get_body(("plain",)).get_content()
    assert "We refunded €5.00" in body and "€5.00 of €20.90" in body


def test_html_is_escaped(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    buy(mail_app.test_client(), email=EMAIL)
    with database.job_session() as session:
        service.ship(session, session.scalar(select(Order)), "<script>x</script>")
    outbox.deliver_due(database)
    html = smtp_server.messages()[-1].get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_failed_sends_are_retried_with_backoff(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    settings = mail_app.extensions["shop.settings"]
    buy(mail_app.test_client(), email=EMAIL, pay=False)
    import dataclasses

    down = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}")  # nobody there
    now = utcnow()
    assert outbox.deliver_due(database, down, now=now) == 0
    (message,) = _messages(database)
    assert (message.status, message.attempts) == ("pending", 1)
    assert message.next_attempt_at == now + timedelta(minutes=1)
    assert message.last_error and EMAIL not in message.last_error
    assert outbox.deliver_due(database, down, now=now + timedelta(seconds=30)) == 0  # not due yet
    assert _messages(database)[0].attempts == 1
    assert outbox.deliver_due(database, down, now=now + timedelta(minutes=1)) == 0
    message = _messages(database)[0]
    assert message.attempts == 2 and message.next_attempt_at == now + timedelta(minutes=3)

    # The server is back: delivered at the next due time.
    assert outbox.deliver_due(database, settings, now=now + timedelta(minutes=2)) == 0
    assert outbox.deliver_due(database, settings, now=now + timedelta(minutes=3)) == 1
    assert _messages(database)[0].status == "sent" and len(smtp_server.envelopes) == 1


def test_gives_up_after_max_attempts_or_on_a_refused_recipient(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    settings = mail_app.extensions["shop.settings"]
    smtp_server.refuse.add(EMAIL)
    buy(mail_app.test_client(), email=EMAIL, pay=False)
    assert outbox.deliver_due(database, settings) == 0
    (message,) = _messages(database)
    assert (message.status, message.attempts, message.last_error) == (
        "failed",
        1,
        "recipient refused",
    )

    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 10, 20)] == [
        60,
        120,
        240,
        21600,
        21600,
    ]


def test_purged_contact_means_the_email_is_dropped(mail_app, smtp_server):
    database = mail_app.extensions["shop.db"]
    buy(mail_app.test_client(), email=EMAIL, pay=False)
    with database.job_session() as session:
        erase_contact(session, session.scalar(select(Order)))
    assert outbox.deliver_due(database) == 0
    assert _messages(database)[0].status == "dropped" and smtp_server.envelopes == []


def test_stale_mail_is_dropped_and_nothing_sent_without_smtp(app, database, client):
    buy(client, email=EMAIL, pay=False)
    settings = app.extensions["shop.settings"]
    assert not settings.smtp_url
    assert outbox.deliver_due(database, settings) == 0
    assert _messages(database)[0].status == "pending"
    assert outbox.deliver_due(database, settings, now=utcnow() + timedelta(days=8)) == 0
    assert _messages(database)[0].status == "dropped"


def test_smtp_login(db_url, tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from shop.demo import seed_demo
    from tests.conftest import make_test_app

    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"shop",
            b"p@ss:word",
        )
        seen.append(ok)
        return AuthResult(success=ok)

    sink = SmtpSink()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        app = make_test_app(
            db_url,
            tmp_path / "i",
            smtp_url=f"smtp://shop:p%40ss%3Aword@127.0.0.1:{controller.port}",
            mail_from="orders@shop.example",
        )
        seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
        buy(app.test_client(), email=EMAIL, pay=False)
        assert outbox.deliver_due(app.extensions["shop.db"]) == 1
        assert seen == [True] and len(sink.envelopes) == 1
        app.extensions["shop.db"].dispose()
    finally:
        controller.stop()


def test_smtp_url_parsing():
    assert parse_smtp_url("smtp://localhost").port == 25
    c = parse_smtp_url("smtp+starttls://u%40x:p%2Fw@mail.example:2525")
    assert (c.host, c.port, c.security, c.username, c.password) == (
        "mail.example",
        2525,
        "starttls",
        "u@x",
        "p/w",
    )
    assert (
        parse_smtp_url("smtps://mail.example").port == 465
        and not parse_smtp_url("smtps://mail.example").is_loopback
    )
    assert parse_smtp_url("smtp://127.0.0.1:1025").is_loopback
    for bad in ["http://mail.example", "smtp://", "smtp://host:notaport", "mail.example"]:
        with pytest.raises(SmtpUrlError):
            parse_smtp_url(bad)


def test_settings_refuse_plain_smtp_to_another_host_in_production():
    from shop.config import ConfigError, load_settings

    base = {
        "env": "production",
        "secret_key": "x" * 40,
        "data_key": _data_key(),
        "database_url": "postgresql://x@localhost/x",
    }
    with pytest.raises(ConfigError) as exc:
        load_settings({}, {**base, "smtp_url": "smtp://mail.example", "mail_from": "a@b.example"})
    assert "SHOP_SMTP_URL must use smtps://" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_settings({}, {**base, "smtp_url": "smtps://mail.example"})
    assert "SHOP_MAIL_FROM" in str(exc.value)
    ok = load_settings(
        {"SHOP_SMTP_URL": "smtp+starttls://u:p@mail.example", "SHOP_MAIL_FROM": "shop@example.org"},
        base,
    )
    assert ok.smtp_url.startswith("smtp+starttls://")
    load_settings({}, {**base, "smtp_url": "smtp://127.0.0.1:25", "mail_from": "a@b.example"})


def _data_key() -> str:
    from shop.privacy.crypto import generate_master_key_text

    return generate_master_key_text()


@pytest.mark.postgres_only
def test_two_workers_never_send_the_same_email(pg_url, tmp_path):
    from shop.demo import seed_demo
    from tests.conftest import make_test_app

    sink = SmtpSink()
    from aiosmtpd.controller import Controller

    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    app = make_test_app(
        pg_url,
        tmp_path / "i",
        smtp_url=f"smtp://127.0.0.1:{controller.port}",
        mail_from="orders@shop.example",
    )
    try:
        database: Database = app.extensions["shop.db"]
        seed_demo(database, app.extensions["shop.settings"])
        for _ in range(10):
            buy(app.test_client(), slug="small-hours", email=EMAIL)
        assert len(_messages(database)) == 20
        results = []
        barrier = threading.Barrier(3)

        def work():
            barrier.wait()
            results.append(outbox.deliver_due(database))

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(results) == 20 and len(sink.envelopes) == 20
        ids = [m["Subject"] for m in sink.messages()]
        assert len(ids) == 20 and all(m.status == "sent" for m in _messages(database))
    finally:
        app.extensions["shop.db"].dispose()
        controller.stop()
