"""Blueprint registration, template helpers, health check and media."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from flask import Flask, abort, jsonify, send_from_directory, session
from flask_babel import get_locale
from sqlalchemy import text

from shop.admin import branding
from shop.cart.storage import cart_count
from shop.money import format_money
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
        s = settings()
        return format_money(amount, currency or s.currency, s.locale)

    @app.template_filter("percent_bp")
    def percent_filter(rate_bp: int) -> str:
        whole, frac = divmod(rate_bp, 100)
        return f"{whole}%" if not frac else f"{whole}.{frac:02d}".rstrip("0") + "%"

    @app.template_filter("localtime")
    def localtime_filter(moment: datetime, date: bool = True) -> str:
        """A stored (UTC) time in the store's time zone, written for the page's language, with
        the zone's abbreviation so nobody has to guess (e.g. "Dec 2, 2026 9:30 AM CET")."""
        local = moment.astimezone(ZoneInfo(settings().timezone))
        locale = get_locale() or settings().locale
        time = format_time(local, "short", locale=locale)
        day = f"{format_date(local, 'medium', locale=locale)} " if date else ""
        return f"{day}{time} {local.tzname()}"
    @app.template_global("country_name")
    def country_name(code: str) -> str:
        from flask_babel import get_locale

        locale = get_locale()
        return (locale.territories.get(code, code) if locale is not None else code) if code else ""

    @app.context_processor
    def shop_globals():
        return {"store": settings(), "cart_items": cart_count(session),
                "branding": branding.current(settings().instance_path / "uploads")}

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
        return jsonify(status="ok", database="ok", worker=worker,
                       worker_last_beat_seconds=None if age is None else round(age, 1))

    @app.get("/media/<path:filename>")
    def media(filename: str):
        folder = settings().instance_path / "uploads"
        if not folder.is_dir():
            abort(404)
        response = send_from_directory(folder, filename, max_age=86400)
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response
