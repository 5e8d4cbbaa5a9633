"""`shop worker` as operators run it: real processes sharing one database.

* Three workers on one PostgreSQL while orders expire, Bitcoin payments arrive and emails go
  out; one is killed with SIGKILL mid-way. Every job is done exactly once, and the chain
  watcher (an advisory lock) moves to a surviving worker within seconds.
* SIGTERM: the job in progress finishes and commits, the process exits 0, its log lines are
  JSON without personal data.
* The heartbeat in /healthz and in the admin's health checks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from shop.cart.service import shipping_options
from shop.cart.storage import CartLine
from shop.catalog.models import Variant
from shop.db import Database, utcnow
from shop.demo import seed_demo
from shop.jobs.heartbeat import Heartbeat, live_workers, stale_after, worker_status
from shop.jobs.models import WorkerHeartbeat
from shop.mail.models import OutboxMessage
from shop.orders import service
from shop.orders.models import Order, OrderEvent, PaymentRecord
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin.watcher import ADVISORY_LOCK_KEY
from shop.privacy.crypto import generate_master_key_text
from shop.privacy.models import LedgerEntry
from shop.privacy.store import ContactDetails
from tests.admin.conftest import SmtpSink, free_port
from tests.bitcoin.conftest import RATE, TEST_DESCRIPTOR
from tests.bitcoin.fake_node import FakeNode
from tests.conftest import TEST_SECRET, make_test_app

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 0.2
STOCKED_SKU = "COF-ESP-250"  # physical, 40 in stock: shows whether an expiry released it twice
DIGITAL_SKU = "EBOOK-SMALL"


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 20.0) -> float:
    """Poll until `predicate()` is truthy; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Worker:
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]


class Workers:
    """Starts `python -m shop.cli worker` processes and stops whatever is left at the end."""

    def __init__(self, tmp_path: Path, env: dict[str, str]):
        self.tmp_path, self.env, self.started = tmp_path, env, []

    def start(self) -> Worker:
        log_path = self.tmp_path / f"worker-{len(self.started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shop.cli", "worker"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        worker = Worker(proc, log_path)
        self.started.append(worker)
        return worker

    def cleanup(self) -> None:
        for w in self.started:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(10)


def worker_env(db_url: str, instance: Path, data_key: str, **settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        {
            "SHOP_DATABASE_URL": db_url,
            "SHOP_SECRET_KEY": TEST_SECRET,
            "SHOP_DATA_KEY": data_key,
            "SHOP_INSTANCE_PATH": str(instance),
            "SHOP_WORKER_INTERVAL_SECONDS": str(INTERVAL),
            "SHOP_LOG_FORMAT": "json",
            "SHOP_RATE_PROVIDERS": "",
            **{f"SHOP_{k.upper()}": str(v) for k, v in settings.items()},
        }
    )
    return env


def heartbeats(database: Database) -> dict[int, WorkerHeartbeat]:
    with database.job_session() as session:
        return {
            row.pid: row
            for row in session.scalars(
                select(WorkerHeartbeat).where(WorkerHeartbeat.stopped_at.is_(None))
            )
        }


def watcher_lock_holders(database: Database) -> int:
    with database.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((classid::bigint << 32) | objid::bigint) = :key"
            ),
            {"key": ADVISORY_LOCK_KEY},
        ).scalar_one()


# ---------------------------------------------------------------- placing work


def _variant(session, sku: str) -> Variant:
    return session.scalar(select(Variant).where(Variant.sku == sku))


def place_expiring(database: Database, n: int, email: bool) -> list[int]:
    """Physical orders placed an hour ago with a 15 minute hold: due for expiry at once."""
    ids = []
    for i in range(n):
        with database.job_session() as session:
            variant = _variant(session, STOCKED_SKU)
            past = utcnow() - timedelta(hours=1)
            rate = shipping_options(session, "DE", variant.price)[0]
            contact = ContactDetails(
                email=f"late{i}@example.org" if email else None,
                name="Ada Lovelace",
                street="1 Harbour Road",
                postal_code="10115",
                city="Berlin",
            )
            order = service.place_order(
                session,
                service.PlaceOrder(
                    digital_consent=True,
                    cart=[CartLine(variant.id, 1, variant.price)],
                    country="DE",
                    payment_method="bitcoin",
                    currency="EUR",
                    expiry_minutes=15,
                    contact=contact,
                    shipping_rate_id=rate.rate_id,
                ),
                now=past,
            )
            ids.append(order.id)
    return ids


def place_bitcoin(database: Database, method, node: FakeNode, n: int, email: bool) -> list[int]:
    """Digital orders with a Bitcoin invoice each, every one paid by a transaction now in the
    node's mempool (mined by the caller)."""
    ids = []
    for i in range(n):
        with database.job_session() as session:
            variant = _variant(session, DIGITAL_SKU)
            order = service.place_order(
                session,
                service.PlaceOrder(
                    digital_consent=True,
                    cart=[CartLine(variant.id, 1, variant.price)],
                    country="DE",
                    payment_method="bitcoin",
                    currency="EUR",
                    expiry_minutes=15,
                    contact=ContactDetails(email=f"btc{i}@example.org" if email else None),
                ),
            )
            invoice = inv.create_invoice(
                session, order, method.descriptor, method.policy, inv.LockedRate(RATE)
            )
            script, sats = bytes(invoice.script_pubkey), invoice.amount_sats
            ids.append(order.id)
        node.add_to_mempool(node.make_payment(script, sats))
    return ids


def statuses(database: Database, ids: list[int]) -> set[str]:
    with database.job_session() as session:
        return set(session.scalars(select(Order.status).where(Order.id.in_(ids))))


def outbox_drained(database: Database) -> bool:
    with database.job_session() as session:
        return not session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
        )


# ---------------------------------------------------------------- the proof


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    yield sink
    controller.stop()


def test_three_workers_do_every_job_exactly_once_and_survive_a_kill(pg_url, tmp_path, smtp):
    data_key = generate_master_key_text()
    instance = tmp_path / "instance"
    with FakeNode() as node:
        btc = {
            "bitcoin_descriptor": TEST_DESCRIPTOR,
            "bitcoin_network": "regtest",
            "bitcoin_rpc_url": node.url,
            "bitcoin_poll_seconds": 0.2,
            "smtp_url": f"smtp://127.0.0.1:{smtp.port}",
            "mail_from": "orders@shop.example",
        }
        app = make_test_app(pg_url, instance, data_key=data_key, rate_providers="", **btc)
        database: Database = app.extensions["shop.db"]
        method = app.extensions["shop.payment_methods"]["bitcoin"]
        seed_demo(database, app.extensions["shop.settings"])
        with database.job_session() as session:
            stock_before = _variant(session, STOCKED_SKU).available
        workers = Workers(tmp_path, worker_env(pg_url, instance, data_key, **btc))
        try:
            started = time.monotonic()
            procs = [workers.start() for _ in range(3)]
            wait_for("three heartbeats", lambda: len(heartbeats(database)) == 3, 30)
            wait_for(
                "a chain watcher",
                lambda: any(h.watching_chain for h in heartbeats(database).values()),
            )
            assert sum(h.watching_chain for h in heartbeats(database).values()) == 1
            assert watcher_lock_holders(database) == 1

            # Phase 1: everything at once, with emails.
            expiring = place_expiring(database, 10, email=True)
            paying = place_bitcoin(database, method, node, 6, email=True)
            node.mine(1)
            wait_for("phase 1 expiries", lambda: statuses(database, expiring) == {"expired"})
            wait_for(
                "phase 1 payments", lambda: statuses(database, paying) <= {"paid", "fulfilled"}
            )
            wait_for("phase 1 emails", lambda: outbox_drained(database))

            # Phase 2: work in flight when the watching worker dies. These orders have no email
            # address: an SMTP send cut between the server's "250" and the commit would be
            # repeated (see the report in the worker module), and this test is about the rest.
            expiring += place_expiring(database, 6, email=False)
            paying += place_bitcoin(database, method, node, 6, email=False)
            node.mine(1)
            victim_pid = next(pid for pid, h in heartbeats(database).items() if h.watching_chain)
            victim = next(w for w in procs if w.pid == victim_pid)
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            killed_at = time.monotonic()
            survivors = [w for w in procs if w is not victim]

            def taken_over() -> bool:
                beats = heartbeats(database)
                return watcher_lock_holders(database) == 1 and any(
                    beats[w.pid].watching_chain for w in survivors
                )

            takeover = wait_for("another worker to take the chain watcher over", taken_over, 10)
            assert takeover < 5, f"chain watcher took {takeover:.1f} s to move"

            # Phase 3: after the kill, the two survivors carry on, emails included.
            expiring += place_expiring(database, 8, email=True)
            paying += place_bitcoin(database, method, node, 6, email=True)
            node.mine(1)
            wait_for("every expiry", lambda: statuses(database, expiring) == {"expired"})
            wait_for("every payment", lambda: statuses(database, paying) <= {"paid", "fulfilled"})
            wait_for("every email", lambda: outbox_drained(database))
            time.sleep(3 * INTERVAL)  # a few more ticks: a duplicate would show up now

            # Graceful stop of the survivors.
            for w in survivors:
                w.proc.send_signal(signal.SIGTERM)
            for w in survivors:
                assert w.proc.wait(15) == 0
            elapsed = time.monotonic() - started
        finally:
            workers.cleanup()

        with database.job_session() as session:
            # Expiries: once each, stock back exactly once.
            expired_events = Counter(
                session.scalars(
                    select(OrderEvent.order_id).where(
                        OrderEvent.order_id.in_(expiring), OrderEvent.to_status == "expired"
                    )
                )
            )
            assert expired_events == Counter({i: 1 for i in expiring})
            assert _variant(session, STOCKED_SKU).available == stock_before

            # Payments: one "paid" record, one transition, one ledger sale per order.
            orders = session.scalars(select(Order).where(Order.id.in_(paying))).all()
            assert all(o.amount_paid == o.total for o in orders)
            paid_records = Counter(
                session.scalars(
                    select(PaymentRecord.order_id).where(
                        PaymentRecord.provider == "bitcoin", PaymentRecord.kind == "paid"
                    )
                )
            )
            assert paid_records == Counter({i: 1 for i in paying})
            paid_events = Counter(
                session.scalars(
                    select(OrderEvent.order_id).where(
                        OrderEvent.order_id.in_(paying),
                        OrderEvent.to_status == "paid",
                        OrderEvent.from_status != "paid",
                    )
                )
            )
            assert paid_events == Counter({i: 1 for i in paying})
            sales = Counter(
                session.scalars(select(LedgerEntry.key).where(LedgerEntry.key.like("sale:%")))
            )
            assert sales == Counter({f"sale:{o.number}": 1 for o in orders})
            assert session.scalar(
                select(func.count())
                .select_from(inv.BitcoinInvoice)
                .where(inv.BitcoinInvoice.status == "settled")
            ) == len(paying)

            # Emails: each queued one delivered once to the SMTP server.
            outbox = session.scalars(select(OutboxMessage)).all()
            numbers = {o.id: o.number for o in session.scalars(select(Order))}
        assert outbox and all(m.status == "sent" for m in outbox)
        expected = Counter(
            (
                "Order {} received"
                if m.kind == "order_received"
                else "Payment for order {} received"
            ).format(numbers[m.order_id])
            for m in outbox
        )
        assert len(expected) == len(outbox)  # 10 + 8 + 2 * (6 + 6)
        assert len(outbox) == 10 + 8 + 2 * 12
        assert Counter(m["Subject"] for m in smtp.messages()) == expected

        beats = heartbeats(database)
        assert set(beats) == {victim_pid}  # the survivors removed their rows when they stopped
        assert victim.proc.returncode == -signal.SIGKILL
        assert elapsed < 60, f"took {elapsed:.0f} s"
        print(
            f"\nthree workers: chain watcher moved {takeover:.2f} s after the kill "
            f"({time.monotonic() - killed_at:.1f} s for the rest); whole run {elapsed:.1f} s"
        )
        app.extensions["shop.db"].dispose()


# ---------------------------------------------------------------- SIGTERM


class SlowSink(SmtpSink):
    """Takes a while to accept a message, so a SIGTERM lands in the middle of a send."""

    def __init__(self):
        super().__init__()
        self.receiving = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.receiving.set()
        await asyncio.sleep(1.5)
        return await super().handle_DATA(server, session, envelope)


def test_sigterm_lets_the_current_job_finish_and_commit(db_url, tmp_path):
    from aiosmtpd.controller import Controller

    sink = SlowSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    data_key = generate_master_key_text()
    instance = tmp_path / "instance"
    mail = {"smtp_url": f"smtp://127.0.0.1:{controller.port}", "mail_from": "orders@shop.example"}
    app = make_test_app(db_url, instance, data_key=data_key, **mail)
    database: Database = app.extensions["shop.db"]
    seed_demo(database, app.extensions["shop.settings"])
    # Placed before the worker starts: SQLite has one writer, and this test is not about that.
    expiring = place_expiring(database, 2, email=True)  # two slow emails in one job run
    workers = Workers(tmp_path, worker_env(db_url, instance, data_key, **mail))
    try:
        worker = workers.start()
        wait_for("the heartbeat", lambda: heartbeats(database), 30)
        wait_for("the first email to be on its way", sink.receiving.is_set)
        worker.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert worker.proc.wait(15) == 0
        took = time.monotonic() - signalled
    finally:
        workers.cleanup()
        controller.stop()

    assert 1.5 < took < 10, took  # it waited for the slow server, then left promptly
    with database.job_session() as session:
        messages = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert statuses(database, expiring) == {"expired"}
        # The job in progress (sending what is due) finished and committed: nothing is sent
        # again by the next worker, nothing was cut off.
        assert [m.status for m in messages] == ["sent", "sent"]
        # Marked stopped with the worker (the admin says when), no longer counted as live.
        [row] = session.scalars(select(WorkerHeartbeat)).all()
        assert row.stopped_at is not None
    assert len(sink.envelopes) == 2

    lines = worker.log_lines()  # every line is JSON
    messages_logged = [line["message"] for line in lines]
    assert any(m == "shutdown requested signal=SIGTERM" for m in messages_logged)
    assert messages_logged[-1].startswith("worker stopped worker_id=")
    assert not any("still busy" in m for m in messages_logged)
    raw = worker.log_path.read_text()
    assert "example.org" not in raw and "Lovelace" not in raw and "127.0.0.1" not in raw
    app.extensions["shop.db"].dispose()


def test_a_second_worker_with_a_bitcoin_node_stops_its_watcher_on_sigterm(pg_url, tmp_path):
    """The chain watcher thread ends with the process and its advisory lock goes with it."""
    data_key = generate_master_key_text()
    with FakeNode() as node:
        btc = {
            "bitcoin_descriptor": TEST_DESCRIPTOR,
            "bitcoin_network": "regtest",
            "bitcoin_rpc_url": node.url,
            "bitcoin_poll_seconds": 0.2,
        }
        app = make_test_app(pg_url, tmp_path / "i", data_key=data_key, rate_providers="", **btc)
        database: Database = app.extensions["shop.db"]
        workers = Workers(tmp_path, worker_env(pg_url, tmp_path / "i", data_key, **btc))
        try:
            worker = workers.start()
            wait_for(
                "the watcher",
                lambda: any(h.watching_chain for h in heartbeats(database).values()),
                30,
            )
            assert watcher_lock_holders(database) == 1
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(15) == 0
        finally:
            workers.cleanup()
        assert watcher_lock_holders(database) == 0
        messages = [line["message"] for line in worker.log_lines()]
        assert not any("still busy" in m for m in messages)
        assert messages[-1].startswith("worker stopped")
        app.extensions["shop.db"].dispose()


# ---------------------------------------------------------------- heartbeat


def test_healthz_reports_the_workers_heartbeat(client, database, settings):
    assert client.get("/healthz").get_json()["worker"] == "missing"
    clock_now = utcnow()
    beat = Heartbeat(database, ["expire-orders"], clock=lambda: clock_now)
    assert beat.beat("expire-orders")
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["worker"] == "ok"
    assert 0 <= body["worker_last_beat_seconds"] < 30

    threshold = stale_after(settings.worker_interval_seconds)
    assert threshold == timedelta(seconds=60)  # 3 x 5 s is less than the one-minute floor
    clock_now = utcnow() - threshold - timedelta(seconds=5)
    beat.beat("")
    response = client.get("/healthz")
    assert response.status_code == 200  # the web app itself is fine: monitoring reads the field
    assert response.get_json()["worker"] == "stale"
    assert response.get_json()["worker_last_beat_seconds"] > 60

    beat.remove()
    assert client.get("/healthz").get_json()["worker"] == "missing"


def test_admin_health_lists_live_workers_and_old_rows_are_pruned(database, settings):
    from shop.admin import health

    now = utcnow()
    old = Heartbeat(database, ["send-emails"], clock=lambda: now - timedelta(hours=2))
    old.beat("")
    live = Heartbeat(
        database, ["send-emails", "chain-watcher"], watching=lambda: True, clock=lambda: now
    )
    with database.job_session() as session:
        checks = {c.name: c for c in health.checks(session, settings, now)}
    assert checks["Worker"].status == health.WARN  # only a long-dead one
    live.beat("send-emails")  # also prunes rows that stopped beating an hour ago
    with database.job_session() as session:
        assert [
            w.worker_id for w in live_workers(session, settings.worker_interval_seconds, now)
        ] == [live.worker_id]
        assert session.get(WorkerHeartbeat, old.worker_id) is None
        checks = {c.name: c for c in health.checks(session, settings, now)}
        assert worker_status(session, settings.worker_interval_seconds, now)[0] == "ok"
    worker = checks["Worker"]
    assert worker.status == health.OK and worker.summary == "1 worker process running."
    assert "running send-emails" in worker.details[0]
    assert "watching the Bitcoin chain" in worker.details[0]


# ---------------------------------------------------------------- watcher vs. expiry job


@pytest.mark.parametrize("seen_in", ["block", "mempool"])
def test_the_watcher_waits_for_another_workers_invoice_expiry(pg_url, tmp_path, seen_in):
    """A payment confirmed while another worker's invoice-expiry job holds the invoice: the
    watcher judges the state that job committed instead of overwriting it."""
    from tests.bitcoin.conftest import btc_settings, make_watcher, new_invoice

    with FakeNode() as node:
        app = make_test_app(pg_url, tmp_path / "i", **btc_settings(node))
        database: Database = app.extensions["shop.db"]
        seed_demo(database, app.extensions["shop.settings"])
        method = app.extensions["shop.payment_methods"]["bitcoin"]
        placed = utcnow() - method.policy.payment_window - timedelta(minutes=5)
        _order_id, invoice_id, script, sats = new_invoice(database, method, placed)
        tx = node.make_payment(script, sats)
        watcher = make_watcher(database, node, method.policy)
        if seen_in == "block":
            node.mine(1, [tx])
            work, args = watcher.process_block, (node.blocks[-1], node.tip_hash, node.height)
        else:
            node.add_to_mempool(tx)
            watcher.refresh_watch()
            work, args = watcher.handle_tx, (tx,)

        expiry = database.sessionmaker()  # another worker's job, mid-transaction
        assert inv.expire_invoices(expiry, method.policy) == 1
        expiry.flush()
        done = threading.Thread(target=work, args=args)
        done.start()

        def watcher_waits() -> bool:
            with database.engine.connect() as conn:
                return conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar_one()

        wait_for("the watcher to wait for the invoice's lock", watcher_waits, 10)
        expiry.commit()
        expiry.close()
        done.join(10)
        assert not done.is_alive()

        with database.job_session() as session:
            events = session.execute(
                select(inv.BitcoinInvoiceEvent.from_state, inv.BitcoinInvoiceEvent.to_state)
                .where(inv.BitcoinInvoiceEvent.invoice_id == invoice_id)
                .order_by(inv.BitcoinInvoiceEvent.id)
            ).all()
            state = session.get(inv.BitcoinInvoice, invoice_id).status
        # One unbroken history: each change starts where the one before ended.
        final = "settled/late" if seen_in == "block" else "processing"
        assert [tuple(e) for e in events] == [("", "new"), ("new", "expired"), ("expired", final)]
        assert state == final.split("/")[0]
        app.extensions["shop.db"].dispose()


def test_a_watcher_whose_lock_connection_died_takes_the_lock_again(pg_url, tmp_path, caplog):
    """The advisory lock ends with its connection (database restart, network): the watcher must
    notice, or it would go on watching while another worker took the lock."""
    from shop.payments.bitcoin.watcher import ChainWatcher

    app = make_test_app(pg_url, tmp_path / "i")
    database: Database = app.extensions["shop.db"]
    watcher = ChainWatcher(database, node=None, policy=None)  # the lock needs neither
    assert watcher.acquire() and watcher_lock_holders(database) == 1
    backend = watcher._lock.conn.connection.dbapi_connection.info.backend_pid
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar()
    wait_for("the lock to go with its connection", lambda: watcher_lock_holders(database) == 0)

    assert watcher.acquire()
    assert watcher_lock_holders(database) == 1
    assert "lost the chain watcher's lock connection" in caplog.text
    watcher.release()
    assert watcher_lock_holders(database) == 0
    database.dispose()


def test_json_log_lines_are_redacted(capsys):
    import logging

    from shop.jobs.logs import configure_logging

    root = logging.getLogger()
    # As in a fresh `shop worker` process: an app built by an earlier test in this process may
    # have given the "shop" logger Flask's own handler, which would print a second, text line.
    shop_logger = logging.getLogger("shop")
    saved, level, shop_saved = root.handlers[:], root.level, shop_logger.handlers[:]
    shop_logger.handlers[:] = []
    try:
        configure_logging("json")
        logging.getLogger("shop.test").warning("mail for ada@example.org from 203.0.113.9 job=x")
        try:
            raise ValueError("bad address ada@example.org")
        except ValueError:
            logging.getLogger("shop.test").exception("job failed job=send-emails")
    finally:
        root.handlers[:], root.level = saved, level
        shop_logger.handlers[:] = shop_saved
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "mail for [email] from [ip] job=x"
    assert first["level"] == "WARNING" and first["logger"] == "shop.test"
    assert second["message"] == "job failed job=send-emails"
    assert "ValueError: bad address [email]" in second["exception"]
