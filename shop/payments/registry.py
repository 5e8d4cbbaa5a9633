"""Which payment methods this shop offers, built once per app from its settings."""

from __future__ import annotations

import threading

from shop.config import Settings
from shop.db import Database
from shop.payments.base import PaymentMethod
from shop.payments.bitcoin.admin_views import bp as bitcoin_admin_bp
from shop.payments.bitcoin.method import BitcoinPayment
from shop.payments.bitcoin.views import bp as bitcoin_bp
from shop.payments.demo import DemoPayment
from shop.payments.demo_views import bp as demo_bp
from shop.payments.lightning.listener import start_listener
from shop.payments.lightning.method import LightningPayment
from shop.payments.lightning.views import bp as lightning_bp
from shop.payments.stripe.method import CardPayment
from shop.payments.stripe.views import bp as card_bp


def build_methods(settings: Settings) -> dict[str, PaymentMethod]:
    methods: list[PaymentMethod] = [DemoPayment(enabled=settings.demo_payments)]
    methods.append(CardPayment(settings))
    methods.append(BitcoinPayment(settings))
    methods.append(LightningPayment(settings))
    return {m.code: m for m in methods}


def available_methods(methods: dict[str, PaymentMethod]) -> list[PaymentMethod]:
    return [m for m in methods.values() if m.availability().ok]


def start_listeners(
    database: Database, settings: Settings, stop: threading.Event
) -> list[threading.Thread]:
    """The worker's threads that follow a payment provider besides the chain watcher."""
    threads = [start_listener(database, settings, stop)]
    return [t for t in threads if t is not None]


def blueprints():
    """Each method's routes (payment pages, provider webhooks, the merchant's decisions)."""
    return [card_bp, bitcoin_bp, bitcoin_admin_bp, lightning_bp, demo_bp]
