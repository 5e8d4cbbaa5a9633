"""`shop worker`: the background jobs that must run without a customer visiting a page.

Each job opens its own unit of work (Database.job_session) and takes ids, never live ORM objects.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from shop.config import Settings
from shop.db import Database
from shop.jobs.heartbeat import Heartbeat
from shop.mail.outbox import deliver_due
from shop.orders import service as orders
from shop.payments.base import Listener
from shop.payments.bitcoin.rates import RatesJob
from shop.payments.bitcoin.watcher import expire_invoices_job, start_watcher
from shop.payments.registry import start_listeners
from shop.payments.stripe.jobs import StripeEventsJob
from shop.privacy.purge import daily_purge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Database], int]


def expire_orders(database: Database) -> int:
    with database.job_session() as session:
        return orders.expire_due_orders(session)


def purge_personal_data(database: Database) -> int:
    return daily_purge(database)  # at most once a day, however often the worker ticks


def send_emails(database: Database) -> int:
    return deliver_due(database)  # customer emails queued by order changes, with retries


def expire_bitcoin_invoices(database: Database) -> int:
    return expire_invoices_job(database)  # time-only: works while the node is down


JOBS = [
    Job("expire-orders", expire_orders),
    Job("privacy-purge", purge_personal_data),
    Job("send-emails", send_emails),
    Job("bitcoin-invoices", expire_bitcoin_invoices),
]
# BTC exchange rates; a no-op unless Bitcoin checkout is configured (see rates.rates_wanted).
JOBS.append(Job(RatesJob.name, RatesJob()))
# Stripe events stored by the webhook endpoint; a no-op unless card payments are configured.
JOBS.append(Job(StripeEventsJob.name, StripeEventsJob()))


def run_once(
    database: Database,
    jobs: list[Job] = JOBS,
    stop: threading.Event | None = None,
    heartbeat: Heartbeat | None = None,
) -> dict[str, int]:
    results = {}
    for job in jobs:
        if stop is not None and stop.is_set():
            break  # shutting down: the job that ran last has committed; leave the rest
        if heartbeat is not None:
            heartbeat.beat(job.name)
        try:
            results[job.name] = job.run(database)
            if results[job.name]:
                log.info("job done job=%s items=%d", job.name, results[job.name])
        except Exception:
            # One failing job must not stop the others; it is retried on the next tick.
            log.exception("job failed job=%s", job.name)
            results[job.name] = -1
    return results


def run_forever(
    database: Database,
    interval: float,
    stop: threading.Event,
    *,
    heartbeat: Heartbeat | None = None,
) -> None:
    log.info("worker started interval=%.1f", interval)
    while not stop.is_set():
        run_once(database, stop=stop, heartbeat=heartbeat)
        if heartbeat is not None and not stop.is_set():
            heartbeat.beat("")
        stop.wait(interval)
    log.info("worker loop ended")


# After SIGTERM the job in progress may finish; past this, the process leaves anyway (what it
# had not committed rolls back, exactly as after a crash). Below systemd's default 90 s.
SHUTDOWN_GRACE_SECONDS = 30.0
WATCHER_JOIN_SECONDS = 10.0


def serve(
    database: Database, settings: Settings, *, grace_seconds: float = SHUTDOWN_GRACE_SECONDS
) -> int:
    """`shop worker`: the jobs every tick, the chain watcher in its thread, a heartbeat, and a
    graceful stop on SIGTERM or Ctrl-C (a second signal leaves at once). Returns the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("second signal, leaving now signal=%s", name)
            os._exit(1)
        log.info("shutdown requested signal=%s", name)
        stop.set()
        timer = threading.Timer(grace_seconds, _force_exit, args=(grace_seconds,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watcher_thread = start_watcher(database, settings, stop)  # its own loop (ZMQ + poll)
    listeners = start_listeners(database, settings, stop)  # e.g. a Lightning node's stream
    heartbeat = heartbeat_for(database, watcher_thread, listeners)
    log.info("worker id worker_id=%s jobs=%s", heartbeat.worker_id, heartbeat.jobs)
    heartbeat.beat("")
    run_forever(database, settings.worker_interval_seconds, stop, heartbeat=heartbeat)
    for thread in listeners:
        thread.join(WATCHER_JOIN_SECONDS)
    if watcher_thread is not None:
        watcher_thread.join(WATCHER_JOIN_SECONDS)
        if watcher_thread.is_alive():
            log.warning("chain watcher still busy after %.0f s; leaving it", WATCHER_JOIN_SECONDS)
    heartbeat.remove()
    database.dispose()
    log.info("worker stopped worker_id=%s", heartbeat.worker_id)
    return 0


def heartbeat_for(
    database: Database,
    watcher_thread: threading.Thread | None,
    listeners: list[threading.Thread],
) -> Heartbeat:
    """This worker's heartbeat: its jobs and threads, whether it watches the chain, and which
    listeners (shop.payments.base.Listener) hold their lock and listen right now."""
    watcher = getattr(watcher_thread, "watcher", None)
    followers: list[Listener] = [t.listener for t in listeners if hasattr(t, "listener")]
    names = (
        [job.name for job in JOBS]
        + (["chain-watcher"] if watcher_thread else [])
        + [t.name for t in listeners]
    )
    return Heartbeat(
        database,
        names,
        watching=lambda: bool(watcher and watcher.watching),
        listening=lambda: [f.follows for f in followers if f.watching],
    )


def _force_exit(grace_seconds: float) -> None:
    log.error(
        "job still running %.0f s after the shutdown request; leaving without it", grace_seconds
    )
    logging.shutdown()
    os._exit(1)
