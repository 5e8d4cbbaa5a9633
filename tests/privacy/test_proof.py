"""The forensic proof: after erasure and the documented window, nothing planted is readable.

Unique markers go in through real checkouts (the pages, as a browser sends them), with the demo
payment, by card (against the fake Stripe API, whose events carry the markers as the customer's
details) and by Bitcoin (the simulated chain), and as a tracking reference. Before erasure a
backup is taken as an operator would (``pg_dump``; a copy of the SQLite file with its ``-wal``)
and the recovery script (tests/privacy/forensics.py) shows it is real: with the shop's keys it
opens every order. Then one order is erased by the customer's button, the worker's purge runs
with the shop's clock past every window, and the raw files are searched -- PostgreSQL's table
files of this database and ``pg_wal`` (the test runs as root), the SQLite file and ``-wal``,
the backup, the instance folder with the key ring, and every captured log (down to DEBUG, SQL
included): zero markers in plain text, and zero data keys recovered with every key the shop
still holds. Every column of every table is searched too, and the ledger is unchanged.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.engine import make_url

from shop.db import make_engine, utcnow
from shop.jobs.worker import run_once
from shop.orders import service
from shop.orders.models import Order
from shop.payments.base import PaymentEvent, PaymentEventKind
from shop.privacy import ledger
from shop.privacy.purge import daily_purge
from shop.privacy.store import read_contact
from tests.browser import Browser
from tests.conftest import make_test_app
from tests.privacy.forensics import read_tree, recover, shop_keys


def _markers() -> dict[str, str]:
    tag = secrets.token_hex(5)
    return {
        key: f"{prefix}{tag}"
        for key, prefix in [
            ("email_user", "qzmail"),
            ("email_domain", "qzdomain"),
            ("name", "Qzname"),
            ("street", "Qzstreet"),
            ("postal", "QZ"),
            ("city", "Qzcity"),
            ("digital_user", "qzdigital"),
            ("unpaid_name", "Qzunpaid"),
            ("refund_name", "Qzrefund"),
            ("tracking", "QZTRACK"),
        ]
    }


def _hits(blob: bytes | str, markers: dict[str, str]) -> list[str]:
    """Markers found in ``blob``: as text (any case), and hex-encoded (how dumps show bytea)."""
    data = blob.encode("utf-8", "replace") if isinstance(blob, str) else bytes(blob)
    data = data.lower()
    return [
        m
        for m in markers.values()
        if m.lower().encode() in data or m.encode().hex().encode() in data
    ]


def scan_columns(url: str, markers: dict[str, str]) -> list[str]:
    """Every text and binary value of every table in the database (reflected, not modelled)."""
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    found = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    if isinstance(value, (str, bytes, bytearray, memoryview)):
                        found += [f"{table.name}.{column.name}: {m}" for m in _hits(value, markers)]
    engine.dispose()
    assert len(meta.tables) >= 10, "reflection found too few tables: the scan would prove nothing"
    return found


def _sqlite_file(url: str) -> Path:
    return Path(make_url(url).database)


def _raw_sqlite(path: Path) -> bytes:
    return b"\x00".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def _pg_dump(url: str) -> bytes:
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", libpq], check=True, capture_output=True, timeout=60
    ).stdout


def _pg_files(database) -> list[Path]:
    """This database's table files and the server's WAL, where this process may read them."""
    with database.engine.connect() as conn:
        try:
            data_dir = conn.exec_driver_sql("SHOW data_directory").scalar()
        except Exception:  # noqa: BLE001 - not a superuser: nothing on disk to look at
            return []
        oid = conn.exec_driver_sql(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).scalar()
        conn.exec_driver_sql("CHECKPOINT")  # table pages reach their files, as they will
    roots = [Path(data_dir) / "base" / str(oid), Path(data_dir) / "pg_wal"]
    return [r for r in roots if r.is_dir() and os.access(r, os.R_OK)]


def _checkout(b: Browser, product: str, fields: dict[str, str], pay: bool) -> str:
    b.get(f"/products/{product}")
    b.submit(b.form(f"form[action$='/cart/add/{product}']"))
    b.get("/checkout")
    if b.page.soup.find(attrs={"name": "digital_consent"}) is not None:
        fields = {**fields, "digital_consent": "y"}
    page = b.submit(b.form("main form"), {"country": "DE", **fields}, button="Place order")
    if pay:
        page = b.submit(b.form(".demo-pay form"))
        assert "Status: Paid" in page.text
    return page.url.rsplit("/", 1)[1]


def _address(m: dict[str, str], name: str) -> dict[str, str]:
    return {
        "email": f"{m['email_user']}@{m['email_domain']}.example",
        "name": name,
        "street": f"{m['street']} 12",
        "postal_code": m["postal"],
        "city": m["city"],
    }


def test_no_personal_data_survives_the_purge(client, database, db_url, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQL and its parameters too
    m = _markers()
    b = Browser(client)
    physical = _checkout(b, "tote-bag", _address(m, m["name"]), pay=True)
    digital = _checkout(b, "small-hours", {"email": f"{m['digital_user']}@example.org"}, pay=True)
    unpaid = _checkout(b, "tote-bag", _address(m, m["unpaid_name"]), pay=False)
    refunded = _checkout(b, "tote-bag", _address(m, m["refund_name"]), pay=True)
    # Downloading one's data is a real read path that must not leave traces either.
    assert m["name"] in client.get(f"/orders/{physical}/privacy/data.json").get_data(as_text=True)

    now = utcnow()
    with database.job_session() as s:
        orders = {t: service.get_by_token(s, t) for t in (physical, digital, unpaid, refunded)}
        service.ship(s, orders[physical], m["tracking"], now=now)
        for token in (digital, refunded):
            service.fulfil(s, orders[token], now=now)
        service.apply_payment_event(
            s,
            PaymentEvent(
                provider="demo",
                key="proof-refund",
                order_ref=orders[refunded].ref,
                kind=PaymentEventKind.REFUNDED,
                amount=500,
                currency="EUR",
            ),
            now=now,
        )
        service.expire_due_orders(s, now=orders[unpaid].expires_at + timedelta(seconds=1))
        # The markers really are stored (with the key): the scans below are not vacuous.
        assert read_contact(s, orders[physical]).city == m["city"]
        assert read_contact(s, orders[unpaid]).name == m["unpaid_name"]
        assert read_contact(s, orders[digital]).email.startswith(m["digital_user"])
    run_once(database)  # the worker's jobs (expiry, mail, rates, today's purge) run as well
    prove(client.application, db_url, tmp_path, caplog, m, physical, orders=4, entries=4)


def test_card_checkout_leaves_no_personal_data(db_url, tmp_path, caplog, monkeypatch):
    """Card payments: Stripe's events carry the customer's details; none may stay."""
    stripe_fx = pytest.importorskip("tests.stripe.conftest", reason="card backend not present")
    fake_mod = pytest.importorskip("tests.stripe.fake_stripe")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    m = _markers()
    monkeypatch.setitem(
        fake_mod.FAKE_CUSTOMER_DETAILS, "email", f"{m['digital_user']}@{m['email_domain']}.example"
    )
    monkeypatch.setitem(fake_mod.FAKE_CUSTOMER_DETAILS, "name", m["refund_name"])
    monkeypatch.setitem(
        fake_mod.FAKE_CUSTOMER_DETAILS,
        "address",
        {
            "city": m["city"],
            "country": "DE",
            "line1": m["street"],
            "line2": None,
            "postal_code": m["postal"],
            "state": None,
        },
    )
    fake_mod.fast_sdk_retries(monkeypatch)
    with fake_mod.FakeStripe(
        api_key=stripe_fx.API_KEY, webhook_secret=stripe_fx.WEBHOOK_SECRET
    ) as fake:
        app = stripe_fx.build_card_app(db_url, tmp_path / "instance", fake)
        try:
            client = app.test_client()
            b = Browser(client)
            token = _checkout(
                b, "tote-bag", {**_address(m, m["name"]), "payment_method": "card"}, pay=False
            )
            with app.extensions["shop.db"].job_session() as s:
                order = service.get_by_token(s, token)
                assert order.payment_method == "card"
            url = stripe_fx.start_card_payment(client, order)
            response = stripe_fx.post_event(
                client, fake.complete_session(stripe_fx.session_id_of(url))
            )
            assert response.status_code == 200, response.get_data(as_text=True)
            database = app.extensions["shop.db"]
            with database.job_session() as s:
                order = service.get_by_token(s, token)
                assert order.status == "paid" and read_contact(s, order).name == m["name"]
                service.fulfil(s, order)
            prove(app, db_url, tmp_path, caplog, m, token, orders=1, entries=1)
        finally:
            app.extensions["shop.payment_methods"]["card"].close()
            app.extensions["shop.db"].dispose()


def test_bitcoin_checkout_leaves_no_personal_data(db_url, tmp_path, caplog):
    """Bitcoin (the simulated chain the demo uses): invoices, payments and chain data too."""
    pytest.importorskip("shop.payments.bitcoin.method", reason="Bitcoin backend not present")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    m = _markers()
    app = make_test_app(db_url, tmp_path / "instance", bitcoin_simulated=True, rate_providers="")
    from shop.demo import seed_demo

    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    try:
        b = Browser(app.test_client())
        tokens = []
        for product, fields in (
            ("tote-bag", _address(m, m["name"])),
            ("small-hours", {"email": f"{m['digital_user']}@example.org"}),
        ):
            b.get(f"/products/{product}")
            b.submit(b.form(f"form[action$='/cart/add/{product}']"))
            b.get("/checkout")
            if b.page.soup.find(attrs={"name": "digital_consent"}) is not None:
                fields = {**fields, "digital_consent": "y"}
            page = b.submit(
                b.form("main form"),
                {"country": "DE", **fields, "payment_method": b.option_value("Bitcoin")},
                button="Place order",
            )
            tokens.append(page.url.rsplit("/", 1)[1])
            b.submit(b.form(".bitcoin-pay form"))
            paid = b.submit(b.form("form.demo-pay"), button="Simulate payment")
            assert "Status: Paid" in paid.text
        database = app.extensions["shop.db"]
        with database.job_session() as s:
            for token in tokens:
                order = service.get_by_token(s, token)
                assert order.payment_method == "bitcoin" and read_contact(s, order) is not None
                service.fulfil(s, order)
        prove(app, db_url, tmp_path, caplog, m, tokens[0], orders=2, entries=2)
    finally:
        app.extensions["shop.db"].dispose()


def test_bitcoin_refund_address_is_erased(db_url, tmp_path, caplog):
    """A refund address the customer gives (on their order page) for a Bitcoin refund is sealed
    like the contact, so a copy without the master key shows nothing, and goes with the purge."""
    refunds = pytest.importorskip("shop.refunds.service", reason="refund addresses not present")
    from embit import ec, script
    from embit.networks import NETWORKS

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    m = _markers()
    key = ec.PrivateKey(secrets.token_bytes(32))
    m["refund_address"] = script.p2wpkh(key.get_public_key()).address(NETWORKS["main"])
    app = make_test_app(db_url, tmp_path / "instance", bitcoin_simulated=True, rate_providers="")
    from shop.demo import seed_demo

    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    try:
        b = Browser(app.test_client())
        b.get("/products/small-hours")
        b.submit(b.form("form[action$='/cart/add/small-hours']"))
        b.get("/checkout")
        page = b.submit(
            b.form("main form"),
            {
                "country": "DE",
                "email": f"{m['digital_user']}@example.org",
                "digital_consent": "y",
                "payment_method": b.option_value("Bitcoin"),
            },
            button="Place order",
        )
        token = page.url.rsplit("/", 1)[1]
        b.submit(b.form(".bitcoin-pay form"))
        assert "Status: Paid" in b.submit(b.form("form.demo-pay"), button="Simulate payment").text
        database = app.extensions["shop.db"]
        with database.job_session() as s:
            order = service.get_by_token(s, token)
            refunds.request_address(s, order)
        b.get(f"/orders/{token}")
        page = b.submit(b.form("form[action$='/refund-address']"), {"address": m["refund_address"]})
        assert "Thank you: we will send your refund to this address." in page.messages()
        with database.job_session() as s:
            order = service.get_by_token(s, token)
            assert refunds.get(s, order).address == m["refund_address"]
            service.fulfil(s, order)
        prove(app, db_url, tmp_path, caplog, m, token, orders=1, entries=1)
        with database.job_session() as s:
            assert refunds.get(s, service.get_by_token(s, token)).given is False
    finally:
        app.extensions["shop.db"].dispose()


def _backup(database, db_url: str, tmp_path: Path) -> bytes:
    """What an operator's backup holds: a dump, or the SQLite file copied with its WAL."""
    if db_url.startswith("sqlite"):
        path = _sqlite_file(db_url)
        copy = tmp_path / "backup"
        copy.mkdir(exist_ok=True)
        for p in (path, Path(f"{path}-wal")):
            if p.exists():
                shutil.copyfile(p, copy / p.name)
        return read_tree(copy)
    dump = _pg_dump(db_url)
    assert b"COPY public.order_contacts" in dump
    return dump


def _erase_by_the_customers_button(client, token: str) -> None:
    b = Browser(client)
    b.get(f"/orders/{token}")
    page = b.submit(b.form("form.erase"), button="Erase my personal data now")
    assert "has been erased" in " ".join(page.messages())


def prove(app, db_url, tmp_path, caplog, m, token, *, orders: int, entries: int) -> None:
    """A backup opens with the shop's keys; after erasure and the window nothing opens."""
    database = app.extensions["shop.db"]
    with database.job_session() as s:
        before = ledger.totals(s)
        order_ids = range(1, max(o.id for o in s.scalars(select(Order))) + 1)
    assert before["EUR"].entries == entries

    # --- a backup taken before the erasure: no plain text, but a real copy (it opens)
    assert scan_columns(db_url, m) == []
    backup = _backup(database, db_url, tmp_path)
    assert _hits(backup, m) == []
    masters, epoch_keys = shop_keys(app)
    assert len(recover(backup, masters, epoch_keys, order_ids)) == orders

    # --- one order erased by its customer, the rest by the worker's purge once the shop's
    # clock has passed every window (30-day return window, 24 h unpaid, 24 h shredding bound)
    _erase_by_the_customers_button(app.test_client(), token)
    assert daily_purge(database, now=utcnow() + timedelta(days=31, hours=1)) >= orders - 1
    with database.job_session() as s:
        for order in s.scalars(select(Order)):
            assert order.personal_data_erased_at is not None and read_contact(s, order) is None
        assert ledger.totals(s) == before
    assert scan_columns(db_url, m) == []

    # --- the raw files, the backup, the instance folder (key ring included) and the logs
    if db_url.startswith("sqlite"):
        files = _raw_sqlite(_sqlite_file(db_url))
        assert len(files) > 100_000
    else:
        roots = _pg_files(database)
        files = read_tree(*roots)
        if os.geteuid() == 0:  # CI and the developers' machines: the files must be looked at
            assert len(roots) == 2 and len(files) > 1_000_000
    instance = read_tree(Path(app.extensions["shop.settings"].instance_path))
    logged = "\n".join(
        f"{r.levelname} {r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert "order_contacts" in logged, "SQL logging was not captured: the log check proves nothing"
    everything = b"\x00".join([files, backup, instance, logged.encode(), caplog.text.encode()])
    assert _hits(everything, m) == []
    masters, epoch_keys = shop_keys(app)  # every key the shop still holds, memory and disk
    assert recover(everything, masters, epoch_keys, order_ids) == set()
