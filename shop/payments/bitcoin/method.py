"""The "bitcoin" payment method: offered when a descriptor (or the demo's simulated chain) is set."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property

from sqlalchemy.orm import Session

from shop.db import Database, utcnow
from shop.money import BTC
from shop.payments.base import Availability, OrderView, PaymentStart
from shop.payments.bitcoin import settings as btc_settings
from shop.payments.bitcoin.descriptor import WatchOnlyDescriptor
from shop.payments.bitcoin.invoice import LockedRate
from shop.payments.bitcoin.models import BitcoinWatcherStatus

UNAVAILABLE = ("Bitcoin is temporarily unavailable (no current exchange rate). "
               "Please choose another payment method or try again in a few minutes.")


@dataclass
class BitcoinPayment:
    settings: object
    code: str = "bitcoin"
    label: str = "Bitcoin"
    description: str = ("Pay from any Bitcoin wallet to a fresh address of the shop's own wallet; "
                        "no third party sees your payment.")
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

    def rate(self, session: Session, now: datetime) -> LockedRate | None:
        """The rate to lock a new invoice at, or None (Bitcoin checkout pauses)."""
        currency = self.settings.currency
        if currency == BTC:
            return LockedRate(fiat_per_btc=Decimal(1))
        from shop.payments.bitcoin.rates import current_quote

        max_age = getattr(self.settings, "rate_max_age_seconds", 600)
        quote = current_quote(session, currency, now, max_age)
        if quote is not None:
            return LockedRate(quote.fiat_per_btc, quote.id)
        if self.simulated:
            from shop.payments.bitcoin.simulated import DEMO_RATE

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
