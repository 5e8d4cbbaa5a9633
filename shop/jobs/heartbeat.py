"""Worker heartbeats: every `shop worker` process updates its own row each tick, so `/healthz`
and the admin can tell a running worker from a dead one. Nothing personal is stored."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from shop.db import Database, utcnow
from shop.jobs.models import WorkerHeartbeat

log = logging.getLogger(__name__)

# Rows of workers that stopped beating this long ago are deleted (by any live worker).
PRUNE_AFTER = timedelta(hours=1)
# A write at most this often (far inside the 60 s staleness floor) unless the worker took or
# lost the chain watcher (or a listener): with a short tick on SQLite, a write every tick would compete with
# checkouts for the single writer lock.
BEAT_EVERY = timedelta(seconds=5)


def stale_after(interval_seconds: float) -> timedelta:
    """A worker is presumed dead when it missed three ticks (and never sooner than a minute:
    one slow job, e.g. a mail server timing out, must not look like a dead worker)."""
    return timedelta(seconds=max(3 * interval_seconds, 60))


def new_worker_id() -> str:
    # The random part tells apart two processes that reuse a pid (containers, restarts).
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


def newest_beat(session: Session) -> datetime | None:
    return session.scalar(
        select(func.max(WorkerHeartbeat.last_beat)).where(WorkerHeartbeat.stopped_at.is_(None))
    )


def last_stop(session: Session) -> datetime | None:
    """When the last worker that exited cleanly stopped (None: none did, or it was pruned)."""
    return session.scalar(select(func.max(WorkerHeartbeat.stopped_at)))


def live_workers(
    session: Session, interval_seconds: float, now: datetime | None = None
) -> list[WorkerHeartbeat]:
    now = now or utcnow()
    return list(
        session.scalars(
            select(WorkerHeartbeat)
            .where(
                WorkerHeartbeat.last_beat >= now - stale_after(interval_seconds),
                WorkerHeartbeat.stopped_at.is_(None),
            )
            .order_by(WorkerHeartbeat.started_at, WorkerHeartbeat.worker_id)
        )
    )


def worker_status(
    session: Session, interval_seconds: float, now: datetime | None = None
) -> tuple[str, float | None]:
    """("ok" | "stale" | "missing", age of the newest heartbeat in seconds)."""
    now = now or utcnow()
    last = newest_beat(session)
    if last is None:
        return "missing", None
    age = max((now - last).total_seconds(), 0.0)
    return ("stale" if age > stale_after(interval_seconds).total_seconds() else "ok"), age


class Heartbeat:
    """This process's row. Failures are logged, never raised: a database hiccup must not stop
    the jobs (they fail and retry on their own)."""

    def __init__(
        self,
        database: Database,
        jobs: list[str],
        watching: Callable[[], bool] = lambda: False,
        listening: Callable[[], list[str]] = list,
        clock: Callable[[], datetime] = utcnow,
        worker_id: str | None = None,
    ):
        self.database = database
        self.jobs = ",".join(jobs)[:500]
        self.watching = watching
        self.listening = listening
        self.clock = clock
        self.worker_id = worker_id or new_worker_id()
        self.started_at = clock()
        self._pruned_at: datetime | None = None
        self._written: tuple[datetime, tuple[bool, str]] | None = None

    def beat(self, current_job: str = "") -> bool:
        """Record that this worker is alive; returns whether a row was written."""
        now = self.clock()
        watching = (bool(self.watching()), ",".join(self.listening())[:200])
        if (
            self._written is not None
            and self._written[1] == watching
            and timedelta(0) <= now - self._written[0] < BEAT_EVERY
        ):
            return False
        try:
            with self.database.job_session() as session:
                row = session.get(WorkerHeartbeat, self.worker_id)
                if row is None:
                    host, pid, _ = self.worker_id.rsplit(":", 2)
                    row = WorkerHeartbeat(
                        worker_id=self.worker_id,
                        host=host,
                        pid=int(pid),
                        started_at=self.started_at,
                        jobs=self.jobs,
                    )
                    session.add(row)
                row.last_beat, row.current_job = now, current_job[:60]
                row.watching_chain, row.listening = watching
                if self._pruned_at is None or now - self._pruned_at >= timedelta(minutes=1):
                    session.execute(
                        delete(WorkerHeartbeat).where(WorkerHeartbeat.last_beat < now - PRUNE_AFTER)
                    )
                    self._pruned_at = now
            self._written = (now, watching)
            return True
        except Exception:
            log.exception("could not record the heartbeat worker_id=%s", self.worker_id)
            return False

    def remove(self) -> None:
        """A clean exit: the row is marked stopped at once, so nobody mistakes this worker for
        a dead one, and the admin can still say when the last worker stopped."""
        try:
            with self.database.job_session() as session:
                session.execute(
                    update(WorkerHeartbeat)
                    .where(WorkerHeartbeat.worker_id == self.worker_id)
                    .values(stopped_at=self.clock(), current_job="")
                )
        except Exception:
            log.exception("could not remove the heartbeat worker_id=%s", self.worker_id)
