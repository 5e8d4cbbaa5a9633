"""Card payment routes: start Checkout, come back from it, and Stripe's webhook endpoint.

Thin: the work is in service.py. The customer's order token never goes to Stripe; the return
and cancel URLs find the order through the customer's own session cookie instead.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask import session as cookie
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _

from shop.orders import service as orders
from shop.orders.models import Order
from shop.payments.stripe import service
from shop.payments.stripe.method import CardPayment
from shop.payments.stripe.urls import return_urls
from shop.payments.stripe.webhooks import WebhookError, translate, verify_event
from shop.web.context import database, db_session, payment_methods

log = logging.getLogger(__name__)
bp = Blueprint("card", __name__)

_RETURN_KEY = "card_order"


def _method() -> CardPayment:
    method = payment_methods().get("card")
    if not isinstance(method, CardPayment) or not method.availability().ok:
        abort(404)
    return method


def _order_page(order: Order):
    return redirect(url_for("orders.show", token=order.token), 303)


@bp.post("/orders/<token>/pay/card")
def start(token: str):
    method = _method()
    order = orders.get_by_token(db_session(), token)
    if order is None or order.payment_method != method.code:
        abort(404)
    order_id = order.id
    # The service commits its own short units of work around the call to Stripe; this
    # request's read transaction must not stay open across it.
    db_session().rollback()
    success_url, cancel_url = return_urls()
    try:
        link = service.start_checkout(
            database(), method.gateway, order_id, success_url=success_url, cancel_url=cancel_url
        )
    except service.CardPaymentError as exc:
        flash(str(exc), "error")
        return redirect(url_for("orders.show", token=token), 303)
    cookie[_RETURN_KEY] = token
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
    token, order_id = order.token, order.id
    if 0 < len(session_id) <= 255:
        db_session().rollback()  # no read transaction across the call to Stripe
        service.note_return(database(), method.gateway, order_id, session_id)
    flash(
        _(
            "Thank you! Stripe is confirming your payment; this page shows “Paid” as soon as "
            "it is confirmed."
        ),
        "success",
    )
    return redirect(url_for("orders.show", token=token), 303)


@bp.get("/card/cancel")
def cancelled():
    _method()
    order = _returning_order()
    if order is None:
        return redirect(url_for("catalog.index"), 303)
    flash(_("The card payment was cancelled; nothing was charged. You can pay below."), "info")
    return _order_page(order)


@bp.post("/webhooks/stripe")
def webhook():
    """Verify, store, answer: the worker applies the event (re-reading it from Stripe), so a
    slow Stripe never holds this request, and Stripe never waits on the shop."""
    method = _method()
    try:
        event = verify_event(
            request.get_data(), request.headers.get("Stripe-Signature"), method.webhook_secret
        )
        card_event = translate(event)
    except WebhookError as exc:
        return jsonify(error=str(exc)), 400
    if event.livemode != method.livemode:
        log.warning(
            "Stripe event %s refused: livemode=%s, but the shop's key is for %s mode",
            event.id,
            event.livemode,
            "live" if method.livemode else "test",
        )
        return jsonify(error="event mode (live/test) does not match this shop's Stripe key"), 400
    if card_event is None:
        return jsonify(received=True, handled=False), 200
    stored = service.receive_event(db_session(), card_event)
    return jsonify(received=True, duplicate=not stored), 200


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
            shop_settings.stripe_checkout_origin
        )
