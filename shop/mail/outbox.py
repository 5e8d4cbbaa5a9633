"""Customer emails: queued in the order's transaction, rendered and sent by the worker after commit.

A rolled-back change rolls its queued email back with it; a failed send is retried with backoff.
The recipient is read from the order's (encrypted) contact only at sending time and never
stored here, so nothing personal stays in the outbox, and a purged order gets no more mail.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from babel import Locale
from babel.numbers import format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from shop import i18n
from shop.cart.pricing import PricedLine, compute_totals
from shop.config import Settings
from shop.db import Database, utcnow
from shop.i18n import N_
from shop.legal import service as legal
from shop.legal.service import PAGES
from shop.mail import smtp
from shop.mail.models import DROPPED, FAILED, PENDING, SENT, OutboxMessage
from shop.money import format_money
from shop.orders import events
from shop.orders.consent import wording
from shop.orders.models import Order
from shop.privacy.keys import session_settings
from shop.privacy.store import read_contact, unseal
from shop.resources import resource_dir

log = logging.getLogger(__name__)

ORDER_RECEIVED = "order_received"
PAYMENT_RECEIVED = "payment_received"
SHIPPED = "shipped"
REFUND_ISSUED = "refund_issued"
ORDER_CANCELLED = "order_cancelled"
ORDER_LINK = "order_link"
SUBJECTS = {
    ORDER_RECEIVED: N_("Order %(number)s received"),
    PAYMENT_RECEIVED: N_("Payment for order %(number)s received"),
    SHIPPED: N_("Order %(number)s is on its way"),
    REFUND_ISSUED: N_("Refund for order %(number)s"),
    ORDER_CANCELLED: N_("Order %(number)s cancelled"),
    ORDER_LINK: N_("Your link to order %(number)s"),
}
MAX_ATTEMPTS = 10
# Unsent mail older than this is no longer worth sending (e.g. SMTP was never set up).
STALE_AFTER = timedelta(days=7)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 6 * 3600))


def recipient(session: Session, order: Order) -> str | None:
    details = read_contact(session, order)
    return details.email if details and details.email else None


def enqueue(
    session: Session,
    order: Order,
    kind: str,
    *,
    has_email: bool | None = None,
    now: datetime | None = None,
    **payload: Any,
) -> OutboxMessage | None:
    """Queue `kind` for the order's customer, if they gave an email address."""
    if kind not in SUBJECTS:
        raise ValueError(f"unknown email kind {kind!r}")
    if has_email is None:
        has_email = recipient(session, order) is not None
    if not has_email:
        return None
    message = OutboxMessage(
        kind=kind,
        order_id=order.id,
        payload=json.dumps(payload),
        status=PENDING,
        created_at=now or utcnow(),
        next_attempt_at=now or utcnow(),
    )
    session.add(message)
    return message


# ---------------------------------------------------------------- what orders tell the customer
# Subscribers of the order's events (shop/subscribers.py), queued in the transition's transaction.


def on_order_placed(session: Session, event: events.OrderPlaced) -> None:
    enqueue(session, event.order(session), ORDER_RECEIVED, has_email=event.has_email, now=event.at)


def on_order_paid(session: Session, event: events.OrderPaid) -> None:
    enqueue(session, event.order(session), PAYMENT_RECEIVED, now=event.at)


def on_order_shipped(session: Session, event: events.OrderShipped) -> None:
    sealed = event.tracking_sealed
    tracking: dict[str, Any] = (
        {"tracking_sealed": base64.b64encode(sealed).decode()} if sealed else {}
    )
    enqueue(session, event.order(session), SHIPPED, now=event.at, **tracking)


def on_order_cancelled(session: Session, event: events.OrderCancelled) -> None:
    # The customer hears it from the shop, with the reason the merchant gave.
    enqueue(session, event.order(session), ORDER_CANCELLED, reason=event.reason[:300], now=event.at)


def on_order_refunded(session: Session, event: events.OrderRefunded) -> None:
    # The email states this refund as it was made, not as the order is when the worker sends it.
    enqueue(
        session,
        event.order(session),
        REFUND_ISSUED,
        amount=event.amount,
        refunded=event.refunded,
        paid=event.paid,
        now=event.at,
    )


# The customer's "send me the link" button: one email every few minutes, a few a day, so the
# button cannot be used to flood the address the order holds.
LINK_EVERY = timedelta(minutes=10)
LINK_DAY_LIMIT = 5


class LinkRateLimited(Exception):
    def __init__(self, retry_at: datetime):
        self.retry_at = retry_at
        super().__init__(f"the next link email can be sent at {retry_at:%Y-%m-%d %H:%M} UTC")


def link_emailed(session: Session, order: Order) -> bool:
    """Whether an email carrying the order page's link has actually gone out (queued is not
    enough: SMTP may be down, or the address mistyped)."""
    return (
        session.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.order_id == order.id, OutboxMessage.status == SENT)
            .limit(1)
        )
        is not None
    )


def queue_order_link(session: Session, order: Order, now: datetime | None = None) -> OutboxMessage:
    """Queue the order page's link to the email address the order already holds.

    Raises LinkRateLimited when asked again too soon; ValueError when the order has no address.
    """
    now = now or utcnow()
    recent = list(
        session.scalars(
            select(OutboxMessage.created_at).where(
                OutboxMessage.order_id == order.id,
                OutboxMessage.kind == ORDER_LINK,
                OutboxMessage.created_at > now - timedelta(days=1),
            )
        )
    )
    if recent and max(recent) > now - LINK_EVERY:
        raise LinkRateLimited(max(recent) + LINK_EVERY)
    if len(recent) >= LINK_DAY_LIMIT:
        raise LinkRateLimited(min(recent) + timedelta(days=1))
    message = enqueue(session, order, ORDER_LINK, now=now)
    if message is None:
        raise ValueError("the order has no email address")
    return message


# ---------------------------------------------------------------- rendering


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates") / "mail")),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # The language is chosen per message (use_locale), so the callables look it up when called.
    # Jinja's newstyle wrappers do the %-formatting themselves.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: i18n.current().gettext(message),
        lambda singular, plural, n: i18n.current().ngettext(singular, plural, n),
        newstyle=True,
    )
    return env


def order_locale(order: Order, settings: Settings) -> str:
    """The language the customer shopped in; the store's for orders from before languages."""
    return order.locale or settings.locale


# The legal texts the order confirmation carries, as the durable medium (§ 312f BGB).
CONFIRMATION_LEGAL = ("terms", "withdrawal")


def legal_texts(session: Session) -> dict[str, str]:
    """The merchant's terms and withdrawal information as they stand now (plain text)."""
    texts = {}
    for slug in CONFIRMATION_LEGAL:
        page = legal.get_page(session, slug)
        texts[slug] = page.body if page is not None else ""
    return texts


def _totals(order: Order):
    lines = [
        PricedLine(
            l.variant_id or 0,
            "",
            l.product_title,
            l.variant_label,
            l.sku,
            l.kind,
            l.unit_price,
            l.quantity,
            l.tax_rate_bp,
            tax_country=l.tax_country,
        )
        for l in order.lines
    ]
    return compute_totals(
        lines, order.shipping, order.shipping_tax_rate_bp, order.shipping_tax_country
    )


def render(
    settings: Settings,
    order: Order,
    kind: str,
    payload: dict[str, Any],
    to: str,
    *,
    legal: dict[str, str] | None = None,
) -> EmailMessage:
    locale = order_locale(order, settings)
    with i18n.use_locale(locale):
        return _render(settings, order, kind, payload, to, locale, legal)


def _render(
    settings: Settings,
    order: Order,
    kind: str,
    payload: dict[str, Any],
    to: str,
    locale: str,
    legal: dict[str, str] | None,
) -> EmailMessage:
    env = _environment()
    env.filters["money"] = lambda amount, currency=None: format_money(
        amount, currency or order.currency, locale
    )
    # Exact: basis points become a Decimal, never a float ("7,7 %" in German).
    env.filters["percent_bp"] = lambda rate_bp: format_percent(
        Decimal(rate_bp) / 10_000, locale=locale, decimal_quantization=False
    )
    env.filters["localtime"] = lambda moment: i18n.format_localtime(
        moment, settings.timezone, locale
    )
    base = settings.base_url.rstrip("/")
    language = i18n.language_of(locale)
    # The link opens the order page in the order's language (the store's own needs no prefix).
    prefix = "" if language == i18n.language_of(settings.locale) else f"/{language}"
    context = {
        "store_name": settings.store_name,
        "order": order,
        "kind": kind,
        "payload": payload,
        "order_url": f"{base}{prefix}/orders/{order.token}" if base else None,
        "language": language,
        "home_country": settings.country,
        "totals": _totals(order),
        "country_name": lambda code: Locale.parse(locale).territories.get(code, code),
        "consent_text": wording(order.digital_consent_version),
        "legal": [(PAGES[slug], text) for slug, text in (legal or {}).items() if text],
    }
    message = EmailMessage()
    message["Subject"] = i18n.gettext(SUBJECTS[kind], number=order.number)
    message["From"] = formataddr((settings.store_name, settings.mail_from))
    message["To"] = to
    message["Date"] = format_datetime(utcnow())
    domain = Address(addr_spec=settings.mail_from).domain if "@" in settings.mail_from else None
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(env.get_template(f"{kind}.txt").render(context))
    message.add_alternative(env.get_template(f"{kind}.html").render(context), subtype="html")
    message["Content-Language"] = language  # after set_content, which clears Content-* headers
    return message


# ---------------------------------------------------------------- delivery


def _claim(session: Session, now: datetime) -> OutboxMessage | None:
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Several workers share the queue: each takes a row nobody else holds.
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalar(stmt)


def _settings_of(database: Database) -> Settings:
    with database.sessionmaker() as session:
        return session_settings(session)


Sender = Callable[[smtp.SmtpConfig, EmailMessage], None]


def deliver_due(
    database: Database,
    settings: Settings | None = None,
    *,
    now: datetime | None = None,
    limit: int = 100,
    send: Sender = smtp.send,
) -> int:
    """Send what is due, one message per transaction; returns how many were sent."""
    settings = settings or _settings_of(database)
    now = now or utcnow()
    with database.job_session() as session:
        for stale in session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.status == PENDING, OutboxMessage.created_at < now - STALE_AFTER
            )
        ):
            stale.status, stale.last_error = DROPPED, "too old"
    if not settings.smtp_url:
        return 0
    config = smtp.parse_smtp_url(settings.smtp_url)
    sent = 0
    for _ in range(limit):
        with database.job_session() as session:
            message = _claim(session, now)
            if message is None:
                break
            if _deliver_one(session, message, settings, config, send, now):
                sent += 1
    return sent


def _open_payload(session: Session, order: Order, message: OutboxMessage) -> dict[str, Any]:
    """The event details, with a sealed tracking reference opened for the email only."""
    payload = json.loads(message.payload)
    sealed = payload.pop("tracking_sealed", None)
    if sealed:
        payload["tracking"] = unseal(session, order, "tracking", base64.b64decode(sealed)) or ""
    return payload


def _deliver_one(
    session: Session,
    message: OutboxMessage,
    settings: Settings,
    config: smtp.SmtpConfig,
    send: Sender,
    now: datetime,
) -> bool:
    order = (
        session.scalar(
            select(Order).where(Order.id == message.order_id).options(selectinload(Order.lines))
        )
        if message.order_id
        else None
    )
    to = recipient(session, order) if order is not None else None
    if order is None or to is None:
        # The order or its contact is gone (erased on request or by the purge): nobody to tell.
        message.status, message.last_error = DROPPED, "no recipient any more"
        return False
    message.attempts += 1
    try:
        legal = legal_texts(session) if message.kind == ORDER_RECEIVED else None
        send(
            config,
            render(
                settings,
                order,
                message.kind,
                _open_payload(session, order, message),
                to,
                legal=legal,
            ),
        )
    except smtp.SendError as exc:
        message.last_error = exc.summary[:200]
        if exc.permanent or message.attempts >= MAX_ATTEMPTS:
            message.status = FAILED
            log.warning(
                "email %s for order %s failed for good: %s", message.id, order.number, exc.summary
            )
        else:
            message.next_attempt_at = now + backoff(message.attempts)
            log.info(
                "email %s for order %s not sent (%s); retry %d at %s",
                message.id,
                order.number,
                exc.summary,
                message.attempts,
                message.next_attempt_at,
            )
        return False
    message.status, message.sent_at, message.last_error = SENT, now, ""
    return True
