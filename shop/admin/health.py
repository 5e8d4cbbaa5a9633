"""The shop's health at a glance, from what each feature records. No Flask.

Each payment method reports its own checks (PaymentMethod.health); a method that is not
configured shows as "off".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shop.config import Settings
from shop.db import utcnow
from shop.jobs.heartbeat import last_stop, live_workers, newest_beat
from shop.legal import service as legal
from shop.mail.models import FAILED, PENDING, OutboxMessage
from shop.payments.base import HealthCheck, PaymentMethod, ago

OK, WARN, OFF = "ok", "warning", "off"


Check = HealthCheck
Probe = Callable[[Session, Settings, datetime], list[Check]]
_age = ago


def _method_probe(method: PaymentMethod) -> Probe:
    return lambda session, _settings, now: method.health(session, now)


def _mail(session: Session, settings: Settings, now: datetime) -> list[Check]:
    pending = (
        session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == PENDING)
        )
        or 0
    )
    failed = (
        session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == FAILED)
        )
        or 0
    )
    last = session.scalar(select(func.max(OutboxMessage.sent_at)))
    if not settings.smtp_url:
        return [Check("Email", OFF, f"No SMTP server (SHOP_SMTP_URL): {pending} email(s) waiting.")]
    # A refused connection is retried, so it never shows as "failed": look at the retries too.
    retrying = session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.status == PENDING,
            OutboxMessage.attempts > 0,
            OutboxMessage.last_error != "",
        )
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    if retrying is not None:
        return [
            Check(
                "Email",
                WARN,
                f"Email delivery is failing: {pending} waiting, {failed} "
                f"failed; last sent {_age(last, now)}.",
                [
                    f"Last error: {retrying.last_error}. Check SHOP_SMTP_URL and the mail "
                    "server; the worker keeps retrying."
                ],
            )
        ]
    return [
        Check(
            "Email",
            WARN if failed else OK,
            f"{pending} waiting, {failed} failed; last sent {_age(last, now)}.",
        )
    ]


def _workers(session: Session, settings: Settings, now: datetime) -> list[Check]:
    live = live_workers(session, settings.worker_interval_seconds, now)
    details = [
        f"{w.host} (process {w.pid}): started {_age(w.started_at, now)}, last beat "
        f"{_age(w.last_beat, now)}"
        + (f", running {w.current_job}" if w.current_job else "")
        + (", watching the Bitcoin chain" if w.watching_chain else "")
        + "".join(f", following {name}" for name in w.listening.split(",") if name)
        for w in live
    ]
    if live:
        return [
            Check(
                "Worker",
                OK,
                f"{len(live)} worker process{'es' if len(live) != 1 else ''} running.",
                details,
            )
        ]
    beat, stopped = newest_beat(session), last_stop(session)
    if stopped is not None and (beat is None or stopped >= beat):
        summary = f"No worker running: the last one stopped {_age(stopped, now)}."
    elif beat is not None:
        summary = f"No worker running: the last one stopped answering {_age(beat, now)}."
    else:
        summary = "No worker has run yet."
    return [
        Check(
            "Worker",
            WARN,
            summary,
            [
                "Orders do not expire, emails are not sent and payments are not detected "
                "until `shop worker` runs."
            ],
        )
    ]


def checks(
    session: Session,
    settings: Settings,
    now: datetime | None = None,
    methods: dict[str, PaymentMethod] | None = None,
) -> list[Check]:
    """The worker, each payment method's own checks, and email."""
    now = now or utcnow()
    result = []
    probes: list[Probe] = [_workers]
    probes += [_method_probe(method) for method in (methods or {}).values()]
    probes.append(_mail)
    for probe in probes:
        try:
            with session.begin_nested():
                result += probe(session, settings, now)
        except SQLAlchemyError:
            result.append(
                Check(
                    getattr(probe, "__name__", "check").strip("_").title(),
                    WARN,
                    "Could not be read (is the database migrated?).",
                )
            )
    return result


@dataclass(frozen=True)
class SetupItem:
    name: str
    done: bool
    detail: str
    endpoint: str  # where the merchant sets it up


def missing_legal_pages(session: Session) -> list[str]:
    """The legal pages (slugs) still empty: an EU shop must publish all four before selling."""
    missing = []
    for slug in ("imprint", "terms", "withdrawal", "privacy"):
        page = legal.get_page(session, slug)
        filled = page is not None and (
            any(legal.imprint_fields(page).values()) if slug == "imprint" else bool(page.body)
        )
        if not filled:
            missing.append(slug)
    return missing


def setup_checklist(
    session: Session, settings: Settings, payment_ready: bool, now: datetime | None = None
) -> list[SetupItem]:
    """What a new shop still lacks before it can take orders and keep its promises."""
    missing = [legal.PAGES[slug] for slug in missing_legal_pages(session)]
    workers = live_workers(session, settings.worker_interval_seconds, now or utcnow())
    return [
        SetupItem(
            "Payment method",
            payment_ready,
            "Customers can pay."
            if payment_ready
            else "No payment method is set up: set SHOP_STRIPE_SECRET_KEY (cards) or "
            "SHOP_BITCOIN_DESCRIPTOR (Bitcoin). Until then nobody can order.",
            "admin.settings_page",
        ),
        SetupItem(
            "Legal pages",
            not missing,
            "Imprint, terms, withdrawal and privacy are written."
            if not missing
            else f"Still empty: {', '.join(missing)}.",
            "admin.legal_pages",
        ),
        SetupItem(
            "Email (SMTP)",
            bool(settings.smtp_url),
            "Customer emails are sent."
            if settings.smtp_url
            else "No SMTP server (SHOP_SMTP_URL): customers get no order emails.",
            "admin.settings_page",
        ),
        SetupItem(
            "Worker",
            bool(workers),
            "A worker is running."
            if workers
            else "No `shop worker` is running: orders do not expire, emails are not sent and "
            "payments are not detected.",
            "admin.settings_page",
        ),
    ]


def retention(settings: Settings) -> list[tuple[str, str]]:
    return [
        (
            "Personal data of unpaid, expired or cancelled orders",
            f"{getattr(settings, 'retention_unpaid_hours', 24)} hours after they ended",
        ),
        (
            "Personal data of fulfilled orders",
            f"{getattr(settings, 'retention_fulfilled_days', 30)} days after fulfilment",
        ),
        (
            "Bookkeeping ledger (no personal data)",
            f"{getattr(settings, 'ledger_retention_years', 7)} years",
        ),
        ("Unsent customer emails", "dropped after 7 days; sent ones keep no address"),
    ]
