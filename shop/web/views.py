"""Blueprint registration, template helpers, health check and media."""

from __future__ import annotations

from decimal import Decimal

from babel import Locale
from babel.numbers import format_percent
from flask import Flask, abort, jsonify, send_from_directory, session
from sqlalchemy import text

from shop.admin import branding
from shop.cart.storage import cart_count
from shop.money import format_money
from shop.web import i18n
from shop.web.context import db_session, settings


def register(app: Flask) -> None:
    from shop.cart.views import bp as cart_bp
    from shop.catalog.views import bp as catalog_bp
    from shop.checkout.views import bp as checkout_bp
    from shop.orders.views import bp as orders_bp
    from shop.payments.registry import blueprints as payment_blueprints
    from shop.privacy.views import bp as privacy_bp

    for bp in (catalog_bp, cart_bp, checkout_bp, orders_bp, privacy_bp, *payment_blueprints()):
        app.register_blueprint(bp)
    from shop.admin.views import bp as admin_bp
    from shop.downloads.views import bp as downloads_bp
    from shop.legal.views import bp as legal_bp

    app.register_blueprint(admin_bp)
    app.register_blueprint(legal_bp)
    app.register_blueprint(downloads_bp)
    from shop.refunds.views import bp as refunds_bp

    app.register_blueprint(refunds_bp)

    @app.template_filter("money")
    def money_filter(amount: int, currency: str | None = None) -> str:
        return format_money(amount, currency or settings().currency, i18n.locale())

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
            "store": settings(),
            "cart_items": cart_count(session),
            "branding": branding.current(settings().instance_path / "uploads"),
        }

    @app.get("/healthz")
    def healthz():
        try:
            db_session().execute(text("SELECT 1"))
        except Exception:
            return jsonify(status="unavailable", database="unreachable"), 503
        # A dead worker does not make this web server unhealthy (a load balancer must keep
        # sending it traffic), so the status stays 200: monitoring alerts on the `worker` field.
        from shop.jobs.heartbeat import worker_status

        try:
            with db_session().begin_nested():
                worker, age = worker_status(db_session(), settings().worker_interval_seconds)
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
        folder = settings().instance_path / "uploads"
        if not folder.is_dir():
            abort(404)
        response = send_from_directory(folder, filename, max_age=86400)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'"
        )
        return response
