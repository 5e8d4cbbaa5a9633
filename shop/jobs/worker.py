"""`shop worker`: the background jobs that must run without a customer visiting a page.

Each job opens its own unit of work (Database.job_session) and takes ids, never live ORM objects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from shop.db import Database
from shop.orders import service as orders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Database], int]


def expire_orders(database: Database) -> int:
    with database.job_session() as session:
        return orders.expire_due_orders(session)


JOBS = [Job("expire-orders", expire_orders)]


def run_once(database: Database, jobs: list[Job] = JOBS) -> dict[str, int]:
    results = {}
    for job in jobs:
        try:
            results[job.name] = job.run(database)
            if results[job.name]:
                log.info("job %s handled %d item(s)", job.name, results[job.name])
        except Exception:
            # One failing job must not stop the others; it is retried on the next tick.
            log.exception("job %s failed", job.name)
            results[job.name] = -1
    return results


def run_forever(database: Database, interval: float, stop: threading.Event) -> None:
    log.info("worker started (every %.1f s)", interval)
    while not stop.is_set():
        run_once(database)
        stop.wait(interval)
    log.info("worker stopped")
