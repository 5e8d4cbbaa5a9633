"""Card payment routes: start Checkout, come back from it, and Stripe's webhook endpoint.

Thin: the work is in service.py. The customer's order token never goes to Stripe; the return
and cancel URLs find the order through the customer's own session cookie instead.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask import session as cookie
from flask.blueprints import BlueprintSetupState

from shop.orders import service as orders
from shop.orders.models import Order
from shop.payments.stripe import service
from shop.payments.stripe.client import CardGatewayError
from shop.payments.stripe.method import CardPayment
from shop.payments.stripe.webhooks import WebhookError, translate, verify_event
from shop.web.context import db_session, payment_methods, settings

log = logging.getLogger(__name__)
bp = Blueprint("card", __name__)

_RETURN_KEY = "card_order"


def _method() -> CardPayment:
    method = payment_methods().get("card")
    if not isinstance(method, CardPayment) or not method.availability().ok:
        abort(404)
    return method


def _external(endpoint: str) -> str:
    base = settings().base_url
    if base:
        return base.rstrip("/") + url_for(endpoint)
    return url_for(endpoint, _external=True)


def _order_page(order: Order):
    return redirect(url_for("orders.show", token=order.token), 303)


@bp.post("/orders/<token>/pay/card")
def start(token: str):
    method = _method()
    order = orders.get_by_token(db_session(), token)
    if order is None or order.payment_method != method.code:
        abort(404)
    try:
        link = service.start_checkout(
            db_session(), method.gateway, order,
            # Stripe fills in {CHECKOUT_SESSION_ID}; it is not a format placeholder here.
            success_url=_external("card.returned") + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=_external("card.cancelled"),
        )
    except service.CardPaymentError as exc:
        flash(str(exc), "error")
        return _order_page(order)
    cookie[_RETURN_KEY] = order.token
    return redirect(link.url, 303)


def _returning_order() -> Order | None:
    token = cookie.get(_RETURN_KEY)
    return orders.get_by_token(db_session(), token) if isinstance(token, str) else None


@bp.get("/card/return")
def returned():
    method = _method()
    order = _returning_order()
    if order is None:
        return render_template("payments/card_return.html"), 200
    session_id = request.args.get("session_id", "")
    if 0 < len(session_id) <= 255:
        service.note_return(db_session(), method.gateway, order, session_id)
    flash("Thank you! Stripe is confirming your payment; this page shows “Paid” as soon as it "
          "is confirmed.", "success")
    return _order_page(order)


@bp.get("/card/cancel")
def cancelled():
    _method()
    order = _returning_order()
    if order is None:
        return redirect(url_for("catalog.index"), 303)
    flash("The card payment was cancelled; nothing was charged. You can pay below.", "info")
    return _order_page(order)


@bp.post("/webhooks/stripe")
def webhook():
    method = _method()
    try:
        event = verify_event(request.get_data(), request.headers.get("Stripe-Signature"),
                             method.webhook_secret)
        card_event = translate(event)
    except WebhookError as exc:
        return jsonify(error=str(exc)), 400
    if card_event is None:
        return jsonify(received=True, handled=False), 200
    db = db_session()
    if service.already_processed(db, card_event.event_id):
        return jsonify(received=True, duplicate=True), 200
    # End the read transaction before calling Stripe: the write transaction then starts with
    # the event's insert, which waits its turn on SQLite and under concurrent redeliveries.
    db.rollback()
    try:
        facts = service.read_facts(method.gateway, card_event)
    except CardGatewayError as exc:
        log.warning("Stripe unavailable re-reading %s (%s); Stripe will redeliver it",
                    card_event.event_id, type(exc).__name__)
        return jsonify(error="payment provider unavailable, retry later"), 503
    outcome = service.record_event(db, card_event, facts)
    return jsonify(received=True, outcome=outcome.status), 200


@bp.app_context_processor
def card_helpers():
    def card_attempt(order: Order):
        return service.latest_attempt(db_session(), order.id)

    return {"card_attempt": card_attempt}


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    # Stripe signs the webhook; it cannot carry the shop's CSRF token.
    app.extensions["csrf"].exempt(webhook)
    shop_settings = app.extensions["shop.settings"]
    if shop_settings.stripe_secret_key:
        app.extensions.setdefault("shop.form_action_origins", []).append(
            shop_settings.stripe_checkout_origin)
