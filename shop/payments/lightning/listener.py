"""Following the node in `shop worker`: the settlement stream, and a reconciliation poll.

The stream (LND's invoice subscription, CLN's `waitanyinvoice`) resumes after the last index
stored with the settlement it came with, so a dropped connection, a node restart or a worker
restart replays what was not committed and nothing twice (settlements are idempotent by payment
hash anyway). Every `poll_seconds` the open invoices are also looked up one by one, which
catches anything a stream missed. On PostgreSQL one worker at a time listens (an advisory lock,
as for the chain watcher); others stand by and take over when it goes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from shop.db import AdvisoryLock, Database, utcnow
from shop.payments.lightning import service
from shop.payments.lightning.backend import (
    InvoiceStream,
    LightningBackend,
    LightningError,
    NodeInvoice,
)
from shop.payments.lightning.settings import backend_from, kind

if TYPE_CHECKING:
    from shop.config import Settings

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x5B17C0 + 17  # any constant; only the Lightning listener takes it
RETRY_SECONDS = 2.0
# Settlements waiting in the queue are recorded together, one transaction (one fsync) for all.
BATCH = 200
HELPER_JOIN_SECONDS = 10.0


class LightningListener:
    follows = "the Lightning node"  # shop.payments.base.Listener

    def __init__(
        self,
        database: Database,
        backend: LightningBackend,
        *,
        poll_seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.database = database
        self.backend = backend
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.watching = False
        self._lock = AdvisoryLock(database, ADVISORY_LOCK_KEY, "Lightning listener")
        self._stream: InvoiceStream | None = None
        self.on_settled: Callable[[NodeInvoice], None] | None = None  # tests and benchmarks

    # ------------------------------------------------------------ single-listener lock

    def acquire(self) -> bool:
        """On PostgreSQL, take the advisory lock (held until release)."""
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    # ------------------------------------------------------------ work

    def reconcile(self) -> int:
        try:
            found = service.reconcile(self.database, self.backend, self.clock())
        except LightningError as exc:
            service.record_status(self.database, self.backend.name, str(exc), self.clock())
            raise
        service.record_status(self.database, self.backend.name, None, self.clock())
        return found

    def handle(self, batch: list[NodeInvoice]) -> None:
        try:
            service.handle_settled(self.database, self.backend.name, batch, self.clock())
        except SQLAlchemyError:
            if len(batch) == 1:
                raise
            # One bad settlement must not hold back the others: each in its own transaction.
            for settled in batch:
                service.handle_settled(self.database, self.backend.name, [settled], self.clock())
        if self.on_settled is not None:
            for settled in batch:
                self.on_settled(settled)

    def _read_stream(self, items: queue.Queue, stop: threading.Event) -> None:
        """Reader thread: stream from the stored index, reconnecting until stopped. What it
        queued but was not committed yet is replayed after a reconnect (harmless: settlements
        are idempotent)."""
        while not stop.is_set():
            try:
                stream = self._stream = self.backend.stream(
                    service.last_index(self.database, self.backend.name)
                )
                for settled in stream:
                    if not _put(items, settled, stop):
                        return
            except LightningError as exc:
                _put(items, exc, stop)
                stop.wait(RETRY_SECONDS)
            except Exception:  # a bug must not end the listener; logged, then retried
                log.exception("lightning stream reader failed")
                stop.wait(RETRY_SECONDS)

    def _reconcile_loop(self, stop: threading.Event) -> None:
        """Its own thread: looking up many open invoices must not delay the stream."""
        while not stop.is_set():
            try:
                self.reconcile()
            except LightningError as exc:
                log.warning("lightning reconcile failed error=%s", exc)
            except SQLAlchemyError:
                log.exception("lightning reconcile failed (database)")
            stop.wait(self.poll_seconds)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.acquire():
                self.watching = False
                stop.wait(self.poll_seconds)
                continue
            self.watching = True
            try:
                self._listen(stop)
            finally:
                self.watching = False
        self.release()

    def _listen(self, stop: threading.Event) -> None:
        items: queue.Queue = queue.Queue(maxsize=BATCH * 10)
        helpers_stop = threading.Event()
        helpers = [
            threading.Thread(
                target=self._read_stream,
                args=(items, helpers_stop),
                name="lightning-stream",
                daemon=True,
            ),
            threading.Thread(
                target=self._reconcile_loop,
                args=(helpers_stop,),
                name="lightning-reconcile",
                daemon=True,
            ),
        ]
        for thread in helpers:
            thread.start()
        next_lock_check = time.monotonic() + self.poll_seconds
        try:
            while not stop.is_set():
                if time.monotonic() >= next_lock_check:
                    if not self.acquire():
                        return  # another worker listens now
                    next_lock_check = time.monotonic() + self.poll_seconds
                try:
                    first = items.get(timeout=0.5)
                except queue.Empty:
                    continue
                batch = [first]
                while len(batch) < BATCH:  # what else is waiting goes in the same transaction
                    try:
                        batch.append(items.get_nowait())
                    except queue.Empty:
                        break
                for error in (x for x in batch if isinstance(x, LightningError)):
                    log.warning("lightning stream interrupted error=%s", error)
                    service.record_status(
                        self.database, self.backend.name, str(error), self.clock()
                    )
                settled = [x for x in batch if not isinstance(x, LightningError)]
                if settled:
                    try:
                        self.handle(settled)
                    except SQLAlchemyError:
                        log.exception("lightning settlement not recorded; the reconcile retries")
        finally:
            helpers_stop.set()
            stream = self._stream
            if stream is not None:
                stream.close()
            while True:  # let a reader blocked on a full queue go
                try:
                    items.get_nowait()
                except queue.Empty:
                    break
            for thread in helpers:  # no database work left running behind the listener
                thread.join(HELPER_JOIN_SECONDS)


def _put(items: queue.Queue, item, stop: threading.Event) -> bool:
    """Queue `item` unless the listener stops first (then nobody would take it)."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def start_listener(
    database: Database, settings: Settings, stop: threading.Event
) -> threading.Thread | None:
    """Start the Lightning listener thread of `shop worker` when a node is configured."""
    backend = backend_from(settings) if kind(settings) in ("lnd", "cln") else None
    if backend is None:
        return None  # off, or the demo's simulated node (applied at once, nothing to follow)
    listener = LightningListener(database, backend, poll_seconds=settings.lightning_poll_seconds)
    thread = threading.Thread(
        target=listener.run_forever, args=(stop,), name="lightning-listener", daemon=True
    )
    thread.listener = listener  # type: ignore[attr-defined]
    thread.start()
    log.info(
        "Lightning listener started backend=%s poll=%.0fs",
        kind(settings),
        settings.lightning_poll_seconds,
    )
    return thread
