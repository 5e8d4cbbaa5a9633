"""The app factory: settings, the database, every feature's blueprint and the site-wide routes.

The top of the web side: it may import any feature, and nothing but the entry points (shop.cli,
`shop:create_app()` for gunicorn, tests) imports it.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.numbers import format_percent
from flask import Flask, abort, jsonify, send_from_directory, session
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from shop.admin import branding
from shop.admin.views import bp as admin_bp
from shop.cart.storage import cart_count
from shop.cart.views import bp as cart_bp
from shop.catalog.search import config_for as search_config_for
from shop.catalog.service import CatalogCache
from shop.catalog.views import bp as catalog_bp
from shop.checkout.views import bp as checkout_bp
from shop.config import ConfigError, Settings, load_settings
from shop.db import Database
from shop.downloads.views import bp as downloads_bp
from shop.jobs.heartbeat import worker_status
from shop.legal.views import bp as legal_bp
from shop.money import format_money
from shop.orders.views import bp as orders_bp
from shop.payments.registry import blueprints as payment_blueprints
from shop.payments.registry import build_methods
from shop.privacy import setup as privacy
from shop.privacy.keys import create_file_once, instance_data_key
from shop.privacy.views import bp as privacy_bp
from shop.refunds.views import bp as refunds_bp
from shop.resources import resource_dir
from shop.subscribers import connect as connect_subscribers
from shop.web import context, i18n, security
from shop.web.context import db_session


def create_app(
    config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Flask:
    """Build the app. `config` overrides settings (tests); `environ` replaces os.environ."""
    settings = resolve_secrets(load_settings(environ, config))
    connect_subscribers()  # what an order's changes set off (ledger, emails, downloads)
    app = Flask(
        "shop",
        template_folder=str(resource_dir("templates")),
        instance_path=str(settings.instance_path),
        instance_relative_config=False,
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Over HTTPS the __Host- prefix makes browsers refuse the cookie unless it is Secure,
        # for this host only and for the whole site: no subdomain can plant or read it.
        SESSION_COOKIE_NAME="__Host-shop_session" if settings.cookie_secure else "shop_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(days=2),
        # The cart cookie lasts two days from its last change, not from the last page view, so
        # browsing does not re-sign and re-send the cookie on every response.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token is bound to the session; a slow customer is fine
        WTF_CSRF_SSL_STRICT=settings.production,
    )
    app.extensions["shop.settings"] = settings
    app.extensions["shop.db"] = Database(
        settings.database_url, search_config=search_config_for(settings.locale)
    )
    privacy.setup(app, settings)
    i18n.setup(app, settings)
    app.extensions["shop.payment_methods"] = build_methods(settings)
    app.extensions["shop.catalog_cache"] = CatalogCache(settings.catalog_cache_seconds)

    if settings.trusted_proxies:
        # Only the client address: the scheme and host the app uses stay its own settings.
        # Flask's documented way to add WSGI middleware; its stubs declare wsgi_app a method.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0, x_port=0, x_prefix=0
        )
    CSRFProtect(app)
    app.before_request(context.open_call_budget)
    app.teardown_request(context.close_call_budget)
    app.after_request(context.commit_request_session)
    app.after_request(security.add_security_headers)
    app.teardown_request(context.discard_request_session)
    security.register_error_handlers(app)
    register(app)
    return app


def resolve_secrets(settings: Settings) -> Settings:
    """Settings the app needs but the merchant left empty: outside production, generate and persist what is missing so the demo needs no setup."""
    updates: dict[str, Any] = {}
    instance = settings.instance_path
    if not settings.database_url:
        instance.mkdir(parents=True, exist_ok=True)
        updates["database_url"] = f"sqlite:///{instance / 'shop.sqlite3'}"
    if not settings.secret_key:
        if settings.production:  # _validate already refused this; keep the guard local too
            raise ConfigError(["SHOP_SECRET_KEY is required in production"])
        instance.mkdir(parents=True, exist_ok=True)
        updates["secret_key"] = create_file_once(instance / "secret_key", secrets.token_urlsafe(48))
    if not settings.data_key:
        if settings.production:  # _validate already refused this; keep the guard local too
            raise ConfigError(["SHOP_DATA_KEY is required in production"])
        updates["data_key"] = instance_data_key(instance)
    return dataclasses.replace(settings, **updates) if updates else settings


def register(app: Flask) -> None:
    """Every blueprint, the template helpers, the health check and the uploaded media."""
    for bp in (
        catalog_bp,
        cart_bp,
        checkout_bp,
        orders_bp,
        privacy_bp,
        *payment_blueprints(),
        admin_bp,
        legal_bp,
        downloads_bp,
        refunds_bp,
    ):
        app.register_blueprint(bp)

    @app.template_filter("money")
    def money_filter(amount: int, currency: str | None = None) -> str:
        return format_money(amount, currency or context.settings().currency, i18n.locale())

    @app.template_filter("percent_bp")
    def percent_filter(rate_bp: int) -> str:
        # Exact: basis points become a Decimal, never a float ("7,7 %" in German).
        return format_percent(
            Decimal(rate_bp) / 10_000, locale=i18n.locale(), decimal_quantization=False
        )

    @app.template_global("country_name")
    def country_name(code: str) -> str:
        # The customer's language (the `country_name` filter of shop.web.i18n does the same).
        return Locale.parse(i18n.locale()).territories.get(code, code) if code else ""

    @app.context_processor
    def shop_globals():
        return {
            "store": context.settings(),
            "cart_items": cart_count(session),
            "branding": branding.current(context.settings().instance_path / "uploads"),
        }

    @app.get("/healthz")
    def healthz():
        try:
            db_session().execute(text("SELECT 1"))
        except Exception:
            return jsonify(status="unavailable", database="unreachable"), 503
        # A dead worker does not make this web server unhealthy (a load balancer must keep
        # sending it traffic), so the status stays 200: monitoring alerts on the `worker` field.
        try:
            with db_session().begin_nested():
                worker, age = worker_status(
                    db_session(), context.settings().worker_interval_seconds
                )
        except Exception:
            worker, age = "unknown", None
        return jsonify(
            status="ok",
            database="ok",
            worker=worker,
            worker_last_beat_seconds=None if age is None else round(age, 1),
        )

    @app.get("/media/<path:filename>")
    def media(filename: str):
        folder = context.settings().instance_path / "uploads"
        if not folder.is_dir():
            abort(404)
        response = send_from_directory(folder, filename, max_age=86400)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'"
        )
        return response
