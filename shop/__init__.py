"""shop: a self-hosted web shop with card and private Bitcoin checkout."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """templates/ and migrations/: inside the installed package, or at the repository top."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name


def create_app(
    config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Flask:
    """Build the app. `config` overrides settings (tests); `environ` replaces os.environ."""
    from flask_wtf.csrf import CSRFProtect

    from shop.catalog.search import config_for as search_config_for
    from shop.catalog.service import CatalogCache
    from shop.config import load_settings, resolve_secrets
    from shop.db import Database
    from shop.payments.registry import build_methods
    from shop.privacy import setup as privacy
    from shop.subscribers import connect as connect_subscribers
    from shop.web import context, i18n, security, views

    settings = resolve_secrets(load_settings(environ, config))
    connect_subscribers()  # what an order's changes set off (ledger, emails, downloads)
    app = Flask(
        __name__,
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
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Only the client address: the scheme and host the app uses stay its own settings.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0, x_port=0, x_prefix=0
        )  # type: ignore[method-assign]
    CSRFProtect(app)
    app.before_request(context.open_call_budget)
    app.teardown_request(context.close_call_budget)
    app.after_request(context.commit_request_session)
    app.after_request(security.add_security_headers)
    app.teardown_request(context.discard_request_session)
    security.register_error_handlers(app)
    views.register(app)
    return app
