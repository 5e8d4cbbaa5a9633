"""Blueprint registration, template helpers, health check and media."""

from __future__ import annotations

from flask import Flask, abort, jsonify, send_from_directory, session
from sqlalchemy import text

from shop.cart.storage import cart_count
from shop.money import format_money
from shop.web.context import db_session, settings


def register(app: Flask) -> None:
    from shop.cart.views import bp as cart_bp
    from shop.catalog.views import bp as catalog_bp
    from shop.checkout.views import bp as checkout_bp
    from shop.orders.views import bp as orders_bp

    for bp in (catalog_bp, cart_bp, checkout_bp, orders_bp):
        app.register_blueprint(bp)

    @app.template_filter("money")
    def money_filter(amount: int, currency: str | None = None) -> str:
        s = settings()
        return format_money(amount, currency or s.currency, s.locale)

    @app.template_filter("percent_bp")
    def percent_filter(rate_bp: int) -> str:
        whole, frac = divmod(rate_bp, 100)
        return f"{whole}%" if not frac else f"{whole}.{frac:02d}".rstrip("0") + "%"

    @app.context_processor
    def shop_globals():
        return {"store": settings(), "cart_items": cart_count(session)}

    @app.get("/healthz")
    def healthz():
        try:
            db_session().execute(text("SELECT 1"))
        except Exception:
            return jsonify(status="unavailable", database="unreachable"), 503
        return jsonify(status="ok", database="ok")

    @app.get("/media/<path:filename>")
    def media(filename: str):
        folder = settings().instance_path / "uploads"
        if not folder.is_dir():
            abort(404)
        response = send_from_directory(folder, filename, max_age=86400)
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response
