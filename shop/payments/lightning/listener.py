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

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from shop.db import Database, utcnow
from shop.payments.lightning import service
from shop.payments.lightning.backend import LightningBackend, LightningError, NodeInvoice

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x5B17C0 + 17  # any constant; only the Lightning listener takes it
RETRY_SECONDS = 2.0


class LightningListener:
    def __init__(self, database: Database, backend: LightningBackend, *,
                 poll_seconds: float = 30.0, clock: Callable[[], datetime] = utcnow):
        self.database = database
        self.backend = backend
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.watching = False
        self._lock_conn = None
        self._stream = None
        self.on_settled: Callable[[NodeInvoice], None] | None = None  # tests and benchmarks

    # ------------------------------------------------------------ single-listener lock

    def acquire(self) -> bool:
        if not self.database.is_postgres:
            return True
        if self._lock_conn is not None:
            try:
                self._lock_conn.execute(select(1))
                self._lock_conn.commit()
                return True
            except SQLAlchemyError:
                log.warning("lost the Lightning listener's lock connection; taking it again")
                self._lock_conn.invalidate()
                self._lock_conn.close()
                self._lock_conn = None
        conn = self.database.engine.connect()
        got = conn.execute(select(func.pg_try_advisory_lock(ADVISORY_LOCK_KEY))).scalar()
        conn.commit()
        if not got:
            conn.close()
            return False
        self._lock_conn = conn
        return True

    def release(self) -> None:
        if self._lock_conn is not None:
            try:
                self._lock_conn.execute(text(f"SELECT pg_advisory_unlock({ADVISORY_LOCK_KEY})"))
                self._lock_conn.commit()
            finally:
                self._lock_conn.close()
                self._lock_conn = None

    # ------------------------------------------------------------ work

    def reconcile(self) -> int:
        try:
            found = service.reconcile(self.database, self.backend, self.clock())
        except LightningError as exc:
            service.record_status(self.database, self.backend.name, str(exc), self.clock())
            raise
        service.record_status(self.database, self.backend.name, None, self.clock())
        return found

    def handle(self, settled: NodeInvoice) -> None:
        service.handle_settled(self.database, self.backend.name, settled, self.clock())
        if self.on_settled is not None:
            self.on_settled(settled)

    def _read_stream(self, items: queue.Queue, stop: threading.Event) -> None:
        """Reader thread: stream from the stored index, reconnecting until stopped."""
        while not stop.is_set():
            try:
                stream = self._stream = self.backend.stream(
                    service.last_index(self.database, self.backend.name))
                for settled in stream:
                    items.put(settled)
                    # Wait until it is committed, so a reconnect resumes after it.
                    items.join()
            except LightningError as exc:
                items.put(exc)
                items.join()
                stop.wait(RETRY_SECONDS)
            except Exception:  # a bug must not end the listener; logged, then retried
                log.exception("lightning stream reader failed")
                stop.wait(RETRY_SECONDS)

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
        items: queue.Queue = queue.Queue()
        reader_stop = threading.Event()
        reader = threading.Thread(target=self._read_stream, args=(items, reader_stop),
                                  name="lightning-stream", daemon=True)
        reader.start()
        next_poll = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_poll:
                    try:
                        self.reconcile()
                    except LightningError as exc:
                        log.warning("lightning reconcile failed error=%s", exc)
                    except SQLAlchemyError:
                        log.exception("lightning reconcile failed (database)")
                    next_poll = time.monotonic() + self.poll_seconds
                    if not self.acquire():
                        return  # another worker listens now
                try:
                    item = items.get(timeout=max(0.05, min(1.0, next_poll - time.monotonic())))
                except queue.Empty:
                    continue
                try:
                    if isinstance(item, LightningError):
                        log.warning("lightning stream interrupted error=%s", item)
                        service.record_status(self.database, self.backend.name, str(item),
                                              self.clock())
                    else:
                        self.handle(item)
                except SQLAlchemyError:
                    log.exception("lightning settlement not recorded; the reconcile retries")
                finally:
                    items.task_done()
        finally:
            reader_stop.set()
            stream = self._stream
            if stream is not None:
                stream.close()
            while True:  # let a reader waiting for its last item go
                try:
                    items.get_nowait()
                except queue.Empty:
                    break
                items.task_done()


def start_listener(database: Database, settings, stop: threading.Event) -> threading.Thread | None:
    """Start the Lightning listener thread of `shop worker` when a node is configured."""
    from shop.payments.lightning.settings import backend_from, kind

    if kind(settings) not in ("lnd", "cln"):
        return None  # off, or the demo's simulated node (applied at once, nothing to follow)
    listener = LightningListener(database, backend_from(settings),
                                 poll_seconds=settings.lightning_poll_seconds)
    thread = threading.Thread(target=listener.run_forever, args=(stop,),
                              name="lightning-listener", daemon=True)
    thread.listener = listener  # type: ignore[attr-defined]
    thread.start()
    log.info("Lightning listener started backend=%s poll=%.0fs", kind(settings),
             settings.lightning_poll_seconds)
    return thread
