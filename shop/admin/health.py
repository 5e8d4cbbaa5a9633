"""The shop's health at a glance, from what each feature records. No Flask.

Each payment module is optional here: a module that is not installed or not configured shows
as "off", and its tables are read only when they exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shop.config import Settings
from shop.db import utcnow
from shop.mail.models import FAILED, PENDING, OutboxMessage

OK, WARN, OFF = "ok", "warning", "off"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)


def _age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = int((now - at).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _bitcoin(session: Session, settings: Settings, now: datetime) -> list[Check]:
    if not getattr(settings, "bitcoin_descriptor", "") and not getattr(settings, "bitcoin_simulated", False):
        return [Check("Bitcoin node", OFF, "Bitcoin checkout is not set up (SHOP_BITCOIN_DESCRIPTOR).")]
    try:
        from shop.payments.bitcoin.models import (
            BitcoinBlock,
            BitcoinIndexCounter,
            BitcoinWatcherStatus,
        )
    except ImportError:  # pragma: no cover - Bitcoin checkout not installed
        return []
    checks = []
    status = session.scalar(select(BitcoinWatcherStatus).limit(1))
    block = session.scalar(select(BitcoinBlock).order_by(BitcoinBlock.height.desc()).limit(1))
    details = []
    if block is not None:
        details.append(f"Last block seen: height {block.height}, processed {_age(block.processed_at, now)}.")
    if status is not None and status.last_error:
        details.append(f"Last error {_age(status.last_error_at, now)}: {status.last_error}")
    reached = status.last_success_at if status else None
    fresh = reached is not None and (now - reached).total_seconds() < 600
    checks.append(Check("Bitcoin node", OK if fresh else WARN,
                        f"Node last reached {_age(reached, now)}.", details))

    limit = int(getattr(settings, "bitcoin_gap_limit", 20) or 20)
    try:
        from shop.payments.bitcoin.invoice import address_gap
    except ImportError:  # pragma: no cover
        return checks
    for fingerprint in session.scalars(select(BitcoinIndexCounter.descriptor_fingerprint)):
        gap = address_gap(session, fingerprint)
        over = gap > limit
        checks.append(Check(
            "Address gap", WARN if over else OK,
            f"{gap} address{'es' if gap != 1 else ''} handed out since the last paid one "
            f"(gap limit {limit}).",
            [f"Your wallet may not show payments to later addresses: when restoring or "
             f"rescanning it, use a gap limit of at least {gap + 1}."] if over else []))
    return checks


def _rates(session: Session, settings: Settings, now: datetime) -> list[Check]:
    if settings.currency == "BTC" or not getattr(settings, "bitcoin_descriptor", ""):
        return []
    try:
        from shop.payments.bitcoin.rate_models import RateQuote
    except ImportError:  # pragma: no cover
        return []
    quote = session.scalar(select(RateQuote).where(RateQuote.currency == settings.currency)
                           .order_by(RateQuote.as_of.desc()).limit(1))
    if quote is None:
        return [Check("Exchange rates", WARN, "No rate yet: Bitcoin checkout waits for one.")]
    max_age = int(getattr(settings, "rate_max_age_seconds", 600) or 600)
    fresh = (now - quote.as_of).total_seconds() <= max_age
    try:
        sources = [f"{s['source']}: {s['price']}" for s in json.loads(quote.sources)]
    except (ValueError, KeyError, TypeError):
        sources = []
    return [Check("Exchange rates", OK if fresh else WARN,
                  f"1 BTC = {quote.fiat_per_btc} {quote.currency}, {_age(quote.as_of, now)}.",
                  sources)]


def _stripe(session: Session, settings: Settings, now: datetime) -> list[Check]:
    if not getattr(settings, "stripe_secret_key", ""):
        return [Check("Stripe", OFF, "Card payments are not set up (SHOP_STRIPE_SECRET_KEY).")]
    try:
        from shop.payments.stripe.models import StripeEventRecord
    except ImportError:  # pragma: no cover
        return []
    last = session.scalar(select(func.max(StripeEventRecord.received_at)))
    return [Check("Stripe", OK if last else WARN, f"Last webhook received {_age(last, now)}.",
                  [] if last else ["If card orders stay unpaid, check the webhook endpoint "
                                   "/webhooks/stripe in the Stripe Dashboard."])]


def _mail(session: Session, settings: Settings, now: datetime) -> list[Check]:
    pending = session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.status == PENDING)) or 0
    failed = session.scalar(select(func.count()).select_from(OutboxMessage)
                            .where(OutboxMessage.status == FAILED)) or 0
    last = session.scalar(select(func.max(OutboxMessage.sent_at)))
    if not settings.smtp_url:
        return [Check("Email", OFF, f"No SMTP server (SHOP_SMTP_URL): {pending} email(s) waiting.")]
    # A refused connection is retried, so it never shows as "failed": look at the retries too.
    retrying = session.scalar(
        select(OutboxMessage).where(OutboxMessage.status == PENDING, OutboxMessage.attempts > 0,
                                    OutboxMessage.last_error != "")
        .order_by(OutboxMessage.id.desc()).limit(1))
    if retrying is not None:
        return [Check("Email", WARN, f"Email delivery is failing: {pending} waiting, {failed} "
                                     f"failed; last sent {_age(last, now)}.",
                      [f"Last error: {retrying.last_error}. Check SHOP_SMTP_URL and the mail "
                       "server; the worker keeps retrying."])]
    return [Check("Email", WARN if failed else OK,
                  f"{pending} waiting, {failed} failed; last sent {_age(last, now)}.")]


def _workers(session: Session, settings: Settings, now: datetime) -> list[Check]:
    from shop.jobs.heartbeat import last_stop, live_workers, newest_beat

    live = live_workers(session, settings.worker_interval_seconds, now)
    details = [f"{w.host} (process {w.pid}): started {_age(w.started_at, now)}, last beat "
               f"{_age(w.last_beat, now)}"
               + (f", running {w.current_job}" if w.current_job else "")
               + (", watching the Bitcoin chain" if w.watching_chain else "") for w in live]
    if live:
        return [Check("Worker", OK, f"{len(live)} worker process{'es' if len(live) != 1 else ''} "
                                    "running.", details)]
    beat, stopped = newest_beat(session), last_stop(session)
    if stopped is not None and (beat is None or stopped >= beat):
        summary = f"No worker running: the last one stopped {_age(stopped, now)}."
    elif beat is not None:
        summary = f"No worker running: the last one stopped answering {_age(beat, now)}."
    else:
        summary = "No worker has run yet."
    return [Check("Worker", WARN, summary,
                  ["Orders do not expire, emails are not sent and payments are not detected "
                   "until `shop worker` runs."])]


def checks(session: Session, settings: Settings, now: datetime | None = None) -> list[Check]:
    now = now or utcnow()
    result = []
    for probe in (_workers, _bitcoin, _rates, _stripe, _mail):
        try:
            with session.begin_nested():
                result += probe(session, settings, now)
        except SQLAlchemyError:
            result.append(Check(probe.__name__.strip("_").title(), WARN,
                                "Could not be read (is the database migrated?)."))
    return result


@dataclass(frozen=True)
class SetupItem:
    name: str
    done: bool
    detail: str
    endpoint: str  # where the merchant sets it up


def setup_checklist(session: Session, settings: Settings, payment_ready: bool,
                    now: datetime | None = None) -> list[SetupItem]:
    """What a new shop still lacks before it can take orders and keep its promises."""
    from shop.jobs.heartbeat import live_workers
    from shop.legal import service as legal

    missing = []
    for slug in ("imprint", "terms", "withdrawal"):
        page = legal.get_page(session, slug)
        filled = page is not None and (
            any(legal.imprint_fields(page).values()) if slug == "imprint" else bool(page.body))
        if not filled:
            missing.append(legal.PAGES[slug])
    workers = live_workers(session, settings.worker_interval_seconds, now or utcnow())
    return [
        SetupItem("Payment method", payment_ready,
                  "Customers can pay." if payment_ready else
                  "No payment method is set up: set SHOP_STRIPE_SECRET_KEY (cards) or "
                  "SHOP_BITCOIN_DESCRIPTOR (Bitcoin). Until then nobody can order.",
                  "admin.settings_page"),
        SetupItem("Legal pages", not missing,
                  "Imprint, terms and withdrawal are written." if not missing else
                  f"Still empty: {', '.join(missing)}.", "admin.legal_pages"),
        SetupItem("Email (SMTP)", bool(settings.smtp_url),
                  "Customer emails are sent." if settings.smtp_url else
                  "No SMTP server (SHOP_SMTP_URL): customers get no order emails.",
                  "admin.settings_page"),
        SetupItem("Worker", bool(workers),
                  "A worker is running." if workers else
                  "No `shop worker` is running: orders do not expire, emails are not sent and "
                  "payments are not detected.", "admin.settings_page"),
    ]


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
