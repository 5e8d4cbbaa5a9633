"""The "bitcoin" payment method: offered when a descriptor (or the demo's simulated chain) is set."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.config import Settings
from shop.db import Database, utcnow
from shop.i18n import N_
from shop.i18n import lazy_gettext as _l
from shop.money import BTC
from shop.orders.models import Order
from shop.payments import manual
from shop.payments.base import (
    Availability,
    HealthCheck,
    OrderView,
    Panel,
    PaymentStart,
    Refundable,
    ago,
)
from shop.payments.bitcoin import settings as btc_settings
from shop.payments.bitcoin.descriptor import WatchOnlyDescriptor
from shop.payments.bitcoin.invoice import address_gap
from shop.payments.bitcoin.models import BitcoinBlock, BitcoinIndexCounter, BitcoinWatcherStatus
from shop.payments.bitcoin.rate_models import RateQuote
from shop.payments.bitcoin.rates import DEMO_RATE, LockedRate, current_quote

UNAVAILABLE = _l(
    "Bitcoin is temporarily unavailable (no current exchange rate). "
    "Please choose another payment method or try again in a few minutes."
)


@dataclass
class BitcoinPayment:
    settings: Settings
    code: str = "bitcoin"
    label: str = N_("Bitcoin")
    description: str = N_(
        "Pay from any Bitcoin wallet to a fresh address of the shop's own "
        "wallet; no third party sees your payment."
    )
    panel_template: str = "payments/bitcoin.html"
    database: Database | None = None
    _rate_ok_until: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def configured(self) -> bool:
        return btc_settings.enabled(self.settings)

    @property
    def simulated(self) -> bool:
        return btc_settings.simulated(self.settings)

    @cached_property
    def descriptor(self) -> WatchOnlyDescriptor:
        descriptor = btc_settings.descriptor_from(self.settings)
        if descriptor is None:
            raise RuntimeError("Bitcoin checkout is not configured")
        return descriptor

    @cached_property
    def policy(self) -> btc_settings.BitcoinPolicy:
        return btc_settings.policy_from(self.settings)

    def availability(self) -> Availability:
        if not self.configured:
            return Availability(False, "Bitcoin needs SHOP_BITCOIN_DESCRIPTOR and a node.")
        if self.settings.currency == BTC or self.simulated or self.database is None:
            return Availability(True)
        # Checked at most every few seconds: the checkout page must stay cheap.
        with self._lock:
            if time.monotonic() < self._rate_ok_until:
                return Availability(True)
        session = self.database.sessionmaker()
        try:
            ok = self.rate(session, utcnow()) is not None
        finally:
            session.close()
        if not ok:
            return Availability(False, UNAVAILABLE)
        with self._lock:
            self._rate_ok_until = time.monotonic() + 10
        return Availability(True)

    def start(self, order: OrderView) -> PaymentStart:
        return PaymentStart()

    # -- lifecycle (shop.payments.base.PaymentMethod): a thin adapter over the package --------

    def panel(self, session: Session, order: Order) -> Panel:
        return Panel(template=self.panel_template)

    def cancel(self, database: Database, order_id: int, reason: str) -> None:
        # The invoice expires with its window; a payment arriving later is flagged as late.
        manual.cancel(database, order_id, reason)

    def refundable(self, session: Session, order: Order) -> Refundable:
        return manual.refundable_on_chain(order)

    def refund(self, database: Database, order_id: int, amount: int, reference: str = "") -> str:
        return manual.record_refund(database, order_id, amount, reference)

    def health(self, session: Session, now: datetime) -> list[HealthCheck]:
        return _node_health(session, self.settings, now) + _rates_health(
            session, self.settings, now
        )

    def rate(self, session: Session, now: datetime) -> LockedRate | None:
        """The rate to lock a new invoice at, or None (Bitcoin checkout pauses)."""
        currency = self.settings.currency
        if currency == BTC:
            return LockedRate(fiat_per_btc=Decimal(1))
        max_age = getattr(self.settings, "rate_max_age_seconds", 600)
        quote = current_quote(session, currency, now, max_age)
        if quote is not None:
            return LockedRate(quote.fiat_per_btc, quote.id)
        if self.simulated:
            return LockedRate(DEMO_RATE, None)
        return None

    def detection_delayed(self, session: Session, now: datetime) -> bool:
        """True when the watcher has not reached the node lately: payments show up late."""
        if self.simulated:
            return False
        status = session.get(BitcoinWatcherStatus, 1)
        if status is None or status.last_success_at is None:
            return True
        if status.last_error_at is not None:  # cleared by the next successful round
            return True
        stale_after = timedelta(seconds=max(120, 4 * self.settings.bitcoin_poll_seconds))
        return now - status.last_success_at > stale_after


def _node_health(session: Session, settings: Settings, now: datetime) -> list[HealthCheck]:
    if not getattr(settings, "bitcoin_descriptor", "") and not getattr(
        settings, "bitcoin_simulated", False
    ):
        return [
            HealthCheck(
                "Bitcoin node", "off", "Bitcoin checkout is not set up (SHOP_BITCOIN_DESCRIPTOR)."
            )
        ]
    checks = []
    status = session.scalar(select(BitcoinWatcherStatus).limit(1))
    block = session.scalar(select(BitcoinBlock).order_by(BitcoinBlock.height.desc()).limit(1))
    details = []
    if block is not None:
        details.append(
            f"Last block seen: height {block.height}, processed {ago(block.processed_at, now)}."
        )
    if status is not None and status.last_error:
        details.append(f"Last error {ago(status.last_error_at, now)}: {status.last_error}")
    reached = status.last_success_at if status else None
    fresh = reached is not None and (now - reached).total_seconds() < 600
    checks.append(
        HealthCheck(
            "Bitcoin node",
            "ok" if fresh else "warning",
            f"Node last reached {ago(reached, now)}.",
            details,
        )
    )

    limit = int(getattr(settings, "bitcoin_gap_limit", 20) or 20)
    for fingerprint in session.scalars(select(BitcoinIndexCounter.descriptor_fingerprint)):
        gap = address_gap(session, fingerprint)
        over = gap > limit
        checks.append(
            HealthCheck(
                "Address gap",
                "warning" if over else "ok",
                f"{gap} address{'es' if gap != 1 else ''} handed out since the last paid one "
                f"(gap limit {limit}).",
                [
                    f"Your wallet may not show payments to later addresses: when restoring or "
                    f"rescanning it, use a gap limit of at least {gap + 1}."
                ]
                if over
                else [],
            )
        )
    return checks


def _rates_health(session: Session, settings: Settings, now: datetime) -> list[HealthCheck]:
    if settings.currency == "BTC" or not getattr(settings, "bitcoin_descriptor", ""):
        return []
    quote = session.scalar(
        select(RateQuote)
        .where(RateQuote.currency == settings.currency)
        .order_by(RateQuote.as_of.desc())
        .limit(1)
    )
    if quote is None:
        return [
            HealthCheck("Exchange rates", "warning", "No rate yet: Bitcoin checkout waits for one.")
        ]
    max_age = int(getattr(settings, "rate_max_age_seconds", 600) or 600)
    fresh = (now - quote.as_of).total_seconds() <= max_age
    try:
        sources = [f"{s['source']}: {s['price']}" for s in json.loads(quote.sources)]
    except (ValueError, KeyError, TypeError):
        sources = []
    return [
        HealthCheck(
            "Exchange rates",
            "ok" if fresh else "warning",
            f"1 BTC = {quote.fiat_per_btc} {quote.currency}, {ago(quote.as_of, now)}.",
            sources,
        )
    ]
