"""The worker's card job: apply the Stripe events the webhook endpoint stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from shop.config import Settings, load_settings
from shop.db import Database
from shop.payments.stripe.method import CardPayment
from shop.payments.stripe.service import process_events


class StripeEventsJob:
    name = "stripe-events"

    def __init__(self, settings_loader: Callable[[], Settings] | None = None) -> None:
        self._settings_loader = settings_loader
        self._method: CardPayment | None = None

    def __call__(self, database: Database, settings: Settings | None = None) -> int:
        if settings is None:
            if self._method is not None:
                settings = self._method.settings
            elif self._settings_loader is not None:
                settings = self._settings_loader()
            else:
                # Like the rates job: the worker was configured from the same SHOP_* environment.
                settings = load_settings()
        if not (settings.stripe_secret_key and settings.stripe_webhook_secret):
            return 0
        if self._method is None:
            self._method = CardPayment(settings)  # one SDK client (connection pool) per worker
        return process_events(
            database, self._method.gateway, hold=timedelta(days=settings.card_processing_hold_days)
        )
