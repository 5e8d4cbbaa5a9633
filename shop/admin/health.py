"""The shop's health at a glance, from what each feature records. No Flask.

Each payment method reports its own checks (PaymentMethod.health); a method that is not
configured shows as "off".
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shop.config import Settings
from shop.db import utcnow
from shop.mail.models import FAILED, PENDING, OutboxMessage
from shop.payments.base import HealthCheck, PaymentMethod, ago

OK, WARN, OFF = "ok", "warning", "off"


Check = HealthCheck
_age = ago


def _mail(session: Session, settings: Settings, now: datetime) -> list[Check]:
    pending = session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.status == PENDING)) or 0
    failed = session.scalar(select(func.count()).select_from(OutboxMessage)
                            .where(OutboxMessage.status == FAILED)) or 0
    last = session.scalar(select(func.max(OutboxMessage.sent_at)))
    if not settings.smtp_url:
        return [Check("Email", OFF, f"No SMTP server (SHOP_SMTP_URL): {pending} email(s) waiting.")]
    return [Check("Email", WARN if failed else OK,
                  f"{pending} waiting, {failed} failed; last sent {_age(last, now)}.")]


def _workers(session: Session, settings: Settings, now: datetime) -> list[Check]:
    from shop.jobs.heartbeat import live_workers, newest_beat

    live = live_workers(session, settings.worker_interval_seconds, now)
    details = [f"{w.host} (process {w.pid}): started {_age(w.started_at, now)}, last beat "
               f"{_age(w.last_beat, now)}"
               + (f", running {w.current_job}" if w.current_job else "")
               + (", watching the Bitcoin chain" if w.watching_chain else "") for w in live]
    if live:
        return [Check("Worker", OK, f"{len(live)} worker process{'es' if len(live) != 1 else ''} "
                                    "running.", details)]
    return [Check("Worker", WARN, f"No worker running (last heartbeat {_age(newest_beat(session), now)}).",
                  ["Orders do not expire, emails are not sent and payments are not detected "
                   "until `shop worker` runs."])]


def checks(session: Session, settings: Settings, now: datetime | None = None,
           methods: dict[str, PaymentMethod] | None = None) -> list[Check]:
    """The worker, each payment method's own checks, and email."""
    now = now or utcnow()
    result = []
    probes = [_workers]
    for method in (methods or {}).values():
        probes.append(lambda s, _settings, n, method=method: method.health(s, n))
    probes.append(_mail)
    for probe in probes:
        try:
            with session.begin_nested():
                result += probe(session, settings, now)
        except SQLAlchemyError:
            result.append(Check(getattr(probe, "__name__", "check").strip("_").title(), WARN,
                                "Could not be read (is the database migrated?)."))
    return result


def retention(settings: Settings) -> list[tuple[str, str]]:
    return [
        ("Personal data of unpaid, expired or cancelled orders",
         f"{getattr(settings, 'retention_unpaid_hours', 24)} hours after they ended"),
        ("Personal data of fulfilled orders",
         f"{getattr(settings, 'retention_fulfilled_days', 30)} days after fulfilment"),
        ("Bookkeeping ledger (no personal data)",
         f"{getattr(settings, 'ledger_retention_years', 7)} years"),
        ("Unsent customer emails", "dropped after 7 days; sent ones keep no address"),
    ]
